import { availableParallelism } from 'node:os';
import { native } from './native.js';
import { callNative } from './ops.js';
import { ArgumentError } from './errors.js';
import { Tensor, wrapResult } from './tensor.js';
import { scopeDepth } from './scope.js';

/** Sets libtorch's intra-op threads (Debian's libtorch starts with one). */
export function setNumThreads(threads: number): void {
  if (!Number.isInteger(threads) || threads < 1) throw new ArgumentError(`setNumThreads: expected a positive integer, got ${threads}`);
  native.setNumThreads(threads);
}

export function getNumThreads(): number {
  return native.numThreads();
}

/** Seeds libtorch's CPU (and CUDA) generators: rand, randn, dropout and init become repeatable. */
export function manualSeed(seed: number): void {
  if (!Number.isSafeInteger(seed) || seed < 0) throw new ArgumentError(`manualSeed: expected a non-negative integer, got ${seed}`);
  native.manualSeed(seed);
}

export function cudaAvailable(): boolean {
  return native.cudaDeviceCount() > 0;
}

export function cudaDeviceCount(): number {
  return native.cudaDeviceCount();
}

export function buildInfo(): { torchVersion: string; mkldnn: boolean; cuda: boolean; parallelInfo: string } {
  return native.buildInfo();
}

export interface MemoryReport {
  /** Tensors whose handles are alive (not disposed, not yet collected). */
  tensors: number;
  /** Bytes of the storages those tensors own (views excluded). */
  bytes: number;
  /** How many tidy() scopes are open. */
  scopes: number;
}

export function memory(): MemoryReport {
  return { ...native.memory(), scopes: scopeDepth() };
}

/** Runs fn with gradient recording off (inference, optimizer updates). */
export function noGrad<T>(fn: () => T): T {
  const previous = native.gradEnabled();
  native.setGradEnabled(false);
  try {
    return fn();
  } finally {
    native.setGradEnabled(previous);
  }
}

export function isGradEnabled(): boolean {
  return native.gradEnabled();
}

export function setGradEnabled(enabled: boolean): void {
  native.setGradEnabled(enabled);
}

function toNativeArg(value: unknown): unknown {
  if (value instanceof Tensor) return value.handle;
  if (Array.isArray(value)) return value.map(toNativeArg);
  return value;
}

/**
 * The escape hatch: calls any registered operator by qualified name and overload, e.g.
 * `callOp('aten::hardswish', x)` or `callOp('aten::clamp_min.Tensor', x, y)`. Arguments follow
 * the schema's order (see `operatorSchema(name)`); undefined takes the schema default; tensors
 * come back as Tensors (several outputs as an array).
 */
export function callOp(qualified: string, ...args: unknown[]): unknown {
  return wrapResult(callNative(qualified, args.map(toNativeArg)));
}

// The default: every core. Debian's libtorch would otherwise use one.
setNumThreads(availableParallelism());
