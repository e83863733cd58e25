import { test } from 'node:test';
import assert from 'node:assert/strict';
import { F, randn, noGrad, tidy, manualSeed, memory, type Tensor } from '../../src/engine/index.js';
import { BatchNorm3d, BatchNorm2d, MaxPool3d, init } from '../../src/nn/index.js';
import { PassThrough } from '../../src/models/inference.js';
import { callNative } from '../../src/engine/ops.js';
import { t } from '../../src/engine/tensor.js';
import { createModel, prepareForInference, type ModelName, type ZooModel } from '../../src/models/index.js';

/** Non-trivial BatchNorm statistics and affine parameters, so that folding has something to fold. */
function randomiseBatchNorms(model: ZooModel): void {
  noGrad(() => {
    for (const [, module] of model.namedModules()) {
      if (!(module instanceof BatchNorm3d || module instanceof BatchNorm2d)) continue;
      init.normal_(module.runningMean!, 0, 0.2);
      init.uniform_(module.runningVar!, 0.5, 2);
      init.normal_(module.weight!, 1, 0.3);
      init.normal_(module.bias!, 0, 0.2);
    }
  });
}

function maxAbs(t: Tensor): number {
  return tidy(() => t.abs().max().item());
}

const CASES: [ModelName, Record<string, unknown>, number[]][] = [
  ['resnet3d_18', { widthMultiplier: 0.25 }, [2, 3, 8, 32, 32]],
  ['stc_resnet3d_18', { widthMultiplier: 0.25, frames: 16 }, [2, 3, 16, 32, 32]],
  ['resnext3d_50', { widthMultiplier: 0.25, cardinality: 8 }, [1, 3, 8, 32, 32]],
  ['stc_resnet3d_18', { widthMultiplier: 0.25, frames: 8, shortcut: 'A' }, [1, 3, 8, 32, 32]],
  // Channel counts that are not whole oneDNN channel blocks (12, 24, 48, 96): the gated merge converts.
  ['stc_resnet3d_18', { widthMultiplier: 0.1875, frames: 8 }, [2, 3, 8, 32, 32]],
  ['stc_resnet3d_50', { widthMultiplier: 0.125, frames: 8 }, [3, 3, 8, 32, 32]],
  ['r2plus1d_18', {}, [1, 3, 4, 24, 24]],
  ['resnet2d_18', { widthMultiplier: 0.25 }, [2, 3, 32, 32]],
];

test('prepareForInference (float32, blocked layout with and without oneDNN fusion and Winograd, dense layout) gives the eval forward\'s logits within 1e-4 of the max logit', () => {
  const variants = [{ layout: 'blocked', fusion: true }, { layout: 'blocked', fusion: true, winograd: false }, { layout: 'blocked', fusion: false },
    { layout: 'dense' }] as const;
  for (const [arch, options, shape] of CASES) for (const variant of variants) {
    const layout = variant.layout;
    manualSeed(7);
    const model = createModel(arch, { numClasses: 11, ...options } as never).eval();
    randomiseBatchNorms(model);
    const live = memory().tensors;
    const prepared = prepareForInference(model, variant);
    assert.equal(prepared.layout, layout);
    tidy(() => {
      const x = randn(shape);
      const original = x.clone();
      const reference = noGrad(() => model.forward(x));
      const folded = prepared.forward(x);
      assert.deepEqual(folded.shape, reference.shape, arch);
      assert.equal(folded.dtype, 'float32');
      const error = maxAbs(folded.sub(reference)) / maxAbs(reference);
      assert.ok(error < 1e-4, `${arch} ${JSON.stringify(options)} ${JSON.stringify(variant)}: relative error ${error}`);
      // The caller's input is left as it was (the blocks write into buffers they own).
      assert.equal(maxAbs(x.sub(original)), 0);
    });
    prepared.dispose();
    assert.equal(memory().tensors, live, `${arch} ${layout}: every tensor of the forward and the prepared weights freed`);
    model.dispose();
  }
});

test('prepareForInference copies the weights: later changes to the model do not reach it, and dispose frees them', () => {
  manualSeed(3);
  const model = createModel('resnet3d_10', { widthMultiplier: 0.25, numClasses: 4 }).eval();
  randomiseBatchNorms(model);
  const before = memory().tensors;
  const prepared = prepareForInference(model);
  tidy(() => {
    const x = randn([1, 3, 4, 24, 24]);
    const first = prepared.forward(x);
    noGrad(() => model.fc.weight.mul_(0));
    assert.equal(maxAbs(prepared.forward(x).sub(first)), 0);
    assert.equal(first.requiresGrad, false);
  });
  prepared.dispose();
  assert.equal(memory().tensors, before);
  assert.throws(() => prepared.forward(randn([1, 3, 4, 24, 24])), /after dispose/);
  model.dispose();
});

