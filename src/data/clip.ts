import { openCachedVideo, readCachedFrames, type CachedVideo } from '../video/stcf.js';
import { decodeVideo } from '../video/decode.js';
import { jpeg, type JpegAddon } from '../video/jpeg.js';
import { Rng } from './random.js';
import { testClipIndices, trainClipIndices } from './samplers.js';
import {
  centerCropBox, cropResizeJs, normalizationTables, normalizeClip, randomMultiScaleCrop, renderClipUint8, threeCropBoxes,
  type CropBox, type CropResizeFn, type Normalization,
} from './transforms.js';

/**
 * Making clips from videos, shared by the loader's worker threads and the main thread: one task is a
 * whole batch, and every random choice is keyed by (seed, epoch, position in the epoch), so batches
 * do not depend on which worker made them or how many workers there are.
 */

export interface ClipSettings {
  mode: 'train' | 'test';
  source: { kind: 'cache' } | { kind: 'video'; shortSide?: number; fps?: number };
  frames: number;
  stride: number;
  size: number;
  output: 'float32' | 'uint8';
  normalization?: Normalization;
  scales: number[];
  flip: boolean;
  testClips: number;
  testCrops: 1 | 3;
  seed: number;
}

export interface ClipItem {
  /** Index of the sample in the loader's sample list (batch.videoIndices). */
  sample: number;
  /** The .stcf cache file, or the video file. */
  file: string;
  /** The sample's cache key: a cache file made for another key is refused, never read as this video. */
  key?: string;
  start?: number;
  end?: number;
  label: number;
  /** Position in the epoch's order (keys the random draws). */
  position: number;
  /** Test mode: which of the K clips and which crop. */
  clip: number;
  crop: number;
}

export interface BatchTask {
  id: number;
  epoch: number;
  index: number;
  items: ClipItem[];
}

export interface BatchFailure {
  /** The video (the sample's path), also when its frames came from a cache file. */
  path: string;
  reason: string;
  /** The file that was read, when it is not the video (a frame cache's .stcf file). */
  file?: string;
  /** Index of the sample in the loader's sample list. */
  sample?: number;
}

export interface BatchResult {
  id: number;
  data: Float32Array | Uint8Array;
  count: number;
  labels: Int32Array;
  videoIndices: Int32Array;
  clipIndices: Int32Array;
  cropIndices: Int32Array;
  failures: BatchFailure[];
}

/**
 * The JPEG addon. A frame cache cannot be read without it, so there its failure is thrown here, once
 * (the loader fails with the addon's error), not by every cached video; decoding videos can do without
 * it (a JavaScript resampler).
 */
function loadAddon(required: boolean): JpegAddon | undefined {
  if (required) return jpeg();
  try {
    return jpeg();
  } catch {
    return undefined;
  }
}

interface LoadedVideo {
  width: number;
  height: number;
  numFrames: number;
  read(indices: Int32Array): Uint8Array[];
}

export interface ClipMakerOptions {
  /**
   * Resample in JavaScript even when the JPEG addon loads (tests compare the two paths); a frame
   * cache is still read through the addon.
   */
  javascriptResampler?: boolean;
}

/** Values in one clip: 3 × T × size × size. */
export function clipElements(settings: ClipSettings): number {
  return 3 * settings.frames * settings.size * settings.size;
}

/** Bytes of the data of a batch of `clips` clips (float32 or uint8 values). */
export function batchBytes(settings: ClipSettings, clips: number): number {
  return clips * clipElements(settings) * (settings.output === 'float32' ? Float32Array.BYTES_PER_ELEMENT : 1);
}

/** Makes batches; one instance per thread. */
export class ClipMaker {
  /** The addon for resampling; undefined: the JavaScript resampler. */
  private readonly addon: JpegAddon | undefined;
  private readonly cropResize: CropResizeFn;
  private readonly tables: Float32Array[];
  private readonly lut: Float32Array;
  private scratch = new Uint8Array(0);

  constructor(readonly settings: ClipSettings, options: ClipMakerOptions = {}) {
    const loaded = loadAddon(settings.source.kind === 'cache');
    this.addon = options.javascriptResampler ? undefined : loaded;
    const addon = this.addon;
    this.cropResize = addon
      ? (src, sw, sh, box, flip, dst, dstOffset, dw, dh, planeStride) =>
        addon.cropResize(src, sw, sh, box.x, box.y, box.w, box.h, flip, dst, dstOffset, dw, dh, planeStride)
      : cropResizeJs;
    this.tables = normalizationTables(settings.normalization);
    this.lut = new Float32Array(768);
    this.tables.forEach((table, c) => this.lut.set(table, c * 256));
  }

  get clipElements(): number {
    return clipElements(this.settings);
  }

