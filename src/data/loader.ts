import os from 'node:os';

import type { Worker } from 'node:worker_threads';
import { startWorker } from '../util/worker.js';
import { UserError } from '../util/errors.js';
import { FrameCache } from '../video/cache.js';
import { BatchBufferPool } from './buffer_pool.js';
import { ClipMaker, batchBytes, type BatchFailure, type BatchResult, type BatchTask, type ClipItem, type ClipSettings } from './clip.js';
import { sampleKey, type VideoSample } from './dataset.js';
import { Rng } from './random.js';
import { batchPositions, type Shard } from './samplers.js';
import { MULTISCALE_SCALES, NORMALIZATIONS, type Normalization } from './transforms.js';

export interface LoaderOptions {
  samples: VideoSample[];
  /** Read frames from a frame cache (fast), or decode the video files with ffmpeg (no cache needed). */
  source: { kind: 'cache'; dir: string } | { kind: 'video'; shortSide?: number; fps?: number };
  /** train: a random clip per video, augmented; test: K evenly spaced clips per video (× 1 or 3 crops). */
  mode: 'train' | 'test';
  batchSize: number;
  /** Frames per clip (T), default 16. */
  frames?: number;
  /** Temporal stride, default 1. */
  stride?: number;
  /** Output side in pixels, default 112. */
  size?: number;
  /** Worker threads, default os.availableParallelism(); 0 makes batches on the calling thread. */
  workers?: number;
  /** Batches prepared ahead (in flight plus ready), default 2 per worker. */
  prefetch?: number;
  seed?: number;
  /** Default: true when training. */
  shuffle?: boolean;
  /** Drop the last incomplete batch; default: true when training. */
  dropLast?: boolean;
  /** This process's part of a data-parallel job: its batches are its share of each epoch (see batchPositions). */
  shard?: Shard;
  /** float32 (normalised) or uint8 (raw pixels, to normalise on the engine); default float32. */
  output?: 'float32' | 'uint8';
  /** Mean/std preset or values for [0,1] pixels; 'none' only scales to [0,1]. Default kinetics. */
  normalize?: 'imagenet' | 'kinetics' | 'none' | Normalization;
  /** Multi-scale crop scales (train), default Hara et al.'s five. */
  scales?: number[];
  /** Random horizontal flip (train), default true. */
  flip?: boolean;
  /** Clips per video at test time (K), default 10. */
  testClips?: number;
  /** Crops per clip at test time, 1 (centre) or 3; default 1. */
  testCrops?: 1 | 3;
}

/** One batch: NCTHW clips plus where each came from. */
export interface ClipBatch {
  data: Float32Array | Uint8Array;
  dtype: 'float32' | 'uint8';
  shape: [number, number, number, number, number];
  labels: Int32Array;
  /** Index into the loader's `samples` of the video each clip came from. */
  videoIndices: Int32Array;
  /** Test mode: which of the K clips, and which crop (0 in training). */
  clipIndices: Int32Array;
  cropIndices: Int32Array;
  epoch: number;
  /** Batch number within the epoch. */
  index: number;
  /** Videos that could not be read for this batch (they are left out, so N may be smaller). */
  failures: BatchFailure[];
  /**
   * The mean/std (for [0,1] pixels) of the loader's `normalize`: float32 data is normalised with it
   * already; uint8 data is raw pixels that a consumer must scale by 1/255 and normalise with it
   * (train's batchTensors does). Absent: 'none', pixels scaled to [0,1] only.
   */
  normalization?: Normalization;
}

/** What the loader did: its buffer reuse (see ClipLoader.recycle) and the batches it made. */
export interface LoaderStats {
  /** Batch tasks given a recycled data buffer to write into instead of a newly allocated one, since create(). */
  readonly reusedBuffers: number;
  /** Recycled buffers waiting for a batch now (at most prefetch + 1). */
  readonly pooledBuffers: number;
  /** Batch tasks sent to the workers (or made on the calling thread), since create(). */
  readonly startedBatches: number;
}

interface Pending {
  resolve(result: BatchResult): void;
  reject(error: Error): void;
  worker: WorkerSlot;
}

/** One epoch's batches: which tasks were sent, which results the consumer has taken. */
interface EpochRun {
  epoch: number;
  from: number;
  order: number[];
  batches: number[][];
  results: Map<number, Promise<BatchResult>>;
  dispatched: number;
  consumed: number;
}

interface WorkerSlot {
  worker: Worker;
  pending: number;
}

