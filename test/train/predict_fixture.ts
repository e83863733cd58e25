import { join } from 'node:path';
import { generateSynth } from '../../src/data/synth.js';
import { NORMALIZATIONS } from '../../src/data/transforms.js';
import { manualSeed } from '../../src/engine/index.js';
import { createModel } from '../../src/models/registry.js';
import { saveModelCheckpoint, type Preprocessing } from '../../src/models/checkpoint.js';
import { tempDir } from '../helpers.js';

/**
 * The eval and predict tests' inputs: 4 motion classes × 6 tiny videos (48×36, plain scenes) in
 * the UCF101 layout, and an untrained STC-ResNet-18 (4 frames of 32², width ×0.125, seeded) saved
 * as a stcnet checkpoint with its class names and preprocessing. Made once per test file.
 */
export interface PredictFixture {
  work: string;
  data: string;
  checkpoint: string;
  classes: string[];
  preprocessing: Preprocessing;
}

export const FIXTURE_CLASSES = ['MoveRight', 'MoveLeft', 'MoveUp', 'MoveDown'];

export const FIXTURE_PREPROCESSING: Preprocessing = {
  frames: 4, stride: 1, size: 32, mean: [...NORMALIZATIONS.kinetics.mean], std: [...NORMALIZATIONS.kinetics.std], shortSide: 36,
};

let made: Promise<PredictFixture> | undefined;

export function predictFixture(): Promise<PredictFixture> {
  made ??= (async () => {
    const work = tempDir('stcnet-predict-');
    const data = join(work, 'data');
    await generateSynth({
      out: data, classes: 4, videosPerClass: 6, width: 48, height: 36, fps: 8, minDuration: 1, maxDuration: 1.5,
      noise: 2, shake: 0, seed: 11, jobs: 2, scene: 'plain', quiet: true,
    });
    manualSeed(0);
    const model = createModel('stc_resnet3d_18', { numClasses: 4, frames: 4, widthMultiplier: 0.125 });
    const checkpoint = join(work, 'model.safetensors');
    saveModelCheckpoint(checkpoint, model, { classes: FIXTURE_CLASSES, preprocessing: FIXTURE_PREPROCESSING });
    model.dispose();
    return { work, data, checkpoint, classes: FIXTURE_CLASSES, preprocessing: FIXTURE_PREPROCESSING };
  })();
  return made;
}
