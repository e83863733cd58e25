import { test } from 'node:test';
import assert from 'node:assert/strict';
import { tensor } from '../../src/engine/index.js';
import {
  CosineAnnealingLR, LinearWarmup, MultiStepLR, ReduceLROnPlateau, SGD, StepLR, type LRScheduler, type PlateauOptions,
} from '../../src/optim/index.js';
import { assertRelClose, fixture } from './problem.js';

function optimizer(): SGD {
  const [a, b] = fixture.base_lrs;
  return new SGD([{ params: [tensor([0], { requiresGrad: true })], lr: a! }, { params: [tensor([0], { requiresGrad: true })], lr: b! }], { lr: a! });
}

const plateauMin: PlateauOptions = { mode: 'min', factor: 0.5, patience: 2, threshold: 1e-2, cooldown: 1, minLr: [1e-3, 5e-4] };
const plateauMaxAbs: PlateauOptions = { mode: 'max', factor: 0.3, patience: 1, threshold: 0.05, thresholdMode: 'abs', minLr: 1e-4 };

const makers: Record<string, (o: SGD) => LRScheduler> = {
  step: (o) => new StepLR(o, { stepSize: 7, gamma: 0.5 }),
  multistep: (o) => new MultiStepLR(o, { milestones: [5, 12, 30], gamma: 0.1 }),
  cosine: (o) => new CosineAnnealingLR(o, { tMax: 15, etaMin: 1e-3 }),
  warmup: (o) => new LinearWarmup(o, { epochs: 5, startFactor: 0.1 }),
  warmup_cosine: (o) => new LinearWarmup(o, { epochs: 5, startFactor: 0.1, then: new CosineAnnealingLR(o, { tMax: 20, etaMin: 1e-4 }) }),
  warmup_multistep: (o) => new LinearWarmup(o, { epochs: 4, startFactor: 0.25, then: new MultiStepLR(o, { milestones: [10, 20], gamma: 0.5 }) }),
  plateau_min: (o) => new ReduceLROnPlateau(o, plateauMin),
  plateau_max_abs: (o) => new ReduceLROnPlateau(o, plateauMaxAbs),
  warmup_plateau: (o) => new LinearWarmup(o, { epochs: 3, startFactor: 0.2, then: new ReduceLROnPlateau(o, plateauMin) }),
};

/** The metric fed at each step (the max-mode fixture negates them so "better" means higher). */
function metricAt(name: string, step: number): number | undefined {
  if (!name.includes('plateau')) return undefined;
  const metric = fixture.plateau_metrics[step]!;
  return name === 'plateau_max_abs' ? -metric : metric;
}

function groupLrs(o: SGD): number[] {
  return o.paramGroups.map((g) => g.lr);
}

for (const [name, expected] of Object.entries(fixture.schedules)) {
  test(`schedule ${name}: the lrs of torch.optim.lr_scheduler over ${expected.length - 1} steps, two groups`, () => {
    const o = optimizer();
    const scheduler = makers[name]!(o);
    assertRelClose(groupLrs(o), expected[0]!, `${name} lr before any step`, 1e-9, 1e-12);
    for (let step = 0; step < expected.length - 1; step++) {
      scheduler.step(metricAt(name, step));
      assertRelClose(groupLrs(o), expected[step + 1]!, `${name} lr after step ${step + 1}`, 1e-9, 1e-12);
      assert.deepEqual(scheduler.lrs, groupLrs(o));
    }
  });
}

test('every schedule: stateDict → JSON → loadStateDict into a fresh scheduler continues identically', () => {
  for (const name of Object.keys(makers)) {
    const steps = fixture.schedules[name]!.length - 1;
    const straight = optimizer();
    const straightScheduler = makers[name]!(straight);
    const expected: number[][] = [];
    for (let step = 0; step < steps; step++) {
      straightScheduler.step(metricAt(name, step));
      expected.push(groupLrs(straight));
    }
    const first = optimizer();
    const firstScheduler = makers[name]!(first);
    const cut = 4; // inside every warm-up, so resuming restores the warm-up and what follows it
    for (let step = 0; step < cut; step++) firstScheduler.step(metricAt(name, step));
    const saved = JSON.stringify(firstScheduler.stateDict());
    const second = optimizer();
    const secondScheduler = makers[name]!(second);
    secondScheduler.loadStateDict(JSON.parse(saved));
    assert.deepEqual(groupLrs(second), expected[cut - 1], `${name}: lrs right after loading`);
    for (let step = cut; step < steps; step++) {
      secondScheduler.step(metricAt(name, step));
      assert.deepEqual(groupLrs(second), expected[step], `${name}: step ${step + 1} after resuming`);
    }
  }
});

test('ReduceLROnPlateau needs a metric; bad options are refused', () => {
  const o = optimizer();
  assert.throws(() => new ReduceLROnPlateau(o).step(), /metric is required/);
  assert.throws(() => new ReduceLROnPlateau(o, { factor: 1 }), /factor/);
  assert.throws(() => new ReduceLROnPlateau(o, { minLr: [1, 2, 3] }), /3 values for 2 groups/);
  assert.throws(() => new StepLR(o, { stepSize: 0 }), /stepSize/);
  assert.throws(() => new LinearWarmup(o, { epochs: 3, startFactor: 0 }), /startFactor/);
});
