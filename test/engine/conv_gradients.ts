import assert from 'node:assert/strict';
import { F, tidy, memory, setConvAlgorithm, getConvAlgorithm, type Tensor } from '../../src/engine/index.js';

// What the tests of stcnet's training convolutions share: comparisons, and the output and gradients of
// a convolution for fresh leaves.

export function maxAbs(t: Tensor): number {
  return tidy(() => t.abs().max().item());
}

/** The largest difference relative to the largest value of `expected`. */
export function relativeError(got: Tensor, expected: Tensor): number {
  return maxAbs(got.sub(expected)) / Math.max(maxAbs(expected), 1e-30);
}

/** fn with the given convolution algorithm, the caller's restored afterwards. */
export function withConvAlgorithm<T>(algorithm: F.ConvAlgorithm, fn: () => T): T {
  const previous = getConvAlgorithm();
  setConvAlgorithm(algorithm);
  try {
    return fn();
  } finally {
    setConvAlgorithm(previous);
  }
}

export interface Gradients {
  output: Tensor;
  input: Tensor | null;
  weight: Tensor | null;
  bias: Tensor | null;
}

/**
 * The output of conv(x, w, b) and the gradients of Σ output·g for fresh leaves copied from x, w and b
 * (g: a tensor of the output's shape, or made from that shape).
 */
export function gradients(conv: (x: Tensor, w: Tensor, b: Tensor | null) => Tensor, x: Tensor, w: Tensor, b: Tensor | null,
  g: Tensor | ((shape: number[]) => Tensor), needs: { input: boolean; weight: boolean } = { input: true, weight: true }): Gradients {
  const input = x.clone().requiresGrad_(needs.input);
  const weight = w.clone().requiresGrad_(needs.weight);
  const bias = b?.clone().requiresGrad_() ?? null;
  const output = conv(input, weight, bias);
  output.mul(typeof g === 'function' ? g([...output.shape]) : g).sum().backward();
  return { output: output.detach(), input: input.grad, weight: weight.grad, bias: bias?.grad ?? null };
}

/** Every output and gradient of `got` within `tolerance` (relative) of `expected`'s; null where it is null. */
export function assertSameGradients(got: Gradients, expected: Gradients, what: string, tolerance = 1e-5): void {
  for (const key of ['output', 'input', 'weight', 'bias'] as const) {
    const expectedValue = expected[key];
    if (expectedValue === null) assert.equal(got[key], null, `${what}: ${key} gradient`);
    else assert.ok(relativeError(got[key]!, expectedValue) < tolerance, `${what}: ${key}${key === 'output' ? '' : ' gradient'}`);
  }
}

/**
 * Many training steps' worth of conv(x, w) and its backward pass leave no tensors behind: the live count
 * after 30 more steps equals the count after the first.
 */
export function assertStepsLeakNothing(conv: (x: Tensor, w: Tensor) => Tensor, x: Tensor, w: Tensor): void {
  const step = (): void => tidy(() => {
    conv(x, w).square().sum().backward();
    w.grad!.zero_();
  });
  step();
  const during = memory().tensors;
  for (let i = 0; i < 30; i++) step();
  assert.equal(memory().tensors, during);
}
