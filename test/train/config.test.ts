import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import YAML from 'yaml';
import { configToYaml, readConfigFile, resolvePaths, suggestKey, validateConfig } from '../../src/train/config.js';
import { buildSchedule } from '../../src/train/schedule.js';
import { SGD } from '../../src/optim/index.js';
import { zeros } from '../../src/engine/index.js';
import { tempDir } from '../helpers.js';

const base = { root: '/data', out: '/runs/a' };

test('config: defaults filled in, weight decay by optimizer (Hara et al.\'s 1e-3 for SGD), values from text coerced', () => {
  const sgd = validateConfig(base);
  assert.equal(sgd.optimizer, 'sgd');
  assert.equal(sgd.momentum, 0.9);
  assert.equal(sgd['weight-decay'], 1e-3);
  assert.equal(sgd.schedule, 'cosine');
  assert.equal(sgd.convolutions, 'auto');
  assert.equal(validateConfig({ ...base, convolutions: 'direct' }).convolutions, 'direct');
  assert.equal(validateConfig({ ...base, optimizer: 'adamw' })['weight-decay'], 1e-2);
  const fromText = validateConfig({ ...base, epochs: '12', lr: '0.1', milestones: '5,8', schedule: 'multistep', freeze: 'conv1,layer1' });
  assert.equal(fromText.epochs, 12);
  assert.deepEqual(fromText.milestones, [5, 8]);
  assert.deepEqual(fromText.freeze, ['conv1', 'layer1']);
});

test('config: every problem named with its key and what was expected; misspelt keys get the closest key', () => {
  assert.throws(() => validateConfig({ ...base, lr: -1, optimizer: 'adam', batchSize: 4 }, 'run.yaml'), (error: Error) => {
    assert.match(error.message, /^run\.yaml: /);
    assert.match(error.message, /lr: expected a number > 0, got -1/);
    assert.match(error.message, /optimizer: expected one of "sgd", "adamw", got "adam"/);
    assert.match(error.message, /unknown key "batchSize" \(did you mean "batch-size"\?\)/);
    return true;
  });
  assert.throws(() => validateConfig({ out: '/x' }), /root is required/);
  assert.throws(() => validateConfig({ ...base, schedule: 'step' }), /step-size is required by schedule "step"/);
  assert.throws(() => validateConfig({ ...base, 'warmup-epochs': 10, epochs: 10 }), /warmup-epochs must be less than epochs \(10\)/);
  assert.throws(() => validateConfig({ ...base, amp: 'fp16' }), /amp fp16 autocast needs device cuda/);
  assert.throws(() => validateConfig({ ...base, convolutions: 'winograd' }), /convolutions: expected one of "auto", "direct", got "winograd"/);
  assert.throws(() => validateConfig({ ...base, 'val-split': 'train1' }), /val-split must differ from split "train1"/);
  assert.equal(suggestKey('learning_rate'), 'lr');
  assert.equal(suggestKey('weightDecay'), 'weight-decay');
  assert.equal(suggestKey('epoch'), 'epochs');
  assert.equal(suggestKey('sample_duration'), 'frames');
});

test('config: YAML and JSON files; paths relative to the file; the saved YAML reads back as the same config', () => {
  const dir = tempDir();
  const yaml = join(dir, 'recipe.yaml');
  writeFileSync(yaml, 'root: data\nout: ../runs/x\nepochs: 3\n');
  const config = validateConfig(resolvePaths(readConfigFile(yaml), dir));
  assert.equal(config.root, join(dir, 'data'));
  assert.equal(config.out, join(dir, '..', 'runs', 'x'));
  assert.deepEqual(validateConfig(YAML.parse(configToYaml(config))), config);
  const json = join(dir, 'recipe.json');
  writeFileSync(json, '{"root": "/d", "out": "/o", "lr": 0.5}');
  assert.equal(validateConfig(readConfigFile(json)).lr, 0.5);
  writeFileSync(json, '{"root": ');
  assert.throws(() => readConfigFile(json), /recipe\.json: not valid JSON/);
  writeFileSync(yaml, '- a\n- b\n');
  assert.throws(() => readConfigFile(yaml), /recipe\.yaml: expected a mapping of option names to values, got a list/);
  assert.throws(() => readConfigFile(join(dir, 'recipe.toml')), /recipe\.toml: no such file or folder/);
  writeFileSync(join(dir, 'recipe.toml'), 'a = 1');
  assert.throws(() => readConfigFile(join(dir, 'recipe.toml')), /must end in \.yaml, \.yml or \.json/);
});

