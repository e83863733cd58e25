import { basename, dirname, extname } from 'node:path';
import { existsSync, renameSync, statSync } from 'node:fs';
import { noGrad, tidy, isFloatingPoint, type Tensor } from '../engine/index.js';
import { readSafetensors, writeSafetensors } from '../nn/safetensors.js';
import { loadStateDict } from '../nn/weights.js';
import { UserError } from '../util/errors.js';
import { checkFolderCreatable, fsUserError, removeTemporary, temporarySibling } from '../util/fs.js';
import type { ZooModel } from './base.js';
import { loadModelCheckpoint, checkpointMetadata } from './checkpoint.js';
import { modelEntry, type AnyModelOptions } from './registry.js';

/**
 * PyTorch checkpoint → safetensors. With an architecture the weights are loaded strictly into it
 * and written as a self-describing checkpoint; without, the state dict is copied as it is. The
 * file is verified byte for byte before it takes the output's name, so a failure leaves nothing.
 */

export interface ConvertOptions extends AnyModelOptions {
  /** Load strictly into this architecture and record it (and every option) in the output. */
  arch?: string;
  /** A dotted path to the state dict inside the checkpoint (found automatically when omitted). */
  key?: string;
  /** Removed from every key that has it (default: `module.` when every key has it). */
  stripPrefix?: string;
}

export interface ConvertResult {
  tensors: number;
  /** Trainable parameters with an arch; elements of every tensor without. */
  elements: number;
  /** Tensors holding NaN or ±Inf (copied exactly; the caller warns). */
  nonFinite: string[];
  /** The model's options, with an arch. */
  options?: AnyModelOptions;
}

export function convertCheckpoint(input: string, output: string, options: ConvertOptions = {}): ConvertResult {
  const { arch, key, stripPrefix, ...modelOptions } = options;
  if (extname(output).toLowerCase() !== '.safetensors') throw new UserError(`${output}: the output must end in .safetensors`);
  if (!existsSync(input)) throw new UserError(`${input}: no such weights file`);
  // The output's place is checked before the (possibly long) load: a folder of that name, or a file
  // where its folder should be, would otherwise fail only at the final rename.
  checkFolderCreatable(dirname(output));
  if (statSync(output, { throwIfNoEntry: false })?.isDirectory()) throw new UserError(`${output}: is a folder, expected a file`);
  if (arch !== undefined) {
    const entry = modelEntry(arch);
    const unknown = Object.keys(modelOptions).filter((name) => (modelOptions as Record<string, unknown>)[name] !== undefined && !entry.options.includes(name));
    if (unknown.length > 0) throw new UserError(`${arch} does not take ${unknown.join(', ')}; it takes ${entry.options.filter((o) => o !== 'init').join(', ')}`);
  }
  let model: ZooModel | undefined;
  let dict: Map<string, Tensor> | undefined;
  const temporary = temporarySibling(output);
  try {
    let tensors: Map<string, Tensor>;
    let metadata: Record<string, string>;
    if (arch !== undefined) {
      model = loadModelCheckpoint(input, { ...modelOptions, arch, key, stripPrefix }).model;
      tensors = model.stateDict();
      metadata = checkpointMetadata(model, { extra: { source: basename(input) } });
    } else {
      dict = loadStateDict(input, { key, stripPrefix });
      tensors = dict;
      metadata = { format: 'pt', source: basename(input) };
    }
    const nonFinite = nonFiniteTensors(tensors);
    writeSafetensors(temporary, tensors, metadata);
    verify(temporary, output, tensors);
    renameSync(temporary, output);
    return {
      tensors: tensors.size,
      elements: model ? model.parameterCount() : [...tensors.values()].reduce((n, t) => n + t.numel, 0),
      nonFinite,
      ...(model ? { options: model.options } : {}),
    };
  } catch (error) {
    removeTemporary(temporary);
    throw fsUserError(error, output);
  } finally {
    model?.dispose();
    if (dict) for (const tensor of dict.values()) tensor.dispose();
  }
}

/** Names of floating-point tensors holding NaN or ±Inf. */
export function nonFiniteTensors(tensors: Map<string, Tensor>): string[] {
  const names: string[] = [];
  for (const [name, tensor] of tensors) {
    if (!isFloatingPoint(tensor.dtype)) continue;
    if (!tidy(() => noGrad(() => tensor.isfinite().all().item() !== 0))) names.push(name);
  }
  return names;
}

/** The same bytes: NaN payloads included, which an elementwise comparison would call different. */
export function sameBytes(a: Tensor, b: Tensor): boolean {
  if (a.dtype !== b.dtype || a.shape.join() !== b.shape.join()) return false;
  const bytes = (t: Tensor) => {
    const data = t.toTypedArray();
    return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  };
  return bytes(a).equals(bytes(b));
}

/** Re-reads the written file; any difference is a bug, reported as one (never the user's fault). */
function verify(written: string, output: string, expected: Map<string, Tensor>): void {
  const { tensors } = readSafetensors(written);
  try {
    const differing = [...expected].filter(([name, tensor]) => !tensors.has(name) || !sameBytes(tensor, tensors.get(name)!)).map(([name]) => name);
    const extra = [...tensors.keys()].filter((name) => !expected.has(name));
    if (differing.length > 0 || extra.length > 0) {
      throw new Error(`convert: ${output} would not read back as written (${[...differing, ...extra].slice(0, 5).join(', ')}); nothing was written`);
    }
  } finally {
    for (const tensor of tensors.values()) tensor.dispose();
  }
}
