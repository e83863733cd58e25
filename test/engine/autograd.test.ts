import { test } from 'node:test';
import assert from 'node:assert/strict';
import { F, randn, rand, tensor, tidy, noGrad, isGradEnabled, manualSeed, type Tensor } from '../../src/engine/index.js';
import { assertClose } from '../helpers.js';

// torch.autograd.gradcheck's defaults: float64 inputs, central differences with eps 1e-6, and
// |analytic - numeric| <= atol + rtol·|numeric| with atol 1e-5, rtol 1e-3. Tighter bounds fail by chance:
// the rounding error of a difference quotient is about 1e-16·|f|/eps, relative to a gradient that may be near 0.
const GRADCHECK = { eps: 1e-6, atol: 1e-5, rtol: 1e-3 };
const f64 = { dtype: 'float64' } as const;

/** Central differences of a scalar function against autograd's gradient, on inputs drawn after manualSeed(seed). */
function checkGradient(name: string, seed: number, make: () => Tensor[], fn: (inputs: Tensor[]) => Tensor): void {
  tidy(() => {
    manualSeed(seed);
    const inputs = make();
    for (const input of inputs) {
      assert.equal(input.dtype, 'float64', `${name}: inputs are float64`);
      input.requiresGrad = true;
    }
    fn(inputs).backward();
    const { eps } = GRADCHECK;
    inputs.forEach((input, which) => {
      const analytic = input.grad!.toArray();
      const values = input.toArray();
      const numeric = values.map((_, i) => noGrad(() => tidy(() => {
        const evaluate = (delta: number) => {
          const shifted = inputs.map((x, j) => {
            if (j !== which) return x.detach();
            const data = Float64Array.from(values);
            data[i]! += delta;
            return tensor(Array.from(data), f64).reshape(x.shape);
          });
          return fn(shifted).item();
        };
        return (evaluate(eps) - evaluate(-eps)) / (2 * eps);
      })));
      assertClose(analytic, numeric, { rtol: GRADCHECK.rtol, atol: GRADCHECK.atol, what: `${name} input ${which}` });
    });
  });
}

test('gradients match finite differences', () => {
  checkGradient('conv3d', 1, () => [randn([1, 2, 3, 4, 4], f64), randn([3, 2, 2, 3, 3], f64), randn([3], f64)],
    ([x, w, b]) => F.conv3d(x!, w!, b!, { padding: [0, 1, 1], stride: [1, 2, 1] }).square().sum());
  checkGradient('conv2d grouped', 2, () => [randn([1, 4, 5, 5], f64), randn([4, 2, 3, 3], f64)],
    ([x, w]) => F.conv2d(x!, w!, null, { groups: 2 }).tanh().sum());
  checkGradient('batch norm (training)', 3, () => [randn([3, 2, 2, 3, 3], f64), rand([2], f64), randn([2], f64)],
    ([x, w, b]) => F.batchNorm(x!, w!, b!, null, null, { training: true }).pow(3).sum());
  checkGradient('max pool + adaptive avg pool', 4, () => [randn([1, 2, 4, 5, 5], f64)],
    ([x]) => F.adaptiveAvgPool3d(F.maxPool3d(x!, 2, { stride: 2 }), 1).exp().sum());
  checkGradient('linear + softmax', 5, () => [randn([3, 4], f64), randn([5, 4], f64), randn([5], f64)],
    ([x, w, b]) => F.linear(x!, w!, b!).softmax(1).select(1, 0).sum());
  checkGradient('cross entropy', 6, () => [randn([4, 6], f64)],
    ([x]) => F.crossEntropy(x!, tensor([1, 0, 5, 3], { dtype: 'int64' }), { labelSmoothing: 0.1 }));
  checkGradient('sigmoid · mean · broadcasting', 7, () => [randn([2, 3, 4], f64), randn([3, 1], f64)],
    ([x, g]) => x!.mul(g!.sigmoid()).mean());
});

test('noGrad disables recording and restores it, even when fn throws', () => {
  tidy(() => {
    manualSeed(8);
    const x = randn([3], { requiresGrad: true });
    const y = noGrad(() => x.mul(2));
    assert.equal(y.requiresGrad, false);
    assert.equal(x.mul(2).requiresGrad, true);
    assert.throws(() => noGrad(() => { throw new Error('boom'); }), /boom/);
    assert.equal(isGradEnabled(), true);
  });
});

test('gradients accumulate until reset, and detach cuts the graph', () => {
  tidy(() => {
    const x = tensor([1, 2, 3], { requiresGrad: true });
    x.mul(x).sum().backward();
    x.mul(x).sum().backward();
    assert.deepEqual(x.grad!.toArray(), [4, 8, 12]);
    x.grad = null;
    assert.equal(x.grad, null);
    assert.equal(x.detach().requiresGrad, false);
    assert.ok(x.isLeaf);
    assert.ok(!x.mul(2).isLeaf);
  });
});

test('backward with retainGraph allows a second pass', () => {
  tidy(() => {
    const x = tensor([2], { requiresGrad: true });
    const y = x.pow(3);
    y.backward(undefined, { retainGraph: true });
    y.backward();
    assert.deepEqual(x.grad!.toArray(), [24]);
  });
});
