import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { noGrad } from '../../src/engine/index.js';
import { AdamW, CosineAnnealingLR, LinearWarmup, loadOptimizerState, unpackOptimizerState, ReduceLROnPlateau, saveOptimizerState, SGD, type LRScheduler, type Optimizer, type SchedulerState } from '../../src/optim/index.js';
import { UserError } from '../../src/util/errors.js';
import { tempDir } from '../helpers.js';
import { Problem, values } from './problem.js';

type Setup = (problem: Problem) => { optimizer: Optimizer; scheduler: LRScheduler };

const setups: Record<string, Setup> = {
  'SGD nesterov + warm-up cosine': (p) => {
    const optimizer = new SGD([{ params: [p.w] }, { params: [p.b], lr: 0.02, weightDecay: 0 }], { lr: 0.1, momentum: 0.9, nesterov: true, weightDecay: 1e-3 });
    return { optimizer, scheduler: new LinearWarmup(optimizer, { epochs: 3, startFactor: 0.1, then: new CosineAnnealingLR(optimizer, { tMax: 20 }) }) };
  },
  'AdamW amsgrad + plateau': (p) => {
    const optimizer = new AdamW([p.w, p.b], { lr: 0.02, amsgrad: true, weightDecay: 0.1 });
    return { optimizer, scheduler: new ReduceLROnPlateau(optimizer, { patience: 1, factor: 0.5, threshold: 0.05 }) };
  },
};

/** Runs `steps` training steps, stepping the scheduler with the loss after each. */
function train(problem: Problem, optimizer: Optimizer, scheduler: LRScheduler, steps: number): void {
  for (let i = 0; i < steps; i++) scheduler.step(problem.trainStep(optimizer));
}

for (const [name, setup] of Object.entries(setups)) {
  test(`${name}: save after 10 steps, load into fresh objects, continue 15 = 25 uninterrupted steps, exactly`, () => {
    const straight = new Problem();
    const a = setup(straight);
    train(straight, a.optimizer, a.scheduler, 25);

    const first = new Problem();
    const b = setup(first);
    train(first, b.optimizer, b.scheduler, 10);
    const path = join(tempDir(), 'optimizer.safetensors');
    saveOptimizerState(path, b.optimizer, { scheduler: b.scheduler.stateDict(), epoch: 10 });

    // A fresh process would rebuild the model from its checkpoint: copy the parameters over.
    const second = new Problem();
    noGrad(() => {
      second.w.copy_(first.w);
      second.b.copy_(first.b);
    });
    const c = setup(second);
    const extra = loadOptimizerState(path, c.optimizer);
    assert.equal(extra.epoch, 10);
    c.scheduler.loadStateDict(extra.scheduler as SchedulerState);
    assert.deepEqual(c.optimizer.paramGroups.map((g) => g.lr), b.optimizer.paramGroups.map((g) => g.lr));
    train(second, c.optimizer, c.scheduler, 15);

    assert.deepEqual(values(second.w), values(straight.w));
    assert.deepEqual(values(second.b), values(straight.b));
    assert.deepEqual(c.scheduler.lrs, a.scheduler.lrs);
    for (const o of [a.optimizer, b.optimizer, c.optimizer]) o.dispose();
    for (const p of [straight, first, second]) p.dispose();
  });
}

test('stateDict holds step counts and buffers by PyTorch parameter numbers; mismatches are refused', () => {
  const problem = new Problem();
  const adam = new AdamW([problem.w, problem.b], { lr: 0.01 });
  for (let i = 0; i < 3; i++) problem.trainStep(adam);
  const dict = adam.stateDict();
  assert.deepEqual(Object.keys(dict.state), ['0', '1']);
  assert.equal(dict.state['0']!.step, 3);
  assert.deepEqual((dict.state['0']!.exp_avg as { shape: number[] }).shape, [3, 4]);
  assert.deepEqual(dict.paramGroups[0]!.params, [0, 1]);
  assert.deepEqual(dict.paramGroups[0]!.betas, [0.9, 0.999]);

  const path = join(tempDir(), 'adam.safetensors');
  saveOptimizerState(path, adam);
  const sgd = new SGD([problem.w, problem.b], { lr: 0.1 });
  assert.throws(() => loadOptimizerState(path, sgd), (e: unknown) => e instanceof UserError && /for AdamW, not SGD/.test(e.message));
  const fewer = new AdamW([problem.w], { lr: 0.01 });
  assert.throws(() => loadOptimizerState(path, fewer), /group 0 has 2 parameters in the state, 1 here/);
  const swapped = new AdamW([problem.b, problem.w], { lr: 0.01 });
  assert.throws(() => loadOptimizerState(path, swapped), /has shape \[3,4\], the parameter \[3\]/);
  for (const o of [adam, sgd, fewer, swapped]) o.dispose();
  problem.dispose();
});

test('a damaged optimizer state names the field and loads nothing', () => {
  const problem = new Problem();
  const optimizer = new SGD([problem.w, problem.b], { lr: 0.1, momentum: 0.9 });
  const tensors = new Map();
  const damaged = [
    [JSON.stringify({ optimizer: 'SGD', paramGroups: [{ params: ['w'] }], numbers: {}, extra: {} }), /field paramGroups\.0\.params\.0/],
    [JSON.stringify({ optimizer: 'SGD', paramGroups: [], numbers: { 0: { step: 'one' } }, extra: {} }), /field numbers\.0\.step/],
    [JSON.stringify({ optimizer: 'SGD', paramGroups: [] }), /field numbers/],
    ['[1, 2', /not valid JSON/],
  ] as const;
  for (const [text, pattern] of damaged) {
    assert.throws(() => unpackOptimizerState(optimizer, tensors, { 'optimizer.json': text }, 'optimizer.', 'state.safetensors'), (error: Error) => {
      assert.ok(error instanceof UserError);
      assert.match(error.message, /^state\.safetensors: /);
      assert.match(error.message, pattern);
      return true;
    });
  }
});
