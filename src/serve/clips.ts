import { jpeg, type JpegAddon } from '../video/jpeg.js';
import { testClipIndices } from '../data/samplers.js';
import { centerCropBox, normalizationTables, normalizeClip, renderClipUint8, threeCropBoxes } from '../data/transforms.js';
import type { Normalization } from '../data/transforms.js';

/**
 * Test-mode clips from decoded frames, made as the test-mode ClipLoader makes them for `stcnet
 * predict` (src/data/clip.ts): K clips evenly spaced over the frames (loop padding when the video is
 * short), each with the centre crop or three crops along the long side, resampled to the crop size
 * and normalised, in the loader's order (clip-major, then crop). The JPEG addon's resampler is used
 * where it loads, as the loader's workers do; its output equals the JavaScript path's.
 */
export interface ClipSpec {
  frames: number;
  stride: number;
  size: number;
  clips: number;
  crops: 1 | 3;
  normalization: Normalization;
}

export interface Clips {
  /** count × 3 × T × size × size, normalised float32. */
  data: Float32Array;
  count: number;
}

let addon: JpegAddon | null | undefined;
function resampler(): JpegAddon | null {
  if (addon === undefined) {
    try {
      addon = jpeg();
    } catch {
      addon = null;
    }
  }
  return addon;
}

/** Packed RGB frames (width × height × 3 bytes each) to clips. */
export function makeClips(frames: readonly Uint8Array[], width: number, height: number, spec: ClipSpec): Clips {
  const T = spec.frames;
  const plane = spec.size * spec.size;
  const clipElements = 3 * T * plane;
  const count = spec.clips * spec.crops;
  const data = new Float32Array(count * clipElements);
  const indices = testClipIndices(frames.length, T, spec.stride, spec.clips);
  const tables = normalizationTables(spec.normalization);
  const native = resampler();
  const lut = new Float32Array(768);
  tables.forEach((table, c) => lut.set(table, c * 256));
  const scratch = native ? null : new Uint8Array(clipElements);
  let n = 0;
  for (let k = 0; k < spec.clips; k++) {
    for (let c = 0; c < spec.crops; c++, n++) {
      const box = spec.crops === 3 ? threeCropBoxes(width, height)[c]! : centerCropBox(width, height);
      const clipFrames = Array.from(indices[k]!, (i) => frames[i]!);
      if (native) {
        for (let t = 0; t < T; t++) {
          native.cropResize(clipFrames[t]!, width, height, box.x, box.y, box.w, box.h, false, data, n * clipElements + t * plane,
            spec.size, spec.size, T * plane, lut);
        }
      } else {
        renderClipUint8(clipFrames, width, height, box, false, spec.size, scratch!, 0);
        normalizeClip(scratch!, 0, clipElements / 3, tables, data, n * clipElements);
      }
    }
  }
  return { data, count };
}
