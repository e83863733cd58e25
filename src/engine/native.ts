import { loadAddon, TORCH_ADDON } from '../util/addon.js';

/** A libtorch tensor handle: a number naming a slot in the addon's table (see native/src/handle.h). */
export type Handle = number & { readonly __handle: unique symbol };

/** The addon's surface, as native/src/*.cc exports it. */
export interface NativeAddon {
  dispose(handle: Handle): void;
  disposeMany(handles: Handle[], count?: number): void;
  recount(handle: Handle): void;
  memory(): { tensors: number; bytes: number };
  shape(handle: Handle): number[];
  strides(handle: Handle): number[];
  dtype(handle: Handle): string;
  device(handle: Handle): string;
  describe(handle: Handle): string;
  item(handle: Handle): number | boolean;
  sameStorage(a: Handle, b: Handle): boolean;
  isContiguous(handle: Handle): boolean;
  requiresGrad(handle: Handle): boolean;
  setRequiresGrad(handle: Handle, value: boolean): void;
  grad(handle: Handle): Handle | null;
  setGrad(handle: Handle, grad: Handle | null): void;
  isLeaf(handle: Handle): boolean;
  backward(handle: Handle, grad?: Handle | null, retainGraph?: boolean): void;
  gradEnabled(): boolean;
  setGradEnabled(enabled: boolean): void;
  setNumThreads(threads: number): void;
  numThreads(): number;
  manualSeed(seed: number): void;
  cudaDeviceCount(): number;
  buildInfo(): { torchVersion: string; mkldnn: boolean; onednnFusion: boolean; cuda: boolean; parallelInfo: string };
  /** native/src/onednn.cc: present only when the addon was built with oneDNN's headers (STCNET_ONEDNN). */
  MkldnnConvolution?: new (weight: Handle, bias: Handle | null, stride: number[], padding: number[], dilation: number[], groups: number) => {
    forward(input: Handle, residual: Handle | null): Handle;
    release(): void;
  };
  mkldnnStcMerge?(residual: Handle, identity: Handle, gateWeights: (Handle | null)[]): Handle;
  /** native/src/grouped.cc: with oneDNN's headers (STCNET_ONEDNN) on a CPU with AVX2 and FMA. */
  GroupedConvolution?: new (weight: Handle, bias: Handle | null) => {
    forward(input: Handle, relu: boolean): Handle;
    release(): void;
  };
  /** native/src/winograd.cc: with oneDNN's headers (STCNET_ONEDNN) on a CPU with AVX2 and FMA. */
  winogradProductIsa?: 'avx512' | 'avx2';
  WinogradConvolution?: new (weight: Handle, bias: Handle | null) => {
    forward(input: Handle, residual: Handle | null, relu: boolean): Handle;
    release(): void;
  };
  /** native/src/winograd_autograd.cc: with oneDNN's headers (STCNET_ONEDNN) on a CPU with AVX2 and FMA. */
  winogradConv3d?(input: Handle, weight: Handle, bias: Handle | null): Handle;
  groupedConv3d?(input: Handle, weight: Handle, bias: Handle | null): Handle;
  stemConv3d?(input: Handle, weight: Handle, bias: Handle | null, stride: number[], padding: number[]): Handle;
  maxPool3d(input: Handle, kernel: number[], stride: number[], padding: number[]): Handle;
  /** native/src/mean_pools.cc: an STC block's two means, with one backward for both. */
  meanPools3d(x: Handle): [Handle, Handle];
  profileStart(file: string): void;
  profileStop(): boolean;
  sgdUpdate(param: Handle, grad: Handle, momentumBuffer: Handle | null, lr: number, momentum: number, dampening: number, weightDecay: number,
    nesterov: boolean, maximize: boolean): void;
  cpuAutocastEnabled(): boolean;
  findOperator(name: string, overload: string): number;
  operatorSchema(id: number): string;
  operatorTypes(id: number): { arguments: string[]; returns: string[] };
  call(id: number, discardResult: boolean, ...args: unknown[]): unknown;
  fromBuffer(data: ArrayBufferView | ArrayBuffer, shape: readonly number[], dtype: string): Handle;
  toBuffer(handle: Handle): ArrayBuffer;
}

// OpenBLAS (Debian's libtorch does its matrix products there) keeps its own threads busy-waiting for
// about 2^28 cycles after each multi-threaded call, beside libtorch's and oneDNN's OpenMP threads: on two
// cores an STC gate's small FCs left a spinning thread that made the next OpenMP loop wait for the
// scheduler (the gate-and-merge of [8,1024,1,7,7] took ≈ 10 ms instead of 0.6–0.9; stc_resnext3d_101's
// forward at batch 8, 0.99–1.06 s against 0.80–0.90 s). 2^4 cycles makes them sleep at once. OpenBLAS
// reads it when it loads, with the addon below; a value the user set is kept.
process.env.OPENBLAS_THREAD_TIMEOUT ??= '4';

// glibc returns every allocation above its mmap threshold (128 KiB–32 MiB) to the kernel when it is
// freed, so each forward pass faults its activations in again, page by page: on the measured VM a
// batch-8 stem convolution took 229 ms that way and 56 ms with the memory kept (its output alone is
// 100 MiB). stcnet keeps freed memory in the heap for reuse (no mmap for allocations, no trimming below
// 2 GiB free): RSS then stays at the peak it reached instead of falling after each step. glibc reads
// these variables at startup only, so the addon applies them (native/src/addon.cc); children, PyTorch
// in the benchmarks among them, inherit them. A value the user set is kept; MALLOC_MMAP_MAX_=65536 with
// MALLOC_TRIM_THRESHOLD_=131072 restores glibc's defaults.
process.env.MALLOC_MMAP_MAX_ ??= '0';
process.env.MALLOC_TRIM_THRESHOLD_ ??= '2147483647';

/** Loaded once per thread; built on first use when the package was installed without its install script. */
export const native: NativeAddon = loadAddon<NativeAddon>(TORCH_ADDON);
