import { join } from 'node:path';
import { generateSynth } from '../../src/data/synth.js';
import { loadDataset } from '../../src/data/formats/index.js';
import { sampleKey, uniqueSamples } from '../../src/data/dataset.js';
import { prepareCache } from '../../src/video/cache.js';
import { validateConfig, type TrainConfig } from '../../src/train/config.js';
import { tempDir } from '../helpers.js';

/**
 * The trainer tests' data: 4 motion classes × 6 tiny videos (48×36, plain scenes) in the UCF101
 * layout, and their frame cache; made once per test file (about 15 s on 2 busy cores).
 */
export interface TinyData {
  root: string;
  cache: string;
  /** A scratch folder for run folders. */
  work: string;
}

let made: Promise<TinyData> | undefined;

export function tinyData(): Promise<TinyData> {
  made ??= (async () => {
    const work = tempDir('stcnet-train-');
    const root = join(work, 'data');
    const cache = join(work, 'cache');
    await generateSynth({
      out: root, classes: 4, videosPerClass: 6, width: 48, height: 36, fps: 8, minDuration: 1, maxDuration: 1.5,
      noise: 2, shake: 0, seed: 7, jobs: 2, scene: 'plain', quiet: true,
    });
    const dataset = await loadDataset(root, 'ucf101');
    const items = uniqueSamples(dataset).map((sample) => ({ key: sampleKey(sample), path: sample.path }));
    await prepareCache(cache, items, { shortSide: 36, quality: 90, jobs: 2, quiet: true });
    return { root, cache, work };
  })();
  return made;
}

/** A config for a tiny, fast run (4 frames of 32², width ×0.125, batch 4: 4 steps per epoch). */
export function tinyConfig(data: TinyData, out: string, overrides: Record<string, unknown> = {}): TrainConfig {
  return validateConfig({
    root: data.root, cache: data.cache, out, frames: 4, size: 32, 'width-multiplier': 0.125, 'batch-size': 4,
    epochs: 2, flip: false, workers: 1, quiet: true, ...overrides,
  }, 'test');
}
