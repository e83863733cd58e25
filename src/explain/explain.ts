import { ClipLoader } from '../data/loader.js';
import { tidy } from '../engine/index.js';
import type { ZooModel } from '../models/base.js';
import type { Preprocessing } from '../models/checkpoint.js';
import { batchTensors } from '../train/epoch.js';
import { decodeShortSide, normalizationOf } from '../train/classifier.js';
import { failureReason } from '../train/predict.js';
import { gradCam, type GradCamOptions, type GradCamResult } from './grad_cam.js';
import { clipFrames, type Frames } from './render.js';

export type VideoExplanation =
  | { file: string; ok: true; gradCam: GradCamResult; frames: Frames }
  | { file: string; ok: false; error: string };

/**
 * Grad-CAM of each video's centre clip, made as `stcnet eval` and `predict` make clips (the test-mode
 * loader reading the video: the checkpoint's short side, frames, stride and centre crop), with the
 * clip's frames as the network saw them. A video that cannot be decoded gets its error, and the others go
 * on; `onVideo` is called as each one finishes.
 */
export async function explainVideos(model: ZooModel, files: string[], preprocessing: Preprocessing, options: GradCamOptions = {},
  onVideo?: (explanation: VideoExplanation) => void): Promise<VideoExplanation[]> {
  const results: VideoExplanation[] = new Array(files.length);
  if (files.length === 0) return results;
  const normalize = normalizationOf(preprocessing);
  const loader = await ClipLoader.create({
    samples: files.map((file) => ({ path: file, relPath: file, label: 0 })),
    source: { kind: 'video', shortSide: decodeShortSide(preprocessing), ...(preprocessing.fps !== undefined ? { fps: preprocessing.fps } : {}) },
    mode: 'test', batchSize: 1, frames: preprocessing.frames, stride: preprocessing.stride, size: preprocessing.size,
    normalize, testClips: 1, testCrops: 1, workers: 1, shuffle: false, dropLast: false,
  });
  try {
    for await (const batch of loader.epoch(0)) {
      const file = files[batch.index]!;
      let result: VideoExplanation;
      if (batch.labels.length === 0) {
        result = { file, ok: false, error: failureReason(batch.failures[0]?.reason ?? 'no clip could be made') };
      } else {
        result = tidy(() => {
          const { clips } = batchTensors(batch);
          loader.recycle(batch);
          return { file, ok: true as const, gradCam: gradCam(model, clips, options), frames: clipFrames(clips, normalize.mean, normalize.std) };
        });
      }
      results[batch.index] = result;
      onVideo?.(result);
    }
  } finally {
    await loader.close();
  }
  return results;
}
