import { test } from 'node:test';
import assert from 'node:assert/strict';
import { F, randn, tensor, tidy, noGrad, manualSeed, memory, setConvAlgorithm, getConvAlgorithm, type Tensor } from '../../src/engine/index.js';
import { createModel } from '../../src/models/index.js';
import { SGD } from '../../src/optim/index.js';
import { withAutocast } from '../../src/train/autocast.js';
import { maxAbs, relativeError, gradients, withConvAlgorithm, assertSameGradients, assertStepsLeakNothing } from './conv_gradients.js';

// The Winograd convolution of training (native/src/winograd_autograd.cc): its output and all three
// gradients against libtorch's direct convolution of the same tensors, where conv3d routes to it, and
// its error paths.

/** fn with libtorch's own convolutions everywhere. */
const direct = <T>(fn: () => T): T => withConvAlgorithm('aten', fn);

const same = { padding: 1 };

test('winogradConv3d: output and input, weight and bias gradients equal the direct convolution\'s', { skip: !F.winogradTrainingEnabled }, () => {
  manualSeed(29);
  tidy(() => {
    // [batch, in, out, depth, height, width]: odd and even sizes; 2×64 at 8×28×28 (1568 tiles) makes the
    // weight gradient run in 4 chunks; 256 + 256 channels take the convolution's phased path.
    const shapes = [[2, 16, 32, 3, 5, 7], [1, 32, 16, 4, 4, 4], [3, 16, 16, 5, 9, 8], [2, 64, 64, 8, 28, 28], [2, 256, 256, 2, 7, 7]];
    for (const [batch, inChannels, outChannels, depth, height, width] of shapes as [number, number, number, number, number, number][]) {
      const label = `${batch}×${inChannels}→${outChannels} at ${depth}×${height}×${width}`;
      const x = randn([batch, inChannels, depth, height, width]);
      const w = randn([outChannels, inChannels, 3, 3, 3]).mul(0.1);
      const b = randn([outChannels]);
      const g = randn([batch, outChannels, depth, height, width]);
      for (const bias of [b, null]) {
        const all = { input: true, weight: true };
        const expected = direct(() => gradients((xx, ww, bb) => F.conv3d(xx, ww, bb, same), x, w, bias, g, all));
        const got = gradients(F.winogradConv3d, x, w, bias, g, all);
        const what = `${label}${bias ? '' : ', no bias'}`;
        assertSameGradients(got, expected, what);
      }
    }
  });
});

test('winogradConv3d computes only the gradients asked for, and takes empty batches, retained graphs and non-contiguous inputs', { skip: !F.winogradTrainingEnabled }, () => {
  manualSeed(31);
  tidy(() => {
    const x = randn([2, 16, 4, 6, 6]);
    const w = randn([32, 16, 3, 3, 3]).mul(0.1);
    const g = randn([2, 32, 4, 6, 6]);
    const reference = direct(() => gradients((xx, ww) => F.conv3d(xx, ww, null, same), x, w, null, g, { input: true, weight: true }));
    const frozenWeight = gradients(F.winogradConv3d, x, w, null, g, { input: true, weight: false });
    assert.equal(frozenWeight.weight, null);
    assert.ok(relativeError(frozenWeight.input!, reference.input!) < 1e-5);
    const constantInput = gradients(F.winogradConv3d, x, w, null, g, { input: false, weight: true });
    assert.equal(constantInput.input, null);
    assert.ok(relativeError(constantInput.weight!, reference.weight!) < 1e-5);

    // An empty batch: an empty output and zero weight gradient; a graph kept for a second backward pass
    // gives each pass the same gradient.
    const empty = randn([0, 16, 4, 6, 6]);
    const weight = w.clone().requiresGrad_();
    const none = F.winogradConv3d(empty, weight);
    assert.deepEqual(none.shape, [0, 32, 4, 6, 6]);
    none.sum().backward();
    assert.equal(maxAbs(weight.grad!), 0);
    weight.grad!.zero_();
    const kept = F.winogradConv3d(x, weight).mul(g).sum();
    kept.backward(undefined, { retainGraph: true });
    const first = weight.grad!.clone();
    kept.backward();
    assert.equal(maxAbs(weight.grad!.sub(first.mul(2))), 0);
    assert.ok(relativeError(first, reference.weight!) < 1e-5);

    // A transposed view (N and D swapped twice over a copy laid out D-first) is made contiguous first.
    const strided = x.transpose(0, 2).contiguous().transpose(0, 2);
    assert.ok(!strided.isContiguous());
    assert.ok(relativeError(noGrad(() => F.winogradConv3d(strided, w)), reference.output) < 1e-5);
  });
});

