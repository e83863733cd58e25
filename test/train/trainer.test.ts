import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, renameSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { runTraining, resumeConfig, type StepRecord, type TrainEvent } from '../../src/train/trainer.js';
import { loadModelCheckpoint } from '../../src/models/checkpoint.js';
import { buildModel } from '../../src/train/model_setup.js';
import { loadStateDict } from '../../src/nn/weights.js';
import { dispose, getConvAlgorithm, type Tensor } from '../../src/engine/index.js';
import { runPython } from '../helpers.js';
import { tinyConfig, tinyData } from './fixture.js';

const stepLosses = (into: number[]) => (event: TrainEvent) => {
  if (event.type === 'step') into.push(event.loss);
};

function relativeClose(actual: number[], expected: number[], tolerance: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: ${actual.length} values, expected ${expected.length}`);
  actual.forEach((value, i) => {
    const error = Math.abs(value - expected[i]!) / Math.max(1e-12, Math.abs(expected[i]!));
    assert.ok(error <= tolerance, `${what}[${i}]: ${value} vs ${expected[i]} (relative error ${error})`);
  });
}

function metricsOf(runDir: string): (StepRecord | { type: 'epoch'; epoch: number })[] {
  return readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
}

test('a run stopped after 3 steps and resumed continues exactly as the run that was never stopped', async () => {
  const data = await tinyData();
  // Dropout makes libtorch's generator matter: the resumed steps must draw the same masks.
  const settings = { dropout: 0.3, epochs: 2 };
  const full = tinyConfig(data, join(data.work, 'full'), settings);
  const fullLosses: number[] = [];
  const fullSummary = await runTraining(full, { onEvent: stepLosses(fullLosses) });
  assert.equal(fullSummary.status, 'completed');
  assert.equal(fullLosses.length, 8, '2 epochs of 4 steps');

  const cut = tinyConfig(data, join(data.work, 'cut'), settings);
  const controller = new AbortController();
  const firstLosses: number[] = [];
  const stopped = await runTraining(cut, {
    signal: controller.signal,
    onEvent: (event) => {
      stepLosses(firstLosses)(event);
      if (event.type === 'step' && event.step === 3) controller.abort();
    },
  });
  assert.equal(stopped.status, 'interrupted');
  assert.equal(stopped.steps, 3);
  assert.equal(JSON.parse(readFileSync(join(cut.out, 'summary.json'), 'utf8')).status, 'interrupted');
  relativeClose(firstLosses, fullLosses.slice(0, 3), 0, 'steps before the stop');

  const resumedLosses: number[] = [];
  const resumed = await runTraining(resumeConfig(cut.out), { resume: true, onEvent: stepLosses(resumedLosses) });
  assert.equal(resumed.status, 'completed');
  assert.equal(resumed.steps, 8);
  relativeClose(resumedLosses, fullLosses.slice(3), 1e-6, 'losses after the resume');

  // The run folder reads as one run: every step and epoch once, in order.
  const records = metricsOf(cut.out);
  assert.deepEqual(records.filter((r) => r.type === 'step').map((r) => (r as StepRecord).step), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.deepEqual(records.filter((r) => r.type === 'epoch').map((r) => r.epoch), [1, 2]);
  const epochs = records.filter((r) => r.type === 'epoch') as unknown as { valAccuracy: number; loss: number }[];
  const fullEpochs = metricsOf(full.out).filter((r) => r.type === 'epoch') as unknown as { valAccuracy: number; loss: number }[];
  relativeClose(epochs.map((e) => e.loss), fullEpochs.map((e) => e.loss), 1e-6, 'epoch losses');
  assert.deepEqual(epochs.map((e) => e.valAccuracy), fullEpochs.map((e) => e.valAccuracy));

  // The same final weights.
  const a = loadStateDict(join(full.out, 'last.safetensors'));
  const b = loadStateDict(join(cut.out, 'last.safetensors'));
  try {
    for (const [name, tensor] of a) {
      const other = b.get(name)!;
      const x = tensor.toFloat32Array();
      const y = other.toFloat32Array();
      for (let i = 0; i < x.length; i++) assert.ok(Math.abs(x[i]! - y[i]!) <= 1e-6 * Math.max(1, Math.abs(x[i]!)), `${name}[${i}]: ${x[i]} vs ${y[i]}`);
    }
  } finally {
    dispose([...a.values(), ...b.values()]);
  }
});

test('the run folder holds the config (YAML and JSON), per-step and per-epoch metrics, checkpoints, plots and a summary', async () => {
  const data = await tinyData();
  const config = tinyConfig(data, join(data.work, 'folder'), { epochs: 2, optimizer: 'adamw', lr: 0.003, schedule: 'cosine', 'warmup-epochs': 1 });
  const summary = await runTraining(config);
  const dir = config.out;
  const yaml = YAML.parse(readFileSync(join(dir, 'config.yaml'), 'utf8'));
  const json = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  assert.deepEqual(yaml, json);
  assert.equal(json['weight-decay'], 0.01, 'AdamW\'s default weight decay is resolved and recorded');
  const records = metricsOf(dir);
  const steps = records.filter((r) => r.type === 'step') as StepRecord[];
  assert.equal(steps.length, 8);
  for (const step of steps) {
    for (const key of ['loss', 'accuracy', 'lr', 'clipsPerSecond', 'dataWait'] as const) assert.ok(Number.isFinite(step[key]), `step ${step.step} ${key}`);
    assert.ok(step.dataWait >= 0 && step.dataWait <= 1);
  }
  // Warm-up from 0.1×lr over the first epoch's 4 steps, then cosine down.
  assert.ok(Math.abs(steps[0]!.lr - 0.0003) < 1e-12, `first lr ${steps[0]!.lr}`);
  assert.ok(steps[1]!.lr > steps[0]!.lr && steps[4]!.lr === 0.003 && steps[7]!.lr < steps[4]!.lr, steps.map((s) => s.lr).join());
  const epochs = records.filter((r) => r.type === 'epoch') as unknown as { valAccuracy: number; best: boolean; liveTensors: number }[];
  assert.equal(epochs.length, 2);
  assert.equal(epochs[1]!.liveTensors, epochs[0]!.liveTensors, 'no tensor leaks from one epoch to the next');
  assert.ok(epochs.every((e) => e.valAccuracy >= 0 && e.valAccuracy <= 1));
  for (const name of ['loss', 'accuracy', 'lr']) {
    for (const ext of ['svg', 'png']) assert.ok(existsSync(join(dir, 'plots', `${name}.${ext}`)), `plots/${name}.${ext}`);
  }
  const saved = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8'));
  assert.equal(saved.status, 'completed');
  assert.equal(saved.epochs, 2);
  assert.equal(summary.best!.epoch, Math.max(...epochs.map((e, i) => (e.best ? i + 1 : 0))), 'best is the last epoch that improved');

  // eval and predict build the model from `best` alone: arch, options, classes and preprocessing are in it.
  for (const name of ['best', 'last']) {
    const { model, meta } = loadModelCheckpoint(join(dir, `${name}.safetensors`));
    assert.equal(meta.arch, 'stc_resnet3d_18');
    assert.deepEqual(meta.classes, ['MoveRight', 'MoveLeft', 'MoveUp', 'MoveDown']);
    assert.equal(meta.preprocessing!.frames, 4);
    assert.equal(meta.preprocessing!.size, 32);
    assert.equal(model.numClasses, 4);
    model.dispose();
  }
  // No temporary files are left behind.
  assert.deepEqual(readdirSync(dir).filter((name) => name.includes('.tmp-')), []);
});

test('--clip-grad-norm bounds every update: each step records the norm before clipping, and a tiny limit leaves the weights where they started', async () => {
  const data = await tinyData();
  // Plain SGD (no momentum, no weight decay): an update is the learning rate times the clipped gradient.
  const common = { epochs: 1, optimizer: 'sgd', lr: 0.5, momentum: 0, 'weight-decay': 0, 'val-split': 'none' };
  const limit = 1e-9;
  const clipped = tinyConfig(data, join(data.work, 'clipped'), { ...common, 'clip-grad-norm': limit });
  const unclipped = tinyConfig(data, join(data.work, 'unclipped'), common);
  for (const config of [clipped, unclipped]) assert.equal((await runTraining(config)).status, 'completed');
  assert.equal(YAML.parse(readFileSync(join(clipped.out, 'config.yaml'), 'utf8'))['clip-grad-norm'], limit);

  const clippedSteps = metricsOf(clipped.out).filter((r) => r.type === 'step') as StepRecord[];
  assert.equal(clippedSteps.length, 4);
  assert.ok(clippedSteps.every((s) => Number.isFinite(s.gradNorm) && s.gradNorm! > 1e-3), `norms before clipping: ${clippedSteps.map((s) => s.gradNorm).join(', ')}`);
  assert.ok((metricsOf(unclipped.out) as StepRecord[]).every((r) => r.gradNorm === undefined), 'no norm without clipping');

  // Each run's weights against the initial ones (the same seed builds them again).
  const { model: initial } = buildModel(clipped, 4);
  const largestChange = (run: string): number => {
    const { model: trained } = loadModelCheckpoint(join(run, 'last.safetensors'));
    const final = new Map(trained.namedParameters());
    let largest = 0;
    for (const [name, start] of initial.namedParameters()) {
      const before = start.toFloat32Array();
      const after = final.get(name)!.toFloat32Array();
      for (let i = 0; i < before.length; i++) largest = Math.max(largest, Math.abs(after[i]! - before[i]!));
    }
    trained.dispose();
    return largest;
  };
  const clippedChange = largestChange(clipped.out);
  const unclippedChange = largestChange(unclipped.out);
  initial.dispose();
  // 4 steps of at most 0.5 × 1e-9 each; without the limit the same steps move weights by far more.
  assert.ok(clippedChange <= 4 * 0.5 * limit, `clipped: weights moved by up to ${clippedChange}`);
  assert.ok(unclippedChange > 1e-3, `unclipped: weights moved by up to ${unclippedChange}`);
});

test('fine-tuning from a PyTorch .pth (module. keys, no num_batches_tracked, 7 classes): head replaced, frozen stages and their BN statistics kept', async () => {
  const data = await tinyData();
  const pth = join(data.work, 'hara.pth');
  runPython('scripts/fixtures/train_init.py', [pth, 'stc_resnet3d_18', '4', '0.125', '7']);
  const config = tinyConfig(data, join(data.work, 'finetune'), { init: pth, freeze: 'conv1,layer1', 'fc-lr': 0.05, lr: 0.01, epochs: 1 });
  const logs: string[] = [];
  const controller = new AbortController();
  const stopped = await runTraining(config, {
    signal: controller.signal,
    onEvent: (event) => {
      if (event.type === 'log') logs.push(event.message);
      if (event.type === 'step' && event.step === 2) controller.abort();
    },
  });
  assert.equal(stopped.status, 'interrupted');
  assert.ok(logs.some((line) => /replaced it with a new one \(64 → 4\)/.test(line)), logs.join('\n'));
  assert.ok(logs.some((line) => /freeze: conv1, layer1 \(conv1 with its bn1\)/.test(line)), logs.join('\n'));
  // The resume rebuilds the model from the run's own checkpoint: the --init file is no longer needed.
  renameSync(pth, `${pth}.away`);
  try {
    const resumed = await runTraining(resumeConfig(config.out), { resume: true });
    assert.equal(resumed.status, 'completed');
    assert.equal(resumed.steps, 4);
  } finally {
    renameSync(`${pth}.away`, pth);
  }

  const initial = loadStateDict(pth);
  const trained = loadStateDict(join(config.out, 'last.safetensors'));
  const same = (a: Tensor, b: Tensor) => a.toFloat32Array().every((value, i) => value === b.toFloat32Array()[i]);
  try {
    for (const name of ['conv1.weight', 'bn1.weight', 'bn1.running_mean', 'bn1.running_var', 'layer1.0.conv1.weight', 'layer1.1.bn2.running_var', 'layer1.0.stc.tcb.fc1.weight']) {
      assert.ok(same(initial.get(name)!, trained.get(name)!), `${name} is frozen and must not change`);
    }
    for (const name of ['layer2.0.conv1.weight', 'layer2.0.bn1.running_mean']) {
      assert.ok(!same(initial.get(name)!, trained.get(name)!), `${name} trains`);
    }
    assert.deepEqual(trained.get('fc.weight')!.shape, [4, 64]);
  } finally {
    dispose([...initial.values(), ...trained.values()]);
  }
  const steps = metricsOf(config.out).filter((r) => r.type === 'step') as StepRecord[];
  assert.equal(steps[0]!.lr, 0.01, 'group 0 (the backbone) logs the base lr');
});

test('training straight from the video files (no cache) with gradient accumulation: one optimizer step per 2 batches', async () => {
  const data = await tinyData();
  const config = tinyConfig(data, join(data.work, 'from-videos'), {
    cache: undefined, 'short-side': 36, 'batch-size': 2, accumulate: 2, epochs: 1, 'label-smoothing': 0.1, 'val-split': 'none',
    convolutions: 'direct',
  });
  assert.equal(config.cache, undefined);
  const summary = await runTraining(config);
  assert.equal(summary.status, 'completed');
  assert.equal(getConvAlgorithm(), 'auto', 'the run\'s convolution algorithm does not outlive it');
  assert.equal(YAML.parse(readFileSync(join(config.out, 'config.yaml'), 'utf8')).convolutions, 'direct');
  const steps = metricsOf(config.out).filter((r) => r.type === 'step') as StepRecord[];
  assert.deepEqual(steps.map((s) => s.batch), [2, 4, 6, 8], '16 videos in batches of 2, a step every second batch');
  assert.ok(steps.every((s) => Number.isFinite(s.loss) && s.loss > 0));
  const { model, meta } = loadModelCheckpoint(join(config.out, 'best.safetensors'));
  model.dispose();
  assert.equal(meta.preprocessing!.shortSide, 36, 'decoded at --short-side, which eval must repeat');
});

test('fine-tuning from torchvision\'s r3d_18 weights (a plain state dict saved by PyTorch, 5 classes)', async () => {
  const data = await tinyData();
  const pth = join(data.work, 'r3d_18.pth');
  runPython('scripts/fixtures/train_init.py', [pth, 'r3d_18', '4', '1', '5']);
  const config = tinyConfig(data, join(data.work, 'torchvision'), {
    model: 'r3d_18', 'width-multiplier': undefined, init: pth, freeze: 'stem,layer1,layer2', epochs: 1, 'val-split': 'none',
  });
  const logs: string[] = [];
  const summary = await runTraining(config, { onEvent: (event) => { if (event.type === 'log') logs.push(event.message); } });
  assert.equal(summary.status, 'completed');
  assert.ok(logs.some((line) => /replaced it with a new one \(512 → 4\)/.test(line)), logs.join('\n'));
  const initial = loadStateDict(pth);
  const trained = loadStateDict(join(config.out, 'last.safetensors'));
  try {
    const a = initial.get('stem.0.weight')!.toFloat32Array();
    const b = trained.get('stem.0.weight')!.toFloat32Array();
    assert.ok(a.every((value, i) => value === b[i]), 'the frozen stem keeps torchvision\'s weights');
    assert.deepEqual(trained.get('fc.weight')!.shape, [4, 512]);
  } finally {
    dispose([...initial.values(), ...trained.values()]);
  }
});
