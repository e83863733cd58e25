import { ClipMaker, type ClipItem, type ClipSettings } from '../data/clip.js';
import { testClipIndices } from '../data/samplers.js';
import { centerCropBox, cropResizeJs, normalizationTables, normalizeClip, type Normalization } from '../data/transforms.js';
import { UserError } from '../util/errors.js';
import { readOnnxMetadata, type OnnxInputSpec, type OnnxMetadata, type OnnxPreprocessing } from './metadata.js';

/**
 * An exported model run by ONNX Runtime (onnxruntime-node), without libtorch: clips are made as
 * `stcnet predict` makes them (the same ClipMaker: K evenly spaced clips, the centre crop of the
 * short side at the checkpoint's decode size, its mean/std), and a video's scores are the mean
 * softmax over its clips, so the top-1 agrees with `stcnet predict` on the same video and settings.
 * Nothing reachable from here imports the engine (test/export/onnx_entry.test.ts walks the imports).
 */

export interface ClassScore {
  index: number;
  label: string;
  score: number;
}

/** Raw frames for predictClip: packed RGB (HWC, uint8), all width×height. */
export interface RgbFrames {
  frames: Uint8Array[];
  width: number;
  height: number;
}

export interface VideoPrediction {
  /** The k best classes of the mean softmax over the video's clips. */
  top: ClassScore[];
  /** Mean softmax scores, one per class. */
  scores: Float32Array;
  /** Clips (× crops) the scores average over. */
  views: number;
}

export interface PredictVideoOptions {
  /** Clips per video, evenly spaced (K; default 10, as `stcnet predict`). */
  clips?: number;
  /** Classes returned (default 5). */
  topK?: number;
  /** Crops per clip: 1 (centre) or 3 (along the long side); default 1. */
  crops?: 1 | 3;
}

export interface LoadOnnxModelOptions {
  /** ONNX Runtime's intra-op threads (default: ONNX Runtime's choice, one per core). */
  threads?: number;
}

export interface OnnxModel {
  readonly file: string;
  readonly arch: string;
  readonly classes: string[];
  readonly preprocessing: OnnxPreprocessing;
  readonly inputSpec: OnnxInputSpec;
  readonly metadata: OnnxMetadata;
  /**
   * Logits N×classes (row-major) for `count` normalised clips laid out N×C×T×H×W. Any count works:
   * a model exported with a fixed batch is fed in batches of that size (the last one zero-padded).
   */
  logits(clips: Float32Array, count: number): Promise<Float32Array>;
  /**
   * Top-k classes of one clip: a normalised Float32Array C×T×H×W (what the model takes), or RGB
   * frames, from which one clip is sampled (the middle one, at the model's stride), centre-cropped
   * to a square, resized to the model's size and normalised.
   */
  predictClip(clip: Float32Array | RgbFrames, options?: { topK?: number }): Promise<ClassScore[]>;
  /** Top-k classes of a video file, decoded through ffmpeg as `stcnet predict` decodes it. */
  predictVideo(file: string, options?: PredictVideoOptions): Promise<VideoPrediction>;
  /** Releases ONNX Runtime's session; the model cannot be used afterwards. */
  close(): Promise<void>;
}

type Ort = typeof import('onnxruntime-node');

/** Loads onnxruntime-node on first use, so that reading metadata never needs it. */
async function onnxRuntime(): Promise<Ort> {
  try {
    return await import('onnxruntime-node');
  } catch (error) {
    throw new UserError(`stcnet/onnx needs the onnxruntime-node package (npm install onnxruntime-node --ignore-scripts): ${(error as Error).message}`);
  }
}

/** The mean and std as three channels (one value stands for all three). */
export function normalizationOf(p: OnnxPreprocessing): Normalization {
  const three = (values: number[]) => (values.length === 1 ? [values[0]!, values[0]!, values[0]!] : values.slice(0, 3)) as [number, number, number];
  return { mean: three(p.mean), std: three(p.std) };
}

/** The short side videos are decoded at: the model's, else 8/7 of the crop (as stcnet's classifier). */
export function decodeShortSide(p: OnnxPreprocessing): number {
  return p.shortSide ?? Math.max(p.size, Math.round((p.size * 8) / 7));
}