test('conv3d runs Winograd while gradients are recorded, where it pays, and direct otherwise', { skip: !F.winogradTrainingEnabled }, () => {
  manualSeed(37);
  tidy(() => {
    const x = randn([2, 16, 4, 12, 12]);
    const w = randn([16, 16, 3, 3, 3]).mul(0.1).requiresGrad_();
    const byWinograd = F.winogradConv3d(x, w).detach();
    const byDirect = direct(() => F.conv3d(x, w, null, same)).detach();
    const differs = maxAbs(byWinograd.sub(byDirect));
    assert.ok(differs > 0 && differs < 1e-5 * maxAbs(byDirect), `the two algorithms differ by rounding only: ${differs}`);

    assert.equal(maxAbs(F.conv3d(x, w, null, same).sub(byWinograd)), 0, 'recording gradients: Winograd');
    assert.equal(maxAbs(noGrad(() => F.conv3d(x, w, null, same)).sub(byDirect)), 0, 'under noGrad: direct, as libtorch computes it');
    const frozen = w.detach();
    assert.equal(maxAbs(F.conv3d(x, frozen, null, same).sub(byDirect)), 0, 'nothing requires a gradient: direct');
    for (const algorithm of ['direct', 'mkldnn'] as const) {
      setConvAlgorithm(algorithm);
      try {
        assert.ok(maxAbs(F.conv3d(x, w, null, same).sub(byDirect)) < 1e-5 * maxAbs(byDirect), `setConvAlgorithm('${algorithm}'): direct`);
        assert.ok(maxAbs(F.conv3d(x, w, null, same).sub(byWinograd)) > 0);
      } finally {
        setConvAlgorithm('auto');
      }
    }
    assert.throws(() => setConvAlgorithm('winograd' as never), /expected auto, direct, aten, mkldnn, got "winograd"/);

    // Shapes Winograd does not compute or where it does not pay: the direct convolution, unchanged.
    const cases: [string, Tensor, Tensor, F.ConvOptions][] = [
      ['stride 2', x, w, { padding: 1, stride: 2 }],
      ['8 input channels', randn([2, 8, 4, 12, 12]), randn([16, 8, 3, 3, 3]).requiresGrad_(), same],
      ['two groups', x, randn([16, 8, 3, 3, 3]).requiresGrad_(), { padding: 1, groups: 2 }],
      ['a 1×12×12 input (tiles mostly padding)', randn([2, 16, 1, 12, 12]), w, same],
      ['a 2×4×4 input (too few outputs to pay per call)', randn([2, 16, 2, 4, 4]), w, same],
      ['padding 0', x, w, {}],
    ];
    for (const [what, input, weight, options] of cases) {
      const expected = direct(() => F.conv3d(input, weight, null, options));
      assert.equal(maxAbs(F.conv3d(input, weight, null, options).sub(expected)), 0, what);
    }
  });
});

test('under bf16 autocast, winogradConv3d is the autocast convolution', { skip: !F.winogradTrainingEnabled }, () => {
  manualSeed(41);
  tidy(() => {
    const x = randn([1, 16, 2, 6, 6]);
    const w = randn([16, 16, 3, 3, 3]).mul(0.1).requiresGrad_();
    const output = withAutocast('bf16', 'cpu', () => F.winogradConv3d(x, w));
    assert.equal(output.dtype, 'bfloat16');
    const autocastDirect = direct(() => withAutocast('bf16', 'cpu', () => F.conv3d(x, w, null, same)));
    assert.equal(maxAbs(output.float().sub(autocastDirect.float())), 0);
  });
});

