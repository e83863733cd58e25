import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import { fsUserError } from '../util/fs.js';

/**
 * RUN_DIR|CHECKPOINT as eval and predict take it, resolved without loading libtorch, so a wrong
 * path fails at once.
 */

/** A checkpoint file, and the run folder it belongs to when there is one (config.json beside it). */
export interface ModelSource {
  checkpoint: string;
  runDir?: string;
  /** The run's config.json (flag names as keys), unvalidated. */
  runConfig?: Record<string, unknown>;
}

/** Checkpoint names tried in a run folder, in order. */
const RUN_CHECKPOINTS = ['best.safetensors', 'last.safetensors', 'checkpoints/best.safetensors', 'checkpoints/last.safetensors'];

/** Resolves RUN_DIR|CHECKPOINT: a folder gives its best checkpoint, else its last. */
export function resolveModelSource(target: string): ModelSource {
  if (!existsSync(target)) throw new UserError(`${target}: no such checkpoint file or run folder`);
  let isDir: boolean;
  try {
    isDir = statSync(target).isDirectory();
  } catch (error) {
    throw fsUserError(error, target);
  }
  if (isDir) {
    const found = RUN_CHECKPOINTS.map((name) => path.join(target, name)).find((file) => existsSync(file));
    if (!found) throw new UserError(`${target}: a folder without a checkpoint (expected ${RUN_CHECKPOINTS.slice(0, 2).join(' or ')} of a stcnet train run)`);
    const runDir = existsSync(path.join(target, 'config.json')) ? target : undefined;
    return { checkpoint: found, ...(runDir ? { runDir, runConfig: readRunConfig(runDir) } : {}) };
  }
  // A checkpoint inside a run folder still finds the run's dataset settings.
  const dir = path.dirname(target);
  const runDir = [dir, path.dirname(dir)].find((d) => existsSync(path.join(d, 'config.json')) && existsSync(path.join(d, 'metrics.jsonl')));
  return { checkpoint: target, ...(runDir ? { runDir, runConfig: readRunConfig(runDir) } : {}) };
}

function readRunConfig(runDir: string): Record<string, unknown> {
  const file = path.join(runDir, 'config.json');
  let value: unknown;
  try {
    value = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw error instanceof SyntaxError ? new UserError(`${file}: not valid JSON (${error.message})`) : fsUserError(error, file);
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw new UserError(`${file}: expected a JSON object of run settings`);
  return value as Record<string, unknown>;
}
