import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randn, noGrad, tidy, manualSeed, memory, type Tensor } from '../../src/engine/index.js';
import { BatchNorm3d, BatchNorm2d, init } from '../../src/nn/index.js';
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

test('bfloat16 inference: same top-1 as float32 and logits within 2% of the max logit', () => {
  manualSeed(11);
  const model = createModel('stc_resnet3d_18', { widthMultiplier: 0.25, frames: 8, numClasses: 21 }).eval();
  randomiseBatchNorms(model);
  const f32 = prepareForInference(model);
  const bf16 = prepareForInference(model, { dtype: 'bfloat16' });
  tidy(() => {
    const x = randn([4, 3, 8, 32, 32]);
    const a = f32.forward(x);
    const b = bf16.forward(x);
    assert.equal(b.dtype, 'float32');
    const error = maxAbs(a.sub(b)) / maxAbs(a);
    assert.ok(error < 0.02, `relative error ${error}`);
    assert.deepEqual(b.argmax(1).toArray(), a.argmax(1).toArray());
  });
  f32.dispose();
  bf16.dispose();
  model.dispose();
});

test('Winograd convolutions run where they pay: logits differ from the direct convolutions\' by rounding only', () => {
  manualSeed(29);
  // Width ×0.5: 32 to 256 channels; 16×64² clips put 8×16×16 … 2×4×4 inputs before the 3×3×3 convolutions.
  const model = createModel('stc_resnet3d_18', { widthMultiplier: 0.5, frames: 16, numClasses: 9 }).eval();
  randomiseBatchNorms(model);
  const winograd = prepareForInference(model);
  const direct = prepareForInference(model, { winograd: false });
  tidy(() => {
    const x = randn([2, 3, 16, 64, 64]);
    const a = winograd.forward(x);
    const b = direct.forward(x);
    const difference = maxAbs(a.sub(b)) / maxAbs(b);
    // Zero would mean that no convolution took the Winograd path.
    assert.ok(difference > 0 && difference < 1e-5, `relative difference ${difference}`);
    assert.deepEqual(a.argmax(1).toArray(), b.argmax(1).toArray());
  });
  // Stride-1 3×3×3 convolutions of layers 1–3 (4 + 3 + 3), not layer 4's (1×2×2 inputs: mostly padding;
  // three of them see one frame and run as their middle temporal tap).
  assert.deepEqual(winograd.convolutionKernels(), { direct: 7, winograd: 10, grouped: 0, planar: 3 });
  assert.deepEqual(direct.convolutionKernels(), { direct: 17, winograd: 0, grouped: 0, planar: 3 });
  winograd.dispose();
  direct.dispose();
  model.dispose();
});

test('one-frame convolutions run as their middle temporal tap: logits equal the eval forward\'s', () => {
  manualSeed(37);
  // 16-frame clips leave layer 4 one frame: its block 1 conv2 and block 2's two 3×3×3 convolutions see
  // a single frame (block 1's conv1 still sees two).
  const model = createModel('stc_resnet3d_18', { widthMultiplier: 0.25, frames: 16, numClasses: 6 }).eval();
  randomiseBatchNorms(model);
  const prepared = prepareForInference(model);
  const unfused = prepareForInference(model, { fusion: false });
  tidy(() => {
    for (const batch of [1, 3]) {
      const x = randn([batch, 3, 16, 32, 32]);
      const reference = noGrad(() => model.forward(x));
      const difference = maxAbs(prepared.forward(x).sub(reference)) / maxAbs(reference);
      assert.ok(difference < 1e-5, `batch ${batch}: relative difference ${difference}`);
    }
  });
  assert.equal(prepared.convolutionKernels().planar, 3);
  assert.equal(unfused.convolutionKernels().planar, 0);
  prepared.dispose();
  unfused.dispose();
  model.dispose();
});

test('ResNeXt\'s 4-channel groups run on the grouped kernel: logits equal the eval forward\'s', () => {
  manualSeed(31);
  // Cardinality 32 at width ×1: layer1's grouped convolutions have 4 channels per group (128 in 32 groups).
  const model = createModel('stc_resnext3d_101', { frames: 8, numClasses: 5 }).eval();
  randomiseBatchNorms(model);
  const prepared = prepareForInference(model);
  const unfused = prepareForInference(model, { fusion: false });
  tidy(() => {
    const x = randn([1, 3, 8, 32, 32]);
    const reference = noGrad(() => model.forward(x));
    assert.ok(maxAbs(prepared.forward(x).sub(reference)) / maxAbs(reference) < 1e-4);
  });
  assert.equal(prepared.convolutionKernels().grouped, 3);
  assert.equal(unfused.convolutionKernels().grouped, 0);
  prepared.dispose();
  unfused.dispose();
  model.dispose();
});

test('prepareForInference checks its options and the input like the model does', () => {
  manualSeed(1);
  const model = createModel('stc_resnet3d_18', { widthMultiplier: 0.25, frames: 8, numClasses: 3 }).eval();
  assert.throws(() => prepareForInference(model, { dtype: 'float16' as never }), /dtype must be 'float32' or 'bfloat16', got "float16"/);
  assert.throws(() => prepareForInference(model, { layout: 'nhwc' as never }), /layout must be 'blocked' or 'dense', got "nhwc"/);
  assert.throws(() => prepareForInference(model, { fusion: 'yes' as never }), /fusion must be true or false, got "yes"/);
  assert.throws(() => prepareForInference(model, { winograd: 1 as never }), /winograd must be true or false, got 1/);
  assert.throws(() => prepareForInference(model, { dtype: 'bfloat16', layout: 'blocked' }), /layout 'blocked' needs dtype float32/);
  const bf16 = prepareForInference(model, { dtype: 'bfloat16' });
  assert.equal(bf16.layout, 'dense');
  bf16.dispose();
  const prepared = prepareForInference(model);
  assert.throws(() => tidy(() => prepared.forward(randn([1, 3, 16, 32, 32]))), /built for 8-frame clips, got 16 frames/);
  prepared.dispose();
  model.dispose();
});
