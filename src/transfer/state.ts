import { existsSync } from 'node:fs';
import { z } from 'zod';
import { parseJsonWith } from '../util/json.js';
import { dispose, type Tensor } from '../engine/index.js';
import { readSafetensors, writeSafetensors } from '../nn/safetensors.js';
import { StateDictError, type Module } from '../nn/index.js';
import type { Optimizer } from '../optim/optimizer.js';
import { packOptimizerState, unpackOptimizerState } from '../optim/state.js';
import type { LRScheduler, SchedulerState } from '../optim/schedules.js';
import { UserError } from '../util/errors.js';
import { fsUserError } from '../util/fs.js';

/**
 * Where a transfer run stands, for `--resume`: the student's and the head's weights (`student.*`,
 * `head.*`), the optimizer's tensors (`optimizer.*`) and this JSON in the metadata, in one
 * safetensors file written atomically. Pairs are regenerated from (seed, epoch) and libtorch's
 * generator is reseeded per batch, so these numbers are all a resumed run needs.
 */
export interface TransferState {
  format: 'stcnet-transfer-state';
  /** The epoch in progress (0-based) and its next batch. */
  epoch: number;
  nextBatch: number;
  globalStep: number;
  batchesPerEpoch: number;
  scheduler: SchedulerState;
  epochTotals: TransferTotals;
  best: { epoch: number; metric: number; name: string } | null;
}

export interface TransferTotals {
  lossSum: number;
  correct: number;
  pairs: number;
  waitSeconds: number;
  busySeconds: number;
  teacherSeconds: number;
}

export const emptyTransferTotals = (): TransferTotals => ({ lossSum: 0, correct: 0, pairs: 0, waitSeconds: 0, busySeconds: 0, teacherSeconds: 0 });

const STATE_KEY = 'transfer_state';

const totalsSchema = z.object({
  lossSum: z.number(), correct: z.number(), pairs: z.number(), waitSeconds: z.number(), busySeconds: z.number(), teacherSeconds: z.number(),
});
const stateSchema = z.object({
  format: z.literal('stcnet-transfer-state'),
  epoch: z.number().int().nonnegative(),
  nextBatch: z.number().int().nonnegative(),
  globalStep: z.number().int().nonnegative(),
  batchesPerEpoch: z.number().int().positive(),
  scheduler: z.looseObject({ epoch: z.number(), baseLrs: z.array(z.number()), lrs: z.array(z.number()) }),
  epochTotals: totalsSchema,
  best: z.object({ epoch: z.number(), metric: z.number(), name: z.string() }).nullable(),
});

export function saveTransferState(file: string, parts: { student: Module; head: Module }, optimizer: Optimizer, scheduler: LRScheduler,
  state: Omit<TransferState, 'format' | 'scheduler'>): void {
  const full: TransferState = { format: 'stcnet-transfer-state', ...state, scheduler: scheduler.stateDict() };
  const packed = packOptimizerState(optimizer);
  const tensors = new Map<string, Tensor>();
  for (const [name, tensor] of parts.student.stateDict()) tensors.set(`student.${name}`, tensor);
  for (const [name, tensor] of parts.head.stateDict()) tensors.set(`head.${name}`, tensor);
  for (const [name, tensor] of packed.tensors) tensors.set(name, tensor);
  try {
    writeSafetensors(file, tensors, { ...packed.metadata, [STATE_KEY]: JSON.stringify(full) });
  } catch (error) {
    throw fsUserError(error, file);
  }
}

/** Restores student, head, optimizer and scheduler from a state file (built as the run built them); returns the state. */
export function loadTransferState(file: string, parts: { student: Module; head: Module }, optimizer: Optimizer, scheduler: LRScheduler): TransferState {
  if (!existsSync(file)) throw new UserError(`--resume: ${file} is missing; the run was stopped before its first checkpoint (start it again instead)`);
  let contents;
  try {
    contents = readSafetensors(file);
  } catch (error) {
    throw fsUserError(error, file);
  }
  const { tensors, metadata } = contents;
  try {
    const text = metadata[STATE_KEY];
    if (text === undefined) throw new UserError(`${file}: not a transfer state (no "${STATE_KEY}" metadata)`);
    const parsed = parseJsonWith(stateSchema, text, file, 'transfer state');
    const byPrefix = (prefix: string) => new Map([...tensors].filter(([name]) => name.startsWith(prefix)).map(([name, t]) => [name.slice(prefix.length), t]));
    for (const [prefix, module] of [['student.', parts.student], ['head.', parts.head]] as const) {
      try {
        module.loadStateDict(byPrefix(prefix), { strict: true });
      } catch (error) {
        if (error instanceof StateDictError) throw new UserError(`${file}: the saved ${prefix.slice(0, -1)} does not fit the run's:\n${error.message}`);
        throw error;
      }
    }
    unpackOptimizerState(optimizer, new Map([...tensors].filter(([name]) => name.startsWith('optimizer.'))), metadata, 'optimizer.', file);
    const state = parsed as TransferState;
    scheduler.loadStateDict(state.scheduler);
    return state;
  } finally {
    dispose([...tensors.values()]);
  }
}
