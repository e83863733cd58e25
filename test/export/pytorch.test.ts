import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, tempDir } from '../helpers.js';
import { haraFixture } from '../models/hara_fixture.js';
import { loadOnnxModel, readOnnxMetadata } from '../../src/onnx/index.js';
import { compareLogits } from '../../src/export/verify.js';

/**
 * A PyTorch checkpoint laid out as Hara et al.'s (legacy serialization, DataParallel `module.` keys,
 * no BatchNorm counters), exported with --arch as eval/predict take it; ONNX Runtime on the exported
 * file gives PyTorch's own logits (made by scripts/fixtures/hara_checkpoint.py) within 1e-4 of the max.
 */

const cli = join(repoRoot, 'dist/src/cli/main.js');

function floats(file: string): Float32Array {
  const bytes = readFileSync(file);
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
}

test('stcnet export of a Hara-style PyTorch checkpoint (--arch, --frames, --size): ONNX Runtime reproduces PyTorch\'s logits', async () => {
  const fixture = haraFixture();
  const dir = tempDir('stcnet-export-pytorch-');
  const out = join(dir, 'hara.onnx');
  const [, , frames, size] = fixture.inputShape as [number, number, number, number, number];
  const result = spawnSync(process.execPath, [cli, 'export', join(fixture.dir, 'hara_legacy.pth'), '--arch', fixture.arch,
    '--frames', String(frames), '--size', String(size), '--onnx', out], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /^verified: /m);
  assert.match(result.stderr, /names no classes; wrote "class 0".."class 4"/);
  const meta = readOnnxMetadata(out);
  assert.equal(meta.arch, 'resnet3d_10');
  assert.equal(meta.options.widthMultiplier, 0.5, 'the width was inferred from the weights');
  assert.deepEqual(meta.classes, ['class 0', 'class 1', 'class 2', 'class 3', 'class 4']);
  // Hara's test transform: Kinetics mean/std, short side scaled to the crop.
  assert.equal(meta.preprocessing.frames, frames);
  assert.equal(meta.preprocessing.size, size);
  assert.ok(Math.abs(meta.preprocessing.mean[0]! - 110.63666788 / 255) < 1e-9);
  const model = await loadOnnxModel(out, { threads: 1 });
  try {
    const logits = await model.logits(floats(join(fixture.dir, 'hara.input.f32')), fixture.inputShape[0]!);
    const { maxAbsDiff, maxLogit } = compareLogits(floats(join(fixture.dir, 'hara.logits.f32')), logits);
    assert.ok(maxLogit > 0);
    assert.ok(maxAbsDiff <= 1e-4 * maxLogit, `PyTorch vs ONNX Runtime: max |diff| ${maxAbsDiff}, max |logit| ${maxLogit}`);
  } finally {
    await model.close();
  }
});
