import { callNative } from './ops.js';
import { native, type Handle } from './native.js';
import { ArgumentError, translateNativeError } from './errors.js';
import { Tensor, t } from './tensor.js';
import { tidy } from './scope.js';
import { cpuFlags } from './runtime.js';

/** A size given as one number for every dimension, or one per dimension. */
export type SizeArg = number | readonly number[];

export interface ConvOptions {
  stride?: SizeArg;
  padding?: SizeArg;
  dilation?: SizeArg;
  groups?: number;
}

/**
 * Which kernel runs a CPU float32 convolution. 'direct' sends small batches to oneDNN
 * (aten::mkldnn_convolution), which aten::convolution skips below batch 8 although it is
 * several times faster there (measured in bench/engine); larger batches take aten's own choice. Under
 * CPU autocast it leaves every convolution to aten::conv3d, which autocast casts to bf16 (oneDNN's bf16
 * route at any batch; aten::mkldnn_convolution would stay float32).
 * 'auto' (the default) is 'direct', except that while gradients are recorded it runs a k×…×…
 * convolution of a one-frame input with padding (k − 1)/2 in time, whose other temporal taps read only
 * padding, as the 2D convolution of its middle tap (2–2.7× a step's 3D convolution at 512 channels),
 * and, CPU autocast off, 3×3×3 convolutions at stride 1 by Winograd's algorithm where that pays
 * (`winogradConv3d`), those in groups of 4 channels by stcnet's own kernels (`groupedConv3d`), and the
 * weight gradient of RGB stems by stcnet's own kernel (`stemConv3d`). 'aten' is
 * libtorch's own choice everywhere (PyTorch's), 'mkldnn' oneDNN everywhere.
 */
export type ConvAlgorithm = 'auto' | 'direct' | 'aten' | 'mkldnn';
const CONV_ALGORITHMS: readonly ConvAlgorithm[] = ['auto', 'direct', 'aten', 'mkldnn'];
let convAlgorithm: ConvAlgorithm = 'auto';
/** Whether this libtorch was built with oneDNN (MKLDNN), which the blocked-layout functions below need. */
export const mkldnnEnabled: boolean = native.buildInfo().mkldnn;
/**
 * Whether the addon calls oneDNN directly (MkldnnConvolution, mkldnnStcMerge): built against Debian's
 * libtorch with libdnnl-dev and libideep-dev present.
 */
export const mkldnnFusionEnabled: boolean = mkldnnEnabled && native.MkldnnConvolution !== undefined;

/** The CPU's feature flags (none where /proc/cpuinfo cannot be read). */
const thisCpu: ReadonlySet<string> = cpuFlags() ?? new Set<string>();

/**
 * Whether oneDNN runs bf16 on this CPU: libtorch's MKLDNN bf16 kernels (convolution, pooling on MKLDNN
 * tensors) need AVX-512 BW, VL and DQ and refuse to run without them; elsewhere bf16 goes through
 * libtorch's plain operators (emulated, slow).
 */
export const mkldnnBf16Enabled: boolean = mkldnnEnabled && ['avx512bw', 'avx512vl', 'avx512dq'].every((flag) => thisCpu.has(flag));

export function setConvAlgorithm(algorithm: ConvAlgorithm): void {
  if (!CONV_ALGORITHMS.includes(algorithm)) throw new ArgumentError(`setConvAlgorithm: expected ${CONV_ALGORITHMS.join(', ')}, got "${algorithm}"`);
  convAlgorithm = algorithm;
}

export function getConvAlgorithm(): ConvAlgorithm {
  return convAlgorithm;
}

function expand(value: SizeArg | undefined, spatialDims: number, fallback: number): number[] {
  if (value === undefined) return new Array<number>(spatialDims).fill(fallback);
  if (typeof value === 'number') return new Array<number>(spatialDims).fill(value);
  if (value.length !== spatialDims) throw new ArgumentError(`expected ${spatialDims} sizes, got [${value.join(', ')}]`);
  return [...value];
}

/**
 * Whether conv3d may route to stcnet's training convolutions: algorithm 'auto', gradients recorded, a CPU
 * input. Under CPU autocast only the one-frame rewrite applies (stcnet's kernels are float32).
 */
