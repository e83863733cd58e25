import { extname } from 'node:path';
import { existsSync } from 'node:fs';
import type { Tensor } from '../engine/index.js';
import { UserError } from '../util/errors.js';
import { readSafetensors, writeSafetensors, type TensorDict } from './safetensors.js';
import { findStateDict, readTorchCheckpoint, tensorsIn } from './torchload.js';

/**
 * State dicts on disk: safetensors (our native format) and PyTorch torch.save checkpoints,
 * chosen by extension. Module.loadStateDict() then matches names and shapes.
 */

export interface LoadStateDictOptions {
  /**
   * Removed from the start of every key that has it. When omitted, `module.` (DataParallel's
   * wrapper) is removed if every key has it, as a model never names its own children so.
   */
  stripPrefix?: string;
  /** A dotted path to the state dict inside a PyTorch checkpoint; found automatically when omitted. */
  key?: string;
}

export const TORCH_EXTENSIONS: ReadonlySet<string> = new Set(['.pt', '.pth', '.bin', '.ckpt', '.tar']);

/** The prefix DataParallel and DistributedDataParallel put before every key. */
export const DATA_PARALLEL_PREFIX = 'module.';

/**
 * The keys with `prefix` removed where they have it; with no prefix given, `module.` is removed
 * when every key has it (and nothing changes otherwise). Returns a new Map sharing the tensors.
 */
export function stripKeyPrefix(dict: Map<string, Tensor>, prefix?: string): Map<string, Tensor> {
  let strip = prefix;
  if (strip === undefined) {
    const keys = [...dict.keys()];
    strip = keys.length > 0 && keys.every((key) => key.startsWith(DATA_PARALLEL_PREFIX)) ? DATA_PARALLEL_PREFIX : '';
  }
  if (!strip) return dict;
  const result = new Map<string, Tensor>();
  for (const [key, tensor] of dict) {
    const name = key.startsWith(strip) ? key.slice(strip.length) : key;
    if (result.has(name)) throw new UserError(`removing the prefix "${strip}" makes two keys "${name}"`);
    result.set(name, tensor);
  }
  return result;
}

/** Reads a state dict from `.safetensors`, or a torch.save file (`.pt`, `.pth`, zip-format `.bin`). */
export function loadStateDict(path: string, options: LoadStateDictOptions = {}): Map<string, Tensor> {
  if (!existsSync(path)) throw new UserError(`${path}: no such weights file`);
  const extension = extname(path).toLowerCase();
  if (extension === '.safetensors') {
    const { tensors } = readSafetensors(path);
    return withPrefixStripped(path, tensors, options.stripPrefix);
  }
  if (TORCH_EXTENSIONS.has(extension)) {
    const root = readTorchCheckpoint(path);
    let dict: Map<string, Tensor>;
    try {
      dict = withPrefixStripped(path, findStateDict(root, { key: options.key, fileName: path }), options.stripPrefix);
    } catch (error) {
      for (const tensor of tensorsIn(root)) tensor.dispose();
      throw error;
    }
    // Optimizer moments and other tensors in the checkpoint are not returned: free them now.
    const kept = new Set(dict.values());
    for (const tensor of tensorsIn(root)) if (!kept.has(tensor)) tensor.dispose();
    return dict;
  }
  throw new UserError(`${path}: unknown weights format "${extension}"; expected .safetensors, .pt or .pth`);
}

function withPrefixStripped(path: string, dict: Map<string, Tensor>, prefix: string | undefined): Map<string, Tensor> {
  try {
    return stripKeyPrefix(dict, prefix);
  } catch (error) {
    if (error instanceof UserError) {
      for (const tensor of dict.values()) tensor.dispose();
      throw new UserError(`${path}: ${error.message}`);
    }
    throw error;
  }
}

/** Writes a state dict as safetensors (through a temporary file renamed into place). */
export function saveStateDict(path: string, dict: TensorDict, metadata?: Record<string, string>): void {
  writeSafetensors(path, dict, metadata);
}

export { readSafetensors, writeSafetensors, readTorchCheckpoint, findStateDict };