  private async load(item: ClipItem): Promise<LoadedVideo> {
    const s = this.settings;
    if (s.source.kind === 'cache') {
      const video: CachedVideo = openCachedVideo(item.file, item.key);
      return { width: video.header.width, height: video.header.height, numFrames: video.header.frames, read: (idx) => readCachedFrames(video, idx) };
    }
    const decoded = await decodeVideo(item.file, { shortSide: s.source.shortSide, fps: s.source.fps, start: item.start, end: item.end });
    return { width: decoded.width, height: decoded.height, numFrames: decoded.frames.length, read: (idx) => Array.from(idx, (i) => decoded.frames[i]!) };
  }

  /**
   * The batch's data array: over `into` when that is a buffer of exactly its size (a recycled one),
   * else new. Nothing is zeroed: every clip kept is written whole (each of its T frames writes all
   * three size² planes, in the uint8, native float32 and JavaScript float32 paths alike), and when
   * items fail, only the clips kept are sliced out. So stale pixels of a reused buffer never show.
   */
  private batchData(clips: number, into: ArrayBuffer | undefined): Float32Array | Uint8Array {
    const reuse = into !== undefined && into.byteLength === batchBytes(this.settings, clips);
    const elements = clips * this.clipElements;
    if (this.settings.output === 'float32') return reuse ? new Float32Array(into) : new Float32Array(elements);
    return reuse ? new Uint8Array(into) : new Uint8Array(elements);
  }

  /**
   * Makes one batch; items whose video cannot be read are left out and reported in `failures`.
   * `into`: a buffer to write the batch's data into instead of allocating one (ignored unless its
   * byte length is the whole batch's).
   */
  async makeBatch(task: BatchTask, into?: ArrayBuffer): Promise<BatchResult> {
    const s = this.settings;
    const n = task.items.length;
    const clip = this.clipElements;
    const T = s.frames;
    const data = this.batchData(n, into);
    if (s.output === 'float32' && this.scratch.length < clip) this.scratch = new Uint8Array(clip);
    const labels = new Int32Array(n);
    const videoIndices = new Int32Array(n);
    const clipIndices = new Int32Array(n);
    const cropIndices = new Int32Array(n);
    const failures: BatchFailure[] = [];
    const loaded = new Map<string, LoadedVideo | Error>();
    let count = 0;
    for (const item of task.items) {
      const key = `${item.file}@${item.start ?? ''}-${item.end ?? ''}`;
      let video = loaded.get(key);
      if (!video) {
        try {
          video = await this.load(item);
        } catch (error) {
          video = error instanceof Error ? error : new Error(String(error));
        }
        loaded.set(key, video);
      }
      if (video instanceof Error) {
        const reason = 'reason' in video ? String((video as { reason: unknown }).reason) : video.message;
        failures.push({ path: item.file, reason, sample: item.sample });
        continue;
      }
      let indices: Int32Array;
      let box: CropBox;
      let flip = false;
      if (s.mode === 'train') {
        const rng = new Rng('clip', s.seed, task.epoch, item.position);
        indices = trainClipIndices(video.numFrames, T, s.stride, rng);
        box = randomMultiScaleCrop(video.width, video.height, rng, s.scales);
        flip = s.flip && rng.chance(0.5);
      } else {
        indices = testClipIndices(video.numFrames, T, s.stride, s.testClips)[item.clip]!;
        box = s.testCrops === 3 ? threeCropBoxes(video.width, video.height)[item.crop]! : centerCropBox(video.width, video.height);
      }
      let frames: Uint8Array[];
      try {
        frames = video.read(indices);
      } catch (error) {
        failures.push({ path: item.file, reason: error instanceof Error ? error.message : String(error), sample: item.sample });
        continue;
      }
      if (data instanceof Uint8Array) {
        renderClipUint8(frames, video.width, video.height, box, flip, s.size, data, count * clip, this.cropResize);
      } else if (this.addon) {
        // Resample and normalise in one pass (same values as the uint8 path followed by normalizeClip).
        const plane = s.size * s.size;
        for (let t = 0; t < T; t++) {
          this.addon.cropResize(frames[t]!, video.width, video.height, box.x, box.y, box.w, box.h, flip, data,
            count * clip + t * plane, s.size, s.size, T * plane, this.lut);
        }
      } else {
        renderClipUint8(frames, video.width, video.height, box, flip, s.size, this.scratch, 0, this.cropResize);
        normalizeClip(this.scratch, 0, clip / 3, this.tables, data, count * clip);
      }
      labels[count] = item.label;
      videoIndices[count] = item.sample;
      clipIndices[count] = item.clip;
      cropIndices[count] = item.crop;
      count++;
    }
    const trim = <A extends Int32Array | Float32Array | Uint8Array>(a: A, len: number): A => (count === n ? a : (a.slice(0, len) as A));
    return {
      id: task.id, data: trim(data, count * clip), count, labels: trim(labels, count), videoIndices: trim(videoIndices, count),
      clipIndices: trim(clipIndices, count), cropIndices: trim(cropIndices, count), failures,
    };
  }
}
