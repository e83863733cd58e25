import type { Rng } from './random.js';

/**
 * Spatial transforms, decided once per clip and applied to every frame of it. A crop is a box in
 * source pixels; the box is resampled (bilinear, half-pixel centres) to the output size, optionally
 * mirrored. Output layout per clip is CTHW.
 */
export interface CropBox {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** Hara et al.'s multi-scale corner cropping: scales of the short side 1, 2^-1/4, 2^-1/2, 2^-3/4, 1/2. */
export const MULTISCALE_SCALES: readonly number[] = [1, 2 ** -0.25, 2 ** -0.5, 2 ** -0.75, 0.5];
export const CROP_POSITIONS = ['c', 'tl', 'tr', 'bl', 'br'] as const;
export type CropPosition = (typeof CROP_POSITIONS)[number];

/** A square of side scale·min(width, height) at one of five positions (centre or a corner). */
export function cornerCropBox(width: number, height: number, scale: number, position: CropPosition): CropBox {
  const side = Math.max(1, Math.round(Math.min(width, height) * scale));
  switch (position) {
    case 'c': return { x: Math.floor((width - side) / 2), y: Math.floor((height - side) / 2), w: side, h: side };
    case 'tl': return { x: 0, y: 0, w: side, h: side };
    case 'tr': return { x: width - side, y: 0, w: side, h: side };
    case 'bl': return { x: 0, y: height - side, w: side, h: side };
    case 'br': return { x: width - side, y: height - side, w: side, h: side };
  }
}

export function randomMultiScaleCrop(width: number, height: number, rng: Rng, scales: readonly number[] = MULTISCALE_SCALES): CropBox {
  const scale = rng.pick(scales);
  const position = rng.pick(CROP_POSITIONS);
  return cornerCropBox(width, height, scale, position);
}

/** The centred square of the short side (resize short side to S, then centre-crop S×S). */
export function centerCropBox(width: number, height: number): CropBox {
  return cornerCropBox(width, height, 1, 'c');
}

/** Three short-side squares along the long side: start, centre, end (test-time three-crop). */
export function threeCropBoxes(width: number, height: number): CropBox[] {
  const side = Math.min(width, height);
  if (width >= height) {
    return [0, Math.floor((width - side) / 2), width - side].map((x) => ({ x, y: 0, w: side, h: side }));
  }
  return [0, Math.floor((height - side) / 2), height - side].map((y) => ({ x: 0, y, w: side, h: side }));
}

/** The whole frame (plain resize). */
export function fullBox(width: number, height: number): CropBox {
  return { x: 0, y: 0, w: width, h: height };
}

export interface Normalization {
  mean: [number, number, number];
  std: [number, number, number];
}

/** Means and standard deviations for pixel values in [0, 1]. */
export const NORMALIZATIONS: Record<'imagenet' | 'kinetics', Normalization> = {
  imagenet: { mean: [0.485, 0.456, 0.406], std: [0.229, 0.224, 0.225] },
  // Hara et al.'s Kinetics statistics (get_mean/get_std, given there on a 0-255 scale).
  kinetics: {
    mean: [110.63666788 / 255, 103.16065604 / 255, 96.29023126 / 255],
    std: [38.7568578 / 255, 37.88248729 / 255, 40.02898126 / 255],
  },
};

/**
 * Resamples the box of a packed RGB frame into three uint8 planes (plane c at dstOffset + c·planeStride),
 * bilinear with 8-bit fixed-point weights, mirrored when `flip`. Bit-exact with the native version.
 */
export function cropResizeJs(src: Uint8Array, sw: number, sh: number, box: CropBox, flip: boolean,
  dst: Uint8Array, dstOffset: number, dw: number, dh: number, planeStride: number): void {
  const x0 = new Int32Array(dw);
  const wx = new Int32Array(dw);
  const sx = box.w / dw;
  const sy = box.h / dh;
  for (let i = 0; i < dw; i++) {
    let fx = box.x + (i + 0.5) * sx - 0.5;
    if (fx < 0) fx = 0;
    if (fx > sw - 1) fx = sw - 1;
    let ix = Math.trunc(fx);
    if (ix > sw - 2) ix = sw > 1 ? sw - 2 : 0;
    const k = flip ? dw - 1 - i : i;
    x0[k] = ix * 3;
    wx[k] = sw > 1 ? Math.trunc((fx - ix) * 256 + 0.5) : 0;
  }
  const step = sw > 1 ? 3 : 0;
  for (let j = 0; j < dh; j++) {
    let fy = box.y + (j + 0.5) * sy - 0.5;
    if (fy < 0) fy = 0;
    if (fy > sh - 1) fy = sh - 1;
    let iy = Math.trunc(fy);
    if (iy > sh - 2) iy = sh > 1 ? sh - 2 : 0;
    const wy = sh > 1 ? Math.trunc((fy - iy) * 256 + 0.5) : 0;
    const row0 = iy * sw * 3;
    const row1 = sh > 1 ? row0 + sw * 3 : row0;
    let o = dstOffset + j * dw;
    for (let i = 0; i < dw; i++, o++) {
      const p0 = row0 + x0[i]!;
      const p1 = row1 + x0[i]!;
      const a = wx[i]!;
      const na = 256 - a;
      for (let c = 0; c < 3; c++) {
        const top = src[p0 + c]! * na + src[p0 + c + step]! * a;
        const bottom = src[p1 + c]! * na + src[p1 + c + step]! * a;
        dst[o + c * planeStride] = (top * (256 - wy) + bottom * wy + 32768) >> 16;
      }
    }
  }
}

export type CropResizeFn = typeof cropResizeJs;

/**
 * Writes one clip (T frames, the same box and flip for all) into `dst` as uint8 CTHW at `offset`.
 */
export function renderClipUint8(frames: Uint8Array[], sw: number, sh: number, box: CropBox, flip: boolean,
  size: number, dst: Uint8Array, offset: number, cropResize: CropResizeFn = cropResizeJs): void {
  const T = frames.length;
  const plane = size * size;
  for (let t = 0; t < T; t++) cropResize(frames[t]!, sw, sh, box, flip, dst, offset + t * plane, size, size, T * plane);
}

/** Per-channel lookup tables from a uint8 value to its normalised float. */
export function normalizationTables(norm: Normalization | undefined): Float32Array[] {
  return [0, 1, 2].map((c) => {
    const lut = new Float32Array(256);
    for (let v = 0; v < 256; v++) lut[v] = norm ? (v / 255 - norm.mean[c]!) / norm.std[c]! : v / 255;
    return lut;
  });
}

/** Converts a uint8 CTHW clip to normalised float32 at `offset` in `dst`. */
export function normalizeClip(src: Uint8Array, srcOffset: number, channelSize: number, tables: Float32Array[], dst: Float32Array, offset: number): void {
  for (let c = 0; c < 3; c++) {
    const lut = tables[c]!;
    const s = srcOffset + c * channelSize;
    const d = offset + c * channelSize;
    for (let i = 0; i < channelSize; i++) dst[d + i] = lut[src[s + i]!]!;
  }
}
