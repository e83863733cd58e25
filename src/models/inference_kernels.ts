import type { Conv2d, Conv3d } from '../nn/index.js';
import type { ConvOptions } from '../engine/functional.js';

// Which of the addon's own kernels computes a folded convolution of the inference mode
// (src/models/inference.ts), by its shape (for Winograd, whether it pays at an input's size is F.winogradPays).

/** Whether a convolution option (one value or one per dimension; absent: `expected`) is `expected` everywhere. */
function everyIs(value: number | readonly number[] | undefined, expected: number): boolean {
  return [value ?? expected].flat().every((v) => v === expected);
}

/** A 3×3×3 convolution at stride 1 and padding 1, without dilation: its output has its input's size. */
function sameSize3x3x3(conv: Conv3d | Conv2d): boolean {
  return conv.dims === 3 && conv.weight.shape.slice(2).every((k) => k === 3) && everyIs(conv.options.stride, 1) &&
    everyIs(conv.options.padding, 1) && everyIs(conv.options.dilation, 1);
}

/** A convolution F.WinogradConvolution computes: 3×3×3, stride 1, padding 1, one group, whole channel blocks. */
export function winogradShape(conv: Conv3d | Conv2d): boolean {
  const [out, inPerGroup] = conv.weight.shape;
  return sameSize3x3x3(conv) && (conv.options.groups ?? 1) === 1 && out! % 16 === 0 && inPerGroup! % 8 === 0;
}

/**
 * A convolution F.GroupedConvolution computes: 3×3×3, stride 1, padding 1, groups of 4 input and 4 output
 * channels. oneDNN 2.6 runs these at ≈ 10 GFLOP/s on two AVX2 cores; the addon's kernel at 42–50, 4–6×
 * faster (docs/performance.md).
 */
export function fourChannelGroups(conv: Conv3d | Conv2d): boolean {
  const [out, inPerGroup] = conv.weight.shape;
  const groups = conv.options.groups ?? 1;
  return sameSize3x3x3(conv) && groups > 1 && inPerGroup === 4 && out === groups * 4 && out % 8 === 0;
}

/**
 * A 3D convolution whose kernel depth k is odd (≥ 3), padded by (k − 1)/2 in time, without temporal
 * dilation: on a one-frame input only its middle temporal tap reads the frame, the others read padding,
 * so it equals the 1×kh×kw convolution of that tap (`planarOptions`), which oneDNN runs 1.2–1.9× faster
 * at the last stages' shapes (docs/performance.md).
 */
export function oneFrameShape(conv: Conv3d | Conv2d): boolean {
  const depth = conv.weight.shape[2]!;
  const padding = [conv.options.padding ?? 0].flat()[0]!;
  const dilation = [conv.options.dilation ?? 1].flat()[0]!;
  return conv.dims === 3 && depth >= 3 && depth % 2 === 1 && padding * 2 + 1 === depth && dilation === 1;
}

/** The options of a oneFrameShape convolution's middle tap: no temporal padding. */
export function planarOptions(options: ConvOptions): ConvOptions {
  const padding = [options.padding ?? 0].flat();
  const [, height, width] = padding.length === 1 ? [padding[0]!, padding[0]!, padding[0]!] : padding;
  return { ...options, padding: [0, height!, width!] };
}

/** The kernels of the inference mode's convolutions (FoldedConv.kernel). */
export type ConvolutionKernel = 'direct' | 'winograd' | 'grouped' | 'planar';
