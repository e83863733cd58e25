import { F, fromTypedArray, noGrad, tidy, type Tensor } from '../engine/index.js';
import type { Module } from '../nn/index.js';
import type { Optimizer } from '../optim/index.js';
import type { ClipBatch } from '../data/loader.js';
import { ScoreAccumulator, type AccuracyReport } from './metrics.js';

/** A loader batch as engine tensors: clips N×C×T×H×W (float32) and int64 labels. */
export function batchTensors(batch: ClipBatch): { clips: Tensor; labels: Tensor } {
  const clips = fromTypedArray(batch.data, batch.shape, { dtype: batch.dtype });
  return {
    clips: batch.dtype === 'uint8' ? tidy(() => clips.float().div(255)) : clips,
    labels: fromTypedArray(BigInt64Array.from(batch.labels, (label) => BigInt(label)), [batch.labels.length]),
  };
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
