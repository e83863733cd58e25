import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fromTypedArray, tidy, type Tensor } from '../../src/engine/index.js';
import type { Optimizer } from '../../src/optim/index.js';
import { repoRoot } from '../helpers.js';

/** The trajectories scripts/fixtures/optim.py recorded from torch.optim (committed JSON). */
export interface OptimizerRun {
  kind: string;
  options: Record<string, number | boolean | number[]>;
  groups: boolean;
  losses: number[];
  trajectory: { w: number[]; b: number[] }[];
}

export interface TorchFixture {
  problem: { x: number[]; y: number[]; w: number[]; b: number[] };
  optimizers: Record<string, OptimizerRun>;
  groups: Record<string, OptimizerRun>;
  base_lrs: number[];
  plateau_metrics: number[];
  schedules: Record<string, number[][]>;
}

export const fixture = JSON.parse(readFileSync(`${repoRoot}/test/fixtures/optim/torch.json`, 'utf8')) as TorchFixture;

/** The fixture's problem: loss = mean((tanh(x·Wᵀ + b) − y)²), W [3, 4], b [3], x [8, 4]. */
export class Problem {
  readonly x = fromTypedArray(new Float32Array(fixture.problem.x), [8, 4]);
  readonly y = fromTypedArray(new Float32Array(fixture.problem.y), [8, 3]);
  readonly w = fromTypedArray(new Float32Array(fixture.problem.w), [3, 4], { requiresGrad: true });
  readonly b = fromTypedArray(new Float32Array(fixture.problem.b), [3], { requiresGrad: true });

  /** Forward, backward; returns the loss. */
  lossAndGrad(): number {
    return tidy(() => {
      const loss = this.x.matmul(this.w.T()).add(this.b).tanh().sub(this.y).square().mean();
      loss.backward();
      return loss.item();
    });
  }

  /** zeroGrad, backward, step: one training step, as the fixture takes it. */
  trainStep(optimizer: Optimizer): number {
    optimizer.zeroGrad();
    const loss = this.lossAndGrad();
    optimizer.step();
    return loss;
  }

  dispose(): void {
    for (const t of [this.x, this.y, this.w, this.b]) t.dispose();
  }
}

/** |a − e| ≤ rtol·|e| + atol for every element. */
export function assertRelClose(actual: ArrayLike<number>, expected: ArrayLike<number>, what: string, rtol = 1e-5, atol = 1e-7): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    assert.ok(Math.abs(a - e) <= rtol * Math.abs(e) + atol, `${what}[${i}]: got ${a}, PyTorch ${e}`);
  }
}

export function values(t: Tensor): number[] {
  return Array.from(t.toFloat32Array());
}
