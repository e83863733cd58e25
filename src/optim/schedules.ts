import { UserError } from '../util/errors.js';
import type { Optimizer } from './optimizer.js';

/**
 * Learning-rate schedules. Each scheduler owns one optimizer's group lrs: `step()` advances one
 * period (an epoch or an iteration, as the caller counts) and writes the new lrs into the
 * groups. Lrs are computed from each group's base lr (its lr when the first scheduler attached),
 * in closed form where the schedule has one, and match torch.optim.lr_scheduler's values.
 * Compose warm-up with any other schedule by passing that schedule as `then`.
 */

/** A scheduler's state: plain numbers and arrays, JSON-serialisable. */
export type SchedulerState = { epoch: number; baseLrs: number[]; lrs: number[] } & Record<string, unknown>;

type AnyOptimizer = Optimizer;

export abstract class LRScheduler {
  /** Each group's lr before any scheduling. */
  readonly baseLrs: number[];
  /** How many times step() has run since the start (or the last restart()). */
  epoch = 0;
  #lrs: number[];

  constructor(readonly optimizer: AnyOptimizer) {
    this.baseLrs = optimizer.paramGroups.map((group) => (group.initialLr ??= group.lr));
    this.#lrs = [...this.baseLrs];
  }

  /** The lrs the groups hold now. */
  get lrs(): number[] {
    return [...this.#lrs];
  }

  /** Advances one period; `metric` is required by ReduceLROnPlateau and ignored by the others. */
  step(metric?: number): void {
    this.epoch += 1;
    this.apply(this.advance(this.epoch, metric));
  }

  /** Back to epoch 0 with a fresh state (used when warm-up hands over). */
  restart(): void {
    this.epoch = 0;
    this.reset();
    this.apply(this.initialLrs());
  }

  stateDict(): SchedulerState {
    return { epoch: this.epoch, baseLrs: [...this.baseLrs], lrs: this.lrs, ...this.extraState() };
  }

  loadStateDict(state: SchedulerState): void {
    if (!Array.isArray(state.baseLrs) || state.baseLrs.length !== this.baseLrs.length) {
      throw new UserError(`${this.constructor.name}.loadStateDict: the state is for ${state.baseLrs?.length ?? '?'} parameter groups, the optimizer has ${this.baseLrs.length}`);
    }
    this.epoch = state.epoch;
    this.baseLrs.splice(0, this.baseLrs.length, ...state.baseLrs);
    this.optimizer.paramGroups.forEach((group, i) => { group.initialLr = state.baseLrs[i]; });
    this.loadExtraState(state);
    this.apply(state.lrs);
  }

  /** The lrs at epoch 0; subclasses call this.apply(this.initialLrs()) at the end of their constructor. */
  protected initialLrs(): number[] {
    return [...this.baseLrs];
  }

  /** The lrs after `epoch` steps. */
  protected abstract advance(epoch: number, metric: number | undefined): number[];
  protected reset(): void {}
  protected extraState(): Record<string, unknown> { return {}; }
  protected loadExtraState(_state: SchedulerState): void {}

  protected apply(lrs: number[]): void {
    this.#lrs = [...lrs];
    this.optimizer.paramGroups.forEach((group, i) => { group.lr = lrs[i]!; });
  }
}

/** Schedules that are a function of the epoch and the base lr. */
abstract class ClosedFormScheduler extends LRScheduler {
  protected abstract lrAt(baseLr: number, epoch: number): number;
  protected advance(epoch: number): number[] {
    return this.baseLrs.map((base) => this.lrAt(base, epoch));
  }
}

function check(ok: boolean, scheduler: string, message: string): void {
  if (!ok) throw new UserError(`${scheduler}: ${message}`);
}

/** lr = base · γ^⌊epoch / stepSize⌋ (torch's StepLR). */
export class StepLR extends ClosedFormScheduler {
  readonly stepSize: number;
  readonly gamma: number;
  constructor(optimizer: AnyOptimizer, options: { stepSize: number; gamma?: number }) {
    super(optimizer);
    check(Number.isInteger(options.stepSize) && options.stepSize > 0, 'StepLR', `stepSize must be a positive integer, got ${options.stepSize}`);
    this.stepSize = options.stepSize;
    this.gamma = options.gamma ?? 0.1;
    this.apply(this.initialLrs());
  }
  protected lrAt(base: number, epoch: number): number {
    return base * this.gamma ** Math.floor(epoch / this.stepSize);
  }
}

/** lr = base · γ^(number of milestones ≤ epoch) (torch's MultiStepLR). */
export class MultiStepLR extends ClosedFormScheduler {
  readonly milestones: number[];
  readonly gamma: number;
  constructor(optimizer: AnyOptimizer, options: { milestones: number[]; gamma?: number }) {
    super(optimizer);
    check(options.milestones.every((m) => Number.isInteger(m) && m > 0), 'MultiStepLR', `milestones must be positive integers, got ${JSON.stringify(options.milestones)}`);
    this.milestones = [...options.milestones].sort((a, b) => a - b);
    this.gamma = options.gamma ?? 0.1;
    this.apply(this.initialLrs());
  }
  protected lrAt(base: number, epoch: number): number {
    return base * this.gamma ** this.milestones.filter((m) => m <= epoch).length;
  }
}

/**
 * lr = η_min + (base − η_min)(1 + cos(π·epoch/tMax))/2 (torch's CosineAnnealingLR); past tMax
 * it rises again, as PyTorch's does.
 */
export class CosineAnnealingLR extends ClosedFormScheduler {
  readonly tMax: number;
  readonly etaMin: number;
  constructor(optimizer: AnyOptimizer, options: { tMax: number; etaMin?: number }) {
    super(optimizer);
    check(Number.isInteger(options.tMax) && options.tMax > 0, 'CosineAnnealingLR', `tMax must be a positive integer, got ${options.tMax}`);
    this.tMax = options.tMax;
    this.etaMin = options.etaMin ?? 0;
    this.apply(this.initialLrs());
  }
  protected lrAt(base: number, epoch: number): number {
    return this.etaMin + ((base - this.etaMin) * (1 + Math.cos((Math.PI * epoch) / this.tMax))) / 2;
  }
}

export interface WarmupOptions {
  /** Warm-up length in steps; the base lr is reached at this epoch. */
  epochs: number;
  /** The fraction of the base lr at epoch 0 (PyTorch LinearLR's start_factor; default 1/3). */
  startFactor?: number;
  /**
   * The schedule that takes over at `epochs`, restarted at its epoch 0 then (as PyTorch's
   * SequentialLR([LinearLR, then], milestones=[epochs])); without it the lr stays at the base.
   */
  then?: LRScheduler;
}

/** Linear warm-up: lr = base · (s + (1 − s)·epoch/epochs) for epoch < epochs, then `then`. */
export class LinearWarmup extends LRScheduler {
  readonly epochs: number;
  readonly startFactor: number;
  readonly then: LRScheduler | undefined;
  constructor(optimizer: AnyOptimizer, options: WarmupOptions) {
    super(optimizer);
    check(Number.isInteger(options.epochs) && options.epochs > 0, 'LinearWarmup', `epochs must be a positive integer, got ${options.epochs}`);
    const startFactor = options.startFactor ?? 1 / 3;
    check(startFactor > 0 && startFactor <= 1, 'LinearWarmup', `startFactor must be in (0, 1], got ${startFactor}`);
    check(!options.then || options.then.optimizer === optimizer, 'LinearWarmup', '`then` must schedule the same optimizer');
    this.epochs = options.epochs;
    this.startFactor = startFactor;
    this.then = options.then;
    this.apply(this.initialLrs());
  }
  protected override initialLrs(): number[] {
    return this.baseLrs.map((base) => base * this.startFactor);
  }
  protected advance(epoch: number, metric: number | undefined): number[] {
    if (epoch < this.epochs) return this.baseLrs.map((base) => base * (this.startFactor + ((1 - this.startFactor) * epoch) / this.epochs));
    if (!this.then) return [...this.baseLrs];
    if (epoch === this.epochs) this.then.restart();
    else this.then.step(metric);
    return this.then.lrs;
  }
  protected override reset(): void {
    this.then?.restart();
  }
  protected override extraState(): Record<string, unknown> {
    return this.then ? { then: this.then.stateDict() } : {};
  }
  protected override loadExtraState(state: SchedulerState): void {
    if (this.then && state.then) this.then.loadStateDict(state.then as SchedulerState);
  }
}

export interface PlateauOptions {
  /** 'min': lower metrics are better (a loss); 'max': higher are better (an accuracy). */
  mode?: 'min' | 'max';
  /** lr ·= factor on a plateau (default 0.1). */
  factor?: number;
  /** Steps without improvement tolerated before reducing (default 10). */
  patience?: number;
  /** Improvement must beat best by this much (default 1e-4)... */
  threshold?: number;
  /** ...relative to best ('rel', default) or absolute ('abs'). */
  thresholdMode?: 'rel' | 'abs';
  /** Steps to wait after a reduction before counting again (default 0). */
  cooldown?: number;
  /** A floor, for all groups or per group (default 0). */
  minLr?: number | number[];
  /** Reductions smaller than this are skipped (default 1e-8). */
  eps?: number;
}

/** Reduces lrs by `factor` when a metric stops improving (torch's ReduceLROnPlateau). step(metric) each period. */
export class ReduceLROnPlateau extends LRScheduler {
  readonly mode: 'min' | 'max';
  readonly factor: number;
  readonly patience: number;
  readonly threshold: number;
  readonly thresholdMode: 'rel' | 'abs';
  readonly cooldown: number;
  readonly minLrs: number[];
  readonly eps: number;
  best = Infinity;
  badEpochs = 0;
  cooldownCounter = 0;
  #current: number[];

