import type { Tensor } from '../engine/index.js';

/**
 * Pictures of a Grad-CAM map: the clip's frames as the network saw them (un-normalised), the map in a
 * blue → cyan → yellow → red scale blended over them, and a sheet of both rows.
 */

/** Packed RGB images of one size. */
export interface Frames {
  width: number;
  height: number;
  /** One HWC RGB image per frame. */
  images: Uint8Array[];
}

/** The frames of a normalised 1×3×T×H×W clip, back in 0–255 with the preprocessing's mean and std (0–1 scale). */
export function clipFrames(clip: Tensor, mean: readonly number[], std: readonly number[]): Frames {
  const [, channels, frames, height, width] = clip.shape as [number, number, number, number, number];
  if (channels !== 3) throw new Error(`clipFrames: expected an RGB clip, got ${channels} channels`);
  const values = clip.float().toFloat32Array();
  const plane = height * width;
  const images = Array.from({ length: frames }, (_, t) => {
    const image = new Uint8Array(plane * 3);
    for (let c = 0; c < 3; c++) {
      const base = (c * frames + t) * plane;
      for (let i = 0; i < plane; i++) image[i * 3 + c] = toByte((values[base + i]! * std[c]! + mean[c]!) * 255);
    }
    return image;
  });
  return { width, height, images };
}

/** The colour of a map value in [0, 1]: blue at 0, cyan, yellow, red at 1 (the "jet" scale). */
export function heatColor(value: number): [number, number, number] {
  const v = Math.min(1, Math.max(0, value));
  const channel = (centre: number): number => toByte(255 * Math.min(1, Math.max(0, 1.5 - Math.abs(4 * v - centre))));
  return [channel(3), channel(2), channel(1)];
}

/** The map (T×H×W in [0, 1], the frames' size) blended over the frames with weight `alpha`. */
export function overlay(frames: Frames, cam: Float32Array, alpha = 0.5): Frames {
  const plane = frames.width * frames.height;
  if (cam.length !== plane * frames.images.length) throw new Error(`overlay: a map of ${cam.length} values for ${frames.images.length} frames of ${frames.width}×${frames.height}`);
  const images = frames.images.map((image, t) => {
    const blended = new Uint8Array(image.length);
    for (let i = 0; i < plane; i++) {
      const color = heatColor(cam[t * plane + i]!);
      for (let c = 0; c < 3; c++) blended[i * 3 + c] = toByte((1 - alpha) * image[i * 3 + c]! + alpha * color[c]!);
    }
    return blended;
  });
  return { width: frames.width, height: frames.height, images };
}

/** Rows of frames of one size side by side (a column per frame, `gap` white pixels between), as one image. */
export function contactSheet(rows: Frames[], gap = 2): { rgb: Uint8Array; width: number; height: number } {
  const { width, height } = rows[0]!;
  const columns = Math.max(...rows.map((row) => row.images.length));
  const sheetWidth = columns * width + (columns - 1) * gap;
  const sheetHeight = rows.length * height + (rows.length - 1) * gap;
  const rgb = new Uint8Array(sheetWidth * sheetHeight * 3).fill(255);
  rows.forEach((row, r) => row.images.forEach((image, column) => {
    const left = column * (width + gap), top = r * (height + gap);
    for (let y = 0; y < height; y++) rgb.set(image.subarray(y * width * 3, (y + 1) * width * 3), ((top + y) * sheetWidth + left) * 3);
  }));
  return { rgb, width: sheetWidth, height: sheetHeight };
}

/** Each pixel repeated `factor` times across and down (nearest neighbour), so that small clips are legible. */
export function upscale(frames: Frames, factor: number): Frames {
  if (!(Number.isInteger(factor) && factor >= 1)) throw new Error(`upscale: factor must be a positive integer, got ${factor}`);
  if (factor === 1) return frames;
  const width = frames.width * factor, height = frames.height * factor;
  const images = frames.images.map((image) => {
    const large = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) {
      const source = Math.floor(y / factor) * frames.width;
      for (let x = 0; x < width; x++) large.set(image.subarray((source + Math.floor(x / factor)) * 3, (source + Math.floor(x / factor)) * 3 + 3), (y * width + x) * 3);
    }
    return large;
  });
  return { width, height, images };
}

function toByte(value: number): number {
  return Math.min(255, Math.max(0, Math.round(value)));
}
