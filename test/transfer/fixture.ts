import { join } from 'node:path';
import { generateSynth } from '../../src/data/synth.js';
import { loadDataset } from '../../src/data/formats/index.js';
import { sampleKey, uniqueSamples } from '../../src/data/dataset.js';
import { prepareCache } from '../../src/video/cache.js';
import { manualSeed } from '../../src/engine/index.js';
import { createModel } from '../../src/models/registry.js';
import { saveModelCheckpoint } from '../../src/models/checkpoint.js';
import { writeSafetensors } from '../../src/nn/safetensors.js';
import { validateTransferConfig, type TransferConfig } from '../../src/transfer/config.js';
import { tempDir } from '../helpers.js';

/**
 * The transfer tests' data: 6 tiny generated videos (3 motion classes × 2, 48×36, `varied` scenes,
 * so that different videos look different even to an untrained network) in the UCF101 layout, their
 * frame cache, and a small seeded teacher (resnet2d_18 at width 0.25) saved twice: as a stcnet
 * checkpoint and as a plain state dict in torchvision's names. Made once per test file (~10 s).
 */
export interface TransferData {
  root: string;
  cache: string;
  /** A stcnet resnet2d_18 checkpoint (width 0.25). */
  teacher: string;
  /** The same weights as a plain safetensors state dict (torchvision names, no metadata). */
  teacherPlain: string;
  work: string;
}

let made: Promise<TransferData> | undefined;

export function transferData(): Promise<TransferData> {
  made ??= (async () => {
    const work = tempDir('stcnet-transfer-');
    const root = join(work, 'data');
    const cache = join(work, 'cache');
    await generateSynth({
      out: root, classes: 3, videosPerClass: 2, width: 48, height: 36, fps: 8, minDuration: 1, maxDuration: 1.5,
      noise: 2, shake: 0, seed: 7, jobs: 2, scene: 'varied', quiet: true,
    });
    const dataset = await loadDataset(root, 'ucf101');
    await prepareCache(cache, uniqueSamples(dataset).map((s) => ({ key: sampleKey(s), path: s.path })), { shortSide: 36, quality: 90, jobs: 2, quiet: true });
    manualSeed(3);
    const model = createModel('resnet2d_18', { widthMultiplier: 0.25, numClasses: 10 });
    const teacher = join(work, 'teacher.safetensors');
    const teacherPlain = join(work, 'teacher-torchvision-names.safetensors');
    saveModelCheckpoint(teacher, model);
    writeSafetensors(teacherPlain, model.stateDict());
    model.dispose();
    return { root, cache, teacher, teacherPlain, work };
  })();
  return made;
}

/** A tiny, fast transfer config: 4 frames of 32², student width 0.25, 2 teacher frames, batch 6. */
export function transferConfig(data: TransferData, out: string, overrides: Record<string, unknown> = {}): TransferConfig {
  return validateTransferConfig({
    root: data.root, format: 'videos', cache: data.cache, teacher: data.teacher, out, frames: 4, size: 32, 'width-multiplier': 0.25,
    'teacher-frames': 2, positions: 4, 'batch-size': 6, epochs: 2, 'val-fraction': 0, workers: 1, quiet: true, ...overrides,
  }, 'test');
}
