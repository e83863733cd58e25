import { readFileSync } from 'node:fs';
import type { Tensor } from '../../src/engine/index.js';
import { repoRoot } from '../helpers.js';

/** Fixtures made by scripts/reference/weights.py (committed; regenerate with `... make test/fixtures/weights`). */
export const WEIGHTS = `${repoRoot}/test/fixtures/weights/`;
/** What the malicious fixtures would create in the working folder if anything ran them. */
export const PWNED_MARKER = 'stcnet-fixture-pwned';

export interface ExpectedTensor { dtype: string; shape: number[]; values: number[] }

export function expectedTensors(): Record<string, ExpectedTensor> {
  return JSON.parse(readFileSync(`${WEIGHTS}expected.json`, 'utf8')) as Record<string, ExpectedTensor>;
}


/** A tensor in the fixture's terms: dtype, shape and exact values (half types widened). */
export function describe(tensor: Tensor): ExpectedTensor {
  return { dtype: tensor.dtype, shape: tensor.shape, values: tensor.toArray() };
}