  constructor(optimizer: AnyOptimizer, options: PlateauOptions = {}) {
    super(optimizer);
    this.mode = options.mode ?? 'min';
    this.factor = options.factor ?? 0.1;
    this.patience = options.patience ?? 10;
    this.threshold = options.threshold ?? 1e-4;
    this.thresholdMode = options.thresholdMode ?? 'rel';
    this.cooldown = options.cooldown ?? 0;
    this.eps = options.eps ?? 1e-8;
    const minLr = options.minLr ?? 0;
    this.minLrs = Array.isArray(minLr) ? [...minLr] : this.baseLrs.map(() => minLr);
    check(this.mode === 'min' || this.mode === 'max', 'ReduceLROnPlateau', `mode must be "min" or "max", got ${String(this.mode)}`);
    check(this.factor > 0 && this.factor < 1, 'ReduceLROnPlateau', `factor must be in (0, 1), got ${this.factor}`);
    check(this.thresholdMode === 'rel' || this.thresholdMode === 'abs', 'ReduceLROnPlateau', `thresholdMode must be "rel" or "abs"`);
    check(this.minLrs.length === this.baseLrs.length, 'ReduceLROnPlateau', `minLr has ${this.minLrs.length} values for ${this.baseLrs.length} groups`);
    this.#current = [...this.baseLrs];
    this.reset();
    this.apply(this.initialLrs());
  }

