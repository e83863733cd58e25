import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { generateSynth } from '../../src/data/synth.js';
import { loadDataset } from '../../src/data/formats/index.js';
import { sampleKey, uniqueSamples, type VideoDataset } from '../../src/data/dataset.js';
import { prepareCache } from '../../src/video/cache.js';
import { ClipLoader, type ClipBatch, type LoaderOptions } from '../../src/data/loader.js';
import { batchTensors } from '../../src/train/epoch.js';
import { tidy } from '../../src/engine/index.js';
import { assertClose } from '../helpers.js';

let dir: string;
let cacheDir: string;
let ds: VideoDataset;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'stcnet-uint8-'));
  await generateSynth({ out: path.join(dir, 'synth'), classes: 3, videosPerClass: 3, width: 64, height: 48, fps: 25,
    minDuration: 0.6, maxDuration: 1, noise: 4, shake: 1, seed: 21, quiet: true, jobs: 2 });
  ds = await loadDataset(path.join(dir, 'synth'), 'ucf101');
  cacheDir = path.join(dir, 'cache');
  await prepareCache(cacheDir, uniqueSamples(ds).map((s) => ({ key: sampleKey(s), path: s.path })), { shortSide: 48, quality: 90, quiet: true });
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function batches(options: Partial<LoaderOptions>): Promise<ClipBatch[]> {
  const loader = await ClipLoader.create({ samples: ds.splits.train1!, source: { kind: 'cache', dir: cacheDir }, mode: 'train', batchSize: 2,
    frames: 4, size: 32, workers: 0, seed: 9, ...options });
  const out: ClipBatch[] = [];
  try {
    for await (const batch of loader.epoch(0)) out.push(batch);
  } finally {
    await loader.close();
  }
  return out;
}

for (const normalize of ['kinetics', 'imagenet', 'none', { mean: [0.5, 0.4, 0.3], std: [0.2, 0.25, 0.3] }] as const) {
  const name = typeof normalize === 'string' ? normalize : 'custom mean/std';
  test(`uint8 and float32 loader output give the same model inputs (normalize: ${name})`, async () => {
    const asFloat = await batches({ output: 'float32', normalize: normalize as LoaderOptions['normalize'] });
    const asBytes = await batches({ output: 'uint8', normalize: normalize as LoaderOptions['normalize'] });
    assert.equal(asBytes.length, asFloat.length);
    assert.ok(asBytes.length > 0);
    asFloat.forEach((floatBatch, b) => {
      const byteBatch = asBytes[b]!;
      assert.equal(byteBatch.dtype, 'uint8');
      assert.deepEqual(byteBatch.videoIndices, floatBatch.videoIndices);
      const [fromFloat, fromBytes] = tidy(() => [batchTensors(floatBatch).clips.toFloat32Array(), batchTensors(byteBatch).clips.toFloat32Array()]);
      assertClose(fromBytes!, fromFloat!, { rtol: 1e-5, atol: 1e-5, what: `batch ${b}` });
    });
  });
}
