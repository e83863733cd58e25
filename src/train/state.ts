import { existsSync } from 'node:fs';
import { z } from 'zod';
import { parseJsonWith } from '../util/json.js';
import { dispose, type Tensor } from '../engine/index.js';
import { readSafetensors } from '../nn/safetensors.js';
import { StateDictError } from '../nn/index.js';
import type { Optimizer } from '../optim/optimizer.js';
import { packOptimizerState, unpackOptimizerState } from '../optim/state.js';
import type { LRScheduler, SchedulerState } from '../optim/schedules.js';
import { saveModelCheckpoint, type Preprocessing } from '../models/checkpoint.js';
import type { ZooModel } from '../models/base.js';
import { UserError } from '../util/errors.js';
import { fsUserError } from '../util/fs.js';

/**
 * The training state: where a run stands, so that `--resume` continues it exactly. It is stored
 * as a complete model checkpoint (weights and metadata, as `saveModelCheckpoint` writes them) with
 * the optimizer's tensors beside the weights and this JSON in the metadata, in one file written
 * atomically: a kill at any moment leaves either the previous state or the new one, never a mix.
 */
export interface TrainingState {
  format: 'stcnet-train-state';
  /** The epoch in progress (0-based) and the next batch of it; nextBatch = batchesPerEpoch: trained, not yet validated. */
  epoch: number;
  nextBatch: number;
  /** Optimizer steps taken so far. */
  globalStep: number;
  /**
   * Randomness: the loader draws every sample from (seed, epoch, position) and libtorch's
   * generator is reseeded from (seed, epoch, batch) before each batch, so these numbers are all
   * that data order and dropout need to continue identically.
   */
  rng: { seed: number; epoch: number; batch: number };
  sampler: { seed: number; epoch: number; nextBatch: number; batchSize: number; batchesPerEpoch: number };
  scheduler: SchedulerState;
  /** Sums over the epoch so far (its record at the end includes the batches before a resume). */
  epochTotals: EpochTotals;
  best: { epoch: number; metric: number; name: string } | null;
}

export interface EpochTotals {
  lossSum: number;
  correct: number;
  clips: number;
  batches: number;
  waitSeconds: number;
  busySeconds: number;
}

export const emptyTotals = (): EpochTotals => ({ lossSum: 0, correct: 0, clips: 0, batches: 0, waitSeconds: 0, busySeconds: 0 });

const STATE_KEY = 'train_state';

const stateSchema = z.object({
  format: z.literal('stcnet-train-state'),
  epoch: z.number().int().nonnegative(),
  nextBatch: z.number().int().nonnegative(),
  globalStep: z.number().int().nonnegative(),
  rng: z.object({ seed: z.number(), epoch: z.number(), batch: z.number() }),
  sampler: z.object({ seed: z.number(), epoch: z.number(), nextBatch: z.number(), batchSize: z.number(), batchesPerEpoch: z.number() }),
  scheduler: z.looseObject({ epoch: z.number(), baseLrs: z.array(z.number()), lrs: z.array(z.number()) }),
  epochTotals: z.object({ lossSum: z.number(), correct: z.number(), clips: z.number(), batches: z.number(), waitSeconds: z.number(), busySeconds: z.number() }),
  best: z.object({ epoch: z.number(), metric: z.number(), name: z.string() }).nullable(),
});

export interface SaveStateOptions {
  classes: string[];
  preprocessing: Preprocessing;
}

/** Writes weights, optimizer and `state` to one file, atomically. */
export function saveTrainingState(file: string, model: ZooModel, optimizer: Optimizer, scheduler: LRScheduler,
  state: Omit<TrainingState, 'scheduler' | 'format'>, options: SaveStateOptions): void {
  const full: TrainingState = { format: 'stcnet-train-state', ...state, scheduler: scheduler.stateDict() };
  const packed = packOptimizerState(optimizer);
  saveModelCheckpoint(file, model, {
    classes: options.classes, preprocessing: options.preprocessing,
    extra: { ...packed.metadata, [STATE_KEY]: JSON.stringify(full) },
    extraTensors: packed.tensors,
  });
}

/**
 * Restores model weights, optimizer and scheduler from a state file; returns the state. The model
 * and optimizer must be built as the run built them (same config), which the caller ensures.
 */
export function loadTrainingState(file: string, model: ZooModel, optimizer: Optimizer, scheduler: LRScheduler): TrainingState {
  if (!existsSync(file)) throw new UserError(`${file}: missing; the run has no checkpoint to resume from (it was stopped before its first one)`);
  let contents;
  try {
    contents = readSafetensors(file);
  } catch (error) {
    throw fsUserError(error, file);
  }
  const { tensors, metadata } = contents;
  try {
    const text = metadata[STATE_KEY];
    if (text === undefined) throw new UserError(`${file}: not a training state (no "${STATE_KEY}" metadata)`);
    const parsed = parseJsonWith(stateSchema, text, file, 'training state');
    const weights = new Map<string, Tensor>();
    const others = new Map<string, Tensor>();
    for (const [name, tensor] of tensors) (name.startsWith('optimizer.') ? others : weights).set(name, tensor);
    try {
      model.loadStateDict(weights, { strict: true });
    } catch (error) {
      if (error instanceof StateDictError) throw new UserError(`${file}: the saved weights do not fit the run's model:\n${error.message}`);
      throw error;
    }
    unpackOptimizerState(optimizer, others, metadata, 'optimizer.', file);
    const state = parsed as TrainingState;
    scheduler.loadStateDict(state.scheduler);
    return state;
  } finally {
    dispose([...tensors.values()]);
  }
}
