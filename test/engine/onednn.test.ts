import { test } from 'node:test';
import assert from 'node:assert/strict';
import { F, randn, noGrad, tidy, manualSeed, memory, type Tensor } from '../../src/engine/index.js';

// oneDNN called directly (native/src/onednn.cc): prepared convolutions with the fused residual sum, and
// the STC block's gate and merge on the blocked layout, as the inference mode uses them. Setup installs
// libdnnl-dev and libideep-dev, so the addon has them.

function maxAbs(t: Tensor): number {
  return tidy(() => t.abs().max().item());
}

const conv = { padding: 1, stride: 1 };

test('the addon is built with oneDNN post-ops here', () => {
  assert.equal(F.mkldnnEnabled, true);
  assert.equal(F.mkldnnFusionEnabled, true, 'expected STCNET_ONEDNN (libdnnl-dev and libideep-dev installed by scripts/setup.sh)');
});

test('MkldnnConvolution.forward equals the convolution for several input sizes and layouts, and forwardAddRelu ReLU(conv + identity)', () => {
  manualSeed(5);
  noGrad(() => tidy(() => {
    for (const [batch, channels, groups, stride] of [[1, 16, 1, 1], [3, 32, 4, 2], [2, 12, 1, 1]] as const) {
      const weight = randn([channels, channels / groups, 3, 3, 3]).mul(0.1);
      const bias = randn([channels]);
      const options = { ...conv, groups, stride };
      const convolution = new F.MkldnnConvolution(F.mkldnnPackConvWeight(weight, options, 3), bias, options, 3);
      // Two input sizes, each twice (a plan per input layout, reused), and a plain-layout input (reordered).
      for (const size of [10, 7, 10, 7]) {
        const x = randn([batch, channels, 4, size, size]);
        const expected = F.conv3d(x, weight, bias, options);
        const got = convolution.forward(F.toMkldnn(x));
        assert.ok(maxAbs(F.mkldnnToDense(got).sub(expected)) < 1e-4, `${batch}×${channels} size ${size}`);
        // The blocked output of one call as the next one's input.
        const again = convolution.forward(F.mkldnnConv(F.toMkldnn(x), F.mkldnnPackConvWeight(dirac(channels, 1), conv, 3), null, conv, 3));
        assert.ok(maxAbs(F.mkldnnToDense(again).sub(expected)) < 1e-4);

        const identity = randn(expected.shape);
        const sum = expected.add(identity).relu();
        // identity in oneDNN's plain layout (to_mkldnn): reordered into a new tensor first.
        const fromPlain = convolution.forwardAddRelu(F.toMkldnn(x), F.toMkldnn(identity));
        assert.ok(maxAbs(F.mkldnnToDense(fromPlain).sub(sum)) < 1e-4, `${batch}×${channels}: plain identity`);
        // identity in the convolution's output layout: written in place (the result shares its buffer). An
        // identity convolution with the same groups makes that layout (on an AVX-512 CPU an ungrouped one
        // did not: 3×32 in groups of 4).
        const grouped = { ...conv, groups };
        const blockedIdentity = F.mkldnnConv(F.toMkldnn(identity), F.mkldnnPackConvWeight(dirac(channels, groups), grouped, 3), null, grouped, 3);
        assert.ok(maxAbs(F.mkldnnToDense(blockedIdentity).sub(identity)) < 1e-5);
        const inPlace = convolution.forwardAddRelu(F.toMkldnn(x), blockedIdentity);
        assert.ok(maxAbs(F.mkldnnToDense(inPlace).sub(sum)) < 1e-4, `${batch}×${channels}: blocked identity`);
        assert.ok(maxAbs(F.mkldnnToDense(blockedIdentity).sub(sum)) < 1e-4, `${batch}×${channels}, groups ${groups}: the identity buffer holds the result`);
      }
      convolution.dispose();
      assert.throws(() => convolution.forward(F.toMkldnn(randn([batch, channels, 4, 10, 10]))), /after release/);
    }
    // No bias.
    const weight = randn([8, 8, 1, 1, 1]);
    const x = randn([1, 8, 2, 3, 3]);
    const plain = new F.MkldnnConvolution(F.mkldnnPackConvWeight(weight, {}, 3), null, {}, 3);
    assert.ok(maxAbs(F.mkldnnToDense(plain.forward(F.toMkldnn(x))).sub(F.conv3d(x, weight, null, {}))) < 1e-5);
    plain.dispose();
  }));
});

/** A weight whose convolution (padding 1) copies its input: 1 at the kernel's centre, channel to channel. */
function dirac(channels: number, groups: number): Tensor {
  return tidy(() => {
    const perGroup = channels / groups;
    const weight = randn([channels, perGroup, 3, 3, 3]).mul(0);
    for (let c = 0; c < channels; c++) weight.select(0, c).select(0, c % perGroup).select(0, 1).select(0, 1).select(0, 1).fill_(1);
    return weight;
  });
}

