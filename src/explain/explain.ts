import { tidy } from '../engine/index.js';
import type { ZooModel } from '../models/base.js';
import type { Preprocessing } from '../models/checkpoint.js';
import { batchTensors } from '../train/epoch.js';
import { normalizationOf } from '../train/classifier.js';
import { failureReason, viewLoader } from '../train/predict.js';
import { gradCam, type GradCamOptions, type GradCamResult } from './grad_cam.js';
import { clipFrames, type Frames } from './render.js';

/** One video's explanation; `index` is its position in the files given. */
export type VideoExplanation =
  | { index: number; file: string; ok: true; gradCam: GradCamResult; frames: Frames }
  | { index: number; file: string; ok: false; error: string };

/**
 * Grad-CAM of each video's centre clip, made as `stcnet eval` and `predict` make clips (the test-mode
 * loader reading the video: the checkpoint's short side, frames, stride and centre crop), with the
 * clip's frames as the network saw them, yielded in the files' order as each is done (so a folder of
 * videos never holds more than one clip's pictures). A video that cannot be decoded yields its error,
 * and the others go on.
 */
export async function* explainVideos(model: ZooModel, files: string[], preprocessing: Preprocessing,
  options: GradCamOptions = {}): AsyncGenerator<VideoExplanation> {
  if (files.length === 0) return;
  const normalize = normalizationOf(preprocessing);
  const loader = await viewLoader(files.map((file) => ({ path: file, relPath: file, label: 0 })), preprocessing, 1, 1, 1);
  try {
    for await (const batch of loader.epoch(0)) {
      const index = batch.index, file = files[index]!;
      if (batch.labels.length === 0) {
        yield { index, file, ok: false, error: failureReason(batch.failures[0]?.reason ?? 'no clip could be made') };
        continue;
      }
      yield tidy(() => {
        const { clips } = batchTensors(batch);
        loader.recycle(batch);
        return { index, file, ok: true as const, gradCam: gradCam(model, clips, options), frames: clipFrames(clips, normalize.mean, normalize.std) };
      });
    }
  } finally {
    await loader.close();
  }
}