/** Row-wise softmax of N×K logits. */
export function softmaxRows(logits: Float32Array, k: number): Float32Array {
  const out = new Float32Array(logits.length);
  for (let row = 0; row < logits.length / k; row++) {
    let max = -Infinity;
    for (let c = 0; c < k; c++) max = Math.max(max, logits[row * k + c]!);
    let sum = 0;
    for (let c = 0; c < k; c++) sum += (out[row * k + c] = Math.exp(logits[row * k + c]! - max));
    for (let c = 0; c < k; c++) out[row * k + c]! /= sum;
  }
  return out;
}

/** The k best classes, best first (ties: lower index first). */
export function topScores(scores: Float32Array, classes: readonly string[], k: number): ClassScore[] {
  const order = Array.from(scores.keys()).sort((a, b) => scores[b]! - scores[a]! || a - b);
  return order.slice(0, Math.min(k, scores.length)).map((index) => ({ index, label: classes[index] ?? `class ${index}`, score: scores[index]! }));
}

function checkCount(what: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!(Number.isInteger(v) && v >= 1)) throw new UserError(`${what} must be a positive integer, got ${String(value)}`);
  return v;
}

/**
 * Opens an exported model: its metadata first (a file that is not one stcnet exported fails here,
 * naming the file), then an ONNX Runtime session on the CPU.
 */
export async function loadOnnxModel(file: string, options: LoadOnnxModelOptions = {}): Promise<OnnxModel> {
  const metadata = readOnnxMetadata(file);
  if (options.threads !== undefined) checkCount('loadOnnxModel: threads', options.threads, 1);
  const ort = await onnxRuntime();
  let session: import('onnxruntime-node').InferenceSession;
  try {
    session = await ort.InferenceSession.create(file, {
      executionProviders: ['cpu'], graphOptimizationLevel: 'all',
      ...(options.threads !== undefined ? { intraOpNumThreads: options.threads, interOpNumThreads: 1 } : {}),
    });
  } catch (error) {
    throw new UserError(`${file}: ONNX Runtime cannot load this model: ${(error as Error).message.split('\n')[0]}`);
  }
  return new OrtModel(file, metadata, session, ort);
}

class OrtModel implements OnnxModel {
  readonly arch: string;
  readonly classes: string[];
  readonly preprocessing: OnnxPreprocessing;
  readonly inputSpec: OnnxInputSpec;
  #closed = false;
  #maker: ClipMaker | undefined;
  #makerKey = '';

  constructor(readonly file: string, readonly metadata: OnnxMetadata, private readonly session: import('onnxruntime-node').InferenceSession, private readonly ort: Ort) {
    this.arch = metadata.arch;
    this.classes = metadata.classes;
    this.preprocessing = metadata.preprocessing;
    this.inputSpec = metadata.input;
  }

  private get clipElements(): number {
    const { channels, frames, size } = this.inputSpec;
    return channels * frames * size * size;
  }