test('mkldnnStcMerge equals the STC block\'s gate and ReLU(identity + residual·gate), on blocked and plain layouts', () => {
  manualSeed(8);
  noGrad(() => tidy(() => {
    for (const [batch, channels, frames] of [[1, 32, 4], [3, 16, 2]] as const) {
      const residual = randn([batch, channels, frames, 6, 5]);
      const identity = randn([batch, channels, frames, 6, 5]);
      const hidden = 4;
      const w = [randn([hidden, channels]), randn([hidden]), randn([channels, hidden]), randn([channels]),
        randn([hidden, channels * frames]), null, randn([channels, hidden]), randn([channels])];
      const pooled = residual.mean([3, 4]);
      const st = F.linear(F.linear(pooled.mean(2), w[0]!, w[1]).relu(), w[2]!, w[3]).sigmoid();
      const ss = F.linear(F.linear(pooled.flatten(1), w[4]!, null).relu(), w[6]!, w[7]).sigmoid();
      const expected = identity.add(residual.mul(st.add(ss).mul(0.5).view([batch, channels, 1, 1, 1]))).relu();
      const copy = (t: Tensor): Tensor => F.mkldnnConv(F.toMkldnn(t), F.mkldnnPackConvWeight(dirac(channels, 1), conv, 3), null, conv, 3);
      // Blocked residual and identity (as convolutions return them): the result is residual, in place.
      const blocked = copy(residual);
      const merged = F.mkldnnStcMerge(blocked, copy(identity), w);
      assert.ok(maxAbs(F.mkldnnToDense(merged).sub(expected)) < 1e-5, `${batch}×${channels}×${frames} blocked`);
      assert.ok(maxAbs(F.mkldnnToDense(blocked).sub(expected)) < 1e-5, 'written into residual');
      // Plain-layout (to_mkldnn) residual and identity.
      assert.ok(maxAbs(F.mkldnnToDense(F.mkldnnStcMerge(F.toMkldnn(residual), F.toMkldnn(identity), w)).sub(expected)) < 1e-5);
      // A plain identity with a blocked residual (a type-A shortcut's): reordered into residual's layout.
      const identityPlain = F.toMkldnn(identity);
      assert.ok(maxAbs(F.mkldnnToDense(F.mkldnnStcMerge(copy(residual), identityPlain, w)).sub(expected)) < 1e-5);
      assert.equal(maxAbs(F.mkldnnToDense(identityPlain).sub(identity)), 0, 'the identity is left as it was');
    }
  }));
});

test('mkldnnStcMerge on bf16 activations: gate and merge in float32, the result rounded once to bf16', () => {
  manualSeed(9);
  noGrad(() => tidy(() => {
    const [batch, channels, frames, hidden] = [2, 32, 4, 4];
    // bf16 inputs, and the float32 reference computed from exactly those values.
    const residual = randn([batch, channels, frames, 6, 5]).to('bfloat16');
    const identity = randn([batch, channels, frames, 6, 5]).to('bfloat16');
    const w = [randn([hidden, channels]), randn([hidden]), randn([channels, hidden]), randn([channels]),
      randn([hidden, channels * frames]), null, randn([channels, hidden]), randn([channels])];
    const r = residual.float();
    const pooled = r.mean([3, 4]);
    const st = F.linear(F.linear(pooled.mean(2), w[0]!, w[1]).relu(), w[2]!, w[3]).sigmoid();
    const ss = F.linear(F.linear(pooled.flatten(1), w[4]!, null).relu(), w[6]!, w[7]).sigmoid();
    const expected = identity.float().add(r.mul(st.add(ss).mul(0.5).view([batch, channels, 1, 1, 1]))).relu();
    // Within bf16's unit roundoff of each value (2^-8 relative: 8 significant bits), plus the float32 sums' rounding.
    const check = (merged: Tensor, what: string) => {
      assert.equal(merged.dtype, 'bfloat16', what);
      const got = F.mkldnnToDense(merged).float();
      const excess = got.sub(expected).abs().sub(expected.abs().mul(2 ** -8)).max().item();
      assert.ok(excess < 1e-5, `${what}: off by ${excess} beyond bf16 rounding`);
    };
    // Plain-layout MKLDNN tensors (block 1), float32 gate weights and bf16 ones alike.
    check(F.mkldnnStcMerge(F.toMkldnn(residual), F.toMkldnn(identity), w), 'plain layout');
    const bf16Weights = w.map((t) => t?.to('bfloat16') ?? null);
    const roundedGate = (() => {
      const wr = bf16Weights.map((t) => t?.float() ?? null);
      const a = F.linear(F.linear(pooled.mean(2), wr[0]!, wr[1]).relu(), wr[2]!, wr[3]).sigmoid();
      const b = F.linear(F.linear(pooled.flatten(1), wr[4]!, null).relu(), wr[6]!, wr[7]).sigmoid();
      return identity.float().add(r.mul(a.add(b).mul(0.5).view([batch, channels, 1, 1, 1]))).relu();
    })();
    const merged = F.mkldnnToDense(F.mkldnnStcMerge(F.toMkldnn(residual), F.toMkldnn(identity), bf16Weights)).float();
    assert.ok(merged.sub(roundedGate).abs().sub(roundedGate.abs().mul(2 ** -8)).max().item() < 1e-5, 'bf16 gate weights');
    // Gate weights in any strides (a transposed view): the same merge.
    const transposedFc1 = [randn([channels, hidden]).transpose(0, 1), ...w.slice(1)];
    const contiguousFc1 = [transposedFc1[0]!.contiguous(), ...w.slice(1)];
    assert.equal(F.mkldnnToDense(F.mkldnnStcMerge(F.toMkldnn(residual), F.toMkldnn(identity), transposedFc1)).float()
      .sub(F.mkldnnToDense(F.mkldnnStcMerge(F.toMkldnn(residual), F.toMkldnn(identity), contiguousFc1)).float()).abs().max().item(), 0, 'strided gate weights');
    if (F.mkldnnBf16Enabled) {
      // Blocked bf16, as oneDNN's bf16 convolutions return it: a copy by a Dirac convolution (exact in bf16).
      const copy = (t: Tensor): Tensor => F.mkldnnConv(F.toMkldnn(t), F.mkldnnPackConvWeight(dirac(channels, 1).to('bfloat16'), conv, 3), null, conv, 3);
      const blockedResidual = copy(residual);
      assert.equal(F.mkldnnToDense(blockedResidual).float().sub(r).abs().max().item(), 0, 'the Dirac copy is exact');
      check(F.mkldnnStcMerge(blockedResidual, copy(identity), w), 'blocked layout');
      check(F.mkldnnStcMerge(copy(residual), F.toMkldnn(identity), w), 'plain identity reordered into the blocked layout');
    }
  }));
});

