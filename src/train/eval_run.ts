import { ClipLoader } from '../data/loader.js';
import type { VideoSample } from '../data/dataset.js';
import { noGrad, tidy } from '../engine/index.js';
import type { Module } from '../nn/index.js';
import type { Preprocessing } from '../models/checkpoint.js';
import { batchTensors } from './epoch.js';
import { decodeShortSide, normalizationOf } from './classifier.js';
import { ScoreAccumulator, type AccuracyReport } from './metrics.js';
import { failureReason } from './predict.js';

/**
 * The test protocol on a labelled split: K clips per video evenly spaced (× 1 or 3 crops), each
 * scored by the model in eval mode; clip and video figures from the softmax scores. Clips come
 * from a frame cache when one is given, else from the videos (decoded at the checkpoint's short side).
 */

export interface EvaluationSettings {
  preprocessing: Preprocessing;
  clips: number;
  crops: 1 | 3;
  batchSize: number;
  workers: number;
  /** A frame cache made by `stcnet prepare` for these samples. */
  cache?: string;
  /** Called after each batch with the clips (views) it held, and the total. */
  onBatch?: (views: number, total: number) => void;
}

export interface EvaluationResult {
  report: AccuracyReport;
  /** Videos that could not be read (not in the cache, undecodable), each once. */
  failures: { path: string; reason: string }[];
  /** Views (clips × crops) the loader planned. */
  plannedViews: number;
}

export async function evaluateSamples(model: Module & { numClasses: number }, samples: VideoSample[], settings: EvaluationSettings): Promise<EvaluationResult> {
  const p = settings.preprocessing;
  const loader = await ClipLoader.create({
    samples,
    source: settings.cache !== undefined ? { kind: 'cache', dir: settings.cache }
      : { kind: 'video', shortSide: decodeShortSide(p), ...(p.fps !== undefined ? { fps: p.fps } : {}) },
    mode: 'test', batchSize: settings.batchSize, frames: p.frames, stride: p.stride, size: p.size,
    normalize: normalizationOf(p), testClips: settings.clips, testCrops: settings.crops, workers: settings.workers,
    shuffle: false, dropLast: false,
  });
  const failures = new Map<string, string>();
  for (const skipped of loader.skipped) failures.set(skipped.path, skipped.reason);
  const accumulator = new ScoreAccumulator(model.numClasses, { cropsPerClip: settings.crops });
  const wasTraining = model.training;
  model.eval();
  try {
    for await (const batch of loader.epoch(0)) {
      for (const failure of batch.failures) {
        // The loader names failures by the video, also when its frames came from the cache.
        if (!failures.has(failure.path)) failures.set(failure.path, failureReason(failure.reason));
      }
      if (batch.labels.length > 0) {
        const probabilities = noGrad(() => tidy(() => {
          const { clips } = batchTensors(batch);
          loader.recycle(batch);  // copied: the workers make the next batch during this forward
          return model.forward(clips).softmax(1).toFloat32Array();
        }));
        accumulator.add(probabilities, batch.labels, batch.videoIndices, batch.clipIndices);
      }
      loader.recycle(batch);
      settings.onBatch?.(batch.labels.length + batch.failures.length, loader.clipsPerEpoch);
    }
  } finally {
    model.train(wasTraining);
    await loader.close();
  }
  return {
    report: accumulator.report(),
    failures: [...failures].map(([path, reason]) => ({ path, reason })),
    plannedViews: loader.clipsPerEpoch,
  };
}
