import { z } from 'zod';
import type { Tensor } from '../engine/index.js';
import { readSafetensors, writeSafetensors } from '../nn/safetensors.js';
import { UserError } from '../util/errors.js';
import type { Optimizer, OptimizerStateDict, ParamState } from './optimizer.js';

/**
 * Optimizer state on disk, in safetensors: state tensors named `<prefix>state.<param>.<key>`,
 * and one metadata entry `<prefix>json` holding the groups, the numbers (step counts) and
 * whatever extra JSON the caller adds (scheduler states, the epoch). A trainer can pack the
 * optimizer into the same file as the model with pack/unpack, or use save/load for a file of its own.
 */

export interface PackedOptimizerState {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

interface StateJson {
  optimizer: string;
  paramGroups: OptimizerStateDict['paramGroups'];
  numbers: Record<string, Record<string, number>>;
  extra: Record<string, unknown>;
}

/** The shape a state file must have before any of it reaches an optimizer. */
const StateJsonSchema = z.object({
  optimizer: z.string(),
  paramGroups: z.array(z.looseObject({ params: z.array(z.number().int().nonnegative()) })),
  numbers: z.record(z.string(), z.record(z.string(), z.number())),
  extra: z.record(z.string(), z.unknown()),
});

/** The optimizer's state as safetensors tensors and metadata (the tensors are the optimizer's own). */
export function packOptimizerState(optimizer: Optimizer, extra: Record<string, unknown> = {}, prefix = 'optimizer.'): PackedOptimizerState {
  const dict = optimizer.stateDict();
  const tensors = new Map<string, Tensor>();
  const numbers: StateJson['numbers'] = {};
  for (const [index, state] of Object.entries(dict.state)) {
    for (const [key, value] of Object.entries(state)) {
      if (typeof value === 'number') (numbers[index] ??= {})[key] = value;
      else tensors.set(`${prefix}state.${index}.${key}`, value);
    }
  }
  const json: StateJson = { optimizer: optimizer.constructor.name, paramGroups: dict.paramGroups, numbers, extra };
  return { tensors, metadata: { [`${prefix}json`]: JSON.stringify(json) } };
}

/** Restores packOptimizerState() output into `optimizer`; returns the extra JSON. */
export function unpackOptimizerState(optimizer: Optimizer, tensors: Map<string, Tensor>, metadata: Record<string, string>,
  prefix = 'optimizer.', source = 'the checkpoint'): Record<string, unknown> {
  const text = metadata[`${prefix}json`];
  if (text === undefined) throw new UserError(`${source}: no optimizer state (metadata "${prefix}json" is missing)`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (error) {
    throw new UserError(`${source}: the optimizer state is not valid JSON (${(error as Error).message})`);
  }
  const checked = StateJsonSchema.safeParse(parsed);
  if (!checked.success) {
    const issue = checked.error.issues[0]!;
    throw new UserError(`${source}: the optimizer state is damaged (metadata "${prefix}json", field ${issue.path.join('.') || '(root)'}: ${issue.message})`);
  }
  const json = checked.data as StateJson;
  if (json.optimizer !== optimizer.constructor.name) {
    throw new UserError(`${source}: the optimizer state is for ${json.optimizer}, not ${optimizer.constructor.name}`);
  }
  const state: Record<string, ParamState> = {};
  for (const [index, values] of Object.entries(json.numbers)) state[index] = { ...values };
  const statePrefix = `${prefix}state.`;
  for (const [name, tensor] of tensors) {
    if (!name.startsWith(statePrefix)) continue;
    const rest = name.slice(statePrefix.length);
    const dot = rest.indexOf('.');
    (state[rest.slice(0, dot)] ??= {})[rest.slice(dot + 1)] = tensor;
  }
  optimizer.loadStateDict({ state, paramGroups: json.paramGroups });
  return json.extra;
}

/** Writes the optimizer's state (and `extra` JSON, e.g. scheduler states) to a safetensors file. */
export function saveOptimizerState(path: string, optimizer: Optimizer, extra: Record<string, unknown> = {}): void {
  const { tensors, metadata } = packOptimizerState(optimizer, extra);
  writeSafetensors(path, tensors, { format: 'stcnet-optimizer', ...metadata });
}

/** Restores an optimizer from saveOptimizerState()'s file; returns the extra JSON saved with it. */
export function loadOptimizerState(path: string, optimizer: Optimizer): Record<string, unknown> {
  const { tensors, metadata } = readSafetensors(path);
  try {
    return unpackOptimizerState(optimizer, tensors, metadata, 'optimizer.', path);
  } finally {
    for (const tensor of tensors.values()) tensor.dispose();
  }
}
