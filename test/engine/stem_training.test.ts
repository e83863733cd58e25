import { test } from 'node:test';
import assert from 'node:assert/strict';
import { F, randn, tidy, noGrad, manualSeed, memory, setConvAlgorithm, type Tensor } from '../../src/engine/index.js';
import { withAutocast } from '../../src/train/autocast.js';
import { maxAbs, relativeError, gradients, withConvAlgorithm, assertSameGradients, assertStepsLeakNothing } from './conv_gradients.js';

// The stem convolution of training (native/src/stem_autograd.cc): libtorch's forward and input gradient,
// stcnet's weight gradient; against libtorch's convolution of the same tensors, where conv3d routes to
// it, and its error paths.

/** fn with libtorch's convolutions (oneDNN's, below batch 8). */
const libtorch = <T>(fn: () => T): T => withConvAlgorithm('direct', fn);

interface Case {
  input: [number, number, number, number, number];
  outputs: number;
  kernel: [number, number, number];
  stride: [number, number, number];
  padding: [number, number, number];
}

const hara: Pick<Case, 'kernel' | 'stride' | 'padding'> = { kernel: [7, 7, 7], stride: [1, 2, 2], padding: [3, 3, 3] };

test('stemConv3d: output and input, weight and bias gradients equal libtorch\'s convolution', { skip: !F.stemTrainingEnabled }, () => {
  manualSeed(79);
  tidy(() => {
    const cases: Case[] = [
      { input: [2, 3, 5, 20, 22], outputs: 8, ...hara },                                                  // odd output width (11)
      { input: [1, 2, 4, 9, 9], outputs: 5, kernel: [3, 5, 7], stride: [2, 1, 1], padding: [1, 2, 3] },    // stride 1 along x; 5 outputs
      { input: [8, 3, 8, 48, 48], outputs: 16, ...hara },                                                 // the demo's stem
      { input: [1, 1, 3, 17, 30], outputs: 12, kernel: [1, 7, 7], stride: [1, 2, 2], padding: [0, 0, 0] }, // no padding; one channel
      { input: [2, 3, 4, 112, 112], outputs: 64, kernel: [3, 7, 7], stride: [2, 2, 2], padding: [1, 3, 3] },
    ];
    for (const { input: shape, outputs, kernel, stride, padding } of cases) {
      const label = `${shape.join('×')} → ${outputs}, kernel ${kernel.join('×')}, stride ${stride.join(',')}, padding ${padding.join(',')}`;
      const x = randn(shape);
      const w = randn([outputs, shape[1], ...kernel]).mul(0.1);
      const b = randn([outputs]);
      const g = randn([shape[0], outputs, 64, 64, 64]);
      const slice = (s: number[]): Tensor => g.narrow(2, 0, s[2]!).narrow(3, 0, s[3]!).narrow(4, 0, s[4]!);
      for (const bias of [b, null]) {
        const all = { input: true, weight: true };
        const expected = libtorch(() => gradients((xx, ww, bb) => F.conv3d(xx, ww, bb, { stride, padding }), x, w, bias, slice, all));
        const got = gradients((xx, ww, bb) => F.stemConv3d(xx, ww, bb, { stride, padding }), x, w, bias, slice, all);
        const what = `${label}${bias ? '' : ', no bias'}`;
        assertSameGradients(got, expected, what);
      }
    }
  });
});

