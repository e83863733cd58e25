import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { generateSynth } from '../../src/data/synth.js';
import { loadDataset } from '../../src/data/formats/index.js';
import { sampleKey, uniqueSamples, type VideoSample } from '../../src/data/dataset.js';
import { prepareCache } from '../../src/video/cache.js';
import { ClipLoader, type ClipBatch, type LoaderOptions } from '../../src/data/loader.js';

/**
 * Where an epoch starts (`from`, as a resumed run asks) and the next epoch begun early (`next`, as
 * the trainer asks): the batches are exactly those of a loader asked for whole epochs one by one,
 * and no batch is made that nobody asked for, nor any made twice.
 */

let dir: string;
let cacheDir: string;
let samples: VideoSample[];

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'stcnet-loader-epochs-'));
  await generateSynth({ out: path.join(dir, 'synth'), classes: 3, videosPerClass: 8, width: 64, height: 48, fps: 25,
    minDuration: 0.6, maxDuration: 1.2, noise: 2, shake: 1, seed: 23, quiet: true, jobs: 2 });
  const ds = await loadDataset(path.join(dir, 'synth'), 'ucf101');
  samples = ds.splits.train1!;
  cacheDir = path.join(dir, 'cache');
  await prepareCache(cacheDir, uniqueSamples(ds).map((s) => ({ key: sampleKey(s), path: s.path })), { shortSide: 48, quality: 95, quiet: true });
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Seen { epoch: number; index: number; videos: number[]; data: Float32Array | Uint8Array }

async function collect(batches: AsyncGenerator<ClipBatch>, loader: ClipLoader): Promise<Seen[]> {
  const seen: Seen[] = [];
  for await (const batch of batches) {
    seen.push({ epoch: batch.epoch, index: batch.index, videos: [...batch.videoIndices], data: batch.data.slice() });
    loader.recycle(batch);
  }
  return seen;
}

const options = (workers: number): LoaderOptions => ({
  samples, source: { kind: 'cache', dir: cacheDir }, mode: 'train', batchSize: 2, frames: 4, size: 32, workers, prefetch: 2, seed: 5,
});

for (const workers of [0, 1]) {
  test(`workers ${workers}: an epoch from batch k is the whole epoch's batches k.., and makes only those`, async () => {
    const whole = await ClipLoader.create(options(workers));
    const resumed = await ClipLoader.create(options(workers));
    try {
      const total = whole.batchesPerEpoch;
      assert.ok(total >= 4, `the fixture has ${total} batches per epoch`);
      const expected = await collect(whole.epoch(1), whole);
      const from = 3;
      const actual = await collect(resumed.epoch(1, { from }), resumed);
      assert.deepEqual(actual, expected.slice(from));
      assert.equal(resumed.stats.startedBatches, total - from);
      assert.deepEqual(await collect(resumed.epoch(1, { from: total }), resumed), []);
      for (const bad of [-1, total + 1, 1.5]) {
        await assert.rejects(async () => resumed.epoch(0, { from: bad }).next(), new RegExp(`from must be a batch index 0\\.\\.${total}, got ${bad}`));
      }
    } finally {
      await Promise.all([whole.close(), resumed.close()]);
    }
  });

  test(`workers ${workers}: the next epoch's first batches are made before it is asked for, once, and are the same`, async () => {
    const plain = await ClipLoader.create(options(workers));
    const early = await ClipLoader.create(options(workers));
    try {
      const total = plain.batchesPerEpoch;
      const expected = [...await collect(plain.epoch(0), plain), ...await collect(plain.epoch(1), plain), ...await collect(plain.epoch(2), plain)];
      const first = await collect(early.epoch(0, { next: 1 }), early);
      // Epoch 1's first tasks went out while epoch 0's last batches were being made.
      assert.equal(early.stats.startedBatches, total + 2);
      const second = await collect(early.epoch(1, { next: 3 }), early);
      assert.equal(early.stats.startedBatches, 2 * total + 2, 'epoch 1 made no batch twice');
      // Epoch 3 was begun, but epoch 2 is asked for: the early batches are dropped, epoch 2 is made whole.
      const third = await collect(early.epoch(2), early);
      assert.equal(early.stats.startedBatches, 3 * total + 2);
      assert.deepEqual([...first, ...second, ...third], expected);
    } finally {
      await Promise.all([plain.close(), early.close()]);
    }
  });
}

test('a loader closed while the next epoch is being made ahead ends cleanly', async () => {
  const loader = await ClipLoader.create(options(1));
  const batches = loader.epoch(0, { next: 1 })[Symbol.asyncIterator]();
  for (let b = 0; b < loader.batchesPerEpoch; b++) loader.recycle((await batches.next()).value as ClipBatch);
  await loader.close();
  assert.deepEqual(await batches.next(), { done: true, value: undefined });
  await assert.rejects(async () => loader.epoch(1).next(), /epoch\(\) after close\(\)/);
});
