import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randn, noGrad, tidy, dispose, manualSeed } from '../../src/engine/index.js';
import { Conv3d, BatchNorm3d } from '../../src/nn/index.js';
import { createModel, listModels, modelInfo, ModelInputError, temporalSizes, ResNet3d, type ModelName } from '../../src/models/index.js';
import { counts } from './fixtures.js';

test('every registered model has PyTorch\'s parameter count (reference contract + torchvision)', () => {
  const expected = counts(true);
  const names = listModels().map((m) => m.name);
  assert.deepEqual([...names].sort(), Object.keys(expected).sort());
  for (const name of names) assert.equal(modelInfo(name).params, expected[name], name);
});

test('MACs follow torchvision\'s GFLOPS for its video models at 16×112² (40.70, 43.34, 40.52)', () => {
  assert.equal(modelInfo('r3d_18').gflops.toFixed(2), '40.70');
  assert.equal(modelInfo('mc3_18').gflops.toFixed(2), '43.34');
  assert.equal(modelInfo('r2plus1d_18').gflops.toFixed(2), '40.52');
  assert.equal(modelInfo('resnet2d_50').gflops.toFixed(2), '4.09');
  const small = modelInfo('stc_resnet3d_18', { frames: 8, size: 64 });
  assert.deepEqual(small.inputShape, [1, 3, 8, 64, 64]);
  assert.deepEqual(small.outputShape, [1, 400]);
});

test('16 frames give T = 8, 4, 2, 1 in layer1–4; traced shapes match the real forward', () => {
  assert.deepEqual(temporalSizes(16).slice(1), [8, 4, 2, 1]);
  manualSeed(0);
  for (const [name, shape] of [['stc_resnet3d_18', [1, 3, 16, 40, 40]], ['resnext3d_50', [1, 3, 9, 33, 33]], ['mc3_18', [2, 3, 5, 30, 30]],
    ['r2plus1d_18', [1, 3, 4, 32, 32]], ['resnet2d_50', [1, 3, 50, 50]]] as [ModelName, number[]][]) {
    const model = createModel(name, { widthMultiplier: /3d_/.test(name) && !name.includes('r3d') ? 0.25 : undefined, numClasses: 5 } as never).eval();
    const output = tidy(() => noGrad(() => model.forward(randn(shape)).shape));
    const traced = model.costs(shape);
    assert.deepEqual(traced.output, output, name);
    if (model instanceof ResNet3d && name.startsWith('stc')) {
      const t = traced.rows.filter((r) => /^layer\d\.0\.conv2$/.test(r.name)).map((r) => r.output[2]);
      assert.deepEqual(t, [8, 4, 2, 1]);
    }
    model.dispose();
  }
});

test('STC placement options: default every block of layer1–3; stage placement; stcStages; per-branch reduction', () => {
  const keys = (options: object) => [...createModel('stc_resnet3d_18', { ...options, init: false, widthMultiplier: 0.25 }).stateDict().keys()]
    .filter((k) => k.endsWith('.stc.scb.fc1.weight')).map((k) => k.split('.stc')[0]);
  assert.deepEqual(keys({}), ['layer1.0', 'layer1.1', 'layer2.0', 'layer2.1', 'layer3.0', 'layer3.1']);
  assert.deepEqual(keys({ stcPlacement: 'stage' }), ['layer1.1', 'layer2.1', 'layer3.1']);
  assert.deepEqual(keys({ stcStages: [2, 4] }), ['layer2.0', 'layer2.1', 'layer4.0', 'layer4.1']);
  const model = createModel('stc_resnet3d_18', { init: false, frames: 16, reduction: { tcb: 4, scb: 8 } });
  const dict = model.stateDict();
  assert.deepEqual(dict.get('layer1.0.stc.tcb.fc1.weight')!.shape, [16, 64]);
  assert.deepEqual(dict.get('layer1.0.stc.scb.fc1.weight')!.shape, [64, 512]);
  assert.deepEqual(dict.get('layer1.0.stc.scb.fc2.weight')!.shape, [64, 64]);
  assert.deepEqual(dict.get('layer3.1.stc.scb.fc1.weight')!.shape, [64, 512]);
  model.dispose();
});

test('Hara\'s initialisation: Kaiming normal fan_out for convolutions, BN weight 1 and bias 0', () => {
  manualSeed(1);
  const model = createModel('resnet3d_18', { widthMultiplier: 0.5 });
  for (const [, m] of model.namedModules()) {
    if (m instanceof Conv3d) {
      const w = m.weight;
      const fanOut = w.shape[0]! * w.shape.slice(2).reduce((a, b) => a * b, 1);
      const std = tidy(() => w.std().item());
      if (w.numel > 5000) assert.ok(Math.abs(std / Math.sqrt(2 / fanOut) - 1) < 0.05, `std ${std} vs ${Math.sqrt(2 / fanOut)}`);
    } else if (m instanceof BatchNorm3d) {
      assert.ok(m.weight!.toArray().every((v) => v === 1) && m.bias!.toArray().every((v) => v === 0));
    }
  }
  model.dispose();
});

test('training: a small STC model runs forward and backward; every parameter gets a gradient', () => {
  manualSeed(2);
  const model = createModel('stc_resnet3d_10', { frames: 8, widthMultiplier: 0.25, numClasses: 3, dropout: 0.2 });
  tidy(() => {
    const logits = model.forward(randn([2, 3, 8, 32, 32]));
    assert.deepEqual(logits.shape, [2, 3]);
    logits.logSoftmax(1).mean().neg().backward();
  });
  for (const [name, p] of model.namedParameters()) {
    const g = p.grad;
    assert.ok(g, `${name} has no gradient`);
    g.dispose();
  }
  model.resetClassifier(7);
  assert.equal(model.numClasses, 7);
  assert.deepEqual([...model.stateDict().keys()].slice(-2), ['fc.weight', 'fc.bias']);
  model.dispose();
});

test('registry: unknown names and options, bad values are ModelInputErrors that say what is accepted', () => {
  assert.throws(() => createModel('stc_resnet3d18'), (e: unknown) => e instanceof ModelInputError && /did you mean "stc_resnet3d_18"/.test(e.message));
  assert.throws(() => createModel('resnet3d_18', { stcStages: [1] } as never), /unknown option stcStages; resnet3d_18 takes numClasses/);
  assert.throws(() => createModel('r3d_18', { shortcut: 'A' } as never), /unknown option shortcut/);
  assert.throws(() => createModel('resnet3d_18', { shortcut: 'C' as never }), /shortcut must be 'A' or 'B'/);
  assert.throws(() => createModel('stc_resnet3d_18', { stcStages: [0, 5] }), /stcStages must list stages among 1, 2, 3, 4/);
  assert.throws(() => createModel('stc_resnet3d_18', { reduction: 0 }), /reduction for tcb must be a positive integer/);
  assert.throws(() => createModel('resnet3d_18', { numClasses: 2.5 }), /numClasses must be a positive integer/);
  assert.throws(() => createModel('resnet3d_18', { dropout: 1 }), /dropout must be in \[0, 1\)/);
  assert.throws(() => createModel('resnext3d_50', { widthMultiplier: 0.1 }), /under 32.*raise widthMultiplier/);
  const names = listModels().map((m) => m.name);
  assert.equal(names.length, 26);
  for (const depth of [10, 18, 34, 50, 101, 152, 200]) assert.ok(names.includes(`stc_resnet3d_${depth}` as ModelName));
  dispose([]);
});
