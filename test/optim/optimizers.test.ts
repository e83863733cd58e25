import { test } from 'node:test';
import assert from 'node:assert/strict';
import { memory, tensor } from '../../src/engine/index.js';
import { AdamW, SGD, type Optimizer } from '../../src/optim/index.js';
import { UserError } from '../../src/util/errors.js';
import { assertRelClose, fixture, Problem, values, type OptimizerRun } from './problem.js';

/** The fixture's options in our spelling (snake_case → camelCase). */
function optionsOf(run: OptimizerRun): Record<string, unknown> {
  const options: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(run.options)) options[key.replace(/_(.)/g, (_, c: string) => c.toUpperCase())] = value;
  return options;
}

function makeOptimizer(run: OptimizerRun, problem: Problem): Optimizer {
  const options = optionsOf(run) as { lr: number };
  const params = run.groups
    ? [{ params: [problem.w] }, { params: [problem.b], lr: options.lr * 0.5, weightDecay: 0 }]
    : [problem.w, problem.b];
  return run.kind === 'SGD' ? new SGD(params, options) : new AdamW(params, options);
}

function checkAgainstTorch(name: string, run: OptimizerRun): void {
  assert.ok(run.trajectory.length >= 20);
  const problem = new Problem();
  const optimizer = makeOptimizer(run, problem);
  run.trajectory.forEach((expected, step) => {
    const loss = problem.trainStep(optimizer);
    assertRelClose([loss], [run.losses[step]!], `${name} loss at step ${step}`);
    assertRelClose(values(problem.w), expected.w, `${name} W after step ${step + 1}`);
    assertRelClose(values(problem.b), expected.b, `${name} b after step ${step + 1}`);
  });
  optimizer.dispose();
  problem.dispose();
}

for (const [name, run] of Object.entries(fixture.optimizers)) {
  test(`${name}: the same trajectory as torch.optim.${run.kind} over ${run.trajectory.length} steps`, () => checkAgainstTorch(name, run));
}
for (const [name, run] of Object.entries(fixture.groups)) {
  test(`${name} with two parameter groups (own lr, no weight decay on the bias) matches torch.optim`, () => checkAgainstTorch(`${name} groups`, run));
}

test('zeroGrad sets gradients to null; parameters without gradients are skipped; step keeps memory flat', () => {
  const problem = new Problem();
  const unused = tensor([1, 2], { requiresGrad: true });
  const optimizer = new AdamW([problem.w, problem.b, unused], { lr: 0.01 });
  problem.trainStep(optimizer);
  assert.deepEqual(values(unused), [1, 2]);
  assert.notEqual(problem.w.grad, null);
  optimizer.zeroGrad();
  assert.equal(problem.w.grad, null);
  const before = memory().tensors;
  for (let i = 0; i < 20; i++) problem.trainStep(optimizer);
  assert.equal(memory().tensors, before, 'no tensors leak per step');
  optimizer.dispose();
  problem.dispose();
  unused.dispose();
});

test('bad hyperparameters are UserErrors naming the group and the value', () => {
  const p = tensor([1], { requiresGrad: true });
  assert.throws(() => new SGD([p], { lr: -1 }), (e: unknown) => e instanceof UserError && /group 0: lr = -1/.test(e.message));
  assert.throws(() => new SGD([p], { lr: 0.1, nesterov: true }), /nesterov/);
  assert.throws(() => new AdamW([{ params: [p], betas: [0.9, 1] }]), /betas\[1\] = 1/);
  assert.throws(() => new SGD([{ params: [p] }, { params: [p] }], { lr: 1 }), /more than one group/);
  assert.throws(() => new SGD([], { lr: 1 }), /no parameters/);
  p.dispose();
});