  async logits(clips: Float32Array, count: number): Promise<Float32Array> {
    if (this.#closed) throw new Error(`${this.file}: the model was closed`);
    const { batch, channels, frames, size } = this.inputSpec;
    checkCount('logits: count', count, 1);
    const per = this.clipElements;
    if (clips.length !== count * per) {
      throw new UserError(`${this.file}: ${count} clip${count === 1 ? '' : 's'} of ${channels}×${frames}×${size}×${size} need ${count * per} values, got ${clips.length}`);
    }
    if (batch === null) return this.run(clips, count);
    // A fixed-batch model takes its clips in batches of that size, the last one padded with zeros.
    const k = this.classes.length;
    const out = new Float32Array(count * k);
    for (let start = 0; start < count; start += batch) {
      const n = Math.min(batch, count - start);
      let data = clips.subarray(start * per, (start + n) * per);
      if (n < batch) {
        const padded = new Float32Array(batch * per);
        padded.set(data);
        data = padded;
      }
      out.set((await this.run(data, batch)).subarray(0, n * k), start * k);
    }
    return out;
  }

  /** One ONNX Runtime call on exactly `count` clips. */
  private async run(clips: Float32Array, count: number): Promise<Float32Array> {
    const { name, channels, frames, size } = this.inputSpec;
    const input = new this.ort.Tensor('float32', clips, [count, channels, frames, size, size]);
    try {
      const outputs = await this.session.run({ [name]: input });
      const output = outputs[this.metadata.output] ?? Object.values(outputs)[0]!;
      const logits = new Float32Array(output.data as Float32Array);
      for (const tensor of Object.values(outputs)) tensor.dispose();
      if (logits.length !== count * this.classes.length) {
        throw new UserError(`${this.file}: the model gave ${logits.length} outputs for ${count} clips of ${this.classes.length} classes; its metadata does not match its graph`);
      }
      return logits;
    } finally {
      input.dispose();
    }
  }

  async predictClip(clip: Float32Array | RgbFrames, options: { topK?: number } = {}): Promise<ClassScore[]> {
    const topK = checkCount('predictClip: topK', options.topK, 5);
    const data = clip instanceof Float32Array ? clip : this.clipFromFrames(clip);
    const probabilities = softmaxRows(await this.logits(data, 1), this.classes.length);
    return topScores(probabilities, this.classes, topK);
  }

  /** One clip from RGB frames: the middle clip of T frames at the stride, centre square, resized and normalised. */
  private clipFromFrames(input: RgbFrames): Float32Array {
    const { frames, width, height } = input;
    if (!Array.isArray(frames) || frames.length === 0) throw new UserError('predictClip: no frames given');
    if (!(Number.isInteger(width) && width >= 1 && Number.isInteger(height) && height >= 1)) {
      throw new UserError(`predictClip: width and height must be positive integers, got ${String(width)}×${String(height)}`);
    }
    frames.forEach((frame, i) => {
      if (!(frame instanceof Uint8Array) || frame.length !== width * height * 3) {
        throw new UserError(`predictClip: frame ${i} must be ${width}×${height} packed RGB (${width * height * 3} bytes), got ${frame instanceof Uint8Array ? frame.length : typeof frame}`);
      }
    });
    const p = this.preprocessing;
    const indices = testClipIndices(frames.length, p.frames, p.stride, 1)[0]!;
    const box = centerCropBox(width, height);
    const plane = p.size * p.size;
    const bytes = new Uint8Array(3 * p.frames * plane);
    indices.forEach((index, t) => cropResizeJs(frames[index]!, width, height, box, false, bytes, t * plane, p.size, p.size, p.frames * plane));
    const out = new Float32Array(bytes.length);
    normalizeClip(bytes, 0, p.frames * plane, normalizationTables(normalizationOf(p)), out, 0);
    return out;
  }

  async predictVideo(file: string, options: PredictVideoOptions = {}): Promise<VideoPrediction> {
    const clips = checkCount('predictVideo: clips', options.clips, 10);
    const topK = checkCount('predictVideo: topK', options.topK, 5);
    const crops = options.crops ?? 1;
    if (crops !== 1 && crops !== 3) throw new UserError(`predictVideo: crops must be 1 or 3, got ${String(options.crops)}`);
    const maker = this.clipMaker(clips, crops);
    const items: ClipItem[] = [];
    for (let k = 0; k < clips; k++) for (let c = 0; c < crops; c++) items.push({ sample: 0, file, label: 0, position: items.length, clip: k, crop: c });
    const batch = await maker.makeBatch({ id: 0, epoch: 0, index: 0, items });
    if (batch.count === 0) {
      const reason = batch.failures[0]?.reason ?? 'no clip could be made';
      throw new UserError(`${file}: ${reason.replace(/\[[^\]\n]* @ 0x[0-9a-f]+\] ?/g, '')}`);
    }
    const k = this.classes.length;
    const probabilities = softmaxRows(await this.logits(batch.data as Float32Array, batch.count), k);
    const scores = new Float32Array(k);
    for (let i = 0; i < batch.count; i++) for (let c = 0; c < k; c++) scores[c]! += probabilities[i * k + c]! / batch.count;
    return { top: topScores(scores, this.classes, topK), scores, views: batch.count };
  }

  /** The test-mode clip maker of `stcnet predict` for these settings (kept while they stay the same). */
  private clipMaker(clips: number, crops: 1 | 3): ClipMaker {
    const key = `${clips}x${crops}`;
    if (this.#maker && this.#makerKey === key) return this.#maker;
    const p = this.preprocessing;
    const settings: ClipSettings = {
      mode: 'test', source: { kind: 'video', shortSide: decodeShortSide(p), ...(p.fps !== undefined ? { fps: p.fps } : {}) },
      frames: p.frames, stride: p.stride, size: p.size, output: 'float32', normalization: normalizationOf(p),
      scales: [1], flip: false, testClips: clips, testCrops: crops, seed: 0,
    };
    this.#maker = new ClipMaker(settings);
    this.#makerKey = key;
    return this.#maker;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.session.release();
  }
}
