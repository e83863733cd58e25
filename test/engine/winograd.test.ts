import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { F, randn, noGrad, tidy, manualSeed, memory, cpuFlags, type Tensor } from '../../src/engine/index.js';

// Winograd F(2³, 3³) convolutions and grouped convolutions of 4-channel groups on oneDNN's blocked layout
// (native/src/winograd.cc, grouped.cc), as the inference mode uses them: each result against libtorch's
// direct convolution of the same dense tensors.

function maxAbs(t: Tensor): number {
  return tidy(() => t.abs().max().item());
}

const same = { padding: 1, stride: 1 };

/** x in the layout oneDNN's convolutions give on this CPU (channel-blocked): through an identity convolution. */
function blocked(x: Tensor): Tensor {
  return tidy(() => {
    const channels = x.shape[1]!;
    const identity = randn([channels, channels, 1, 1, 1]).mul(0);
    for (let c = 0; c < channels; c++) identity.select(0, c).select(0, c).fill_(1);
    return F.mkldnnConv(F.toMkldnn(x), F.mkldnnPackConvWeight(identity, {}, 3), null, {}, 3);
  });
}

/** The largest difference from `expected` as a fraction of expected's largest value. */
function relativeError(got: Tensor, expected: Tensor): number {
  return maxAbs(F.mkldnnToDense(got).sub(expected)) / maxAbs(expected);
}

test('the addon has Winograd convolutions exactly where the CPU has AVX2 and FMA', () => {
  const flags = cpuFlags() ?? new Set<string>();
  assert.equal(F.winogradEnabled, flags.has('avx2') && flags.has('fma'));
});

