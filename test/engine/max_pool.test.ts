import { test } from 'node:test';
import assert from 'node:assert/strict';
import { F, randn, randint, tidy, manualSeed, memory, fromTypedArray, TorchError, type Tensor } from '../../src/engine/index.js';
import { callNative } from '../../src/engine/ops.js';
import { t } from '../../src/engine/tensor.js';
import { withAutocast } from '../../src/train/autocast.js';
import { maxAbs } from './conv_gradients.js';

// stcnet's 3D max pooling (native/src/max_pool.cc), which F.maxPool3d runs for dense float32 and bf16
// CPU tensors: the same maxima as libtorch's max_pool3d, and the same gradients, which depend on which
// of equal values in a window is taken (libtorch takes the first in (t, y, x) order).

function libtorchPool(x: Tensor, kernel: number[], stride: number[], padding: number[]): Tensor {
  return t(callNative('aten::max_pool3d', [x.handle, kernel, stride, padding, [1, 1, 1], false]));
}

interface Case {
  shape: number[];
  kernel: number[];
  stride: number[];
  padding: number[];
}

const cases: Case[] = [
  { shape: [2, 8, 8, 28, 28], kernel: [3, 3, 3], stride: [2, 2, 2], padding: [1, 1, 1] },  // the ResNets' stem pool
  { shape: [1, 3, 5, 9, 7], kernel: [3, 3, 3], stride: [2, 2, 2], padding: [1, 1, 1] },     // odd sizes
  { shape: [2, 4, 6, 10, 12], kernel: [1, 3, 3], stride: [1, 2, 2], padding: [0, 1, 1] },   // spatial only
  { shape: [1, 2, 4, 8, 8], kernel: [2, 2, 2], stride: [2, 2, 2], padding: [0, 0, 0] },     // non-overlapping
  { shape: [2, 3, 7, 11, 13], kernel: [3, 2, 5], stride: [1, 3, 2], padding: [1, 1, 2] },   // every axis different
  { shape: [1, 2, 3, 4, 5], kernel: [3, 4, 5], stride: [1, 1, 1], padding: [1, 2, 2] },     // windows past every edge
];

/** Inputs with many equal values in each window (levels 0–3), so that which one is taken matters. */
function withTies(shape: number[], dtype: 'float32' | 'bfloat16'): Tensor {
  return randint(0, 4, shape).to(dtype);
}

function pooledAndGradient(pool: (x: Tensor) => Tensor, input: Tensor, upstream: (shape: number[]) => Tensor): [Tensor, Tensor] {
  const leaf = input.detach().requiresGrad_();
  const output = pool(leaf);
  output.backward(upstream(output.shape).to(output.dtype));
  return [output.detach(), leaf.grad!];
}

test('maxPool3d (float32): the maxima and the gradients of libtorch\'s max_pool3d, bit for bit, with and without ties', () => {
  manualSeed(101);
  tidy(() => {
    for (const { shape, kernel, stride, padding } of cases) {
      for (const [what, input] of [['random', randn(shape)], ['ties', withTies(shape, 'float32')]] as const) {
        const label = `${shape.join('×')}, kernel ${kernel.join('×')}, stride ${stride.join(',')}, padding ${padding.join(',')}, ${what}`;
        const upstream = randn([...shape.slice(0, 2), 64, 64, 64]);
        const slice = (s: number[]): Tensor => upstream.narrow(2, 0, s[2]!).narrow(3, 0, s[3]!).narrow(4, 0, s[4]!).contiguous();
        const [expected, expectedGradient] = pooledAndGradient((x) => libtorchPool(x, kernel, stride, padding), input, slice);
        const [got, gotGradient] = pooledAndGradient((x) => F.maxPool3d(x, kernel, { stride, padding }), input, slice);
        assert.deepEqual(got.shape, expected.shape, label);
        assert.equal(got.dtype, 'float32');
        assert.equal(maxAbs(got.sub(expected)), 0, `${label}: maxima`);
        assert.equal(maxAbs(gotGradient.sub(expectedGradient)), 0, `${label}: input gradient`);
      }
    }
  });
});

test('maxPool3d (bf16): bf16 in and out, the maxima and gradients of libtorch\'s float32 pool of the same values', () => {
  manualSeed(103);
  tidy(() => {
    for (const { shape, kernel, stride, padding } of cases.slice(0, 3)) {
      for (const input of [randn(shape).to('bfloat16'), withTies(shape, 'bfloat16')]) {
        const upstream = (s: number[]): Tensor => randn(s);
        manualSeed(7);
        const [expected, expectedGradient] = pooledAndGradient((x) => libtorchPool(x.float(), kernel, stride, padding).to('bfloat16'), input, upstream);
        manualSeed(7);
        const [got, gotGradient] = pooledAndGradient((x) => F.maxPool3d(x, kernel, { stride, padding }), input, upstream);
        assert.equal(got.dtype, 'bfloat16');
        assert.equal(gotGradient.dtype, 'bfloat16');
        assert.equal(maxAbs(got.float().sub(expected.float())), 0, `${shape.join('×')}: maxima`);
        // Overlapping windows add several gradients into one input: summed in float, rounded once, as libtorch.
        assert.equal(maxAbs(gotGradient.float().sub(expectedGradient.float())), 0, `${shape.join('×')}: input gradient`);
      }
    }
  });
});

