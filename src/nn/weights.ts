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
  /** Removed from the start of every key that has it: `module.` for DataParallel checkpoints. */
  stripPrefix?: string;
  /** A dotted path to the state dict inside a PyTorch checkpoint; found automatically when omitted. */
  key?: string;
}

const TORCH_EXTENSIONS = new Set(['.pt', '.pth', '.bin', '.ckpt', '.tar']);

/** Reads a state dict from `.safetensors`, or a torch.save file (`.pt`, `.pth`, zip-format `.bin`). */
export function loadStateDict(path: string, options: LoadStateDictOptions = {}): Map<string, Tensor> {
  if (!existsSync(path)) throw new UserError(`${path}: no such weights file`);
  const extension = extname(path).toLowerCase();
  if (extension === '.safetensors') {
    const { tensors } = readSafetensors(path);
    if (!options.stripPrefix) return tensors;
    return new Map([...tensors].map(([key, tensor]) => [key.startsWith(options.stripPrefix!) ? key.slice(options.stripPrefix!.length) : key, tensor]));
  }
  if (TORCH_EXTENSIONS.has(extension)) {
    const root = readTorchCheckpoint(path);
    let dict: Map<string, Tensor>;
    try {
      dict = findStateDict(root, { ...options, fileName: path });
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

/** Writes a state dict as safetensors (through a temporary file renamed into place). */
export function saveStateDict(path: string, dict: TensorDict, metadata?: Record<string, string>): void {
  writeSafetensors(path, dict, metadata);
}

export { readSafetensors, writeSafetensors, readTorchCheckpoint, findStateDict };