test('conv3d takes an RGB stem\'s weight gradient from stcnet\'s kernel while it is recorded where that pays (no AVX-512), and libtorch\'s otherwise', { skip: !F.stemTrainingEnabled }, () => {
  manualSeed(83);
  tidy(() => {
    const x = randn([2, 3, 4, 24, 24]);
    const w = randn([16, 3, 7, 7, 7]).mul(0.1);
    const g = randn([2, 16, 4, 12, 12]);
    const options = { stride: [1, 2, 2], padding: 3 };
    const weightGradient = (conv: (x: Tensor, w: Tensor) => Tensor, input = x, weight = w, gradient = g): Tensor => {
      const leaf = weight.clone().requiresGrad_();
      conv(input, leaf).mul(gradient).sum().backward();
      return leaf.grad!;
    };
    const own = weightGradient((xx, ww) => F.stemConv3d(xx, ww, null, options));
    const byLibtorch = libtorch(() => weightGradient((xx, ww) => F.conv3d(xx, ww, null, options)));
    const differs = maxAbs(own.sub(byLibtorch));
    assert.ok(differs > 0 && differs < 1e-5 * maxAbs(byLibtorch), `the two differ by rounding only: ${differs}`);
    if (F.stemTrainingPays) {
      assert.equal(maxAbs(weightGradient((xx, ww) => F.conv3d(xx, ww, null, options)).sub(own)), 0, 'recording the weight\'s gradient: stcnet\'s kernel');
    } else {
      // An AVX-512 CPU: oneDNN's weight gradient, faster there, also while it is recorded.
      assert.equal(maxAbs(weightGradient((xx, ww) => F.conv3d(xx, ww, null, options)).sub(byLibtorch)), 0, 'AVX-512: libtorch\'s');
    }
    setConvAlgorithm('direct');
    try {
      assert.equal(maxAbs(weightGradient((xx, ww) => F.conv3d(xx, ww, null, options)).sub(byLibtorch)), 0, 'setConvAlgorithm(\'direct\'): libtorch\'s');
    } finally {
      setConvAlgorithm('auto');
    }
    // The forward pass is libtorch's in every case.
    assert.equal(maxAbs(F.conv3d(x, w.clone().requiresGrad_(), null, options).sub(noGrad(() => F.conv3d(x, w, null, options)))), 0);

    // Convolutions the kernel does not compute, or whose weight gradient is not asked for: libtorch's.
    const cases: [string, Tensor, Tensor, F.ConvOptions][] = [
      ['16 input channels', randn([2, 16, 4, 12, 12]), randn([8, 16, 7, 7, 7]).mul(0.1), { stride: [1, 2, 2], padding: 3 }],
      ['a 3-wide kernel', x, randn([16, 3, 3, 3, 3]).mul(0.1), { padding: 1 }],
      ['stride 3 along x', x, w, { stride: [1, 2, 3], padding: 3 }],
      ['dilation 2', x, w, { stride: [1, 2, 2], padding: 6, dilation: 2 }],
    ];
    for (const [what, input, weight, caseOptions] of cases) {
      const gradient = randn(noGrad(() => F.conv3d(input, weight, null, caseOptions)).shape);
      const expected = libtorch(() => weightGradient((xx, ww) => F.conv3d(xx, ww, null, caseOptions), input, weight, gradient));
      assert.equal(maxAbs(weightGradient((xx, ww) => F.conv3d(xx, ww, null, caseOptions), input, weight, gradient).sub(expected)), 0, what);
    }
    const inputOnly = x.clone().requiresGrad_();
    F.conv3d(inputOnly, w, null, options).mul(g).sum().backward();
    const inputByLibtorch = x.clone().requiresGrad_();
    libtorch(() => F.conv3d(inputByLibtorch, w, null, options)).mul(g).sum().backward();
    assert.equal(maxAbs(inputOnly.grad!.sub(inputByLibtorch.grad!)), 0, 'only the input\'s gradient: libtorch\'s');
  });
});

test('under bf16 autocast, stemConv3d is the autocast convolution', { skip: !F.stemTrainingEnabled }, () => {
  manualSeed(89);
  tidy(() => {
    const x = randn([1, 3, 4, 16, 16]);
    const w = randn([8, 3, 7, 7, 7]).mul(0.1).requiresGrad_();
    const options = { stride: [1, 2, 2], padding: 3 };
    const output = withAutocast('bf16', 'cpu', () => F.stemConv3d(x, w, null, options));
    assert.equal(output.dtype, 'bfloat16');
    const autocastLibtorch = withConvAlgorithm('aten', () => withAutocast('bf16', 'cpu', () => F.conv3d(x, w, null, options)));
    assert.equal(maxAbs(output.float().sub(autocastLibtorch.float())), 0);
  });
});

test('stemConv3d refuses what it does not compute with errors, not aborts, and leaks nothing', { skip: !F.stemTrainingEnabled }, () => {
  manualSeed(97);
  const live = memory().tensors;
  tidy(() => {
    const x = randn([1, 3, 4, 16, 16]);
    const hara = { stride: [1, 2, 2], padding: 3 };
    assert.throws(() => F.stemConv3d(x, randn([8, 3, 7, 7, 5]), null, hara), /weight must be O×C×kt×kh×7, got \[8, 3, 7, 7, 5\]/);
    assert.throws(() => F.stemConv3d(x, randn([8, 4, 7, 7, 7]), null, hara), /input has 3 channels, the weight takes 4/);
    assert.throws(() => F.stemConv3d(x, randn([8, 3, 7, 7, 7]), null, { stride: [1, 2, 3], padding: 3 }), /stride along x must be 1 or 2, got 3/);
    assert.throws(() => F.stemConv3d(x, randn([8, 3, 7, 7, 7]), null, { stride: [1, 2, 2], padding: 7 }), /padding below the kernel/);
    assert.throws(() => F.stemConv3d(x, randn([8, 3, 7, 7, 7]), null, { stride: [0, 2, 2], padding: 3 }), /stride must be positive/);
    assert.throws(() => F.stemConv3d(randn([3, 4, 16, 16]), randn([8, 3, 7, 7, 7]), null, hara), /N×C×D×H×W/);
    assert.throws(() => F.stemConv3d(x.double(), randn([8, 3, 7, 7, 7]), null, hara), /input must be a dense float32 CPU tensor/);
    assert.throws(() => F.stemConv3d(x, randn([8, 3, 7, 7, 7]), randn([4]), hara), /bias must have 8 values/);

    const w = randn([8, 3, 7, 7, 7]).requiresGrad_();
    assertStepsLeakNothing((xx, ww) => F.stemConv3d(xx, ww, null, hara), x, w);
  });
  assert.equal(memory().tensors, live);
});
