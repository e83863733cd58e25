import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromTypedArray, type Tensor } from '../../src/engine/index.js';
import { runPython, tempDir } from '../helpers.js';

/** The PyTorch side of the model tests, generated once per test process into a temp dir (≈25 s, ≈1.3 GB). */
export interface ModelCase {
  case: string;
  arch: string;
  options: Record<string, unknown>;
  inputShape: number[];
  logitsShape: number[];
}

let dir: string | undefined;

export function fixtureDir(countsOnly = false): string {
  if (dir === undefined) {
    dir = tempDir('stcnet-models-');
    runPython('scripts/fixtures/models.py', countsOnly ? [dir, '--counts-only'] : [dir], 600_000);
  }
  return dir;
}

export function readF32(path: string, shape: number[]): Tensor {
  const bytes = readFileSync(path);
  const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength));
  return fromTypedArray(data, shape);
}

export function manifest(): ModelCase[] {
  return (JSON.parse(readFileSync(join(fixtureDir(), 'manifest.json'), 'utf8')) as { cases: ModelCase[] }).cases;
}

export function counts(countsOnly = false): Record<string, number> {
  return JSON.parse(readFileSync(join(fixtureDir(countsOnly), 'counts.json'), 'utf8')) as Record<string, number>;
}