function lrs(overrides: Record<string, unknown>, stepsPerEpoch: number, steps: number): number[] {
  const param = zeros([1], { requiresGrad: true });
  const optimizer = new SGD([param], { lr: 0.1 });
  const { scheduler, unit } = buildSchedule(validateConfig({ ...base, lr: 0.1, ...overrides }), optimizer, stepsPerEpoch, true);
  assert.equal(unit, 'step');
  const seen: number[] = [];
  for (let i = 0; i < steps; i++) {
    seen.push(optimizer.paramGroups[0]!.lr);
    scheduler.step();
  }
  param.dispose();
  return seen;
}

test('schedules: lengths in epochs, stepped per optimizer step; warm-up from 0.1×lr; multistep drops on epoch boundaries', () => {
  const cosine = lrs({ epochs: 4, 'warmup-epochs': 1, schedule: 'cosine' }, 2, 8);
  assert.ok(Math.abs(cosine[0]! - 0.01) < 1e-12 && Math.abs(cosine[1]! - 0.055) < 1e-12, cosine.join());
  assert.equal(cosine[2], 0.1, 'the base lr once warm-up is over');
  assert.ok(cosine[3]! < 0.1 && cosine[7]! < cosine[3]!, cosine.join());
  const multistep = lrs({ epochs: 6, schedule: 'multistep', milestones: '2,4', gamma: 0.5 }, 3, 18);
  assert.deepEqual(multistep.map((lr) => +lr.toFixed(6)), [0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.025, 0.025, 0.025]);
  const step = lrs({ epochs: 4, schedule: 'step', 'step-size': 1 }, 2, 6);
  assert.deepEqual(step.map((lr) => +lr.toFixed(6)), [0.1, 0.1, 0.01, 0.01, 0.001, 0.001]);
  assert.throws(() => lrs({ epochs: 6, schedule: 'multistep', milestones: '1,4', 'warmup-epochs': 2 }, 3, 1), /milestones: 1 fall within the 2 warm-up epochs/);

  const param = zeros([1], { requiresGrad: true });
  const optimizer = new SGD([param], { lr: 0.1 });
  const plateau = buildSchedule(validateConfig({ ...base, lr: 0.1, schedule: 'plateau', patience: 1 }), optimizer, 5, true);
  assert.equal(plateau.unit, 'epoch');
  for (const accuracy of [0.5, 0.6, 0.6, 0.6]) plateau.scheduler.step(accuracy);
  assert.ok(Math.abs(optimizer.paramGroups[0]!.lr - 0.01) < 1e-12, 'two epochs without a better validation accuracy drop the lr by gamma');
  param.dispose();
});

test('config: crop-scales from text or a list, each in (0, 1]; absent means the loader\'s five scales', () => {
  assert.equal(validateConfig(base)['crop-scales'], undefined);
  assert.deepEqual(validateConfig({ ...base, 'crop-scales': '1, 0.84,0.71' })['crop-scales'], [1, 0.84, 0.71]);
  assert.deepEqual(validateConfig({ ...base, 'crop-scales': ['1', '0.5'] })['crop-scales'], [1, 0.5]);
  for (const bad of ['1.5', '0', 'big']) {
    assert.throws(() => validateConfig({ ...base, 'crop-scales': bad }), /crop-scales/, bad);
  }
});
