import { test } from 'node:test';
import assert from 'node:assert/strict';
import { F, randn, tensor, tidy, noGrad, manualSeed, memory, setConvAlgorithm, getConvAlgorithm, type Tensor } from '../../src/engine/index.js';
import { Bottleneck } from '../../src/models/index.js';
import { Linear, Sequential } from '../../src/nn/index.js';
import { SGD } from '../../src/optim/index.js';
import { withAutocast } from '../../src/train/autocast.js';
import { maxAbs, relativeError, gradients, withConvAlgorithm, assertSameGradients, assertStepsLeakNothing } from './conv_gradients.js';

// The grouped convolution of training (native/src/grouped_autograd.cc, 4 channels per group): its output
// and all three gradients against libtorch's convolution of the same tensors, where conv3d routes to it,
// and its error paths.

/** fn with libtorch's convolutions (oneDNN's, below batch 8). */
const libtorch = <T>(fn: () => T): T => withConvAlgorithm('direct', fn);

/** libtorch's grouped convolution of 4-channel groups. */
const grouped = (x: Tensor, w: Tensor, b: Tensor | null): Tensor => F.conv3d(x, w, b, { padding: 1, groups: w.size(0) / 4 });

test('groupedConv3d: output and input, weight and bias gradients equal libtorch\'s grouped convolution', { skip: !F.groupedTrainingEnabled }, () => {
  manualSeed(53);
  tidy(() => {
    // [batch, channels, depth, height, width]: one and several registers of 8 channels, widths 1 and 2
    // (the row's edge cases), odd sizes, and a 128-channel stage like ResNeXt-101's first.
    const shapes = [[2, 8, 3, 5, 7], [1, 16, 1, 1, 1], [3, 32, 4, 9, 2], [1, 8, 2, 3, 1], [2, 128, 4, 20, 20]];
    for (const [batch, channels, depth, height, width] of shapes as [number, number, number, number, number][]) {
      const label = `${batch}×${channels} at ${depth}×${height}×${width}`;
      const x = randn([batch, channels, depth, height, width]);
      const w = randn([channels, 4, 3, 3, 3]).mul(0.1);
      const b = randn([channels]);
      const g = randn([batch, channels, depth, height, width]);
      for (const bias of [b, null]) {
        const all = { input: true, weight: true };
        const expected = libtorch(() => gradients(grouped, x, w, bias, g, all));
        const got = gradients(F.groupedConv3d, x, w, bias, g, all);
        const what = `${label}${bias ? '' : ', no bias'}`;
        assertSameGradients(got, expected, what);
      }
    }
  });
});

test('groupedConv3d computes only the gradients asked for, and takes empty batches, retained graphs and non-contiguous inputs', { skip: !F.groupedTrainingEnabled }, () => {
  manualSeed(59);
  tidy(() => {
    const x = randn([2, 16, 4, 6, 6]);
    const w = randn([16, 4, 3, 3, 3]).mul(0.1);
    const g = randn([2, 16, 4, 6, 6]);
    const reference = libtorch(() => gradients(grouped, x, w, null, g, { input: true, weight: true }));
    const frozenWeight = gradients(F.groupedConv3d, x, w, null, g, { input: true, weight: false });
    assert.equal(frozenWeight.weight, null);
    assert.ok(relativeError(frozenWeight.input!, reference.input!) < 1e-5);
    const constantInput = gradients(F.groupedConv3d, x, w, null, g, { input: false, weight: true });
    assert.equal(constantInput.input, null);
    assert.ok(relativeError(constantInput.weight!, reference.weight!) < 1e-5);

    const weight = w.clone().requiresGrad_();
    const none = F.groupedConv3d(randn([0, 16, 4, 6, 6]), weight);
    assert.deepEqual(none.shape, [0, 16, 4, 6, 6]);
    none.sum().backward();
    assert.equal(maxAbs(weight.grad!), 0);
    weight.grad!.zero_();
    const kept = F.groupedConv3d(x, weight).mul(g).sum();
    kept.backward(undefined, { retainGraph: true });
    const first = weight.grad!.clone();
    kept.backward();
    assert.equal(maxAbs(weight.grad!.sub(first.mul(2))), 0);
    assert.ok(relativeError(first, reference.weight!) < 1e-5);

    const strided = x.transpose(0, 2).contiguous().transpose(0, 2);
    assert.ok(!strided.isContiguous());
    assert.ok(relativeError(noGrad(() => F.groupedConv3d(strided, w)), reference.output) < 1e-5);
  });
});

