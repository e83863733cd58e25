import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { native } from './native.js';
import { callNative, operatorTypes, operatorSchema } from './ops.js';
import { ArgumentError } from './errors.js';
import { Tensor } from './tensor.js';
import type { Handle } from './native.js';
import { scopeDepth } from './scope.js';
import { UserError } from '../util/errors.js';

let flagsRead: ReadonlySet<string> | null | undefined;

/** This CPU's feature flags as /proc/cpuinfo lists them (avx2, avx512f, avx512_bf16, …); null where it cannot be read. */
export function cpuFlags(): ReadonlySet<string> | null {
  if (flagsRead === undefined) {
    try {
      flagsRead = new Set(readFileSync('/proc/cpuinfo', 'utf8').match(/^flags\s*:(.*)$/m)?.[1]?.split(/\s+/) ?? []);
    } catch {
      flagsRead = null;
    }
  }
  return flagsRead;
}

/**
 * Runs `fn` (synchronous) with libtorch's operator profiler on and writes every operator it ran to `file` as
 * a Chrome trace (chrome://tracing, Perfetto; the format of PyTorch's torch.autograd.profiler): the
 * forward's, and the backward's, which libtorch's autograd engine runs on this thread for CPU tensors.
 * `operatorTimes` sums such a file by operator.
 */
export function profile<T>(file: string, fn: () => T): T {
  native.profileStart(file);
  try {
    const result = fn();
    if (result instanceof Promise) throw new ArgumentError('profile: fn must be synchronous (an operator after an await would be missed or misattributed)');
    return result;
  } finally {
    native.profileStop();
  }
}

/** One operator's total in a profile: calls, and the time inside it less that of the operators it called. */
export interface OperatorTime {
  name: string;
  calls: number;
  selfMs: number;
}

/**
 * The operators of a Chrome trace written by `profile` (or by PyTorch's
 * `torch.autograd.profiler.profile().export_chrome_trace`), by self time, the largest first.
 */
export function operatorTimes(file: string): OperatorTime[] {
  let events: { name: string; ph: string; ts: number; dur: number; tid: number | string }[];
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    events = (Array.isArray(parsed) ? parsed : (parsed as { traceEvents: unknown[] }).traceEvents) as typeof events;
  } catch (error) {
    throw new UserError(`operatorTimes: ${file} is not a readable Chrome trace: ${(error as Error).message}`);
  }
  // Summed in the trace's microseconds, so that the milliseconds are rounded once.
  const totals = new Map<string, { calls: number; selfUs: number }>();
  const byThread = new Map<string, typeof events>();
  for (const event of events) {
    if (event.ph !== 'X') continue;
    const key = String(event.tid);
    (byThread.get(key) ?? byThread.set(key, []).get(key)!).push(event);
  }
  for (const threadEvents of byThread.values()) {
    // Nested calls: an operator's self time is its duration less its children's.
    threadEvents.sort((a, b) => a.ts - b.ts || b.dur - a.dur);
    const open: { end: number; total: { calls: number; selfUs: number } }[] = [];
    for (const event of threadEvents) {
      while (open.length > 0 && open[open.length - 1]!.end <= event.ts) open.pop();
      const total = totals.get(event.name) ?? totals.set(event.name, { calls: 0, selfUs: 0 }).get(event.name)!;
      total.calls += 1;
      total.selfUs += event.dur;
      if (open.length > 0) open[open.length - 1]!.total.selfUs -= event.dur;
      open.push({ end: event.ts + event.dur, total });
    }
  }
  return [...totals].map(([name, { calls, selfUs }]) => ({ name, calls, selfMs: selfUs / 1000 })).sort((a, b) => b.selfMs - a.selfMs);
}

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

export function buildInfo(): { torchVersion: string; mkldnn: boolean; onednnFusion: boolean; cuda: boolean; parallelInfo: string } {
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
    const result = fn();
    if (result instanceof Promise) {
      throw new ArgumentError('noGrad(fn): fn returned a Promise; gradient mode is per call, so pass a synchronous function (wrap each step)');
    }
    return result;
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

function toNativeArg(value: unknown, type: string | undefined): unknown {
  if (value instanceof Tensor) {
    // A handle is a number: in a Scalar or int position it would be read as that number.
    if (type !== undefined && !type.startsWith('Tensor')) {
      throw new ArgumentError(`expected ${type} for this argument, got a Tensor (use tensor.item() for a number)`);
    }
    return value.handle;
  }
  // Handles are numbers too: a number meant as a tensor must never be read as one.
  if ((type === 'Tensor' || type === 'Tensor?') && (typeof value === 'number' || typeof value === 'boolean')) return [value];
  if ((type === 'Tensor' || type === 'Tensor?') && value !== null && value !== undefined) {
    throw new ArgumentError(`expected a Tensor or a number for a ${type} argument, got ${typeof value}`);
  }
  if (Array.isArray(value)) {
    return value.map((item) => {
      if (item instanceof Tensor) return item.handle;
      if (type?.startsWith('Tensor') && item !== null) throw new ArgumentError(`expected Tensors in a ${type} argument`);
      return item;
    });
  }
  return value;
}

function wrapReturn(value: unknown, type: string): unknown {
  if (type === 'Tensor' || type === 'Tensor?') return value === null ? null : new Tensor(value as Handle);
  if (type === 'Tensor[]') return (value as Handle[]).map((handle) => new Tensor(handle));
  return value;
}

/**
 * The escape hatch: calls any registered operator by qualified name and overload, e.g.
 * `callOp('aten::hardswish', x)` or `callOp('aten::clamp_min.Tensor', x, y)`. Arguments follow
 * the schema's order (see `operatorSchema(name)`); undefined takes the schema default; tensors
 * come back as Tensors (several outputs as an array).
 */
export function callOp(qualified: string, ...args: unknown[]): unknown {
  const types = operatorTypes(qualified);
  if (args.length > types.arguments.length) {
    throw new ArgumentError(`${qualified}: expected at most ${types.arguments.length} arguments, got ${args.length} (schema: ${operatorSchema(qualified)})`);
  }
  const result = callNative(qualified, args.map((arg, i) => toNativeArg(arg, types.arguments[i])));
  // An in-place operator may have changed a tensor argument's shape or dtype (unsqueeze_, resize_).
  for (const arg of args) if (arg instanceof Tensor) arg.invalidateMetadata();
  if (types.returns.length === 1) return wrapReturn(result, types.returns[0]!);
  return (result as unknown[]).map((value, i) => wrapReturn(value, types.returns[i]!));
}

/**
 * The default thread count: STCNET_THREADS when set (the test runner fixes it, so results do not depend
 * on the machine's core count), else every core; Debian's libtorch would otherwise use one.
 */
export function defaultThreads(env: NodeJS.ProcessEnv = process.env): number {
  const value = env.STCNET_THREADS;
  if (value === undefined || value === '') return availableParallelism();
  if (!/^[1-9][0-9]*$/.test(value.trim())) throw new UserError(`STCNET_THREADS: expected a positive integer, got '${value}'`);
  return Number(value.trim());
}

setNumThreads(defaultThreads());
