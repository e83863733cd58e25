import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { noGrad, tidy, dispose, manualSeed } from '../../src/engine/index.js';
import { readSafetensors, writeSafetensors } from '../../src/nn/safetensors.js';
import { createModel, loadModelCheckpoint, readCheckpointMeta } from '../../src/models/index.js';
import { sameBytes } from '../../src/models/convert.js';
import { readF32 } from './fixtures.js';
import { haraFixture } from './hara_fixture.js';
import { assertClose, repoRoot, tempDir } from '../helpers.js';

function cli(args: string[]): { status: number; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [join(repoRoot, 'dist/src/cli/main.js'), 'convert', ...args], { encoding: 'utf8', timeout: 300_000 });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

const out = tempDir('stcnet-convert-');

test('convert of Hara\'s layout (legacy .pth, module. keys, no num_batches_tracked) with --arch: self-describing output, PyTorch\'s logits', () => {
  const { dir, arch, options, inputShape, logitsShape } = haraFixture();
  const target = join(out, 'hara.safetensors');
  const run = cli([join(dir, 'hara_legacy.pth'), target, '--arch', arch]);
  assert.equal(run.status, 0, run.stderr);
  assert.match(run.stdout, /strict load into resnet3d_10 ok; re-read and verified/);
  assert.equal(run.stderr, '');
  const meta = readCheckpointMeta(target)!;
  assert.equal(meta.arch, 'resnet3d_10');
  assert.equal(meta.options.widthMultiplier, options.widthMultiplier, 'width inferred from the stem');
  assert.equal(meta.options.numClasses, options.numClasses);
  assert.equal(meta.extra.source, 'hara_legacy.pth');
  const { model } = loadModelCheckpoint(target);
  const logits = tidy(() => noGrad(() => model.eval().forward(readF32(join(dir, 'hara.input.f32'), inputShape)).toArray())) as number[];
  const expected = readF32(join(dir, 'hara.logits.f32'), logitsShape);
  assertClose(logits, expected.toArray() as number[], { rtol: 1e-4, atol: 1e-5, what: 'logits' });
  dispose(expected);
  model.dispose();

  // A wrong width is a user error naming the mismatch, and leaves neither output nor temporary file.
  const before = readFileSync(target);
  const wrong = cli([join(dir, 'hara_zip.pth'), target, '--arch', arch, '--width-multiplier', '0.25']);
  assert.equal(wrong.status, 2, wrong.stderr);
  assert.match(wrong.stderr, /hara_zip\.pth does not fit resnet3d_10 \(.*widthMultiplier 0\.25.*\):\n\s+shape mismatch for conv1\.weight: model has \[16, 3, 7, 7, 7\], checkpoint has \[32, 3, 7, 7, 7\]/);
  assert.ok(readFileSync(target).equals(before), 'the existing output is untouched');
  assert.deepEqual(readdirSync(out).filter((f) => f.includes('.tmp-')), []);
});

test('convert copies NaN and Inf exactly, warns naming the tensors, and succeeds (with and without --arch)', () => {
  manualSeed(5);
  const model = createModel('stc_resnet3d_18', { widthMultiplier: 0.25, frames: 8, numClasses: 3 });
  const dict = model.stateDict();
  noGrad(() => {
    dict.get('fc.bias')!.fill_(Number.NaN);
    dict.get('layer1.0.stc.tcb.fc1.bias')!.fill_(Number.POSITIVE_INFINITY);
  });
  const input = join(out, 'nan.safetensors');
  writeSafetensors(input, dict);
  for (const args of [['--arch', 'stc_resnet3d_18', '--width-multiplier', '0.25', '--frames', '8'], []]) {
    const target = join(out, `nan-out${args.length}.safetensors`);
    const run = cli([input, target, ...args]);
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stderr, /^convert: warning: 2 tensors hold NaN or Inf \(copied as they are\): layer1\.0\.stc\.tcb\.fc1\.bias, fc\.bias\n$/);
    const { tensors } = readSafetensors(target);
    for (const [name, tensor] of dict) assert.ok(sameBytes(tensor, tensors.get(name)!), name);
    dispose([...tensors.values()]);
    if (args.length > 0) {
      const meta = readCheckpointMeta(target)!;
      assert.equal(meta.options.frames, 8);
      assert.equal(meta.options.widthMultiplier, 0.25);
    } else {
      assert.equal(readCheckpointMeta(target), null, 'without --arch the state dict is copied as it is');
    }
  }
  model.dispose();
});

test('convert checks every flag before any work: arch options, --arch for model flags, output extension, input file', () => {
  const { dir } = haraFixture();
  const input = join(dir, 'hara_zip.pth');
  const cases: [string[], RegExp][] = [
    [[input, join(out, 'x.safetensors'), '--arch', 'resnet3d_10', '--cardinality', '8'], /resnet3d_10 does not take --cardinality; it takes --frames, --num-classes, --width-multiplier/],
    [[input, join(out, 'x.safetensors'), '--frames', '8'], /--frames describes a model: give --arch too/],
    [[input, join(out, 'x.pt'), '--arch', 'resnet3d_10'], /x\.pt: the output must end in \.safetensors/],
    [[join(out, 'missing.pth'), join(out, 'x.safetensors')], /missing\.pth: no such weights file/],
    [[input, join(out, 'x.safetensors'), '--arch', 'resnet3d10'], /unknown model "resnet3d10" \(did you mean "resnet3d_10"\?\)/],
    [[input, join(out, 'x.safetensors'), '--width-multiplier', '0', '--arch', 'resnet3d_10'], /--width-multiplier must be above 0/],
    [[input], /missing IN\.pth OUT\.safetensors/],
  ];
  for (const [args, pattern] of cases) {
    const run = cli(args);
    assert.equal(run.status, 2, `${args.join(' ')}: ${run.stderr}`);
    assert.match(run.stderr, pattern);
    assert.doesNotMatch(run.stderr, /\n\s+at /, 'no stack trace');
  }
  assert.ok(!existsSync(join(out, 'x.safetensors')) && !existsSync(join(out, 'x.pt')));
  writeFileSync(join(out, 'junk.pth'), 'not a checkpoint');
  const junk = cli([join(out, 'junk.pth'), join(out, 'junk.safetensors')]);
  assert.equal(junk.status, 2);
  assert.match(junk.stderr, /junk\.pth: not a PyTorch checkpoint/);
});

test('convert checks where the output goes before reading the input: a folder of that name, a file as its folder', () => {
  const dir = tempDir('stcnet-convert-out-');
  const junk = join(dir, 'junk.pth');
  writeFileSync(junk, 'not a checkpoint');
  mkdirSync(join(dir, 'folder.safetensors'));
  writeFileSync(join(dir, 'file'), 'x');
  // The input is junk: an error about it would mean the output was checked only after the load.
  for (const [output, pattern] of [
    [join(dir, 'folder.safetensors'), /folder\.safetensors: is a folder, expected a file$/],
    [join(dir, 'file', 'm.safetensors'), /\/file: is a file, expected a folder$/],
  ] as [string, RegExp][]) {
    const run = cli([junk, output]);
    assert.equal(run.status, 2, run.stderr);
    assert.match(run.stderr.trim(), pattern);
    assert.equal(run.stderr.trim().split('\n').length, 1);
  }
  assert.deepEqual(readdirSync(dir).sort(), ['file', 'folder.safetensors', 'junk.pth']);
});