/**
 * Clip batches for training and evaluation, decoded and augmented in worker threads behind a bounded
 * prefetch queue. `for await (const batch of loader.epoch(e))`; `close()` when done (workers are
 * unreferenced while idle, so a forgotten close never keeps the process alive). A consumer that has
 * copied a batch's data (into a tensor) gives it back with `recycle(batch)`, so the next batches are
 * written into its buffer instead of a new one.
 */
export class ClipLoader {
  /** Samples that cannot be loaded at all (not in the cache), left out of every epoch. */
  readonly skipped: BatchFailure[] = [];
  private readonly items: Omit<ClipItem, 'position'>[];
  private readonly settings: ClipSettings;
  private readonly slots: WorkerSlot[] = [];
  private readonly pending = new Map<number, Pending>();
  private readonly local: ClipMaker | undefined;
  private nextId = 0;
  private startedBatches = 0;
  private closed = false;
  private broken: Error | undefined;
  private readonly prefetch: number;
  private readonly pool: BatchBufferPool;
  /** The next epoch's batches, begun while the current epoch's last ones were made (epoch()'s `next`). */
  private ahead: EpochRun | undefined;
  /** Sends the running epoch's next tasks (and the next epoch's) up to the prefetch depth. */
  private refill: (() => void) | undefined;

  private constructor(readonly options: Required<Pick<LoaderOptions, 'batchSize' | 'mode'>> & LoaderOptions, items: Omit<ClipItem, 'position'>[],
    settings: ClipSettings, skipped: BatchFailure[]) {
    this.items = items;
    this.settings = settings;
    this.skipped.push(...skipped);
    const workers = options.workers ?? os.availableParallelism();
    this.prefetch = Math.max(1, options.prefetch ?? 2 * Math.max(1, workers));
    // The batches being made plus the one the consumer holds: more buffers could never all be in use.
    this.pool = new BatchBufferPool(this.prefetch + 1);
    if (workers === 0) {
      this.local = new ClipMaker(settings);
    } else {
      for (let i = 0; i < workers; i++) this.slots.push(this.spawn());
    }
  }

  /** A failure as users know it: by the video's path, with the cache file that was read beside it. */
  private namedByVideo(failure: BatchFailure): BatchFailure {
    const sample = failure.sample !== undefined ? this.options.samples[failure.sample] : undefined;
    if (!sample || sample.path === failure.path) return failure;
    return { ...failure, path: sample.path, file: failure.path };
  }

  static async create(options: LoaderOptions): Promise<ClipLoader> {
    if (!Number.isInteger(options.batchSize) || options.batchSize < 1) throw new UserError(`loader: batchSize must be a positive integer, got ${options.batchSize}`);
    const frames = options.frames ?? 16;
    const testCrops = options.testCrops ?? 1;
    if (testCrops !== 1 && testCrops !== 3) throw new UserError(`loader: testCrops must be 1 or 3, got ${String(testCrops)}`);
    const norm = options.normalize ?? 'kinetics';
    const settings: ClipSettings = {
      mode: options.mode,
      source: options.source.kind === 'cache' ? { kind: 'cache' } : { kind: 'video', shortSide: options.source.shortSide ?? 128, fps: options.source.fps },
      frames, stride: options.stride ?? 1, size: options.size ?? 112, output: options.output ?? 'float32',
      normalization: norm === 'none' ? undefined : typeof norm === 'string' ? NORMALIZATIONS[norm] : norm,
      scales: options.scales ?? [...MULTISCALE_SCALES], flip: options.flip ?? true,
      testClips: options.testClips ?? 10, testCrops, seed: options.seed ?? 0,
    };
    const items: Omit<ClipItem, 'position'>[] = [];
    const skipped: BatchFailure[] = [];
    const cache = options.source.kind === 'cache' ? await FrameCache.open(options.source.dir) : undefined;
    options.samples.forEach((sample, index) => {
      let file = sample.path;
      const key = sampleKey(sample);
      if (cache) {
        const entry = cache.entry(key);
        if (!entry) {
          skipped.push({ path: sample.path, reason: `not in the frame cache ${cache.dir} (see its report.csv)` });
          return;
        }
        file = cache.filePath(entry);
      }
      const base = { sample: index, file, key: cache ? key : undefined, label: sample.label, start: cache ? undefined : sample.start, end: cache ? undefined : sample.end };
      if (options.mode === 'train') {
        items.push({ ...base, clip: 0, crop: 0 });
      } else {
        for (let k = 0; k < settings.testClips; k++) for (let c = 0; c < testCrops; c++) items.push({ ...base, clip: k, crop: c });
      }
    });
    return new ClipLoader({ ...options }, items, settings, skipped);
  }