test('the transformed-domain products run on AVX-512 where the CPU has it; the AVX2 ones (STCNET_AVX512=0) pass the Winograd tests there too', () => {
  const flags = cpuFlags() ?? new Set<string>();
  if (!F.winogradEnabled) {
    assert.equal(F.winogradProductIsa, null);
    return;
  }
  const asked = process.env.STCNET_AVX512 !== '0';
  assert.equal(F.winogradProductIsa, asked && flags.has('avx512f') ? 'avx512' : 'avx2');
  // On an AVX2-only CPU (or in the child below) the products these tests check are the AVX2 ones already.
  if (F.winogradProductIsa !== 'avx512') return;
  const files = ['winograd.test.js', 'winograd_training.test.js'].map((file) => fileURLToPath(new URL(file, import.meta.url)));
  // Without NODE_TEST_CONTEXT the child's runner reports in TAP, as a top-level run does.
  const { NODE_TEST_CONTEXT: _parent, ...env } = process.env;
  const child = spawnSync(process.execPath, ['--test', '--test-reporter=tap', ...files], { env: { ...env, STCNET_AVX512: '0' }, encoding: 'utf8', timeout: 600_000 });
  assert.equal(child.status, 0, `the Winograd tests with STCNET_AVX512=0:\n${child.stdout.slice(-4000)}\n${child.stderr.slice(-2000)}`);
  assert.match(child.stdout, /# fail 0/);
  assert.match(child.stdout, /# pass [1-9]/);
});

test('WinogradConvolution equals the direct convolution: odd and even sizes, batches, channel counts, with and without bias and ReLU', () => {
  manualSeed(17);
  noGrad(() => tidy(() => {
    // [batch, in, out, depth, height, width]; in + out ≥ 512 takes the phased path (up to 64 MiB of scratch),
    // the others the chunked one.
    const shapes = [[1, 16, 16, 4, 10, 10], [2, 32, 16, 5, 7, 9], [3, 8, 32, 1, 3, 3], [1, 16, 48, 2, 2, 2], [2, 64, 64, 3, 6, 5],
      [1, 256, 256, 2, 3, 3], [2, 128, 512, 3, 2, 3],
      // 576 tiles at 256 + 256 channels: the phased path's scratch would pass 64 MiB, so chunks run instead.
      [2, 256, 256, 8, 16, 18]];
    for (const [batch, inChannels, outChannels, depth, height, width] of shapes as [number, number, number, number, number, number][]) {
      const weight = randn([outChannels, inChannels, 3, 3, 3]).mul(0.1);
      const bias = randn([outChannels]);
      const x = randn([batch, inChannels, depth, height, width]);
      const expected = F.conv3d(x, weight, bias, same);
      const withBias = new F.WinogradConvolution(weight, bias);
      const label = `${batch}×${inChannels}→${outChannels} at ${depth}×${height}×${width}`;
      assert.ok(relativeError(withBias.forward(blocked(x)), expected) < 1e-5, label);
      assert.ok(relativeError(withBias.forward(blocked(x), { relu: true }), expected.relu()) < 1e-5, `${label}, ReLU`);
      // Called again: the scratch buffers kept from the first call give the same result.
      assert.ok(relativeError(withBias.forward(blocked(x)), expected) < 1e-5, `${label}, again`);
      withBias.dispose();
      const noBias = new F.WinogradConvolution(weight, null);
      assert.ok(relativeError(noBias.forward(blocked(x)), F.conv3d(x, weight, null, same)) < 1e-5, `${label}, no bias`);
      noBias.dispose();
    }
  }));
});

test('WinogradConvolution takes plain-layout inputs, and adds a residual in place or into a reordered copy', () => {
  manualSeed(19);
  noGrad(() => tidy(() => {
    const weight = randn([32, 16, 3, 3, 3]).mul(0.1);
    const bias = randn([32]);
    const convolution = new F.WinogradConvolution(weight, bias);
    const x = randn([2, 16, 3, 5, 6]);
    const expected = F.conv3d(x, weight, bias, same);
    // to_mkldnn's plain layout: reordered into the blocked one first.
    assert.ok(relativeError(convolution.forward(F.toMkldnn(x)), expected) < 1e-5);

    const residual = randn(expected.shape);
    const sum = expected.add(residual).relu();
    const blockedResidual = blocked(residual);
    const inPlace = convolution.forward(blocked(x), { residual: blockedResidual, relu: true });
    assert.ok(relativeError(inPlace, sum) < 1e-5);
    assert.ok(relativeError(blockedResidual, sum) < 1e-5, 'the residual buffer holds the result');
    // A residual in another layout is reordered into a new tensor and left as it was.
    const plainResidual = F.toMkldnn(residual);
    const copied = convolution.forward(blocked(x), { residual: plainResidual, relu: false });
    assert.ok(relativeError(copied, expected.add(residual)) < 1e-5);
    assert.equal(maxAbs(F.mkldnnToDense(plainResidual).sub(residual)), 0);
    convolution.dispose();
  }));
});

test('WinogradConvolution refuses wrong weights and inputs with errors, not aborts, and leaks nothing', () => {
  manualSeed(23);
  const live = memory().tensors;
  noGrad(() => tidy(() => {
    assert.throws(() => new F.WinogradConvolution(randn([16, 8, 1, 3, 3]), null), /weight must be a dense float32 tensor Cout×Cin×3×3×3/);
    assert.throws(() => new F.WinogradConvolution(randn([12, 8, 3, 3, 3]), null), /multiples of 16 .* multiples of 8, got 12 and 8/);
    assert.throws(() => new F.WinogradConvolution(randn([16, 8, 3, 3, 3]), randn([15])), /bias must be a dense float32 tensor of 16 values/);
    assert.throws(() => new F.WinogradConvolution(F.toMkldnn(randn([16, 8, 3, 3, 3])), null), /dense float32/);
    const convolution = new F.WinogradConvolution(randn([16, 8, 3, 3, 3]), null);
    assert.throws(() => convolution.forward(randn([1, 8, 2, 4, 4])), /input must be a 5-D float32 MKLDNN tensor/);
    assert.throws(() => convolution.forward(F.toMkldnn(randn([1, 4, 2, 4, 4]))), /4 channels, the weight takes 8/);
    assert.throws(() => convolution.forward(F.toMkldnn(randn([1, 8, 2, 4, 4])), { residual: F.toMkldnn(randn([1, 16, 2, 4, 5])) }),
      /residual must be an MKLDNN tensor of the output's shape \[1, 16, 2, 4, 4\]/);
    assert.throws(() => convolution.forward(F.toMkldnn(randn([1, 8, 2, 4, 4])), { residual: randn([1, 16, 2, 4, 4]) }), /residual must be an MKLDNN tensor/);
    // Many calls: nothing accumulates.
    const x = blocked(randn([1, 8, 4, 6, 6]));
    tidy(() => { convolution.forward(x); });
    const during = memory().tensors;
    for (let i = 0; i < 50; i++) tidy(() => { convolution.forward(x); });
    assert.equal(memory().tensors, during);
    convolution.dispose();
    assert.throws(() => convolution.forward(x), /after release/);
  }));
  assert.equal(memory().tensors, live);
});

test('GroupedConvolution (groups of 4 channels) equals the grouped convolution, and refuses what it does not compute', () => {
  manualSeed(37);
  const live = memory().tensors;
  noGrad(() => tidy(() => {
    for (const [batch, channels, depth, height, width] of [[1, 32, 4, 9, 9], [2, 16, 3, 5, 7], [1, 8, 1, 1, 2]]) {
      const options = { ...same, groups: channels! / 4 };
      const weight = randn([channels!, 4, 3, 3, 3]).mul(0.1);
      const bias = randn([channels!]);
      const x = randn([batch!, channels!, depth!, height!, width!]);
      const expected = F.conv3d(x, weight, bias, options);
      const grouped = new F.GroupedConvolution(weight, bias);
      assert.ok(relativeError(grouped.forward(blocked(x)), expected) < 1e-5, `${x.shape}`);
      assert.ok(relativeError(grouped.forward(F.toMkldnn(x), { relu: true }), expected.relu()) < 1e-5, `${x.shape}, plain layout, ReLU`);
      grouped.dispose();
      assert.throws(() => grouped.forward(blocked(x)), /after release/);
    }
    assert.throws(() => new F.GroupedConvolution(randn([16, 8, 3, 3, 3]), null), /C×4×3×3×3 \(groups of 4 channels\)/);
    assert.throws(() => new F.GroupedConvolution(randn([12, 4, 3, 3, 3]), null), /multiples of 8, got 12/);
    const grouped = new F.GroupedConvolution(randn([16, 4, 3, 3, 3]), null);
    assert.throws(() => grouped.forward(F.toMkldnn(randn([1, 8, 2, 3, 3]))), /8 channels, the weight takes 16/);
    assert.throws(() => grouped.forward(randn([1, 16, 2, 3, 3])), /MKLDNN/);
    grouped.dispose();
  }));
  assert.equal(memory().tensors, live);
});