test('conv3d runs 4-channel groups by stcnet\'s kernels while gradients are recorded, and libtorch\'s otherwise', { skip: !F.groupedTrainingEnabled }, () => {
  manualSeed(61);
  tidy(() => {
    const x = randn([2, 16, 4, 6, 6]);
    const w = randn([16, 4, 3, 3, 3]).mul(0.1).requiresGrad_();
    const own = F.groupedConv3d(x, w).detach();
    const byLibtorch = libtorch(() => grouped(x, w, null)).detach();
    const differs = maxAbs(own.sub(byLibtorch));
    assert.ok(differs > 0 && differs < 1e-5 * maxAbs(byLibtorch), `the two differ by rounding only: ${differs}`);

    const options = { padding: 1, groups: 4 };
    assert.equal(maxAbs(F.conv3d(x, w, null, options).sub(own)), 0, 'recording gradients: stcnet\'s kernels');
    const direct = noGrad(() => F.conv3d(x, w, null, options));
    assert.ok(maxAbs(direct.sub(own)) > 0, 'under noGrad: libtorch\'s');
    assert.equal(maxAbs(F.conv3d(x, w.detach(), null, options).sub(direct)), 0, 'nothing requires a gradient: libtorch\'s');
    setConvAlgorithm('direct');
    try {
      assert.equal(maxAbs(F.conv3d(x, w, null, options).sub(direct)), 0, 'setConvAlgorithm(\'direct\'): libtorch\'s');
    } finally {
      setConvAlgorithm('auto');
    }

    // Shapes the kernels do not compute: libtorch's convolution, unchanged.
    const cases: [string, Tensor, Tensor, F.ConvOptions][] = [
      ['stride 2', x, w, { padding: 1, stride: 2, groups: 4 }],
      ['8 channels per group', randn([2, 16, 4, 6, 6]), randn([16, 8, 3, 3, 3]).requiresGrad_(), { padding: 1, groups: 2 }],
      ['more outputs than inputs', x, randn([32, 4, 3, 3, 3]).requiresGrad_(), { padding: 1, groups: 4 }],
      ['12 channels (not whole registers of 8)', randn([2, 12, 4, 6, 6]), randn([12, 4, 3, 3, 3]).requiresGrad_(), { padding: 1, groups: 3 }],
      ['padding 0', x, w, { groups: 4 }],
      ['a 1×3×3 kernel', x, randn([16, 4, 1, 3, 3]).requiresGrad_(), { padding: [0, 1, 1], groups: 4 }],
    ];
    for (const [what, input, weight, caseOptions] of cases) {
      const expected = noGrad(() => F.conv3d(input, weight, null, caseOptions));
      assert.equal(maxAbs(F.conv3d(input, weight, null, caseOptions).sub(expected)), 0, what);
    }
  });
});

test('under bf16 autocast, groupedConv3d is the autocast convolution', { skip: !F.groupedTrainingEnabled }, () => {
  manualSeed(67);
  tidy(() => {
    const x = randn([1, 8, 2, 6, 6]);
    const w = randn([8, 4, 3, 3, 3]).mul(0.1).requiresGrad_();
    const output = withAutocast('bf16', 'cpu', () => F.groupedConv3d(x, w));
    assert.equal(output.dtype, 'bfloat16');
    const autocastLibtorch = withConvAlgorithm('aten', () => withAutocast('bf16', 'cpu', () => grouped(x, w, null)));
    assert.equal(maxAbs(output.float().sub(autocastLibtorch.float())), 0);
  });
});

