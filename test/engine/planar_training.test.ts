import { test } from 'node:test';
import assert from 'node:assert/strict';
import { F, randn, tidy, noGrad, manualSeed, memory, type Tensor } from '../../src/engine/index.js';
import { maxAbs, relativeError, gradients, withConvAlgorithm, assertSameGradients, assertStepsLeakNothing } from './conv_gradients.js';
import { withAutocast } from '../../src/train/autocast.js';

// A training convolution of a one-frame input, padded by half the kernel's depth, runs as the 2D
// convolution of the weights' middle temporal tap (src/engine/functional.ts, trainsAsPlanar): the same
// output and gradients as libtorch's 3D convolution, the other taps' weight gradient zero.

test('a one-frame 3×3×3 training convolution equals libtorch\'s 3D convolution, through the 2D one of its middle tap', () => {
  manualSeed(101);
  tidy(() => {
    const cases: [string, number[], number[], F.ConvOptions][] = [
      ['512 channels at 1×4×4', [2, 32, 1, 4, 4], [32, 32, 3, 3, 3], { padding: 1 }],
      ['stride 2 (ResNet\'s downsampling block)', [2, 16, 1, 7, 7], [32, 16, 3, 3, 3], { padding: 1, stride: 2 }],
      ['groups (ResNeXt)', [2, 32, 1, 7, 7], [32, 4, 3, 3, 3], { padding: 1, groups: 8 }],
      ['a 5-deep kernel with its own spatial padding', [1, 8, 1, 6, 5], [8, 8, 5, 3, 1], { padding: [2, 0, 0] }],
    ];
    for (const [what, inputShape, weightShape, options] of cases) {
      const x = randn(inputShape);
      const w = randn(weightShape).mul(0.1);
      const b = randn([weightShape[0]!]);
      const g = randn(noGrad(() => F.conv3d(x, w, b, options)).shape);
      const conv = (xx: Tensor, ww: Tensor, bb: Tensor | null): Tensor => F.conv3d(xx, ww, bb, options);
      const expected = withConvAlgorithm('direct', () => gradients(conv, x, w, b, g));
      const got = gradients(conv, x, w, b, g);
      assertSameGradients(got, expected, what);
      // Taps other than the middle one read only padding: their gradient is exactly zero.
      const middle = (weightShape[2]! - 1) / 2;
      assert.equal(maxAbs(got.weight!.narrow(2, 0, middle)), 0, `${what}: first taps' gradient`);
      assert.equal(maxAbs(got.weight!.narrow(2, middle + 1, middle)), 0, `${what}: last taps' gradient`);
    }
  });
});

test('conv3d runs one-frame training convolutions as 2D ones only where the other taps read padding', () => {
  manualSeed(103);
  tidy(() => {
    const x = randn([2, 16, 1, 5, 5]);
    const w = randn([16, 16, 3, 3, 3]).mul(0.1).requiresGrad_();
    const planar = F.conv2d(x.squeeze(2), w.select(2, 1), null, { padding: 1 }).unsqueeze(2).detach();
    const threeD = noGrad(() => F.conv3d(x, w, null, { padding: 1 }));
    assert.equal(maxAbs(F.conv3d(x, w, null, { padding: 1 }).sub(planar)), 0, 'recording gradients: the 2D convolution');
    assert.ok(relativeError(planar, threeD) < 1e-5);
    assert.equal(maxAbs(withConvAlgorithm('direct', () => F.conv3d(x, w, null, { padding: 1 })).sub(threeD)), 0, 'setConvAlgorithm(\'direct\'): 3D');
    // Not the case: two frames, no temporal padding, a 1×1×1 kernel: libtorch's 3D convolution unchanged.
    const cases: [string, Tensor, Tensor, F.ConvOptions][] = [
      ['two frames', randn([2, 16, 2, 5, 5]), w, { padding: 1 }],
      ['no temporal padding', randn([2, 16, 3, 5, 5]), w, { padding: [0, 1, 1] }],
      ['a 1×1×1 kernel', x, randn([8, 16, 1, 1, 1]).requiresGrad_(), {}],
    ];
    for (const [what, input, weight, options] of cases) {
      const expected = noGrad(() => F.conv3d(input, weight, null, options));
      assert.equal(maxAbs(F.conv3d(input, weight, null, options).sub(expected)), 0, what);
    }
  });
});

test('one-frame training convolutions leak nothing', () => {
  manualSeed(107);
  const live = memory().tensors;
  tidy(() => {
    const x = randn([2, 16, 1, 5, 5]);
    const w = randn([16, 16, 3, 3, 3]).requiresGrad_();
    assertStepsLeakNothing((xx, ww) => F.conv3d(xx, ww, null, { padding: 1 }), x, w);
  });
  assert.equal(memory().tensors, live);
});

test('under bf16 autocast a one-frame convolution is the bf16 2D convolution of its middle tap, with its gradients', () => {
  manualSeed(109);
  tidy(() => {
    const x = randn([2, 16, 1, 5, 5]);
    const w = randn([16, 16, 3, 3, 3]).mul(0.1).requiresGrad_();
    const options = { padding: 1 };
    const got = withAutocast('bf16', 'cpu', () => F.conv3d(x, w, null, options));
    assert.equal(got.dtype, 'bfloat16');
    const planar = withAutocast('bf16', 'cpu', () => F.conv2d(x.squeeze(2), w.select(2, 1), null, { padding: 1 })).unsqueeze(2);
    assert.equal(maxAbs(got.float().sub(planar.float())), 0);
    // The 3D convolution in bf16 (what 'direct' runs) agrees to bf16's rounding.
    const direct = withConvAlgorithm('direct', () => withAutocast('bf16', 'cpu', () => F.conv3d(x, w, null, options)));
    assert.equal(direct.dtype, 'bfloat16');
    assert.ok(maxAbs(got.float().sub(direct.float())) <= 0.02 * maxAbs(direct.float()));
    got.float().sum().backward();
    const grad = w.grad!;
    assert.equal(grad.dtype, 'float32');
    assert.equal(maxAbs(grad.narrow(2, 0, 1)) + maxAbs(grad.narrow(2, 2, 1)), 0, 'the padded taps get no gradient');
    assert.ok(maxAbs(grad.narrow(2, 1, 1)) > 0);
  });
});
