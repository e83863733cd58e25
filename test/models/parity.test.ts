import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { fromTypedArray, noGrad, tidy, dispose, type Tensor } from '../../src/engine/index.js';
import { StateDictError } from '../../src/nn/index.js';
import { loadStateDict } from '../../src/nn/weights.js';
import { createModel, StcBlock, ModelInputError } from '../../src/models/index.js';
import { UserError } from '../../src/util/errors.js';
import { assertClose, tempDir, repoRoot } from '../helpers.js';
import { fixtureDir, manifest, readF32 } from './fixtures.js';

const dir = fixtureDir();
const cases = manifest();

for (const c of cases) {
  test(`${c.case}: a PyTorch checkpoint loads strictly and gives PyTorch's eval logits`, (t) => {
    const model = createModel(c.arch, { ...c.options, init: false });
    const dict = loadStateDict(join(dir, `${c.case}.pt`));
    model.loadStateDict(dict, { strict: true });
    dispose(dict);
    model.eval();
    const x = readF32(join(dir, `${c.case}.input.f32`), c.inputShape);
    const expected = readF32(join(dir, `${c.case}.logits.f32`), c.logitsShape);
    const logits = noGrad(() => model.forward(x));
    assert.deepEqual(logits.shape, c.logitsShape);
    const got = logits.toFloat32Array();
    const want = expected.toFloat32Array();
    const scale = want.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    let worst = 0;
    for (let i = 0; i < got.length; i++) worst = Math.max(worst, Math.abs(got[i]! - want[i]!));
    t.diagnostic(`max |Δlogit| ${worst.toExponential(2)}, largest |logit| ${scale.toFixed(3)}, ratio ${(worst / scale).toExponential(2)}`);
    assert.ok(worst <= 1e-4 * scale, `${c.case}: max |Δlogit| ${worst} > 1e-4 × ${scale}`);
    dispose([x, expected, logits]);
    model.dispose();
  });
}

interface Packed { shape: number[]; data: number[] }
const packed = (p: Packed): Tensor => fromTypedArray(Float32Array.from(p.data), p.shape);

test('STC block: output and gradients (input and all four linears) match PyTorch', () => {
  const fixture = JSON.parse(readFileSync(join(dir, 'stc_grad.json'), 'utf8')) as {
    channels: number; temporalSize: number; reduction: number; weights: Record<string, Packed>;
    input: Packed; upstream: Packed; output: Packed; gradInput: Packed; grads: Record<string, Packed>;
  };
  const block = new StcBlock(fixture.channels, fixture.temporalSize, fixture.reduction);
  const weights = new Map(Object.entries(fixture.weights).map(([k, v]) => [k, packed(v)]));
  block.loadStateDict(weights);
  assert.deepEqual([...block.stateDict().keys()], ['tcb.fc1.weight', 'tcb.fc1.bias', 'tcb.fc2.weight', 'tcb.fc2.bias',
    'scb.fc1.weight', 'scb.fc1.bias', 'scb.fc2.weight', 'scb.fc2.bias']);
  const x = packed(fixture.input).requiresGrad_();
  tidy(() => {
    const out = block.forward(x);
    assertClose(out.toFloat32Array(), fixture.output.data, { rtol: 1e-5, atol: 1e-6, what: 'STC output' });
    out.mul(packed(fixture.upstream)).sum().backward();
  });
  assertClose(x.grad!.toFloat32Array(), fixture.gradInput.data, { rtol: 1e-4, atol: 1e-6, what: 'grad input' });
  for (const [name, parameter] of block.namedParameters()) {
    assertClose(parameter.grad!.toFloat32Array(), fixture.grads[name]!.data, { rtol: 1e-4, atol: 1e-6, what: `grad ${name}` });
  }
});

function rejects(fn: () => unknown, pattern: RegExp, what: string): Error {
  let caught: unknown;
  assert.throws(() => fn(), (error: unknown) => { caught = error; return true; }, what);
  assert.ok(caught instanceof Error, what);
  assert.match(caught.message, pattern, what);
  return caught;
}