function ownTrainingKernels(input: Tensor): boolean {
  return convAlgorithm === 'auto' && input.device === 'cpu' && native.gradEnabled();
}

function useMkldnn(input: Tensor, spatialDims: number): boolean {
  if (!mkldnnEnabled || convAlgorithm === 'aten') return false;
  // aten::mkldnn_convolution has no autocast kernel: under CPU autocast it would stay float32, where
  // aten::conv3d is cast to bf16 and reaches oneDNN's bf16 route at any batch.
  if (input.dtype !== 'float32' || input.device !== 'cpu' || native.cpuAutocastEnabled()) return false;
  return convAlgorithm === 'mkldnn' || (spatialDims === 3 && input.size(0) < 8);  // auto, direct
}

function convolution(input: Tensor, weight: Tensor, bias: Tensor | null | undefined, options: ConvOptions, spatialDims: 2 | 3): Tensor {
  const stride = expand(options.stride, spatialDims, 1);
  const padding = expand(options.padding, spatialDims, 0);
  const dilation = expand(options.dilation, spatialDims, 1);
  const groups = options.groups ?? 1;
  if (input.rank !== spatialDims + 2) {
    throw new ArgumentError(`conv${spatialDims}d: expected a ${spatialDims + 2}-D input (N, C, ${spatialDims === 3 ? 'T, ' : ''}H, W), got shape [${input.shape.join(', ')}]`);
  }
  if (spatialDims === 3 && ownTrainingKernels(input)) {
    // stcnet's kernels are float32: under autocast the convolution stays libtorch's (bf16).
    const float32 = !native.cpuAutocastEnabled();
    if (float32 && trainsByWinograd(input, weight, bias, stride, padding, dilation, groups)) {
      return t(native.winogradConv3d!(input.handle, weight.handle, bias?.handle ?? null));
    }
    if (float32 && trainsByGroupedKernel(input, weight, bias, stride, padding, dilation, groups)) {
      return t(native.groupedConv3d!(input.handle, weight.handle, bias?.handle ?? null));
    }
    if (float32 && trainsByStemKernel(input, weight, stride, padding, dilation, groups)) {
      return t(native.stemConv3d!(input.handle, weight.handle, bias?.handle ?? null, stride, padding));
    }
    // An identity of the convolution, so under autocast too (conv2d is cast to bf16 as conv3d is).
    if (trainsAsPlanar(input, weight, bias, padding, dilation)) {
      // Output depth 1 (whatever the temporal stride), which only the middle tap reaches. The tap is made
      // contiguous first: autocast's bf16 cast of the strided slice (runs of 9 values) took 8 ms for a
      // 512×512 weight, against 1 ms for the copy and the cast of the copy.
      return tidy(() => conv2d(input.squeeze(2), weight.select(2, padding[0]!).contiguous(), bias,
        { stride: stride.slice(1), padding: padding.slice(1), dilation: dilation.slice(1), groups }).unsqueeze(2));
    }
  }
  if (useMkldnn(input, spatialDims)) return mkldnnConv(input, weight, bias ?? null, options, spatialDims);
  return t(callNative(`aten::conv${spatialDims}d`, [input.handle, weight.handle, bias?.handle ?? null, stride, padding, dilation, groups]));
}

export function conv3d(input: Tensor, weight: Tensor, bias?: Tensor | null, options: ConvOptions = {}): Tensor {
  return convolution(input, weight, bias, options, 3);
}

export function conv2d(input: Tensor, weight: Tensor, bias?: Tensor | null, options: ConvOptions = {}): Tensor {
  return convolution(input, weight, bias, options, 2);
}



/**
 * oneDNN's blocked layout (an MKLDNN tensor; float32 or bf16 CPU): convolution, ReLU, addition and
 * pooling take and return it without reordering. Such a tensor has sizes but no strides: only
 * operators with MKLDNN kernels accept it, so it stays inside code that knows its layout.
 */
export function toMkldnn(input: Tensor): Tensor {
  return t(callNative('aten::to_mkldnn', [input.handle, null]));
}

