import { fromTypedArray, noGrad, tidy, getNumThreads } from '../engine/index.js';
import { Rng } from '../data/random.js';
import type { ZooModel } from '../models/base.js';
import { UserError } from '../util/errors.js';

/**
 * The export's check: ONNX Runtime runs the written bytes on a seeded random clip and its logits
 * must equal the model's own (eager, eval mode) within `RELATIVE_TOLERANCE` of the largest |logit|.
 */

export const RELATIVE_TOLERANCE = 1e-4;

export interface Verification {
  /** The largest |ONNX Runtime − stcnet| over every logit of the batch. */
  maxAbsDiff: number;
  /** The largest |logit| stcnet gave: the scale of the tolerance. */
  maxLogit: number;
  /** Clips in the random batch, and the seed that made it. */
  batch: number;
  seed: number;
  /** maxAbsDiff ≤ RELATIVE_TOLERANCE · maxLogit. */
  ok: boolean;
}

/** A seeded N×C×T×S×S clip batch of standard-normal values (the scale of normalised pixels). */
export function randomClips(shape: number[], seed: number): Float32Array {
  const rng = new Rng('onnx-verify', seed);
  const data = new Float32Array(shape.reduce((a, b) => a * b, 1));
  for (let i = 0; i < data.length; i++) data[i] = rng.normal();
  return data;
}

/** stcnet's own logits for a batch (eval mode, no gradients), as float32. */
export function modelLogits(model: ZooModel, clips: Float32Array, shape: number[]): Float32Array {
  const wasTraining = model.training;
  model.eval();
  try {
    return noGrad(() => tidy(() => model.forward(fromTypedArray(clips, shape)).toFloat32Array()));
  } finally {
    model.train(wasTraining);
  }
}

/** ONNX Runtime's output for ONNX model bytes on one input (onnxruntime-node loaded here, lazily). */
export async function onnxRuntimeLogits(bytes: Uint8Array, inputName: string, clips: Float32Array, shape: number[], threads = getNumThreads()): Promise<Float32Array> {
  let ort: typeof import('onnxruntime-node');
  try {
    ort = await import('onnxruntime-node');
  } catch (error) {
    throw new UserError(`the export check needs onnxruntime-node (npm install onnxruntime-node --ignore-scripts), or --no-verify to write without it: ${(error as Error).message.split('\n')[0]}`);
  }
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1 });
  try {
    const input = new ort.Tensor('float32', clips, shape);
    const outputs = await session.run({ [inputName]: input });
    const output = Object.values(outputs)[0]!;
    const logits = new Float32Array(output.data as Float32Array);
    input.dispose();
    for (const tensor of Object.values(outputs)) tensor.dispose();
    return logits;
  } finally {
    await session.release();
  }
}

export function compareLogits(reference: Float32Array, actual: Float32Array): { maxAbsDiff: number; maxLogit: number } {
  if (reference.length !== actual.length) throw new Error(`export check: ONNX Runtime gave ${actual.length} logits, stcnet ${reference.length}`);
  let maxAbsDiff = 0;
  let maxLogit = 0;
  for (let i = 0; i < reference.length; i++) {
    const diff = Math.abs(reference[i]! - actual[i]!);
    // NaN anywhere fails the check (NaN compares false, so it is made infinite).
    maxAbsDiff = Math.max(maxAbsDiff, Number.isNaN(diff) ? Infinity : diff);
    maxLogit = Math.max(maxLogit, Math.abs(reference[i]!));
  }
  return { maxAbsDiff, maxLogit };
}

/** Runs both on the same seeded batch and compares. */
export async function verifyExport(model: ZooModel, bytes: Uint8Array, inputName: string, shape: number[], seed = 0): Promise<Verification> {
  const clips = randomClips(shape, seed);
  const reference = modelLogits(model, clips, shape);
  const actual = await onnxRuntimeLogits(bytes, inputName, clips, shape);
  const { maxAbsDiff, maxLogit } = compareLogits(reference, actual);
  return { maxAbsDiff, maxLogit, batch: shape[0]!, seed, ok: maxAbsDiff <= RELATIVE_TOLERANCE * maxLogit };
}
