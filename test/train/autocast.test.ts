import { test } from 'node:test';
import assert from 'node:assert/strict';
import { F, manualSeed, randn, tensor, tidy } from '../../src/engine/index.js';
import { withConvAlgorithm } from '../engine/conv_gradients.js';
import { createModel } from '../../src/models/index.js';
import { OnDevice } from '../../src/train/on_device.js';
import { checkAutocast, withAutocast } from '../../src/train/autocast.js';

test('bf16 autocast on the CPU: layers compute in bf16, logits and loss come back float32 and close to float32\'s, weights stay float32', () => {
  manualSeed(3);
  const model = createModel('stc_resnet3d_18', { numClasses: 4, frames: 4, widthMultiplier: 0.125 });
  const x = randn([2, 3, 4, 32, 32]);
  const labels = tensor([0, 3], { dtype: 'int64' });
  try {
    const inner = tidy(() => withAutocast('bf16', 'cpu', () => model.forward(x)).dtype);
    assert.equal(inner, 'bfloat16', 'inside autocast the convolutions ran in bf16');
    assert.equal(tidy(() => model.forward(x).dtype), 'float32', 'autocast is off again afterwards');
    const losses: Record<string, number> = {};
    const grads: Record<string, Float32Array> = {};
    for (const amp of ['none', 'bf16'] as const) {
      const runner = new OnDevice(model, 'cpu', amp);
      for (const parameter of model.parameters()) parameter.grad = null;
      losses[amp] = tidy(() => {
        const logits = runner.forward(x);
        assert.equal(logits.dtype, 'float32');
        const loss = F.crossEntropy(logits, labels);
        loss.backward();
        return loss.item() as number;
      });
      grads[amp] = model.fc.weight.grad!.toFloat32Array();
    }
    // bf16 keeps 8 bits of mantissa: through 18 layers at batch 2 the loss moves by a few percent and the
    // gradient turns a little (PyTorch's own autocast, same model and sizes, seed 3: loss 1.341 → 1.387, cosine 0.78).
    assert.ok(Math.abs(losses.bf16! - losses.none!) < 0.1 * Math.abs(losses.none!), `bf16 loss ${losses.bf16} vs float32 ${losses.none}`);
    let dot = 0; let a = 0; let b = 0;
    grads.none!.forEach((g, i) => { dot += g * grads.bf16![i]!; a += g * g; b += grads.bf16![i]! ** 2; });
    assert.ok(dot / Math.sqrt(a * b) > 0.7, `cosine of the fc gradients ${dot / Math.sqrt(a * b)}`);
    for (const parameter of model.parameters()) {
      assert.equal(parameter.dtype, 'float32');
      if (parameter.grad) assert.equal(parameter.grad.dtype, 'float32');
    }
  } finally {
    model.dispose();
    x.dispose();
    labels.dispose();
  }
  assert.throws(() => checkAutocast('fp16', 'cpu'), /fp16 autocast needs device cuda/);
});

test('under bf16 autocast, 3D convolutions below batch 8 run in bf16 with every conv algorithm (not oneDNN\'s float32 route)', () => {
  manualSeed(4);
  tidy(() => {
    const x = randn([2, 8, 4, 6, 6]);
    const w = randn([8, 8, 3, 3, 3]).mul(0.1).requiresGrad_();
    const reference = withAutocast('bf16', 'cpu', () => withConvAlgorithm('aten', () => F.conv3d(x, w, null, { padding: 1 })));
    assert.equal(reference.dtype, 'bfloat16');
    for (const algorithm of ['auto', 'direct', 'mkldnn'] as const) {
      const y = withAutocast('bf16', 'cpu', () => withConvAlgorithm(algorithm, () => F.conv3d(x, w, null, { padding: 1 })));
      assert.equal(y.dtype, 'bfloat16', algorithm);
      assert.equal(tidy(() => y.float().sub(reference.float()).abs().max().item()), 0, algorithm);
    }
  });
});
