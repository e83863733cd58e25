import { manualSeed, noGrad } from '../engine/index.js';
import { BatchNorm3d, init } from '../nn/index.js';
import { createModel, type ZooModel } from '../models/index.js';

/**
 * The benchmark's model: seeded weights, and BatchNorm statistics far from 0 and 1 as a trained
 * model's are, so that folding BatchNorm into the convolutions is checked on numbers that matter.
 */
export function seededBenchModel(arch: string, frames: number, classes: number): ZooModel {
  manualSeed(0);
  const model = createModel(arch, { numClasses: classes, frames });
  noGrad(() => {
    for (const [, module] of model.namedModules()) {
      if (!(module instanceof BatchNorm3d)) continue;
      init.normal_(module.runningMean!, 0, 0.1);
      init.uniform_(module.runningVar!, 0.5, 1.5);
      init.normal_(module.weight!, 1, 0.1);
      init.normal_(module.bias!, 0, 0.1);
    }
  });
  return model;
}