test('maxPool3d under bf16 autocast keeps a bf16 input in bf16 (libtorch would pool it in float32)', () => {
  manualSeed(107);
  tidy(() => {
    const x = randn([2, 4, 4, 8, 8]).to('bfloat16');
    const pooled = withAutocast('bf16', 'cpu', () => F.maxPool3d(x, 3, { stride: 2, padding: 1 }));
    assert.equal(pooled.dtype, 'bfloat16');
    assert.equal(maxAbs(pooled.float().sub(libtorchPool(x.float(), [3, 3, 3], [2, 2, 2], [1, 1, 1]))), 0);
  });
});

test('maxPool3d: a NaN in a window is its maximum, as in libtorch; infinities pool as numbers', () => {
  tidy(() => {
    const values = Float32Array.from({ length: 2 * 4 * 4 * 4 }, (_, i) => (i * 7919) % 13 - 6);
    values[5] = Number.NaN;
    values[70] = Number.NEGATIVE_INFINITY;
    values[100] = Number.POSITIVE_INFINITY;
    const x = fromTypedArray(values, [1, 2, 4, 4, 4]);
    const got = F.maxPool3d(x, 3, { stride: 2, padding: 1 }).toFloat32Array();
    const expected = libtorchPool(x, [3, 3, 3], [2, 2, 2], [1, 1, 1]).toFloat32Array();
    assert.ok(got.some(Number.isNaN), 'the NaN reaches the output');
    assert.deepEqual(Array.from(got, (v) => (Number.isNaN(v) ? 'NaN' : v)), Array.from(expected, (v) => (Number.isNaN(v) ? 'NaN' : v)));
  });
});

test('maxPool3d hands what its kernel does not take to libtorch: float64, channels-last, dilation, ceil mode', () => {
  manualSeed(109);
  tidy(() => {
    const x = randn([1, 3, 6, 9, 9]);
    const reference = (input: Tensor, dilation = [1, 1, 1], ceilMode = false): Tensor =>
      t(callNative('aten::max_pool3d', [input.handle, [3, 3, 3], [2, 2, 2], [1, 1, 1], dilation, ceilMode]));
    assert.equal(maxAbs(F.maxPool3d(x.to('float64'), 3, { stride: 2, padding: 1 }).sub(reference(x.to('float64')))), 0, 'float64');
    const channelsLast = x.permute([0, 2, 3, 4, 1]).contiguous().permute([0, 4, 1, 2, 3]);
    assert.equal(maxAbs(F.maxPool3d(channelsLast, 3, { stride: 2, padding: 1 }).sub(reference(x))), 0, 'a strided (channels-last) input');
    assert.equal(maxAbs(F.maxPool3d(x, 3, { stride: 2, padding: 1, dilation: 2 }).sub(reference(x, [2, 2, 2]))), 0, 'dilation');
    assert.equal(maxAbs(F.maxPool3d(x, 3, { stride: 2, padding: 1, ceilMode: true }).sub(reference(x, [1, 1, 1], true))), 0, 'ceil mode');
  });
});

test('maxPool3d: a padding over half the kernel or a window larger than the padded input is an error naming it', () => {
  tidy(() => {
    assert.throws(() => F.maxPool3d(randn([1, 1, 4, 4, 4]), 3, { stride: 2, padding: 2 }),
      (error: Error) => error instanceof TorchError && /maxPool3d: .*padding at most half the kernel/.test(error.message));
    assert.throws(() => F.maxPool3d(randn([1, 1, 1, 4, 4]), 5, { stride: 1, padding: 1 }), /maxPool3d: input \[1, 1, 1, 4, 4\] is smaller than the kernel/);
    assert.throws(() => F.maxPool3d(randn([1, 1, 4, 4, 4]), 3, { stride: 0 }), /maxPool3d: kernel and stride must be positive/);
  });
});

test('maxPool3d: training steps through it leave no tensors behind', () => {
  manualSeed(113);
  tidy(() => {
    const x = randn([2, 4, 4, 8, 8]).requiresGrad_();
    const step = (): void => tidy(() => {
      F.maxPool3d(x, 3, { stride: 2, padding: 1 }).square().sum().backward();
      x.grad!.zero_();
    });
    step();
    const during = memory().tensors;
    for (let i = 0; i < 20; i++) step();
    assert.equal(memory().tensors, during);
  });
});
