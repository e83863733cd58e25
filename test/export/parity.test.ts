import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { exportOnnx } from '../../src/export/index.js';
import { loadOnnxModel } from '../../src/onnx/index.js';
import { modelLogits, randomClips, compareLogits, verifyExport } from '../../src/export/verify.js';
import { buildGraph } from '../../src/export/export_model.js';
import { tempDir } from '../helpers.js';
import { savedModel } from './fixture.js';

/**
 * Export → ONNX Runtime parity: the exported graph's logits equal the model's own (eager, eval) within
 * 1e-4 of the largest |logit|, on a clip batch the test makes itself (not the export's check clip),
 * at batch 1 and batch 3 of the one dynamic-batch file.
 */

const CASES: { arch: string; options: Record<string, unknown>; frames: number; size: number }[] = [
  // Hara-style models at width ¼ (the registry's widthMultiplier), torchvision's at their only width.
  { arch: 'stc_resnet3d_18', options: { numClasses: 7, frames: 8, widthMultiplier: 0.25 }, frames: 8, size: 32 },
  { arch: 'resnet3d_18', options: { numClasses: 7, widthMultiplier: 0.25 }, frames: 8, size: 32 },
  { arch: 'r2plus1d_18', options: { numClasses: 7 }, frames: 4, size: 32 },
  // More width-¼ STC models: the ResNeXt bottleneck (grouped convolutions, STC per stage), shortcut A without max-pool.
  { arch: 'stc_resnext3d_50', options: { numClasses: 7, frames: 8, widthMultiplier: 0.25, stcPlacement: 'stage' }, frames: 8, size: 32 },
  { arch: 'stc_resnet3d_10', options: { numClasses: 7, frames: 8, widthMultiplier: 0.25, shortcut: 'A', noMaxPool: true, reduction: { tcb: 4, scb: 8 } }, frames: 8, size: 32 },
  { arch: 'mc3_18', options: { numClasses: 7 }, frames: 4, size: 32 },
];

for (const { arch, options, frames, size } of CASES) {
  test(`export ${arch} (${JSON.stringify(options)}): ONNX Runtime equals stcnet within 1e-4 of the max logit, batch 1 and 3`, async () => {
    const dir = tempDir('stcnet-export-parity-');
    const saved = savedModel(dir, arch, options, frames, size);
    try {
      const out = join(dir, `${arch}.onnx`);
      const result = await exportOnnx(saved.checkpoint, out);
      assert.ok(result.verified, 'the export checks itself by default');
      assert.ok(result.verified.maxAbsDiff <= 1e-4 * result.verified.maxLogit, JSON.stringify(result.verified));
      assert.ok(result.verified.maxLogit > 0);
      const onnx = await loadOnnxModel(out, { threads: 1 });
      try {
        assert.equal(onnx.inputSpec.batch, null, 'dynamic batch axis');
        for (const n of [1, 3]) {
          const shape = [n, 3, frames, size, size];
          const clips = randomClips(shape, 100 + n);
          const expected = modelLogits(saved.model, clips, shape);
          const actual = await onnx.logits(clips, n);
          assert.equal(actual.length, n * 7);
          const { maxAbsDiff, maxLogit } = compareLogits(expected, actual);
          assert.ok(maxAbsDiff <= 1e-4 * maxLogit, `${arch} batch ${n}: max |diff| ${maxAbsDiff} vs max |logit| ${maxLogit}`);
          // Rows are not all the same clip: the batch axis really carries n different results.
          if (n === 3) assert.notDeepEqual(Array.from(actual.subarray(0, 7)), Array.from(actual.subarray(7, 14)));
        }
      } finally {
        await onnx.close();
      }
    } finally {
      saved.model.dispose();
    }
  });
}

test('export --batch 2 fixes the batch axis; loadOnnxModel feeds any count in batches of 2 (the last padded)', async () => {
  const dir = tempDir('stcnet-export-fixed-');
  const saved = savedModel(dir, 'stc_resnet3d_18', { numClasses: 5, frames: 4, widthMultiplier: 0.25 }, 4, 32);
  try {
    const out = join(dir, 'fixed.onnx');
    const result = await exportOnnx(saved.checkpoint, out, { batch: 2, opset: 19 });
    assert.equal(result.verified!.batch, 2);
    assert.equal(result.opset, 19);
    const onnx = await loadOnnxModel(out, { threads: 1 });
    try {
      assert.equal(onnx.inputSpec.batch, 2);
      for (const n of [2, 1, 3]) {
        const shape = [n, 3, 4, 32, 32];
        const clips = randomClips(shape, 5 + n);
        const { maxAbsDiff, maxLogit } = compareLogits(modelLogits(saved.model, clips, shape), await onnx.logits(clips, n));
        assert.ok(maxAbsDiff <= 1e-4 * maxLogit, `batch ${n}: ${maxAbsDiff} vs ${maxLogit}`);
      }
    } finally {
      await onnx.close();
    }
  } finally {
    saved.model.dispose();
  }
});

test('the export check fails when the graph does not reproduce the model (another model\'s weights)', async () => {
  const dir = tempDir('stcnet-export-check-');
  const a = savedModel(dir, 'resnet3d_10', { numClasses: 4, widthMultiplier: 0.25 }, 4, 32, 1);
  const b = savedModel(dir, 'resnet3d_10', { numClasses: 4, widthMultiplier: 0.25 }, 4, 32, 2);
  try {
    const built = buildGraph(a.model, { frames: 4, size: 32, batch: 'dynamic' });
    const bytes = built.builder.encode([built.output], { opset: 17, irVersion: 8, producerVersion: 'test', metadata: {} });
    const same = await verifyExport(a.model, bytes, 'clips', [2, 3, 4, 32, 32]);
    assert.equal(same.ok, true);
    const other = await verifyExport(b.model, bytes, 'clips', [2, 3, 4, 32, 32]);
    assert.equal(other.ok, false, `weights of another seed pass the check: ${JSON.stringify(other)}`);
    assert.ok(other.maxAbsDiff > 1e-4 * other.maxLogit);
  } finally {
    a.model.dispose();
    b.model.dispose();
  }
});
