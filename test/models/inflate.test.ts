import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { manualSeed, noGrad, randn, tidy, type Tensor } from '../../src/engine/index.js';
import { createModel, loadModelCheckpoint, readCheckpointMeta, saveModelCheckpoint, type ZooModel } from '../../src/models/index.js';
import { inflateCheckpoint, inflateInto, inflateKernel } from '../../src/models/inflate.js';
import type { StagedResNet } from '../../src/models/staged.js';
import { assertClose, repoRoot, systemPython, tempDir } from '../helpers.js';

const dir = tempDir('stcnet-inflate-');
const cli = join(repoRoot, 'dist/src/cli/main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 300_000, env: { ...process.env, STCNET_THREADS: '1' } });

/** A seeded 2D teacher whose BatchNorms are not the identity (random statistics, affine terms), in eval mode. */
function teacher(arch: 'resnet2d_18' | 'resnet2d_50', seed: number, numClasses = 5): ZooModel {
  manualSeed(seed);
  const model = createModel(arch, { widthMultiplier: 0.25, numClasses });
  noGrad(() => {
    for (const [name, t] of model.stateDict()) {
      if (/bn\d\.(bias|running_mean)$|downsample\.1\.(bias|running_mean)$/.test(name)) t.uniform_(-0.1, 0.1);
      if (/bn\d\.(weight|running_var)$|downsample\.1\.(weight|running_var)$/.test(name)) t.uniform_(0.5, 1.5);
    }
    // Without training, ResNet-50's features grow to hundreds; a smaller classifier keeps the logits
    // near 1, so 1e-4 measures the inflation and not float32 rounding of large numbers.
    if (arch === 'resnet2d_50') model.fc.weight.mul_(0.02);
  });
  return model.eval();
}

/** The map after layer4 (before pooling) of a Hara 3D or torchvision 2D ResNet. */
function layer4Map(model: StagedResNet, x: Tensor): Tensor {
  return noGrad(() => tidy(() => {
    let h = model.bn1.forward(model.conv1.forward(x)).relu();
    if (model.maxpool) h = model.maxpool.forward(h);
    for (const layer of [model.layer1, model.layer2, model.layer3, model.layer4]) for (const block of layer.layers) h = block.forward(h);
    return h;
  }));
}

/** A clip of T copies of each image: N×C×H×W → N×C×T×H×W. */
const stillClip = (x: Tensor, frames: number) => tidy(() => x.unsqueeze(2).expand([x.shape[0]!, x.shape[1]!, frames, x.shape[2]!, x.shape[3]!]).contiguous());

test('inflateKernel: repeat is W/kT in every slice (sums back to W); center is W in slice ⌊kT/2⌋ and zeros elsewhere', () => {
  manualSeed(3);
  const w = randn([4, 2, 3, 3]);
  for (const kT of [1, 3, 4, 7]) {
    const repeat = inflateKernel(w, kT, 'repeat');
    const center = inflateKernel(w, kT, 'center');
    assert.deepEqual(repeat.shape, [4, 2, kT, 3, 3]);
    assertClose(tidy(() => repeat.sum(2).toFloat32Array()), w.toFloat32Array(), { atol: 1e-6, what: `repeat kT=${kT} summed over time` });
    for (let t = 0; t < kT; t++) {
      const slice = tidy(() => center.select(2, t).toFloat32Array());
      if (t === Math.floor(kT / 2)) assertClose(slice, w.toFloat32Array(), { atol: 0, rtol: 0, what: 'centre slice' });
      else assert.ok(slice.every((v) => v === 0), `slice ${t} of ${kT} is zero`);
    }
    repeat.dispose();
    center.dispose();
  }
  w.dispose();
});

test('center mode: on a clip of identical frames the inflated network gives the 2D logits (resnet18 and resnet50, any clip length)', () => {
  for (const [arch2d, arch3d] of [['resnet2d_18', 'resnet3d_18'], ['resnet2d_50', 'resnet3d_50']] as const) {
    const source = teacher(arch2d, 11);
    manualSeed(5);
    const image = randn([2, 3, 32, 32]);
    const expected = noGrad(() => tidy(() => source.forward(image).toFloat32Array()));
    for (const frames of [16, 5]) {
      const target = createModel(arch3d, { widthMultiplier: 0.25, numClasses: 5, frames });
      const report = inflateInto(source, target, 'center');
      assert.equal(report.headReplaced, false);
      assert.deepEqual(report.initialised, []);
      target.eval();
      const clip = stillClip(image, frames);
      const got = noGrad(() => tidy(() => target.forward(clip).toFloat32Array()));
      assertClose(got, expected, { atol: 1e-4, rtol: 0, what: `${arch3d} (${frames} frames, center) vs ${arch2d}` });
      clip.dispose();
      target.dispose();
    }
    image.dispose();
    source.dispose();
  }
});

test('repeat mode: exact where the receptive field stays inside the clip; the zero temporal padding shows at the ends', () => {
  const source = teacher('resnet2d_18', 12);
  manualSeed(6);
  const image = randn([2, 3, 16, 16]);
  const expected = layer4Map(source as unknown as StagedResNet, image); // N×C×1×1
  // 256 frames: layer4 has 16 time positions; the middle ones see no padding through the whole network
  // (temporal receptive field of Hara's ResNet-18 with a 7-frame stem: 221 frames).
  const target = createModel('resnet3d_18', { widthMultiplier: 0.25, numClasses: 5, frames: 256 });
  inflateInto(source, target, 'repeat');
  target.eval();
  const clip = stillClip(image, 256);
  const map = layer4Map(target as unknown as StagedResNet, clip);
  assert.equal(map.shape[2], 16);
  const at = (t: number) => tidy(() => map.select(2, t).toFloat32Array());
  const want = expected.toFloat32Array();
  for (const t of [7, 8]) assertClose(at(t), want, { atol: 1e-4, rtol: 0, what: `layer4 time position ${t} of 16` });
  // At the first and last positions the padding is inside the receptive field: not the 2D value.
  for (const t of [0, 15]) {
    const got = at(t);
    const worst = Math.max(...got.map((v, i) => Math.abs(v - want[i]!)));
    assert.ok(worst > 1e-2, `position ${t}: the edge differs from the 2D map (max |diff| ${worst})`);
  }
  for (const t of [expected, map, clip, image]) t.dispose();
  target.dispose();
  source.dispose();
});

test('an STC target gets the same inflated weights as its backbone; its STC parameters keep their seeded initialisation', () => {
  const source = teacher('resnet2d_18', 13);
  const plain = createModel('resnet3d_18', { widthMultiplier: 0.25, numClasses: 5, frames: 8 });
  inflateInto(source, plain, 'repeat');
  manualSeed(9);
  const stc = createModel('stc_resnet3d_18', { widthMultiplier: 0.25, numClasses: 5, frames: 8 });
  manualSeed(9);
  const fresh = createModel('stc_resnet3d_18', { widthMultiplier: 0.25, numClasses: 5, frames: 8 });
  const report = inflateInto(source, stc, 'repeat');
  assert.ok(report.initialised.length > 0 && report.initialised.every((name) => name.includes('.stc.')), 'only stc.* initialised');
  const plainDict = plain.stateDict();
  const freshDict = fresh.stateDict();
  for (const [name, tensor] of stc.stateDict()) {
    const reference = name.includes('.stc.') ? freshDict.get(name)! : plainDict.get(name)!;
    assertClose(tensor.toFloat32Array(), reference.toFloat32Array(), { atol: 0, rtol: 0, what: name });
  }
  for (const m of [source, plain, stc, fresh]) m.dispose();
});

test('a torchvision resnet18 .pth (seeded, made by PyTorch) inflates by name through the CLI; --num-classes drops fc', () => {
  const pth = join(dir, 'tv_resnet18.pth');
  const made = spawnSync(systemPython, ['-c', [
    'import sys, torch, torchvision',
    'torch.manual_seed(0)',
    'm = torchvision.models.resnet18(num_classes=4)',
    'torch.save(m.state_dict(), sys.argv[1])',
  ].join('\n'), pth], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, OMP_NUM_THREADS: '1' } });
  assert.equal(made.status, 0, made.stderr);
  const out = join(dir, 'stc18.safetensors');
  const result = run('inflate', pth, '--arch', 'stc_resnet3d_18', '--frames', '4', '--out', out);
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /tv_resnet18\.pth \(resnet2d_18\) → stc_resnet3d_18, 4 frames, mode repeat: 20 kernels inflated, \d+ tensors copied, \d+ initialised \(STC blocks/);
  const meta = readCheckpointMeta(out)!;
  assert.equal(meta.arch, 'stc_resnet3d_18');
  assert.equal(meta.options.frames, 4);
  assert.equal(meta.options.numClasses, 4);
  assert.equal(meta.extra.inflate_mode, 'repeat');
  assert.equal(meta.extra.inflated_arch, 'resnet2d_18');
  const { model } = loadModelCheckpoint(out);
  const source = loadModelCheckpoint(pth, { arch: 'resnet2d_18' }).model;
  const w3 = model.stateDict().get('conv1.weight')!;
  assert.deepEqual(w3.shape, [64, 3, 7, 7, 7]);
  const w2 = source.stateDict().get('conv1.weight')!;
  const expected = tidy(() => w2.div(7).toFloat32Array());
  for (const t of [0, 3, 6]) assertClose(tidy(() => w3.select(2, t).toFloat32Array()), expected, { atol: 1e-7, what: `conv1 slice ${t}` });
  assertClose(model.stateDict().get('layer3.1.bn2.running_var')!.toFloat32Array(), source.stateDict().get('layer3.1.bn2.running_var')!.toFloat32Array(), { atol: 0, rtol: 0 });
  assertClose(model.stateDict().get('fc.weight')!.toFloat32Array(), source.stateDict().get('fc.weight')!.toFloat32Array(), { atol: 0, rtol: 0 });
  model.dispose();
  source.dispose();

  const newHead = join(dir, 'r18-7.safetensors');
  const replaced = run('inflate', pth, '--mode', 'center', '--num-classes', '7', '--frames', '4', '--out', newHead);
  assert.equal(replaced.status, 0, replaced.stderr);
  assert.match(replaced.stdout, /→ resnet3d_18, 4 frames, mode center/);
  assert.match(replaced.stdout, /the 2D classifier was dropped \(7 classes asked for\); fc is new/);
  assert.equal(readCheckpointMeta(newHead)!.options.numClasses, 7);
});

