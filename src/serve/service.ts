import type { Readable } from 'node:stream';
import { readdir } from 'node:fs/promises';
import { topScores, type ClassScore } from '../train/predict.js';
import { MicroBatcher } from './batcher.js';
import type { ClipSpec, Clips } from './clips.js';
import { HttpError } from './errors.js';
import { clipsFromFrames, clipsFromVideo, type InputLimits, type InputSummary } from './inputs.js';
import { parseFrames } from './json_frames.js';
import { Limiter } from './limiter.js';
import type { ServedModel } from './model.js';
import type { ServeOptions } from './options.js';
import { UploadFolder } from './upload.js';

/**
 * What the service does, apart from HTTP: a request's input becomes clips (upload → temp file →
 * ffprobe/ffmpeg, or JSON frames), the clips go through the micro-batcher, and the clip scores are
 * averaged into the video's scores exactly as `stcnet predict` averages them.
 */
export interface Prediction {
  model: string;
  /** The top-k classes, best first, as three parallel lists and as records. */
  labels: string[];
  indices: number[];
  scores: number[];
  top: ClassScore[];
  /** Clips × crops scored. */
  views: number;
  input: InputSummary;
  timing: {
    /** Receiving the upload (or parsing the JSON body is not included: fastify parses it before the handler). */
    uploadMs: number;
    decodeMs: number;
    queueMs: number;
    inferenceMs: number;
    totalMs: number;
    /** Requests and clips in the forward pass this request shared. */
    batchRequests: number;
    batchClips: number;
  };
}

export class Service {
  readonly batcher: MicroBatcher;
  private readonly decoders: Limiter;
  private readonly spec: ClipSpec;
  private readonly limits: InputLimits;
  /** /predict requests admitted and not yet answered. */
  inFlight = 0;
  served = 0;
  failed = 0;
  /** Smoothed duration of a prediction (ms), for Retry-After. */
  private meanMs = 0;
  readonly startedAt = Date.now();
  closing = false;

  constructor(readonly model: ServedModel, readonly uploads: UploadFolder, readonly options: ServeOptions) {
    this.batcher = new MicroBatcher((data, count) => model.probabilities(data, count), {
      maxBatch: options.maxBatch, waitMs: options.batchWaitMs, numClasses: model.numClasses, clipElements: model.clipElements,
    });
    this.decoders = new Limiter(options.decoders);
    const p = model.preprocessing;
    this.spec = {
      frames: p.frames, stride: p.stride, size: p.size, clips: options.clips, crops: options.crops,
      normalization: { mean: model.description.input.mean, std: model.description.input.std },
    };
    this.limits = { maxSeconds: options.maxSeconds, maxFrames: options.maxFrames, minFrames: options.minFrames };
  }

  /** Seconds a refused client should wait: about one prediction's time, at least 1. */
  retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.meanMs / 1000));
  }

  /** The top-k of an uploaded video streamed from `body`. */
  async predictUpload(body: Readable, topK: number, signal: AbortSignal, isTruncated?: () => boolean): Promise<Prediction> {
    const started = performance.now();
    return this.uploads.withUpload(body, this.options.maxUploadBytes, async (file) => {
      const uploaded = performance.now();
      const p = this.model.preprocessing;
      const clips = await this.decoders.run(() => {
        if (signal.aborted) throw signal.reason ?? new Error('aborted');
        return clipsFromVideo(file, { shortSide: p.shortSide, ...(p.fps !== undefined ? { fps: p.fps } : {}) }, this.spec, this.limits, signal);
      });
      return this.score(clips, topK, signal, started, uploaded);
    }, isTruncated);
  }

  /** The top-k of frames sent as JSON (already parsed by fastify, bounded by the body limit). */
  async predictFrames(body: unknown, topK: number, signal: AbortSignal): Promise<Prediction> {
    const started = performance.now();
    const parsed = parseFrames(body);
    return this.score(clipsFromFrames(parsed.frames, parsed.width, parsed.height, this.spec, this.limits), topK, signal, started, started);
  }

  private async score(clips: Clips & { input: InputSummary }, topK: number, signal: AbortSignal, started: number, uploaded: number): Promise<Prediction> {
    const decoded = performance.now();
    const result = await this.batcher.submit(clips.data, clips.count, signal);
    // The mean softmax over the clips, accumulated as predict accumulates it (src/train/predict.ts).
    const k = this.model.numClasses;
    const n = clips.count;
    const scores = new Float32Array(k);
    for (let i = 0; i < n; i++) for (let c = 0; c < k; c++) scores[c]! += result.probabilities[i * k + c]! / n;
    const top = topScores(scores, this.model.classes, topK);
    const totalMs = performance.now() - started;
    this.meanMs = this.meanMs === 0 ? totalMs : 0.8 * this.meanMs + 0.2 * totalMs;
    const ms = (value: number) => Math.round(value * 10) / 10;
    return {
      model: this.model.description.name,
      labels: top.map((t) => t.label), indices: top.map((t) => t.index), scores: top.map((t) => t.score), top,
      views: n, input: clips.input,
      timing: {
        uploadMs: ms(uploaded - started), decodeMs: ms(decoded - uploaded), queueMs: ms(result.queueMs), inferenceMs: ms(result.inferenceMs),
        totalMs: ms(totalMs), batchRequests: result.batchRequests, batchClips: result.batchClips,
      },
    };
  }

  async health(): Promise<Record<string, unknown>> {
    let uploads = 0;
    try {
      uploads = (await readdir(this.uploads.dir)).length;
    } catch {
      uploads = 0;
    }
    return {
      status: this.closing ? 'closing' : 'ok',
      model: this.model.description.name,
      uptimeS: Math.round((Date.now() - this.startedAt) / 100) / 10,
      inFlight: this.inFlight, waiting: this.batcher.waiting,
      served: this.served, failed: this.failed,
      forwardPasses: this.batcher.passes, meanBatchRequests: Math.round(this.batcher.meanBatch * 100) / 100,
      liveTensors: this.model.liveTensors(), rssBytes: process.memoryUsage.rss(), uploadFiles: uploads,
    };
  }

  /** A top-k from the request's ?top=, else the service's --top-k; bounded by the class count. */
  topK(query: unknown): number {
    const raw = (query as Record<string, unknown> | undefined)?.top;
    if (raw === undefined) return Math.min(this.options.topK, this.model.numClasses);
    const value = Number(raw);
    if (typeof raw !== 'string' || !Number.isInteger(value) || value < 1 || value > this.model.numClasses) {
      throw new HttpError(400, 'bad_top', `?top=${String(raw).slice(0, 20)}: expected an integer from 1 to ${this.model.numClasses} (the model's classes)`);
    }
    return value;
  }
}
