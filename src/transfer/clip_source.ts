import type { Worker } from 'node:worker_threads';
import { startWorker } from '../util/worker.js';
import { FrameCache } from '../video/cache.js';
import { ClipMaker, type BatchFailure, type BatchResult, type BatchTask, type ClipItem, type ClipSettings } from '../data/clip.js';
import { sampleKey, type VideoSample } from '../data/dataset.js';
import { MULTISCALE_SCALES } from '../data/transforms.js';

/**
 * Clips at grid positions, for transfer: the clip of (video, position) is the position-th of
 * `positions` evenly spaced clips of the video, centre-cropped, as raw uint8 pixels (each side
 * normalises them its own way: the student with its preset, the teacher with ImageNet's). Made by
 * the data loader's ClipMaker, in its worker threads (the same worker script), so frame caches and
 * video files are read as `stcnet train` reads them.
 */

export interface ClipSourceOptions {
  samples: VideoSample[];
  source: { kind: 'cache'; dir: string } | { kind: 'video'; shortSide: number };
  frames: number;
  stride: number;
  size: number;
  positions: number;
  /** Worker threads; 0 makes clips on the calling thread. */
  workers: number;
}

export interface ItemRef {
  video: number;
  position: number;
}

export interface LoadedClips {
  /** count × 3 × T × size × size, uint8. */
  data: Uint8Array;
  count: number;
  frames: number;
  size: number;
  /** Row r holds (videoIndices[r], positions[r]). */
  videoIndices: Int32Array;
  positions: Int32Array;
  failures: BatchFailure[];
}

interface Slot {
  worker: Worker;
  pending: Map<number, { resolve(result: BatchResult): void; reject(error: Error): void }>;
}

export class ClipSource {
  /** Samples that cannot be read at all (not in the frame cache): never paired. */
  readonly skipped: BatchFailure[];
  private readonly files: ({ file: string; key?: string; start?: number; end?: number } | undefined)[];
  private readonly settings: ClipSettings;
  private readonly local: ClipMaker | undefined;
  private readonly slots: Slot[] = [];
  private nextId = 0;
  private next = 0;
  private broken: Error | undefined;
  private closed = false;

  private constructor(options: ClipSourceOptions, files: ClipSource['files'], skipped: BatchFailure[]) {
    this.files = files;
    this.skipped = skipped;
    this.settings = {
      mode: 'test', source: options.source.kind === 'cache' ? { kind: 'cache' } : { kind: 'video', shortSide: options.source.shortSide },
      frames: options.frames, stride: options.stride, size: options.size, output: 'uint8', scales: [...MULTISCALE_SCALES], flip: false,
      testClips: options.positions, testCrops: 1, seed: 0,
    };
    if (options.workers === 0) this.local = new ClipMaker(this.settings);
    for (let i = 0; i < options.workers; i++) this.slots.push(this.spawn());
  }

  static async create(options: ClipSourceOptions): Promise<ClipSource> {
    const cache = options.source.kind === 'cache' ? await FrameCache.open(options.source.dir) : undefined;
    const skipped: BatchFailure[] = [];
    const files = options.samples.map((sample, index) => {
      if (!cache) return { file: sample.path, start: sample.start, end: sample.end };
      const key = sampleKey(sample);
      const entry = cache.entry(key);
      if (!entry) {
        skipped.push({ path: sample.path, reason: `not in the frame cache ${cache.dir} (see its report.csv)`, sample: index });
        return undefined;
      }
      return { file: cache.filePath(entry), key };
    });
    return new ClipSource(options, files, skipped);
  }

  /** Whether a sample can be loaded at all. */
  usable(video: number): boolean {
    return this.files[video] !== undefined;
  }

  /** The clips of `items` (each once; a video that fails to load is left out and named in `failures`). */
  async load(items: ItemRef[]): Promise<LoadedClips> {
    const clipItems: ClipItem[] = items.map(({ video, position }, i) => {
      const file = this.files[video];
      if (!file) throw new Error(`ClipSource: sample ${video} is not loadable`);
      return { sample: video, ...file, label: 0, position: i, clip: position, crop: 0 };
    });
    const result = await this.run({ id: this.nextId++, epoch: 0, index: 0, items: clipItems });
    return {
      data: result.data as Uint8Array, count: result.count, frames: this.settings.frames, size: this.settings.size, videoIndices: result.videoIndices, positions: result.clipIndices, failures: result.failures,
    };
  }

  private run(task: BatchTask): Promise<BatchResult> {
    if (this.local) return this.local.makeBatch(task);
    if (this.broken) return Promise.reject(this.broken);
    if (this.closed) return Promise.reject(new Error('ClipSource: closed'));
    const slot = this.slots[this.next++ % this.slots.length]!;
    return new Promise<BatchResult>((resolve, reject) => {
      slot.pending.set(task.id, { resolve, reject });
      if (slot.pending.size === 1) slot.worker.ref();
      slot.worker.postMessage({ type: 'batch', task });
    });
  }

  private spawn(): Slot {
    const worker = startWorker(new URL('../data/loader-worker.js', import.meta.url), { workerData: this.settings });
    const slot: Slot = { worker, pending: new Map() };
    const settle = (id: number) => {
      const pending = slot.pending.get(id);
      slot.pending.delete(id);
      if (slot.pending.size === 0) worker.unref();
      return pending;
    };
    worker.on('message', (message: { type: 'batch'; result: BatchResult } | { type: 'error'; id: number; message: string }) => {
      if (message.type === 'batch') settle(message.result.id)?.resolve(message.result);
      else settle(message.id)?.reject(new Error(`clip worker failed: ${message.message}`));
    });
    const fail = (error: Error) => {
      this.broken ??= error;
      for (const [id] of slot.pending) settle(id)?.reject(error);
    };
    worker.on('error', (error) => fail(new Error(`clip worker crashed: ${error.message}`)));
    worker.on('exit', (code) => {
      if (!this.closed) fail(new Error(`clip worker exited unexpectedly (code ${code})`));
    });
    worker.unref();
    return slot;
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.slots.map(async ({ worker, pending }) => {
      for (const [, p] of pending) p.reject(new Error('ClipSource: closed'));
      pending.clear();
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      worker.postMessage({ type: 'close' });
      const timer = setTimeout(() => void worker.terminate(), 5000);
      await exited;
      clearTimeout(timer);
    }));
  }
}
