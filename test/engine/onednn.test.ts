import { test } from 'node:test';
import assert from 'node:assert/strict';
import { F, randn, noGrad, tidy, manualSeed, memory, type Tensor } from '../../src/engine/index.js';

// oneDNN's fused residual sum (native/src/onednn.cc) and the dense views of blocked tensors that the
// inference mode's STC merge uses. Setup installs libdnnl-dev and libideep-dev, so the addon has them.

function maxAbs(t: Tensor): number {
  return tidy(() => t.abs().max().item());
}

const conv = { padding: 1, stride: 1 };

test('the addon is built with oneDNN post-ops here', () => {
  assert.equal(F.mkldnnEnabled, true);
  assert.equal(F.mkldnnFusionEnabled, true, 'expected STCNET_ONEDNN (libdnnl-dev and libideep-dev installed by scripts/setup.sh)');
});

test('mkldnnConvAddRelu equals ReLU(conv + identity), in identity\'s buffer when its layout is the convolution\'s', () => {
  manualSeed(5);
  noGrad(() => tidy(() => {
    for (const [batch, channels, groups] of [[1, 16, 1], [3, 32, 4], [2, 12, 1]] as const) {
      const x = randn([batch, channels, 4, 10, 10]);
      const weight = randn([channels, channels / groups, 3, 3, 3]).mul(0.1);
      const bias = randn([channels]);
      const identity = randn([batch, channels, 4, 10, 10]);
      const options = { ...conv, groups };
      const expected = F.conv3d(x, weight, bias, options).add(identity).relu();
      const packed = F.mkldnnPackConvWeight(weight, options, 3);
      const xBlocked = F.toMkldnn(x);

      // identity in oneDNN's plain layout (to_mkldnn): reordered into a new tensor first.
      const plain = F.toMkldnn(identity);
      const fromPlain = F.mkldnnConvAddRelu(xBlocked, packed, bias, options, 3, plain);
      assert.ok(maxAbs(F.mkldnnToDense(fromPlain).sub(expected)) < 1e-4, `${batch}×${channels}: plain identity`);

      // identity in the convolution's output layout: written in place (the result shares its buffer).
      const zero = F.mkldnnPackConvWeight(weight.mul(0), options, 3);
      const blockedIdentity = F.mkldnnConv(F.toMkldnn(identity), F.mkldnnPackConvWeight(dirac(channels, groups), options, 3), null, options, 3);
      assert.ok(maxAbs(F.mkldnnToDense(blockedIdentity).sub(identity)) < 1e-5);
      const inPlace = F.mkldnnConvAddRelu(xBlocked, packed, bias, options, 3, blockedIdentity);
      assert.ok(maxAbs(F.mkldnnToDense(inPlace).sub(expected)) < 1e-4, `${batch}×${channels}: blocked identity`);
      assert.ok(maxAbs(F.mkldnnToDense(blockedIdentity).sub(expected)) < 1e-4, 'the identity buffer holds the result');
      // No bias: ReLU(conv + identity) with a zero weight is ReLU(identity).
      const noBias = F.mkldnnConvAddRelu(xBlocked, zero, null, options, 3, F.toMkldnn(identity));
      assert.equal(maxAbs(F.mkldnnToDense(noBias).sub(identity.relu())), 0);
    }
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

test('mkldnnDenseView sees a blocked tensor\'s memory as N×C/b×...×b without a copy; writes reach the tensor', () => {
  manualSeed(6);
  noGrad(() => tidy(() => {
    const dense = randn([2, 32, 3, 5, 5]);
    const blocked = F.mkldnnConv(F.toMkldnn(dense), F.mkldnnPackConvWeight(dirac(32, 1), conv, 3), null, conv, 3);
    const view = F.mkldnnDenseView(blocked);
    assert.equal(view.rank, 6, 'a channel-blocked layout');
    const block = view.shape[5]!;
    assert.ok(block === 8 || block === 16, `block ${block}`);
    assert.deepEqual(view.shape, [2, 32 / block, 3, 5, 5, block]);
    const asPlain = view.permute([0, 1, 5, 2, 3, 4]).reshape([2, 32, 3, 5, 5]);
    assert.ok(maxAbs(asPlain.sub(dense)) < 1e-5);
    view.mul_(2);
    assert.ok(maxAbs(F.mkldnnToDense(blocked).sub(dense.mul(2))) < 1e-5);

    // A plain-layout MKLDNN tensor: the view is N×C×...
    const plainView = F.mkldnnDenseView(F.toMkldnn(dense));
    assert.deepEqual(plainView.shape, [2, 32, 3, 5, 5]);
    assert.equal(maxAbs(plainView.sub(dense)), 0);
  }));
});

test('the fused operators refuse wrong inputs with errors, not aborts, and leak nothing', () => {
  const live = memory().tensors;
  noGrad(() => tidy(() => {
    const x = randn([1, 8, 2, 4, 4]);
    const weight = F.mkldnnPackConvWeight(randn([8, 8, 3, 3, 3]), conv, 3);
    assert.throws(() => F.mkldnnConvAddRelu(x, weight, null, conv, 3, F.toMkldnn(x)), /MKLDNN/);
    assert.throws(() => F.mkldnnConvAddRelu(F.toMkldnn(x), weight, null, conv, 3, F.toMkldnn(randn([1, 8, 2, 4, 5]))), /residual shape/);
    assert.throws(() => F.mkldnnDenseView(x), /MKLDNN/);
  }));
  assert.equal(memory().tensors, live);
});