/** An MKLDNN tensor back in the plain strided layout. */
export function mkldnnToDense(input: Tensor): Tensor {
  return t(callNative('aten::to_dense', [input.handle, null]));
}

/**
 * A convolution weight (plain layout) reordered once into the blocked format oneDNN's convolution
 * with these options reads, so that calls with MKLDNN inputs do not reorder it again.
 */
export function mkldnnPackConvWeight(weight: Tensor, options: ConvOptions, spatialDims: 2 | 3): Tensor {
  const layout = toMkldnn(weight);
  try {
    return t(callNative(`aten::mkldnn_reorder_conv${spatialDims}d_weight`, [layout.handle, expand(options.padding, spatialDims, 0),
      expand(options.stride, spatialDims, 1), expand(options.dilation, spatialDims, 1), options.groups ?? 1]));
  } finally {
    layout.dispose();
  }
}

/** oneDNN's convolution; an MKLDNN input gives an MKLDNN output (weight: plain or packed). */
export function mkldnnConv(input: Tensor, weight: Tensor, bias: Tensor | null, options: ConvOptions, spatialDims: 2 | 3): Tensor {
  return t(callNative('aten::mkldnn_convolution', [input.handle, weight.handle, bias?.handle ?? null, expand(options.padding, spatialDims, 0),
    expand(options.stride, spatialDims, 1), expand(options.dilation, spatialDims, 1), options.groups ?? 1]));
}

/**
 * A convolution prepared once for MKLDNN inputs (native/src/onednn.cc): it keeps oneDNN's primitive,
 * scratchpad and weight format per input layout, where `mkldnnConv` rebuilds or looks them up on every
 * call. `forward(x)` is mkldnnConv's result; `forwardAddRelu(x, identity)` is ReLU(conv(x) + identity) in
 * the convolution's own pass (oneDNN's sum and ReLU post-ops), written into identity's buffer when its
 * layout is the output's, else into a new tensor: identity is consumed either way.
 */
export class MkldnnConvolution {
  readonly #native: { forward(input: Handle, residual: Handle | null): Handle; release(): void };