test('groupedConv3d refuses what it does not compute with errors, not aborts, and leaks nothing', { skip: !F.groupedTrainingEnabled }, () => {
  manualSeed(71);
  const live = memory().tensors;
  tidy(() => {
    const x = randn([1, 8, 2, 6, 6]);
    assert.throws(() => F.groupedConv3d(x, randn([8, 8, 3, 3, 3])), /C×4×3×3×3 \(groups of 4 channels\) with C a multiple of 8, got \[8, 8, 3, 3, 3\]/);
    assert.throws(() => F.groupedConv3d(randn([1, 12, 2, 6, 6]), randn([12, 4, 3, 3, 3])), /C a multiple of 8, got \[12, 4, 3, 3, 3\]/);
    assert.throws(() => F.groupedConv3d(x, randn([8, 4, 1, 3, 3])), /C×4×3×3×3/);
    assert.throws(() => F.groupedConv3d(x, randn([16, 4, 3, 3, 3])), /input has 8 channels, the weight takes 16/);
    assert.throws(() => F.groupedConv3d(randn([8, 2, 6, 6]), randn([8, 4, 3, 3, 3])), /N×C×D×H×W/);
    assert.throws(() => F.groupedConv3d(x.double(), randn([8, 4, 3, 3, 3])), /input must be a dense float32 CPU tensor/);
    assert.throws(() => F.groupedConv3d(F.toMkldnn(x), randn([8, 4, 3, 3, 3])), /input must be a dense float32 CPU tensor/);
    assert.throws(() => F.groupedConv3d(x, randn([8, 4, 3, 3, 3]), randn([4])), /bias must have 8 values/);

    const w = randn([8, 4, 3, 3, 3]).requiresGrad_();
    assertStepsLeakNothing((xx, ww) => F.groupedConv3d(xx, ww), x, w);
  });
  assert.equal(memory().tensors, live);
});

test('STC-ResNeXt bottlenecks train to the same losses with stcnet\'s grouped kernels as with libtorch\'s', { skip: !F.groupedTrainingEnabled }, () => {
  // Two of ResNeXt-101's first-stage blocks (conv2: 32 channels in groups of 4, with STC) and a
  // classifier, on inputs large enough that BatchNorm is well conditioned: a whole ResNeXt at test sizes
  // ends in BatchNorms over a handful of values each, where a 1e-7 change of the input already moves the
  // gradients by percents, whichever kernels run. Same seed, weights, batches and SGD on both sides.
  const losses = (algorithm: 'auto' | 'direct'): number[] => {
    manualSeed(73);
    const common = { dims: 3, planes: 16, stride: 1, shortcut: 'B', expansion: 2, midPlanes: 32, groups: 8, stc: { temporalSize: 4 } } as const;
    const blocks = new Sequential(new Bottleneck({ ...common, inPlanes: 16 }), new Bottleneck({ ...common, inPlanes: 32 }));
    const classifier = new Linear(32, 5);
    const parameters = [...blocks.parameters(), ...classifier.parameters()];
    const optimizer = new SGD(parameters, { lr: 0.05, momentum: 0.9 });
    const previous = getConvAlgorithm();
    setConvAlgorithm(algorithm);
    try {
      return tidy(() => {
        const clips = randn([2, 4, 16, 4, 12, 12]);
        const labels = [[0, 3, 1, 4], [2, 2, 0, 1]];
        const result: number[] = [];
        for (let step = 0; step < 6; step++) {
          result.push(tidy(() => {
            optimizer.zeroGrad();
            const features = blocks.forward(clips.select(0, step % 2)).mean([2, 3, 4]);
            const loss = F.crossEntropy(classifier.forward(features), tensor(labels[step % 2]!, { dtype: 'int64' }));
            loss.backward();
            optimizer.step();
            return loss.item();
          }));
        }
        return result;
      });
    } finally {
      setConvAlgorithm(previous);
      blocks.dispose();
      classifier.dispose();
    }
  };
  const own = losses('auto');
  const reference = losses('direct');
  for (let step = 0; step < own.length; step++) {
    assert.ok(Math.abs(own[step]! - reference[step]!) <= 1e-5 * Math.abs(reference[step]!), `step ${step}: ${own[step]} against ${reference[step]}`);
  }
  assert.ok(own[5]! < own[0]!, `the loss falls: ${own.join(', ')}`);
});