test('a checkpoint of another architecture fails strict loading with the missing, unexpected or mis-shaped keys', () => {
  const plain = loadStateDict(join(dir, 'resnet3d_18.pt'));
  // resnet3d_18 into stc_resnet3d_18: the STC keys are missing.
  const stc = createModel('stc_resnet3d_18', { init: false });
  const error = rejects(() => stc.loadStateDict(plain), /missing keys: layer1\.0\.stc\.tcb\.fc1\.weight/, 'plain → stc');
  assert.ok(error instanceof StateDictError);
  assert.equal(error.report.missing.length, 6 * 8);
  assert.equal(error.report.unexpected.length, 0);
  // ...and the other way round they are unexpected.
  const stcDict = loadStateDict(join(dir, 'stc_resnet3d_18.pt'));
  const resnet = createModel('resnet3d_18', { init: false });
  const back = rejects(() => resnet.loadStateDict(stcDict), /unexpected keys: layer1\.0\.stc\.tcb\.fc1\.weight/, 'stc → plain') as StateDictError;
  assert.equal(back.report.unexpected.length, 6 * 8);
  // An STC model built for another clip length: SCB's fc1 has another width.
  const stc8 = createModel('stc_resnet3d_18', { frames: 8, init: false });
  const shapes = rejects(() => stc8.loadStateDict(stcDict), /shape mismatch for layer1\.0\.stc\.scb\.fc1\.weight: model has \[16, 256\], checkpoint has \[32, 512\]/, 'frames') as StateDictError;
  assert.equal(shapes.report.missing.length, 0);
  // torchvision's r3d_18 is not Hara's resnet3d_18: both lists are non-empty.
  const r3d = loadStateDict(join(dir, 'r3d_18.pt'));
  const other = rejects(() => resnet.loadStateDict(r3d), /missing keys: conv1\.weight[\s\S]*unexpected keys: stem\.0\.weight/, 'r3d → resnet3d') as StateDictError;
  assert.ok(other.report.missing.length > 0 && other.report.unexpected.length > 0);
  // Non-strict loading reports instead of throwing, and loads what fits.
  const report = stc.loadStateDict(plain, { strict: false });
  assert.equal(report.missing.length, 48);
  dispose([plain, stcDict, r3d]);
  for (const m of [stc, resnet, stc8]) m.dispose();
});

test('a truncated checkpoint is a clear UserError naming the file', () => {
  const bytes = readFileSync(join(dir, 'stc_resnet3d_18_options.pt'));
  const path = join(tempDir(), 'truncated.pt');
  writeFileSync(path, bytes.subarray(0, Math.floor(bytes.length / 2)));
  const error = rejects(() => loadStateDict(path), /truncated/, 'truncated .pt');
  assert.ok(error instanceof UserError);
  assert.ok(error.message.includes(path));
});

test('wrong frame count, channel count or rank: clear ModelInputErrors', () => {
  const model = createModel('stc_resnet3d_18', { frames: 16, widthMultiplier: 0.25 }).eval();
  const wrongFrames = readF32(join(dir, 'r3d_18.input.f32'), [1, 3, 8, 56, 56]);
  const frames = rejects(() => model.forward(wrongFrames), /built for 16-frame clips, got 8 frames/, 'frames');
  assert.ok(frames instanceof ModelInputError);
  const twoChannels = readF32(join(dir, 'stc_resnet3d_18_options.input.f32'), [2, 2, 12, 48, 48]);
  rejects(() => model.forward(twoChannels), /expected 3 input channels, got 2/, 'channels');
  rejects(() => model.forward(twoChannels.select(0, 0)), /expected a 5-D input N×C×T×H×W, got shape \[2, 12, 48, 48\]/, 'rank');
  // A bare STC block names its temporal size and the clip length.
  const block = new StcBlock(8, 4, 4, 16);
  const x = readF32(join(dir, 'r3d_18.input.f32'), [1, 3, 8, 56, 56]);
  rejects(() => block.forward(x.narrow(1, 0, 1).expand([1, 8, 8, 56, 56])), /temporal size 4 .*16-frame clips.*got 8/, 'block');
  dispose([wrongFrames, twoChannels, x]);
  model.dispose();
});

