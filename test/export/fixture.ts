import { join } from 'node:path';
import { noGrad, manualSeed } from '../../src/engine/index.js';
import { BatchNorm3d, init } from '../../src/nn/index.js';
import { createModel, type ZooModel } from '../../src/models/index.js';
import { saveModelCheckpoint, type Preprocessing } from '../../src/models/checkpoint.js';
import { NORMALIZATIONS } from '../../src/data/transforms.js';

/**
 * Inputs of the export tests: seeded models with non-trivial BatchNorm statistics (so that folding
 * has something to fold), saved as stcnet checkpoints with classes and preprocessing.
 */

/** Seeded running statistics and affine parameters in every BatchNorm. */
export function randomiseBatchNorms(model: ZooModel): void {
  noGrad(() => {
    for (const [, module] of model.namedModules()) {
      if (!(module instanceof BatchNorm3d)) continue;
      init.normal_(module.runningMean!, 0, 0.2);
      init.uniform_(module.runningVar!, 0.5, 2);
      init.normal_(module.weight!, 1, 0.3);
      init.normal_(module.bias!, 0, 0.2);
    }
  });
}

export function preprocessingFor(frames: number, size: number): Preprocessing {
  return { frames, stride: 1, size, mean: [...NORMALIZATIONS.kinetics.mean], std: [...NORMALIZATIONS.kinetics.std], shortSide: Math.round(size * 8 / 7) };
}

export interface SavedModel {
  model: ZooModel;
  checkpoint: string;
  classes: string[];
  preprocessing: Preprocessing;
}

/** Builds `arch` with `options` (seeded), randomises its BatchNorms and saves it in `dir`; the caller disposes the model. */
export function savedModel(dir: string, arch: string, options: Record<string, unknown>, frames: number, size: number, seed = 1): SavedModel {
  manualSeed(seed);
  const model = createModel(arch, options).eval();
  randomiseBatchNorms(model);
  const classes = Array.from({ length: model.numClasses }, (_, i) => `action ${i}`);
  const preprocessing = preprocessingFor(frames, size);
  const checkpoint = join(dir, `${arch}-${seed}.safetensors`);
  saveModelCheckpoint(checkpoint, model, { classes, preprocessing });
  return { model, checkpoint, classes, preprocessing };
}