test('inflateCheckpoint keeps a stcnet resnet2d checkpoint\'s class names and preprocessing (clip length replaced)', () => {
  const source = teacher('resnet2d_18', 14, 3);
  const file = join(dir, 'teacher.safetensors');
  saveModelCheckpoint(file, source, { classes: ['a', 'b', 'c'], preprocessing: { frames: 1, stride: 1, size: 32, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] } });
  source.dispose();
  const inflated = inflateCheckpoint(file, { arch: 'stc_resnet3d_18', frames: 8 });
  assert.deepEqual(inflated.classes, ['a', 'b', 'c']);
  assert.deepEqual(inflated.preprocessing, { frames: 8, stride: 1, size: 32, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] });
  assert.equal(inflated.model.options.widthMultiplier, 0.25);
  inflated.model.dispose();
});

test('stcnet inflate: bad input is one clear line, exit 2, nothing written', () => {
  const source = teacher('resnet2d_18', 15);
  const file2d = join(dir, 'bad-src-2d.safetensors');
  saveModelCheckpoint(file2d, source);
  source.dispose();
  const video = createModel('resnet3d_18', { widthMultiplier: 0.25, numClasses: 5, frames: 4 });
  const file3d = join(dir, 'bad-src-3d.safetensors');
  saveModelCheckpoint(file3d, video);
  video.dispose();
  const out = join(dir, 'never.safetensors');
  const cases: [string[], RegExp][] = [
    [['inflate', file3d, '--out', out], /bad-src-3d\.safetensors: the checkpoint is a resnet3d_18 \(3D\); inflate takes a 2D ResNet/],
    [['inflate', file2d, '--arch', 'resnet3d_34', '--out', out], /is a resnet2d_18; it inflates to resnet3d_18 or stc_resnet3d_18 \(same depth and blocks\), not resnet3d_34/],
    [['inflate', file2d, '--arch', 'resnet2d_18', '--out', out], /inflates to resnet3d_18 or stc_resnet3d_18 .*not resnet2d_18 \(a 2D model\)/],
    [['inflate', file2d, '--arch', 'stc_resnt3d_18', '--out', out], /unknown model "stc_resnt3d_18" \(did you mean "stc_resnet3d_18"\?\)/],
    [['inflate', join(dir, 'missing.pth'), '--out', out], /missing\.pth: no such checkpoint file/],
    [['inflate', file2d], /missing --out/],
    [['inflate', file2d, '--out', join(dir, 'x.pth')], /--out .*x\.pth: the 3D checkpoint is written as \.safetensors/],
    [['inflate', file2d, '--out', out, '--mode', 'middle'], /--mode/],
    [['inflate', file2d, '--out', file2d], /exists already \(use --force to replace it\)/],
  ];
  for (const [args, pattern] of cases) {
    const result = run(...args);
    assert.equal(result.status, 2, `${args.join(' ')}: exit 2, got ${result.status}: ${result.stderr}`);
    assert.match(result.stderr, pattern);
    assert.equal(result.stderr.trim().split('\n').length, 1, `one line: ${result.stderr}`);
    assert.ok(!existsSync(out), 'nothing written');
  }
});