  /** weight: packed by mkldnnPackConvWeight (the class keeps its own reference); bias: dense float32 or null. */
  constructor(weight: Tensor, bias: Tensor | null, options: ConvOptions, spatialDims: 2 | 3) {
    if (!native.MkldnnConvolution) throw new ArgumentError('oneDNN is not built into this addon (see F.mkldnnFusionEnabled)');
    this.#native = new native.MkldnnConvolution(weight.handle, bias?.handle ?? null, expand(options.stride, spatialDims, 1),
      expand(options.padding, spatialDims, 0), expand(options.dilation, spatialDims, 1), options.groups ?? 1);
  }

  forward(input: Tensor): Tensor {
    return t(this.#native.forward(input.handle, null));
  }

  forwardAddRelu(input: Tensor, identity: Tensor): Tensor {
    return t(this.#native.forward(input.handle, identity.handle));
  }

  /** Frees the weights and oneDNN's state now (else at garbage collection). */
  dispose(): void {
    this.#native.release();
  }
}

/**
 * Whether Winograd's F(2³, 3³) beats oneDNN's direct 3×3×3 convolution on an input of `inputShape`
 * (N, C, D, H, W) with `outChannels` outputs, by the measurements of docs/performance.md ("Winograd
 * convolutions"; 2 threads, AVX2): 1.4–2.2× at 64 and 128 channels, 1.0–1.2× at 256 (inference) and
 * 0.9–1.3× (training step), slower at 512 (the transformed weights, 64·Cin·Cout floats, are read for few
 * outputs) and where tiles of 2×2×2 outputs would be mostly padding (a 1×4×4 input: 0.2–0.6×).
 */
export function winogradPays(inputShape: readonly number[], outChannels: number): boolean {
  const [, inChannels, depth, height, width] = inputShape as [number, number, number, number, number];
  const tiled = Math.ceil(depth / 2) * Math.ceil(height / 2) * Math.ceil(width / 2) * 8;
  return depth >= 2 && inChannels * outChannels <= 256 * 256 && (depth * height * width) / tiled >= 0.75;
}

/** Whether the addon has winogradConv3d (oneDNN's headers at build time, AVX2 and FMA on this CPU). */
export const winogradTrainingEnabled: boolean = mkldnnEnabled && native.winogradConv3d !== undefined;

/**
 * conv3d(input, weight, bias) for a 3×3×3 weight at stride 1, padding 1 (one group; Cin and Cout
 * multiples of 16) by Winograd's algorithm on dense float32 CPU tensors, its forward, input gradient and
 * weight gradient in the transformed domain (native/src/winograd_autograd.cc): 1.2–1.7× a training
 * step's direct convolution where `winogradPays`. Results differ from the direct convolution's by
 * rounding (≈ 1e-6 relative). conv3d calls it by itself while gradients are recorded (setConvAlgorithm).
 */
export function winogradConv3d(input: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  if (!native.winogradConv3d) throw new ArgumentError('Winograd convolutions are not available (see F.winogradTrainingEnabled)');
  return t(native.winogradConv3d(input.handle, weight.handle, bias?.handle ?? null));
}

function trainsByWinograd(input: Tensor, weight: Tensor, bias: Tensor | null | undefined, stride: number[], padding: number[], dilation: number[],
  groups: number): boolean {
  if (!winogradTrainingEnabled || groups !== 1 || input.dtype !== 'float32') return false;
  const [out, inChannels, ...kernel] = weight.shape;
  if (out! % 16 !== 0 || inChannels! % 16 !== 0 || !kernel.every((k) => k === 3) || weight.dtype !== 'float32') return false;
  if (![stride, dilation, padding].every((values) => values.every((value) => value === 1))) return false;
  // Per call, a training convolution transforms its weights twice and reorders four activations: below
  // ≈ 128 output positions a sample that costs more than the arithmetic saved (64 channels at 2×4×4:
  // 0.75× the direct convolution; 32 at 2×6×6: 0.97×; 16 at 4×12×12: 1.6×).
  const [, , depth, height, width] = input.shape as [number, number, number, number, number];
  if (depth * height * width < 128 || !winogradPays(input.shape, out!)) return false;
  return input.requiresGrad || weight.requiresGrad || (bias?.requiresGrad ?? false);
}

/** Whether the addon has groupedConv3d (oneDNN's headers at build time, AVX2 and FMA on this CPU). */
export const groupedTrainingEnabled: boolean = mkldnnEnabled && native.groupedConv3d !== undefined;

/**
 * conv3d(input, weight, bias, { padding: 1, groups: C / 4 }) for C input channels (a multiple of 8) and a
 * weight C×4×3×3×3, on dense float32 CPU tensors, by stcnet's AVX2 kernels in the forward pass and both
 * gradients (native/src/grouped_autograd.cc), where oneDNN 2.6 runs 4-channel groups at ≈ 10 GFLOP/s.
 * Results differ from libtorch's by rounding. conv3d calls it by itself while gradients are recorded.
 */
export function groupedConv3d(input: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  if (!native.groupedConv3d) throw new ArgumentError('grouped convolution kernels are not available (see F.groupedTrainingEnabled)');
  return t(native.groupedConv3d(input.handle, weight.handle, bias?.handle ?? null));
}

function trainsByGroupedKernel(input: Tensor, weight: Tensor, bias: Tensor | null | undefined, stride: number[], padding: number[], dilation: number[],
  groups: number): boolean {
  if (!groupedTrainingEnabled || input.dtype !== 'float32' || weight.dtype !== 'float32') return false;
  const [out, perGroup, ...kernel] = weight.shape;
  if (perGroup !== 4 || groups * 4 !== out || input.size(1) !== out || out! % 8 !== 0 || !kernel.every((k) => k === 3)) return false;
  if (![stride, dilation, padding].every((values) => values.every((value) => value === 1))) return false;
  return input.requiresGrad || weight.requiresGrad || (bias?.requiresGrad ?? false);
}

/** Whether the addon has stemConv3d (oneDNN's headers at build time, AVX2 and FMA on this CPU). */
export const stemTrainingEnabled: boolean = mkldnnEnabled && native.stemConv3d !== undefined;

/**
 * conv3d(input, weight, bias, { stride, padding }) for a weight O×C×kt×kh×7 (one group, no dilation) at
 * stride 1 or 2 along x, on dense float32 CPU tensors: the forward pass and input gradient are libtorch's
 * (oneDNN's), the weight gradient stcnet's AVX2 kernel (native/src/stem_autograd.cc), 1.4–3× oneDNN's at
 * the 7×7×7 RGB stems of stcnet's models. Results differ from libtorch's by rounding. conv3d calls it by
 * itself for inputs of at most 4 channels while the weight's gradient is recorded.
 */
export function stemConv3d(input: Tensor, weight: Tensor, bias: Tensor | null = null, options: { stride?: SizeArg; padding?: SizeArg } = {}): Tensor {
  if (!native.stemConv3d) throw new ArgumentError('stem convolution kernels are not available (see F.stemTrainingEnabled)');
  return t(native.stemConv3d(input.handle, weight.handle, bias?.handle ?? null, expand(options.stride, 3, 1), expand(options.padding, 3, 0)));
}

/**
 * Whether conv3d routes RGB stems' weight gradients to `stemConv3d` on this CPU: the kernel is AVX2, and
 * where the CPU has AVX-512 oneDNN's weight gradient uses it and wins (Zen 5, [4,3,16,112,112] → 64,
 * forward and backward: 170 ms against 262).
 */
export const stemTrainingPays: boolean = stemTrainingEnabled && !thisCpu.has('avx512f');

function trainsByStemKernel(input: Tensor, weight: Tensor, stride: number[], padding: number[], dilation: number[], groups: number): boolean {
  if (!stemTrainingPays || groups !== 1 || input.dtype !== 'float32' || weight.dtype !== 'float32') return false;
  // RGB (or fewer) input channels: where oneDNN's weight gradient is slowest, and the whole kernel's reach.
  const [, inChannels, ...kernel] = weight.shape;
  if (inChannels! > 4 || kernel[2] !== 7 || (stride[2] !== 1 && stride[2] !== 2) || !dilation.every((value) => value === 1)) return false;
  if (!padding.every((value, axis) => value < kernel[axis]!) || !stride.every((value) => value >= 1)) return false;
  return weight.requiresGrad;
}

/**
 * Whether a training convolution of a one-frame input (the last stages of 8- and 16-frame models) runs
 * as the 2D convolution of the weights' middle temporal tap: the kernel depth is odd, at least 3, and
 * padded by half of it, so that every other tap reads only the padding's zeros, which oneDNN's 3D
 * backward pass computes anyway.
 */
function trainsAsPlanar(input: Tensor, weight: Tensor, bias: Tensor | null | undefined, padding: number[], dilation: number[]): boolean {
  if (input.size(2) !== 1) return false;
  const depth = weight.size(2);
  if (depth < 3 || padding[0]! * 2 + 1 !== depth || dilation[0] !== 1) return false;
  return input.requiresGrad || weight.requiresGrad || (bias?.requiresGrad ?? false);
}

/** Whether the addon has WinogradConvolution (oneDNN's headers at build time, AVX2 and FMA on this CPU). */
export const winogradEnabled: boolean = mkldnnEnabled && native.WinogradConvolution !== undefined;

/**
 * The instruction set of the Winograd kernels' transformed-domain products (inference and training):
 * 'avx512' where the CPU has AVX-512F (twice the multiply-adds per instruction; on CPUs with full-width
 * units such as AMD Zen 5, twice per cycle), unless the environment sets STCNET_AVX512=0; else 'avx2';
 * null without the kernels.
 */
export const winogradProductIsa: 'avx512' | 'avx2' | null = mkldnnEnabled ? native.winogradProductIsa ?? null : null;

/**
 * A 3×3×3 convolution at stride 1 and padding 1 (no dilation, one group) by Winograd's F(2³, 3³)
 * algorithm on MKLDNN tensors (native/src/winograd.cc): 64 multiply-adds per channel pair and 2×2×2
 * outputs where the direct convolution needs 216. The weight (dense float32 Cout×Cin×3×3×3, Cout a
 * multiple of 16 and Cin of 8) is transformed once. `forward(x, { residual, relu })` is conv(x) + bias,
 * plus `residual` (an MKLDNN tensor of the output's shape, consumed: written in place when its layout is
 * the output's), then ReLU; results differ from the direct convolution's by rounding only (≈ 1e-6 relative).
 */
export class WinogradConvolution {
  readonly #native: { forward(input: Handle, residual: Handle | null, relu: boolean): Handle; release(): void };

  constructor(weight: Tensor, bias: Tensor | null) {
    if (!native.WinogradConvolution) throw new ArgumentError('Winograd convolutions are not available (see F.winogradEnabled)');
    this.#native = new native.WinogradConvolution(weight.handle, bias?.handle ?? null);
  }

  forward(input: Tensor, options: { residual?: Tensor; relu?: boolean } = {}): Tensor {
    return t(this.#native.forward(input.handle, options.residual?.handle ?? null, options.relu ?? false));
  }

  /** Frees the transformed weights now (else at garbage collection). */
  dispose(): void {
    this.#native.release();
  }
}

/** Whether the addon has GroupedConvolution (oneDNN's headers at build time, AVX2 and FMA on this CPU). */
export const groupedConvolutionEnabled: boolean = mkldnnEnabled && native.GroupedConvolution !== undefined;

/**
 * A 3×3×3 convolution at stride 1 and padding 1 in groups of 4 channels (ResNeXt-101's first stage) on
 * MKLDNN tensors (native/src/grouped.cc), where oneDNN 2.6 is slow (≈ 10 GFLOP/s on two AVX2 cores).
 * weight: dense float32 C×4×3×3×3, C a multiple of 8. `forward(x, { relu })` is conv(x) + bias, then ReLU.
 */
export class GroupedConvolution {
  readonly #native: { forward(input: Handle, relu: boolean): Handle; release(): void };

  constructor(weight: Tensor, bias: Tensor | null) {
    if (!native.GroupedConvolution) throw new ArgumentError('grouped convolutions are not available (see F.groupedConvolutionEnabled)');
    this.#native = new native.GroupedConvolution(weight.handle, bias?.handle ?? null);
  }

  forward(input: Tensor, options: { relu?: boolean } = {}): Tensor {
    return t(this.#native.forward(input.handle, options.relu ?? false));
  }

  /** Frees the packed weights now (else at garbage collection). */
  dispose(): void {
    this.#native.release();
  }
}

/**
 * The STC block's gate and merge in place on `residual` (an MKLDNN tensor N×C×T×H×W in a
 * channel-blocked layout, from a convolution): pooled = mean over H,W; s_t = σ(fc2(ReLU(fc1(mean over T))));
 * s_s = σ(fc2(ReLU(fc1(pooled flattened c·T + t)))); residual ← ReLU(identity + residual·(s_t + s_s)/2).
 * identity: an MKLDNN tensor of residual's shape (reordered first if its layout differs).
 * gateWeights: [tcb.fc1.weight, tcb.fc1.bias, tcb.fc2.weight, tcb.fc2.bias, then scb's].
 */
export function mkldnnStcMerge(residual: Tensor, identity: Tensor, gateWeights: (Tensor | null)[]): Tensor {
  if (!native.mkldnnStcMerge) throw new ArgumentError('oneDNN is not built into this addon (see F.mkldnnFusionEnabled)');
  return t(native.mkldnnStcMerge(residual.handle, identity.handle, gateWeights.map((w) => w?.handle ?? null)));
}

export interface BatchNormOptions {
  training: boolean;
  momentum?: number;
  eps?: number;
}

/** Batch normalisation over dim 1; in training, running statistics are updated in place. */
export function batchNorm(input: Tensor, weight: Tensor | null, bias: Tensor | null, runningMean: Tensor | null,
  runningVar: Tensor | null, options: BatchNormOptions): Tensor {
  return t(callNative('aten::batch_norm', [input.handle, weight?.handle ?? null, bias?.handle ?? null,
    runningMean?.handle ?? null, runningVar?.handle ?? null, options.training, options.momentum ?? 0.1, options.eps ?? 1e-5, true]));
}

export interface PoolOptions {
  stride?: SizeArg;
  padding?: SizeArg;
  dilation?: SizeArg;
  ceilMode?: boolean;
}

/**
 * 3D max pooling. A dense CPU float32 or bf16 N×C×T×H×W input without dilation or ceil mode is pooled by stcnet's
 * own kernel (native/src/max_pool.cc): the same maxima and gradients as libtorch's; forward and backward at
 * a training step's stem ≈ 3× libtorch's in float32 and 7–10× in bf16 (libtorch 1.13 has no bf16 kernel:
 * autocast pools in float32).
 */
export function maxPool3d(input: Tensor, kernelSize: SizeArg, options: PoolOptions = {}): Tensor {
  const kernel = expand(kernelSize, 3, 1);
  const stride = options.stride === undefined ? kernel : expand(options.stride, 3, 1);
  const padding = expand(options.padding, 3, 0);
  const dilation = expand(options.dilation, 3, 1);
  // The addon hands what its kernel does not take (MKLDNN tensors, other dtypes, GPUs) to libtorch.
  if (dilation.every((d) => d === 1) && !options.ceilMode) {
    try {
      return t(native.maxPool3d(input.handle, kernel, stride, padding));
    } catch (error) {
      throw translateNativeError(error);  // a TorchError, as libtorch's own refusals
    }
  }
  return t(callNative('aten::max_pool3d', [input.handle, kernel, stride, padding, dilation, options.ceilMode ?? false]));
}

export function maxPool2d(input: Tensor, kernelSize: SizeArg, options: PoolOptions = {}): Tensor {
  return t(callNative('aten::max_pool2d', [input.handle, expand(kernelSize, 2, 1), options.stride === undefined ? [] : expand(options.stride, 2, 1),
    expand(options.padding, 2, 0), expand(options.dilation, 2, 1), options.ceilMode ?? false]));
}

export function avgPool3d(input: Tensor, kernelSize: SizeArg, options: Omit<PoolOptions, 'dilation'> = {}): Tensor {
  return t(callNative('aten::avg_pool3d', [input.handle, expand(kernelSize, 3, 1), options.stride === undefined ? [] : expand(options.stride, 3, 1),
    expand(options.padding, 3, 0), options.ceilMode ?? false]));
}

export function avgPool2d(input: Tensor, kernelSize: SizeArg, options: Omit<PoolOptions, 'dilation'> = {}): Tensor {
  return t(callNative('aten::avg_pool2d', [input.handle, expand(kernelSize, 2, 1), options.stride === undefined ? [] : expand(options.stride, 2, 1),
    expand(options.padding, 2, 0), options.ceilMode ?? false]));
}

export function adaptiveAvgPool3d(input: Tensor, outputSize: SizeArg): Tensor {
  return t(callNative('aten::adaptive_avg_pool3d', [input.handle, expand(outputSize, 3, 1)]));
}

export function adaptiveAvgPool2d(input: Tensor, outputSize: SizeArg): Tensor {
  return t(callNative('aten::adaptive_avg_pool2d', [input.handle, expand(outputSize, 2, 1)]));
}

/**
 * The two means of an N×C×T×H×W x that an STC block's branches take, [x.mean([2, 3, 4]), x.mean([3, 4])],
 * with one backward for both: x's gradient is a broadcast view of a small N×C×T tensor, not two
 * block-sized ones added into its other gradients (native/src/mean_pools.cc).
 */
export function meanPools3d(x: Tensor): [overClip: Tensor, overFrames: Tensor] {
  let handles: [Handle, Handle];
  try {
    handles = native.meanPools3d(x.handle);
  } catch (error) {
    throw translateNativeError(error);
  }
  return [t(handles[0]), t(handles[1])];
}

/** y = x·Wᵀ + b */
export function linear(input: Tensor, weight: Tensor, bias?: Tensor | null): Tensor {
  return t(callNative('aten::linear', [input.handle, weight.handle, bias?.handle ?? null]));
}

export function relu(input: Tensor): Tensor {
  return input.relu();
}

export function sigmoid(input: Tensor): Tensor {
  return input.sigmoid();
}

export function softmax(input: Tensor, dim: number): Tensor {
  return input.softmax(dim);
}

export function logSoftmax(input: Tensor, dim: number): Tensor {
  return input.logSoftmax(dim);
}

/** Zeroes elements with probability p and scales the rest by 1/(1-p) when training. */
export function dropout(input: Tensor, p: number, training: boolean): Tensor {
  if (!(p >= 0 && p < 1)) throw new ArgumentError(`dropout: p must be in [0, 1), got ${p}`);
  return t(callNative('aten::dropout', [input.handle, p, training]));
}

export type Reduction = 'none' | 'mean' | 'sum';
const REDUCTION: Record<Reduction, number> = { none: 0, mean: 1, sum: 2 };

export interface CrossEntropyOptions {
  reduction?: Reduction;
  labelSmoothing?: number;
  ignoreIndex?: number;
  weight?: Tensor;
}

/** Cross-entropy between logits [N, C] and class indices [N] (int64). */
export function crossEntropy(logits: Tensor, target: Tensor, options: CrossEntropyOptions = {}): Tensor {
  return t(callNative('aten::cross_entropy_loss', [logits.handle, target.handle, options.weight?.handle ?? null,
    REDUCTION[options.reduction ?? 'mean'], options.ignoreIndex ?? -100, options.labelSmoothing ?? 0]));
}

export function nllLoss(logProbabilities: Tensor, target: Tensor, options: { reduction?: Reduction; ignoreIndex?: number } = {}): Tensor {
  return t(callNative('aten::nll_loss', [logProbabilities.handle, target.handle, null, REDUCTION[options.reduction ?? 'mean'], options.ignoreIndex ?? -100]));
}

export function mseLoss(input: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  return t(callNative('aten::mse_loss', [input.handle, target.handle, REDUCTION[reduction]]));
}

export function binaryCrossEntropyWithLogits(logits: Tensor, target: Tensor, reduction: Reduction = 'mean'): Tensor {
  return t(callNative('aten::binary_cross_entropy_with_logits', [logits.handle, target.handle, null, null, REDUCTION[reduction]]));
}

/** Constant padding; `pad` lists (before, after) pairs from the last dimension backwards, as torch.nn.functional.pad. */
export function pad(input: Tensor, padding: readonly number[], value = 0): Tensor {
  return t(callNative('aten::constant_pad_nd', [input.handle, padding, value]));
}

/** Resizes the trailing spatial dimensions (2-D: bilinear, 3-D: trilinear). */
export function interpolate(input: Tensor, size: readonly number[], alignCorners = false): Tensor {
  if (size.length === 2) return t(callNative('aten::upsample_bilinear2d', [input.handle, size, alignCorners]));
  if (size.length === 3) return t(callNative('aten::upsample_trilinear3d', [input.handle, size, alignCorners]));
  throw new ArgumentError(`interpolate: expected 2 or 3 output sizes, got [${size.join(', ')}]`);
}

export interface SgdHyper {
  lr: number;
  momentum: number;
  dampening: number;
  weightDecay: number;
  nesterov: boolean;
  /** Ascend instead of descend. */
  maximize: boolean;
}

/**
 * One parameter's SGD update in place, torch.optim.SGD's: d = ±g + wd·p; b = μ·b + (1−τ)·d (`momentumBuffer`
 * updated in place; null when μ = 0); d = d + μ·b (Nesterov) or b; p −= lr·d. The same operators in the same
 * order as written out in TS, in one call (native/src/sgd.cc): the temporaries never become tensors here.
 */
export function sgdUpdate_(param: Tensor, grad: Tensor, momentumBuffer: Tensor | null, hyper: SgdHyper): void {
  try {
    native.sgdUpdate(param.handle, grad.handle, momentumBuffer?.handle ?? null, hyper.lr, hyper.momentum, hyper.dampening, hyper.weightDecay,
      hyper.nesterov, hyper.maximize);
  } catch (error) {
    throw translateNativeError(error);
  }
}