  protected override reset(): void {
    this.best = this.mode === 'min' ? Infinity : -Infinity;
    this.badEpochs = 0;
    this.cooldownCounter = 0;
    this.#current = [...this.baseLrs];
  }

  isBetter(value: number, best: number): boolean {
    if (this.mode === 'min') return this.thresholdMode === 'rel' ? value < best * (1 - this.threshold) : value < best - this.threshold;
    return this.thresholdMode === 'rel' ? value > best * (this.threshold + 1) : value > best + this.threshold;
  }

  protected advance(_epoch: number, metric: number | undefined): number[] {
    if (metric === undefined) throw new UserError('ReduceLROnPlateau.step(metric): the metric is required');
    const value = metric;
    if (this.isBetter(value, this.best)) {
      this.best = value;
      this.badEpochs = 0;
    } else {
      this.badEpochs += 1;
    }
    if (this.cooldownCounter > 0) {
      this.cooldownCounter -= 1;
      this.badEpochs = 0;
    }
    if (this.badEpochs > this.patience) {
      this.#current = this.#current.map((lr, i) => {
        const reduced = Math.max(lr * this.factor, this.minLrs[i]!);
        return lr - reduced > this.eps ? reduced : lr;
      });
      this.cooldownCounter = this.cooldown;
      this.badEpochs = 0;
    }
    return [...this.#current];
  }

  protected override extraState(): Record<string, unknown> {
    // JSON has no Infinity: the untouched best is written as a string.
    return { best: Number.isFinite(this.best) ? this.best : String(this.best), badEpochs: this.badEpochs, cooldownCounter: this.cooldownCounter, current: [...this.#current] };
  }

  protected override loadExtraState(state: SchedulerState): void {
    this.best = Number(state.best);
    this.badEpochs = state.badEpochs as number;
    this.cooldownCounter = state.cooldownCounter as number;
    this.#current = [...(state.current as number[])];
  }
}
