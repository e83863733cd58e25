import { F, fromTypedArray, noGrad, tidy, type Tensor } from '../engine/index.js';
import type { Module } from '../nn/index.js';
import type { Optimizer } from '../optim/index.js';
import type { ClipBatch } from '../data/loader.js';
import { ScoreAccumulator, type AccuracyReport } from './metrics.js';

/**
 * A loader batch as engine tensors: clips N×C×T×H×W (float32) and int64 labels. uint8 batches are
 * raw pixels: scaled to [0,1] and normalised here with the batch's own mean/std, so a model sees the
 * same inputs from either loader output.
 */
export function batchTensors(batch: ClipBatch): { clips: Tensor; labels: Tensor } {
  const labels = fromTypedArray(BigInt64Array.from(batch.labels, (label) => BigInt(label)), [batch.labels.length]);
  if (batch.dtype !== 'uint8') return { clips: fromTypedArray(batch.data, batch.shape, { dtype: batch.dtype }), labels };
  const clips = tidy(() => {
    const pixels = fromTypedArray(batch.data, batch.shape, { dtype: 'uint8' }).float().div(255);
    const norm = batch.normalization;
    if (!norm) return pixels;
    const perChannel = (values: readonly number[]): Tensor => fromTypedArray(Float32Array.from(values), [1, 3, 1, 1, 1]);
    return pixels.sub(perChannel(norm.mean)).div(perChannel(norm.std));
  });
  return { clips, labels };
}

export interface TrainStepResult {
  loss: number;
  correct: number;
  clips: number;
}

/** One SGD step on a batch: forward, cross-entropy, backward, update. Frees everything it made. */
export function trainStep(model: Module, optimizer: Optimizer, batch: ClipBatch): TrainStepResult {
  return tidy(() => {
    const { clips, labels } = batchTensors(batch);
    optimizer.zeroGrad();
    const logits = model.forward(clips);
    const loss = F.crossEntropy(logits, labels);
    loss.backward();
    optimizer.step();
    const correct = noGrad(() => logits.argmax(1).eq(labels).sum().item());
    return { loss: loss.item(), correct, clips: batch.labels.length };
  });
}

/** Scores every batch in eval mode and reports clip- and video-level accuracy. */
export async function evaluate(model: Module, batches: AsyncIterable<ClipBatch>, numClasses: number,
  onBatch?: (clips: number) => void): Promise<AccuracyReport> {
  const accumulator = new ScoreAccumulator(numClasses);
  const wasTraining = model.training;
  model.eval();
  try {
    for await (const batch of batches) {
      const probabilities = noGrad(() => tidy(() => {
        const { clips } = batchTensors(batch);
        return model.forward(clips).softmax(1).toFloat32Array();
      }));
      accumulator.add(probabilities, batch.labels, batch.videoIndices);
      onBatch?.(batch.labels.length);
    }
  } finally {
    model.train(wasTraining);
  }
  return accumulator.report();
}
