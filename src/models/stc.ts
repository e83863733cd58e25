import { F, tidy, type Tensor } from '../engine/index.js';
import { Module, Linear } from '../nn/index.js';
import { ModelInputError, shapeText } from './errors.js';
import type { Tracer } from './flops.js';

/** One reduction ratio for both branches, or one per branch. */
export type Reduction = number | { tcb?: number; scb?: number };

export const DEFAULT_REDUCTION = 16;

export function reductionOf(reduction: Reduction | undefined, branch: 'tcb' | 'scb'): number {
  if (reduction === undefined) return DEFAULT_REDUCTION;
  if (typeof reduction === 'number') return reduction;
  return reduction[branch] ?? DEFAULT_REDUCTION;
}

/** FC(in, max(1, ⌊in/r⌋)) → ReLU → FC(·, out) → sigmoid, named fc1/fc2 as the contract says. */
export class GateBranch extends Module {
  readonly fc1: Linear;
  readonly fc2: Linear;

  constructor(readonly inFeatures: number, readonly outFeatures: number, readonly reduction: number) {
    super();
    const hidden = Math.max(1, Math.floor(inFeatures / reduction));
    this.fc1 = this.addModule('fc1', new Linear(inFeatures, hidden));
    this.fc2 = this.addModule('fc2', new Linear(hidden, outFeatures));
  }

  /** [N, in] → gate [N, out] in (0, 1). */
  forward(z: Tensor): Tensor {
    return tidy(() => this.fc2.forward(this.fc1.forward(z).relu()).sigmoid());
  }
}

/**
 * The STC block (Diba et al. 2018) for an input X of N×C×T×H×W, with T fixed at construction:
 * - TCB ("temporal channel-wise"): mean over T,H,W → fc1 → ReLU → fc2 → sigmoid = s_t (N×C);
 * - SCB ("spatial channel-wise", keeps time): mean over H,W → N×C×T flattened channel-major
 *   (index c·T + t) → fc1 → ReLU → fc2 → sigmoid = s_s (N×C);
 * - output X · (s_t + s_s) / 2, broadcast over T,H,W.
 */
export class StcBlock extends Module {
  readonly tcb: GateBranch;
  readonly scb: GateBranch;

  /**
   * @param channels C at the block's position
   * @param temporalSize T at the block's position (SCB's input width is C·T)
   * @param reduction r for both branches or per branch (default 16)
   * @param frames the clip length the model was built for, named in errors
   */
  constructor(readonly channels: number, readonly temporalSize: number, reduction: Reduction = DEFAULT_REDUCTION, readonly frames?: number) {
    super();
    for (const branch of ['tcb', 'scb'] as const) {
      const r = reductionOf(reduction, branch);
      if (!(Number.isInteger(r) && r >= 1)) throw new ModelInputError(`StcBlock: reduction for ${branch} must be a positive integer, got ${r}`);
    }
    if (!(Number.isInteger(channels) && channels >= 1)) throw new ModelInputError(`StcBlock: channels must be a positive integer, got ${channels}`);
    if (!(Number.isInteger(temporalSize) && temporalSize >= 1)) throw new ModelInputError(`StcBlock: temporal size must be a positive integer, got ${temporalSize}`);
    this.tcb = this.addModule('tcb', new GateBranch(channels, channels, reductionOf(reduction, 'tcb')));
    this.scb = this.addModule('scb', new GateBranch(channels * temporalSize, channels, reductionOf(reduction, 'scb')));
  }

  /** The gate (s_t + s_s)/2 as N×C; the scope frees the pooled vectors and the two branch gates. */
  gate(x: Tensor): Tensor {
    this.check(x);
    return tidy(() => {
      const [overClip, overFrames] = F.meanPools3d(x);     // x.mean([2, 3, 4]) and x.mean([3, 4]), one backward for both
      const st = this.tcb.forward(overClip);               // TCB: pool T,H,W → N×C
      const ss = this.scb.forward(overFrames.flatten(1));  // SCB: pool H,W → N×C×T → N×(C·T), index c·T+t
      return st.add(ss).mul(0.5);
    });
  }

  /** X · (s_t + s_s)/2, the gate broadcast over T,H,W. */
  forward(x: Tensor): Tensor {
    return tidy(() => {
      const [n, c] = x.shape as [number, number];
      return x.mul(this.gate(x).view([n, c, 1, 1, 1]));
    });
  }

  private check(x: Tensor): void {
    const shape = x.shape;
    if (shape.length !== 5) throw new ModelInputError(`StcBlock: expected a 5-D input N×C×T×H×W, got shape ${shapeText(shape)}`);
    if (shape[1] !== this.channels) throw new ModelInputError(`StcBlock: built for ${this.channels} channels, got ${shape[1]} (shape ${shapeText(shape)})`);
    if (shape[2] !== this.temporalSize) {
      const clip = this.frames === undefined ? '' : ` (the model was built for ${this.frames}-frame clips)`;
      throw new ModelInputError(`StcBlock: built for temporal size ${this.temporalSize} at this layer${clip}, got ${shape[2]}; ` +
        'SCB\'s width depends on T, so an STC model takes only the clip length it was built for');
    }
  }

  trace(tracer: Tracer, name: string, shape: readonly number[]): number[] {
    const n = shape[0]!;
    tracer.leaf(`${name}.tcb.fc1`, this.tcb.fc1, [n, this.channels]);
    tracer.leaf(`${name}.tcb.fc2`, this.tcb.fc2, [n, this.tcb.fc1.outFeatures]);
    tracer.leaf(`${name}.scb.fc1`, this.scb.fc1, [n, this.channels * this.temporalSize]);
    tracer.leaf(`${name}.scb.fc2`, this.scb.fc2, [n, this.scb.fc1.outFeatures]);
    return [...shape];
  }
}