test('bfloat16 inference, blocked and dense layouts: same top-1 as float32 and logits within 2% of the max logit', () => {
  manualSeed(11);
  const models: [ModelName, Record<string, unknown>][] = [['stc_resnet3d_18', { widthMultiplier: 0.25 }], ['stc_resnext3d_50', { widthMultiplier: 0.25, cardinality: 8 }]];
  for (const [name, options] of models) {
    const model = createModel(name, { ...options, frames: 8, numClasses: 21 }).eval();
    randomiseBatchNorms(model);
    const f32 = prepareForInference(model);
    // oneDNN's bf16 kernels need AVX-512 BW/VL/DQ: elsewhere the blocked layout is refused by name.
    if (!F.mkldnnBf16Enabled) {
      assert.throws(() => prepareForInference(model, { dtype: 'bfloat16', layout: 'blocked' }), /layout 'blocked' in bf16 needs a CPU with AVX-512 BW, VL and DQ/);
    }
    for (const layout of F.mkldnnBf16Enabled ? ['blocked', 'dense'] as const : ['dense'] as const) {
      const bf16 = prepareForInference(model, { dtype: 'bfloat16', layout });
      assert.equal(bf16.layout, layout);
      tidy(() => {
        const x = randn([4, 3, 8, 32, 32]);
        const a = f32.forward(x);
        const b = bf16.forward(x);
        assert.equal(b.dtype, 'float32');
        const error = maxAbs(a.sub(b)) / maxAbs(a);
        assert.ok(error < 0.02, `${name}, ${layout}: relative error ${error}`);
        assert.deepEqual(b.argmax(1).toArray(), a.argmax(1).toArray(), `${name}, ${layout}`);
      });
      bf16.dispose();
    }
    f32.dispose();
    model.dispose();
  }
});

test('the dense layout max-pools float32 by F.maxPool3d\'s kernel and bf16 by oneDNN (where the CPU runs oneDNN\'s bf16): the same maxima as libtorch\'s max_pool3d, odd sizes', () => {
  manualSeed(12);
  for (const dtype of ['float32', 'bfloat16'] as const) {
    const pool = new PassThrough(new MaxPool3d(3, { stride: 2, padding: 1 }), 'dense', dtype);
    tidy(() => {
      const input = randn([2, 5, 7, 9, 11]).to(dtype);
      const pooled = pool.forward(input);
      const reference = t(callNative('aten::max_pool3d', [input.to('float32').handle, [3, 3, 3], [2, 2, 2], [1, 1, 1], [1, 1, 1], false]));
      assert.equal(pooled.dtype, dtype);
      assert.deepEqual(pooled.shape, [2, 5, 4, 5, 6]);
      assert.equal(maxAbs(pooled.to('float32').sub(reference)), 0, dtype);
    });
  }
});

test('prepareForInference checks its options and the input like the model does', () => {
  manualSeed(1);
  const model = createModel('stc_resnet3d_18', { widthMultiplier: 0.25, frames: 8, numClasses: 3 }).eval();
  assert.throws(() => prepareForInference(model, { dtype: 'float16' as never }), /dtype must be 'float32' or 'bfloat16', got "float16"/);
  assert.throws(() => prepareForInference(model, { layout: 'nhwc' as never }), /layout must be 'blocked' or 'dense', got "nhwc"/);
  assert.throws(() => prepareForInference(model, { fusion: 'yes' as never }), /fusion must be true or false, got "yes"/);
  assert.throws(() => prepareForInference(model, { winograd: 1 as never }), /winograd must be true or false, got 1/);
  const bf16 = prepareForInference(model, { dtype: 'bfloat16' });
  assert.equal(bf16.layout, F.mkldnnBf16Enabled ? 'blocked' : 'dense');
  bf16.dispose();
  const prepared = prepareForInference(model);
  assert.throws(() => tidy(() => prepared.forward(randn([1, 3, 16, 32, 32]))), /built for 8-frame clips, got 16 frames/);
  prepared.dispose();
  model.dispose();
});