test('the fused operators refuse wrong inputs with errors, not aborts, and leak nothing', () => {
  const live = memory().tensors;
  noGrad(() => tidy(() => {
    const x = randn([1, 8, 2, 4, 4]);
    const weight = F.mkldnnPackConvWeight(randn([8, 8, 3, 3, 3]), conv, 3);
    assert.throws(() => new F.MkldnnConvolution(weight, randn([7]), conv, 3), /bias must be a dense float32 tensor of 8 values/);
    assert.throws(() => new F.MkldnnConvolution(randn([8, 8, 3, 3, 3]), null, conv, 3), /MKLDNN/);
    const convolution = new F.MkldnnConvolution(weight, null, conv, 3);
    assert.throws(() => convolution.forward(x), /MKLDNN/);
    assert.throws(() => convolution.forward(F.toMkldnn(randn([1, 4, 2, 4, 4]))), /4 channels, the weight takes 8/);
    const unpadded = new F.MkldnnConvolution(F.mkldnnPackConvWeight(randn([8, 8, 3, 3, 3]), {}, 3), null, {}, 3);
    assert.throws(() => unpadded.forward(F.toMkldnn(randn([1, 8, 2, 4, 4]))), /smaller than the kernel/);
    unpadded.dispose();
    assert.throws(() => convolution.forwardAddRelu(F.toMkldnn(x), F.toMkldnn(randn([1, 8, 2, 4, 5]))), /residual shape/);
    convolution.dispose();
    const gateWeights = [randn([2, 8]), randn([2]), randn([8, 2]), randn([8]), randn([2, 16]), randn([2]), randn([8, 2]), randn([8])];
    assert.throws(() => F.mkldnnStcMerge(x, x, gateWeights), /residual must be a 5-D MKLDNN tensor/);
    assert.throws(() => F.mkldnnStcMerge(F.toMkldnn(x), x, gateWeights.slice(1)), /expected 8 gate weights/);
    assert.throws(() => F.mkldnnStcMerge(F.toMkldnn(x), F.toMkldnn(x), [randn([2, 9]), ...gateWeights.slice(1)]),
      /the gate's temporal branch's weights do not fit: fc1 \[2, 9\] for 8 inputs/);
    assert.throws(() => F.mkldnnStcMerge(F.toMkldnn(x), F.toMkldnn(x), [...gateWeights.slice(0, 5), randn([3]), ...gateWeights.slice(6)]),
      /the gate's spatial branch's weights do not fit/);
    assert.throws(() => F.mkldnnStcMerge(F.toMkldnn(x), x, gateWeights), /identity must be an MKLDNN tensor of residual's shape \[1, 8, 2, 4, 4\], got a dense tensor/);
    assert.throws(() => F.mkldnnStcMerge(F.toMkldnn(x), F.toMkldnn(randn([1, 8, 2, 4, 3])), gateWeights), /identity must be an MKLDNN tensor of residual's shape/);
    assert.throws(() => F.mkldnnStcMerge(F.toMkldnn(x), F.toMkldnn(x), [...gateWeights.slice(0, 4), randn([2, 3]), ...gateWeights.slice(5)]), /mkldnnStcMerge/);
  }));
  assert.equal(memory().tensors, live);
});
