import { loadAddon, JPEG_ADDON } from '../util/addon.js';

/** The libturbojpeg addon (native/jpeg). Context-aware: each worker thread loads its own copy. */
export interface JpegAddon {
  /** Encodes a packed RGB (HWC) image; subsampling is 444, 422 or 420. */
  encode(rgb: Uint8Array, width: number, height: number, quality: number, subsampling: number): Buffer;
  /** [width, height] of a JPEG image. */
  header(jpeg: Uint8Array): [number, number];
  /** Decodes a JPEG of exactly width×height into `out` at byte offset `offset`, packed RGB. */
  decodeInto(jpeg: Uint8Array, out: Uint8Array, offset: number, width: number, height: number, fast: boolean): void;
  /**
   * Bilinear resample of the box (x, y, w, h) of an RGB frame into three planes of `dst` (plane c at
   * dstOffset + c·planeStride elements), mirrored horizontally when `flip`. A Float32Array `dst`
   * needs `lut` (768 floats, channel c and value v at c·256 + v) mapping each uint8 result.
   */
  cropResize(src: Uint8Array, srcWidth: number, srcHeight: number, x: number, y: number, w: number, h: number,
    flip: boolean, dst: Uint8Array | Float32Array, dstOffset: number, dstWidth: number, dstHeight: number, planeStride: number,
    lut?: Float32Array): void;
  version: string;
}

let cached: JpegAddon | undefined;
let failure: unknown;

/**
 * The JPEG addon (native/jpeg/build/Release/stcnet_jpeg.node), built on first use when missing. A failure
 * is remembered: every later call throws the same error at once instead of each video failing anew.
 */
export function jpeg(): JpegAddon {
  if (cached) return cached;
  if (failure !== undefined) throw failure;
  try {
    cached = loadAddon<JpegAddon>(JPEG_ADDON);
  } catch (error) {
    failure = error;
    throw error;
  }
  return cached;
}
