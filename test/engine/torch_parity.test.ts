import { test } from 'node:test';
import assert from 'node:assert/strict';
import { F, Tensor, fromTypedArray, tidy, zeros, ones } from '../../src/engine/index.js';
import { assertClose, pythonJson, type Packed } from '../helpers.js';

interface Case {
  name: string;
  inputs: Record<string, Packed>;
  options: Record<string, unknown>;
  output: Packed;
  upstream?: Packed;
  grads?: Record<string, Packed>;
}

const fixture = pythonJson<{ cases: Case[] }>('scripts/fixtures/engine.py');

function load(packed: Packed, requiresGrad: boolean): Tensor {
  const dtype = packed.dtype === 'int64' ? 'int64' : 'float32';
  const data = dtype === 'int64' ? BigInt64Array.from(packed.data, (v) => BigInt(v)) : Float32Array.from(packed.data);
  const tensor = fromTypedArray(data, packed.shape, { dtype });
  if (requiresGrad) tensor.requiresGrad = true;
  return tensor;
}

type Runner = (x: Record<string, Tensor>, o: Record<string, unknown>) => Tensor;
const list = (value: unknown) => value as number[];

const runners: Record<string, Runner> = {
  conv3d: (x, o) => F.conv3d(x.x!, x.w!, x.b!, { stride: list(o.stride), padding: list(o.padding), dilation: list(o.dilation), groups: o.groups as number }),
  conv3d_grouped_strided: (x, o) => runners.conv3d!(x, o),
  conv2d: (x, o) => F.conv2d(x.x!, x.w!, x.b!, { stride: list(o.stride), padding: list(o.padding), dilation: list(o.dilation), groups: o.groups as number }),
  conv2d_depthwise: (x, o) => runners.conv2d!(x, o),
  batch_norm_train: (x) => F.batchNorm(x.x!, x.weight!, x.bias!, null, null, { training: true }),
  batch_norm_eval: (x) => F.batchNorm(x.x!, x.weight!, x.bias!, x.mean!, x.var!, { training: false }),
  max_pool3d: (x, o) => F.maxPool3d(x.x!, list(o.kernel_size), { stride: list(o.stride), padding: list(o.padding) }),
  max_pool2d: (x, o) => F.maxPool2d(x.x!, list(o.kernel_size), { stride: list(o.stride), padding: list(o.padding) }),
  avg_pool3d: (x, o) => F.avgPool3d(x.x!, list(o.kernel_size), { stride: list(o.stride), padding: list(o.padding) }),
  adaptive_avg_pool3d: (x, o) => F.adaptiveAvgPool3d(x.x!, list(o.output_size)),
  adaptive_avg_pool2d: (x, o) => F.adaptiveAvgPool2d(x.x!, list(o.output_size)),
  linear: (x) => F.linear(x.x!, x.w!, x.b!),
  matmul_batched: (x) => x.a!.matmul(x.b!),
  softmax: (x, o) => F.softmax(x.x!, o.dim as number),
  log_softmax: (x, o) => F.logSoftmax(x.x!, o.dim as number),
  cross_entropy: (x, o) => F.crossEntropy(x.x!, x.target!, { labelSmoothing: o.label_smoothing as number }),
  cross_entropy_smoothed: (x, o) => runners.cross_entropy!(x, o),
  nll_loss: (x) => F.nllLoss(x.x!.logSoftmax(1), x.target!),
  mse_loss: (x) => F.mseLoss(x.x!, x.y!),
  bce_with_logits: (x) => F.binaryCrossEntropyWithLogits(x.x!, x.y!),
  sigmoid: (x) => x.x!.sigmoid(),
  relu: (x) => F.relu(x.x!),
  dropout_eval: (x) => F.dropout(x.x!, 0.5, false),
  interpolate_trilinear: (x, o) => F.interpolate(x.x!, list(o.size)),
};

const constants = new Set(['mean', 'var']);

for (const fixtureCase of fixture.cases.filter((c) => c.name !== 'batch_norm_running_stats')) {
  test(`${fixtureCase.name} matches PyTorch (forward and gradient)`, () => {
    const runner = runners[fixtureCase.name];
    assert.ok(runner, `no runner for fixture case ${fixtureCase.name}`);
    tidy(() => {
      const inputs: Record<string, Tensor> = {};
      for (const [key, packed] of Object.entries(fixtureCase.inputs)) {
        inputs[key] = load(packed, packed.dtype !== 'int64' && fixtureCase.grads !== undefined && !constants.has(key));
      }
      const output = runner(inputs, fixtureCase.options);
      assert.deepEqual(output.shape, fixtureCase.output.shape);
      assertClose(output.toFloat32Array(), fixtureCase.output.data, { rtol: 1e-4, atol: 1e-5, what: `${fixtureCase.name} output` });
      if (!fixtureCase.grads) return;
      const upstream = load(fixtureCase.upstream!, false);
      output.mul(upstream).sum().backward();
      const gradNames = Object.keys(fixtureCase.grads);
      assert.ok(gradNames.length > 0);
      for (const name of gradNames) {
        const grad = inputs[name]!.grad;
        assert.ok(grad, `${fixtureCase.name}: no gradient for ${name}`);
        assertClose(grad.toFloat32Array(), fixtureCase.grads[name]!.data, { rtol: 1e-3, atol: 1e-4, what: `${fixtureCase.name} d/d${name}` });
      }
    });
  });
}

test('batch norm in training mode updates running statistics as PyTorch does', () => {
  const fixtureCase = fixture.cases.find((c) => c.name === 'batch_norm_running_stats')!;
  tidy(() => {
    const runningMean = zeros([4]);
    const runningVar = ones([4]);
    F.batchNorm(load(fixtureCase.inputs.x!, false), null, null, runningMean, runningVar, { training: true, momentum: 0.1 });
    assertClose([...runningMean.toFloat32Array(), ...runningVar.toFloat32Array()], fixtureCase.output.data, { rtol: 1e-5, atol: 1e-6 });
  });
});

test('the oneDNN and ATen convolution paths agree, forward and backward', async () => {
  const { setConvAlgorithm } = await import('../../src/engine/index.js');
  const fixtureCase = fixture.cases.find((c) => c.name === 'conv3d_grouped_strided')!;
  const results: Float32Array[] = [];
  for (const algorithm of ['aten', 'mkldnn'] as const) {
    setConvAlgorithm(algorithm);
    tidy(() => {
      const x = load(fixtureCase.inputs.x!, true);
      const out = runners.conv3d!({ x, w: load(fixtureCase.inputs.w!, false), b: load(fixtureCase.inputs.b!, false) }, fixtureCase.options);
      out.sum().backward();
      results.push(new Float32Array([...out.toFloat32Array(), ...x.grad!.toFloat32Array()]));
    });
  }
  setConvAlgorithm('auto');
  assertClose(results[1]!, results[0]!, { rtol: 1e-4, atol: 1e-5 });
});