  /** Clips per epoch (train: one per readable video; test: K × crops per video). */
  get clipsPerEpoch(): number {
    return this.items.length;
  }

  get batchesPerEpoch(): number {
    return this.batchPositions().length;
  }

  /** Each batch of an epoch as positions in the epoch's order (this shard's, in a data-parallel job). */
  private batchPositions(): number[][] {
    return batchPositions(this.items.length, this.options.batchSize, this.dropLast, this.options.shard);
  }

  private get dropLast(): boolean {
    return this.options.dropLast ?? this.options.mode === 'train';
  }

  private spawn(): WorkerSlot {
    const worker = startWorker(new URL('./loader-worker.js', import.meta.url), { workerData: this.settings });
    const slot: WorkerSlot = { worker, pending: 0 };
    worker.on('message', (message: { type: 'batch'; result: BatchResult } | { type: 'error'; id: number; message: string }) => {
      const id = message.type === 'batch' ? message.result.id : message.id;
      const pending = this.pending.get(id);
      if (!pending) return;
      this.pending.delete(id);
      this.release(slot);
      if (message.type === 'batch') pending.resolve(message.result);
      else pending.reject(new Error(`loader worker failed: ${message.message}`));
    });
    const fail = (error: Error): void => {
      this.broken ??= error;
      for (const [id, pending] of this.pending) {
        if (pending.worker !== slot) continue;
        this.pending.delete(id);
        pending.reject(error);
      }
      slot.pending = 0;
    };
    worker.on('error', (error) => fail(new Error(`loader worker crashed: ${error.message}`)));
    worker.on('exit', (code) => {
      if (!this.closed) fail(new Error(`loader worker exited unexpectedly (code ${code})`));
    });
    // Idle until a batch is asked for (run() refs it). Only after the listeners: adding the first
    // 'message' listener refs the worker's port again, which kept a never-used loader's process alive.
    worker.unref();
    return slot;
  }

  private release(slot: WorkerSlot): void {
    slot.pending--;
    if (slot.pending <= 0) {
      slot.pending = 0;
      slot.worker.unref();
    }
  }

  /** The order of an epoch: a seeded permutation when shuffling, identity otherwise. */
  epochOrder(epoch: number): number[] {
    const order = this.items.map((_, i) => i);
    if (this.options.shuffle ?? this.options.mode === 'train') new Rng('order', this.settings.seed, epoch).shuffle(order);
    return order;
  }

  /** Makes a batch, into the recycled buffer `into` when given (a worker gets it transferred). */
  private run(task: BatchTask, into: ArrayBuffer | undefined): Promise<BatchResult> {
    if (this.local) return this.local.makeBatch(task, into);
    if (this.broken) return Promise.reject(this.broken);
    let slot = this.slots[0]!;
    for (const s of this.slots) if (s.pending < slot.pending) slot = s;
    return new Promise<BatchResult>((resolve, reject) => {
      this.pending.set(task.id, { resolve, reject, worker: slot });
      if (slot.pending++ === 0) slot.worker.ref();
      slot.worker.postMessage({ type: 'batch', task, into }, into ? [into] : []);
    });
  }

  /** An epoch's batch tasks, none sent yet, starting at batch `from`. */
  private newRun(epoch: number, from: number): EpochRun {
    return { epoch, from, order: this.epochOrder(epoch), batches: this.batchPositions(), results: new Map(), dispatched: from, consumed: from };
  }

  /** Sends `run`'s next batch tasks until `inFlight` of them are being made or ready. */
  private fill(run: EpochRun, inFlight: number): void {
    while (run.dispatched < run.batches.length && run.dispatched - run.consumed < inFlight && !this.closed) {
      const b = run.dispatched++;
      this.startedBatches++;
      const items = run.batches[b]!.map((position) => ({ ...this.items[run.order[position]!]!, position }));
      const promise = this.run({ id: this.nextId++, epoch: run.epoch, index: b, items }, this.pool.take(batchBytes(this.settings, items.length)));
      promise.catch(() => undefined);
      run.results.set(b, promise);
    }
  }

