import { cpuFlags } from '../engine/runtime.js';
import { native } from '../engine/native.js';
import { UserError } from '../util/errors.js';

/**
 * Mixed precision by libtorch's autocast: inside `withAutocast`, convolutions and matrix products
 * run in bf16 (CPU, CUDA) or fp16 (CUDA) while reductions, softmax and the loss stay in float32,
 * as torch.autocast does. Parameters, gradients and optimizer state remain float32.
 */
export type AmpMode = 'none' | 'bf16' | 'fp16';

interface AutocastBinding {
  setAutocast(device: string, enabled: boolean, dtype: string): boolean;
  autocastClearCache(): void;
}

function binding(): AutocastBinding | undefined {
  const candidate = native as unknown as Partial<AutocastBinding>;
  return typeof candidate.setAutocast === 'function' ? candidate as AutocastBinding : undefined;
}

/** Throws a UserError when this build cannot autocast as asked (checked before a run starts). */
export function checkAutocast(mode: AmpMode, device: 'cpu' | 'cuda'): void {
  if (mode === 'none') return;
  if (mode === 'fp16' && device !== 'cuda') throw new UserError('amp: fp16 autocast needs device cuda (on the CPU use bf16)');
  if (!binding()) throw new UserError(`amp: this build of the native addon has no autocast (rebuild it: npx node-gyp build --directory native); use --amp none`);
}

/** Runs fn with autocast on for `device` (off again afterwards, also on error). */
export function withAutocast<T>(mode: AmpMode, device: 'cpu' | 'cuda', fn: () => T): T {
  if (mode === 'none') return fn();
  const b = binding();
  if (!b) throw new UserError('amp: this build of the native addon has no autocast');
  const previous = b.setAutocast(device, true, mode === 'bf16' ? 'bfloat16' : 'float16');
  try {
    return fn();
  } finally {
    b.setAutocast(device, previous, mode === 'bf16' ? 'bfloat16' : 'float16');
    // Autocast caches the low-precision copies of weights per forward; they must not outlive it.
    if (!previous) b.autocastClearCache();
  }
}

/**
 * A warning when bf16 autocast on this CPU will be slower than float32: without AVX-512 BF16 or
 * AMX, libtorch emulates bf16 (measured on a 2-core CPU without either: a training step 2.5× slower).
 */
export function cpuBf16Warning(): string | undefined {
  const flags = cpuFlags();
  if (!flags || flags.has('avx512_bf16') || flags.has('amx_bf16')) return undefined;
  return 'amp: this CPU has neither AVX-512 BF16 nor AMX, so bf16 autocast runs emulated and slower than float32 here (measured 2.5× slower per step)';
}