test('winogradConv3d refuses what it does not compute with errors, not aborts, and leaks nothing', { skip: !F.winogradTrainingEnabled }, () => {
  manualSeed(43);
  const live = memory().tensors;
  tidy(() => {
    const x = randn([1, 16, 2, 6, 6]);
    assert.throws(() => F.winogradConv3d(x, randn([24, 16, 3, 3, 3])), /multiples of 16, got \[24, 16, 3, 3, 3\]/);
    assert.throws(() => F.winogradConv3d(x, randn([16, 16, 1, 3, 3])), /Cout×Cin×3×3×3/);
    assert.throws(() => F.winogradConv3d(x, randn([16, 32, 3, 3, 3])), /input has 16 channels, the weight takes 32/);
    assert.throws(() => F.winogradConv3d(randn([16, 2, 6, 6]), randn([16, 16, 3, 3, 3])), /N×C×D×H×W/);
    assert.throws(() => F.winogradConv3d(x.double(), randn([16, 16, 3, 3, 3])), /input must be a dense float32 CPU tensor/);
    assert.throws(() => F.winogradConv3d(F.toMkldnn(x), randn([16, 16, 3, 3, 3])), /input must be a dense float32 CPU tensor/);
    assert.throws(() => F.winogradConv3d(x, randn([16, 16, 3, 3, 3]), randn([8])), /bias must have 16 values/);

    // Many training steps' worth of calls: nothing accumulates.
    const w = randn([16, 16, 3, 3, 3]).requiresGrad_();
    assertStepsLeakNothing((xx, ww) => F.winogradConv3d(xx, ww), x, w);
  });
  assert.equal(memory().tensors, live);
});

test('an STC-ResNet-18 trains to the same losses with stcnet\'s training convolutions (Winograd, stem) as with libtorch\'s', { skip: !F.winogradTrainingEnabled }, () => {
  // The demo's shape: width ×0.25 at 8×48², so layer1's 3×3×3 convolutions (16 channels at 4×12×12) run
  // by Winograd, the stem's weight gradient by stcnet's kernel (where F.stemTrainingEnabled) and the rest
  // direct. Same seed, weights, batches and SGD on both sides.
  const losses = (algorithm: 'auto' | 'aten'): number[] => {
    manualSeed(47);
    const model = createModel('stc_resnet3d_18', { widthMultiplier: 0.25, frames: 8, numClasses: 5 });
    const optimizer = new SGD(model.parameters(), { lr: 0.05, momentum: 0.9 });
    const previous = getConvAlgorithm();
    setConvAlgorithm(algorithm);
    try {
      return tidy(() => {
        const clips = randn([2, 4, 3, 8, 48, 48]);
        const labels = [[0, 3, 1, 4], [2, 2, 0, 1]];
        const result: number[] = [];
        for (let step = 0; step < 6; step++) {
          result.push(tidy(() => {
            optimizer.zeroGrad();
            const loss = F.crossEntropy(model.forward(clips.select(0, step % 2)), tensor(labels[step % 2]!, { dtype: 'int64' }));
            loss.backward();
            optimizer.step();
            return loss.item();
          }));
        }
        return result;
      });
    } finally {
      setConvAlgorithm(previous);
      model.dispose();
    }
  };
  const winograd = losses('auto');
  const directLosses = losses('aten');
  // Within 1e-4 relative, or 1e-4 nats once the loss is below 1: near zero a cross-entropy's rounding is
  // absolute (the logits', ≈ 1e-5 here), not relative to the loss. (Since the stem's weight gradient is
  // stcnet's too, step 5's loss of 0.05 differs by 1.3e-5.)
  for (let step = 0; step < winograd.length; step++) {
    assert.ok(Math.abs(winograd[step]! - directLosses[step]!) <= 1e-4 * Math.max(1, Math.abs(directLosses[step]!)), `step ${step}: ${winograd[step]} against ${directLosses[step]}`);
  }
  assert.ok(winograd[5]! < winograd[0]!, `the loss falls: ${winograd.join(', ')}`);
});
