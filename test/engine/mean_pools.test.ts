import { test } from 'node:test';
import assert from 'node:assert/strict';
import { F, randn, tidy, manualSeed, memory, TorchError, type Tensor } from '../../src/engine/index.js';
import { StcBlock } from '../../src/models/stc.js';
import { withAutocast } from '../../src/train/autocast.js';
import { maxAbs, relativeError } from './conv_gradients.js';

// F.meanPools3d (native/src/mean_pools.cc): an STC block's two means, x.mean([2, 3, 4]) and x.mean([3, 4]),
// whose backward is one broadcast view instead of two block-sized gradients. The means must be
// libtorch's bit for bit (the models' logits equal PyTorch's); the gradient the composition's up to rounding.

/** Both means and x's gradient for a loss weighting them with `upstream` (one of them may be left out). */
function meansAndGradient(pools: (x: Tensor) => [Tensor, Tensor], input: Tensor, upstream: [Tensor | null, Tensor | null]): [Tensor, Tensor, Tensor] {
  const leaf = input.detach().requiresGrad_();
  const [overClip, overFrames] = pools(leaf);
  let loss: Tensor | null = null;
  if (upstream[0]) loss = overClip.float().mul(upstream[0]).sum();
  if (upstream[1]) {
    const part = overFrames.float().mul(upstream[1]).sum();
    loss = loss ? loss.add(part) : part;
  }
  loss!.backward();
  return [overClip.detach(), overFrames.detach(), leaf.grad!];
}

const composition = (x: Tensor): [Tensor, Tensor] => [x.mean([2, 3, 4]), x.mean([3, 4])];

test('meanPools3d: libtorch\'s two means bit for bit, and the composition\'s gradient, in float64, float32 and bf16', () => {
  manualSeed(211);
  tidy(() => {
    for (const shape of [[2, 8, 4, 7, 7], [1, 3, 1, 5, 3], [4, 16, 2, 14, 14]]) {
      const [n, c, frames] = shape as [number, number, number];
      const upstream: [Tensor, Tensor] = [randn([n, c]), randn([n, c, frames])];
      for (const [dtype, tolerance] of [['float64', 1e-14], ['float32', 1e-6], ['bfloat16', 1e-2]] as const) {
        const label = `${shape.join('×')} ${dtype}`;
        const input = randn(shape).to(dtype);
        const [clip, frame, gradient] = meansAndGradient((x) => F.meanPools3d(x), input, upstream);
        const [expectedClip, expectedFrame, expectedGradient] = meansAndGradient(composition, input, upstream);
        assert.equal(clip.dtype, dtype, label);
        assert.deepEqual([clip.shape, frame.shape], [[n, c], [n, c, frames]], label);
        assert.equal(maxAbs(clip.double().sub(expectedClip.double())), 0, `${label}: mean over T, H, W`);
        assert.equal(maxAbs(frame.double().sub(expectedFrame.double())), 0, `${label}: mean over H, W`);
        assert.equal(gradient.dtype, dtype, label);
        assert.ok(gradient.isContiguous(), `${label}: a leaf's gradient is dense, not the broadcast view`);
        const error = relativeError(gradient.double(), expectedGradient.double());
        assert.ok(error <= tolerance, `${label}: gradient off by ${error} of its largest value`);
      }
    }
  });
});

test('meanPools3d: the gradient of one mean alone, when the other is not used', () => {
  manualSeed(223);
  tidy(() => {
    const input = randn([2, 4, 3, 5, 5]);
    for (const upstream of [[randn([2, 4]), null], [null, randn([2, 4, 3])]] as [Tensor | null, Tensor | null][]) {
      const [, , gradient] = meansAndGradient((x) => F.meanPools3d(x), input, upstream);
      const [, , expected] = meansAndGradient(composition, input, upstream);
      assert.ok(relativeError(gradient, expected) <= 1e-6, `only the ${upstream[0] ? 'clip' : 'frame'} mean used`);
    }
  });
});

test('an STC block\'s gradients through meanPools3d equal those of its definition by libtorch\'s means, in float32 and under bf16 autocast', () => {
  manualSeed(227);
  tidy(() => {
    const block = new StcBlock(32, 4, 4);
    const input = randn([2, 32, 4, 6, 6]);
    const upstream = randn([2, 32, 4, 6, 6]);
    // X · (s_t + s_s)/2 written out with x.mean, as the paper and scripts/reference/stc_reference.py define it.
    const byDefinition = (x: Tensor): Tensor => {
      const st = block.tcb.forward(x.mean([2, 3, 4]));
      const ss = block.scb.forward(x.mean([3, 4]).flatten(1));
      return x.mul(st.add(ss).mul(0.5).view([2, 32, 1, 1, 1]));
    };
    const gradients = (forward: (x: Tensor) => Tensor, amp: 'none' | 'bf16'): [Tensor, Tensor[]] => {
      for (const parameter of block.parameters()) parameter.grad = null;
      const leaf = input.detach().requiresGrad_();
      const output = withAutocast(amp, 'cpu', () => forward(leaf));
      output.float().mul(upstream).sum().backward();
      return [output.detach(), [leaf.grad!, ...block.parameters().map((parameter) => parameter.grad!)]];
    };
    for (const [amp, tolerance] of [['none', 1e-5], ['bf16', 2e-2]] as const) {
      const [output, got] = gradients((x) => block.forward(x), amp);
      const [expectedOutput, expected] = gradients(byDefinition, amp);
      assert.equal(maxAbs(output.float().sub(expectedOutput.float())), 0, `${amp}: the block's output`);
      got.forEach((gradient, i) => {
        const error = relativeError(gradient.float(), expected[i]!.float());
        assert.ok(error <= tolerance, `${amp}: gradient ${i} off by ${error}`);
      });
    }
  });
});

test('meanPools3d: an input that is not N×C×T×H×W is an error naming it; steps leave no tensors behind', () => {
  manualSeed(229);
  tidy(() => {
    assert.throws(() => F.meanPools3d(randn([2, 3, 4, 4])),
      (error: Error) => error instanceof TorchError && /meanPools3d: x must be N×C×T×H×W, got \[2, 3, 4, 4\]/.test(error.message));
    const x = randn([2, 4, 2, 4, 4]).requiresGrad_();
    const step = (): void => tidy(() => {
      const [overClip, overFrames] = F.meanPools3d(x);
      overClip.sum().add(overFrames.square().sum()).backward();
      x.grad!.zero_();
    });
    step();
    const during = memory().tensors;
    for (let i = 0; i < 20; i++) step();
    assert.equal(memory().tensors, during);
  });
});