  /**
   * The batches of one epoch, in order, with up to `prefetch` batches being made ahead. `from`: the
   * first batch (a resumed run skips the ones it trained without making them; the batches are the
   * same either way, as each is fixed by seed, epoch and position). `next`: the epoch the consumer
   * asks for after this one; once this epoch's last tasks are sent, the spare prefetch goes to its
   * first batches, so the next epoch does not start by waiting for a cold pipeline.
   */
  async *epoch(epoch: number, options: { from?: number; next?: number } = {}): AsyncGenerator<ClipBatch, void, undefined> {
    if (this.closed) throw new Error('loader: epoch() after close()');
    const from = options.from ?? 0;
    if (!Number.isInteger(from) || from < 0 || from > this.batchesPerEpoch) throw new RangeError(`loader: from must be a batch index 0..${this.batchesPerEpoch}, got ${from}`);
    const ahead = this.ahead?.epoch === epoch && this.ahead.from === from ? this.ahead : undefined;
    // Batches made for an epoch that is not the one asked for are dropped when they arrive.
    this.ahead = undefined;
    const run = ahead ?? this.newRun(epoch, from);
    let following: EpochRun | undefined;
    const topUp = (): void => {
      this.fill(run, this.prefetch);
      if (options.next === undefined || run.dispatched < run.batches.length || this.closed) return;
      following ??= this.ahead = this.newRun(options.next, 0);
      this.fill(following, this.prefetch - (run.dispatched - run.consumed));
    };
    // recycle() tops up too: a consumer that copies a batch early sends the next task while it computes.
    this.refill = topUp;
    const s = this.settings;
    try {
      while (run.consumed < run.batches.length) {
        topUp();
        const result = await run.results.get(run.consumed)!;
        run.results.delete(run.consumed);
        const index = run.consumed++;
        // Node delivers a worker's queued messages in one go (and runs the awaiting code in between),
        // so a consumer slower than the workers never let the event loop turn: no timer, no signal
        // handler (Ctrl-C in stcnet train) and no I/O ran for a whole epoch. One turn per batch.
        await new Promise<void>((resolve) => setImmediate(resolve));
        const batch: ClipBatch = {
          data: result.data, dtype: s.output, shape: [result.count, 3, s.frames, s.size, s.size], labels: result.labels,
          videoIndices: result.videoIndices, clipIndices: result.clipIndices, cropIndices: result.cropIndices,
          epoch, index, failures: result.failures.map((failure) => this.namedByVideo(failure)), normalization: s.normalization,
        };
        this.pool.lend(batch, batch.data);
        yield batch;
      }
      topUp();
    } finally {
      if (this.refill === topUp) this.refill = undefined;
      // An early break leaves batches in flight; their results are dropped when they arrive.
      run.results.clear();
    }
  }

  /**
   * Gives a batch's data buffer back for reuse: call it once the batch's `data` has been copied (into
   * a tensor: batchTensors copies) and will not be read again. The buffer is kept in a small pool
   * (at most prefetch + 1 buffers) and a later batch of the same byte length is written into it.
   * Afterwards `batch.data` must not be used: it will hold another batch's pixels (workers: 0), or
   * be detached and empty (it was transferred to a worker). The batch's other fields (labels,
   * videoIndices, clipIndices, cropIndices, failures) stay valid. A batch recycled already, one of
   * another loader, or any other object is ignored, as is every call after close(). It also sends
   * the next batch task at once, so a consumer that recycles as soon as it has copied a batch lets
   * the workers make the next one while it computes.
   */
  recycle(batch: ClipBatch): void {
    if (this.closed) return;
    this.pool.giveBack(batch);
    this.refill?.();
  }

  /** Buffer reuse and batches made so far (a snapshot). */
  get stats(): LoaderStats {
    return { reusedBuffers: this.pool.reused, pooledBuffers: this.pool.size, startedBatches: this.startedBatches };
  }

  /** Stops the workers (waits for them to exit). Safe to call twice. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.pool.clear();
    this.ahead = undefined;
    this.refill = undefined;
    for (const [id, pending] of this.pending) {
      this.pending.delete(id);
      pending.reject(new Error('loader closed'));
    }
    // Ask each worker to finish its current batch and exit; terminate the ones that take too long.
    await Promise.all(this.slots.map(async ({ worker }) => {
      const exited = new Promise<void>((resolve) => worker.once('exit', () => resolve()));
      worker.postMessage({ type: 'close' });
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<'late'>((resolve) => {
        timer = setTimeout(() => resolve('late'), 5000);
      });
      if ((await Promise.race([exited, late])) === 'late') await worker.terminate();
      clearTimeout(timer);
      await exited;
    }));
  }

  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}