// ---- the CLI: stcnet convert and stcnet models ----

function cli(args: string[]): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [join(repoRoot, 'dist/src/cli/main.js'), ...args], { encoding: 'utf8', timeout: 300_000 });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

test('stcnet convert: .pt → .safetensors with a strict load into --arch; the result gives the same logits', () => {
  const out = tempDir();
  const converted = cli(['convert', join(dir, 'resnet2d_18.pt'), join(out, 'resnet2d_18.safetensors'), '--arch', 'resnet2d_18']);
  assert.equal(converted.status, 0, converted.stderr);
  assert.match(converted.stdout, /122 tensors, 11,689,512 parameters; strict load into resnet2d_18 ok; re-read and verified/);
  const c = cases.find((k) => k.case === 'resnet2d_18')!;
  const model = createModel('resnet2d_18', { init: false });
  const dict = loadStateDict(join(out, 'resnet2d_18.safetensors'));
  model.loadStateDict(dict);
  model.eval();
  const x = readF32(join(dir, 'resnet2d_18.input.f32'), c.inputShape);
  const expected = readF32(join(dir, 'resnet2d_18.logits.f32'), c.logitsShape);
  const logits = noGrad(() => model.forward(x));
  assertClose(logits.toFloat32Array(), expected.toFloat32Array(), { rtol: 1e-4, atol: 1e-4, what: 'logits after convert' });
  dispose([dict, x, expected, logits]);
  model.dispose();
  // An STC checkpoint: the clip length is read from SCB's width.
  const stc = cli(['convert', join(dir, 'stc_resnet3d_18.pt'), join(out, 'stc.safetensors'), '--arch', 'stc_resnet3d_18']);
  assert.equal(stc.status, 0, stc.stderr);
  // Another architecture: exit status 2 and the keys that do not fit.
  const wrong = cli(['convert', join(dir, 'r3d_18.pt'), join(out, 'wrong.safetensors'), '--arch', 'resnet3d_18']);
  assert.equal(wrong.status, 2);
  assert.match(wrong.stderr, /does not fit resnet3d_18[\s\S]*missing keys: conv1\.weight[\s\S]*unexpected keys: stem\.0\.weight/);
  const unknown = cli(['convert', join(dir, 'r3d_18.pt'), join(out, 'x.safetensors'), '--arch', 'r3d18']);
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /unknown model "r3d18" \(did you mean "r3d_18"\?\)/);
});

test('stcnet models lists every model with parameters and GFLOPs; models info prints the layer table', () => {
  const list = cli(['models', '--json']);
  assert.equal(list.status, 0, list.stderr);
  const infos = JSON.parse(list.stdout) as { name: string; params: number; gflops: number; inputShape: number[] }[];
  assert.equal(infos.length, 26);
  const r3d = infos.find((i) => i.name === 'r3d_18')!;
  assert.equal(r3d.gflops.toFixed(2), '40.70');
  assert.deepEqual(r3d.inputShape, [1, 3, 16, 112, 112]);
  const info = cli(['models', 'info', 'stc_resnext3d_50', '--frames', '8', '--size', '64']);
  assert.equal(info.status, 0, info.stderr);
  assert.match(info.stdout, /input 1×3×8×64×64 → logits 1×400/);
  assert.match(info.stdout, /layer3\.5\s+block\+STC\s+1×1024×1×4×4/);
  assert.match(info.stdout, /layer4\.2\s+block\s+1×2048×1×2×2/);
  const bad = cli(['models', 'info', 'nope']);
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /unknown model "nope"/);
});
