import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { generateSynth } from '../../src/data/synth.js';
import { loadDataset } from '../../src/data/formats/index.js';
import { sampleKey, uniqueSamples, type VideoDataset } from '../../src/data/dataset.js';
import { FrameCache, prepareCache } from '../../src/video/cache.js';
import { ClipLoader, type ClipBatch, type LoaderOptions } from '../../src/data/loader.js';
import { ClipMaker, type BatchTask, type ClipItem, type ClipSettings } from '../../src/data/clip.js';
import { MULTISCALE_SCALES, NORMALIZATIONS } from '../../src/data/transforms.js';

/**
 * Recycled batch buffers (ClipLoader.recycle): a batch written into a reused buffer must equal the
 * batch written into a new one, element for element, whatever the buffer held before.
 */

let dir: string;
let cacheDir: string;
let ds: VideoDataset;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'stcnet-recycle-'));
  await generateSynth({ out: path.join(dir, 'synth'), classes: 4, videosPerClass: 4, width: 64, height: 48, fps: 25,
    minDuration: 0.6, maxDuration: 1.2, noise: 2, shake: 1, seed: 17, quiet: true, jobs: 2 });
  ds = await loadDataset(path.join(dir, 'synth'), 'ucf101');
  cacheDir = path.join(dir, 'cache');
  await prepareCache(cacheDir, uniqueSamples(ds).map((s) => ({ key: sampleKey(s), path: s.path })), { shortSide: 48, quality: 95, quiet: true });
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** What a consumer saw of a batch, copied before the batch is recycled. */
interface Seen {
  data: Float32Array | Uint8Array;
  videoIndices: number[];
  failures: number;
}

function seen(batch: ClipBatch): Seen {
  return { data: batch.data.slice(), videoIndices: [...batch.videoIndices], failures: batch.failures.length };
}

/** Every batch of epochs 0 and 1, recycling each one after copying it when `recycle`. */
async function twoEpochs(loader: ClipLoader, recycle: boolean): Promise<{ seen: Seen[]; batches: ClipBatch[] }> {
  const out: Seen[] = [];
  const batches: ClipBatch[] = [];
  for (const epoch of [0, 1]) {
    for await (const batch of loader.epoch(epoch)) {
      out.push(seen(batch));
      batches.push(batch);
      if (recycle) loader.recycle(batch);
    }
  }
  return { seen: out, batches };
}

function assertSameBatches(actual: Seen[], expected: Seen[], what: string): void {
  assert.equal(actual.length, expected.length, `${what}: batch count`);
  actual.forEach((batch, b) => {
    assert.deepEqual(batch.videoIndices, expected[b]!.videoIndices, `${what}: batch ${b} videos`);
    assert.equal(batch.failures, expected[b]!.failures, `${what}: batch ${b} failures`);
    assert.deepEqual(batch.data, expected[b]!.data, `${what}: batch ${b} data`);
  });
}

test('ClipMaker writes a whole batch into a given buffer, whatever it held, in every output path; a shrunk batch too', async () => {
  const cache = await FrameCache.open(cacheDir);
  const samples = ds.splits.train1!.slice(0, 3);
  const items: ClipItem[] = samples.map((sample, i) => {
    const entry = cache.entry(sampleKey(sample))!;
    return { sample: i, file: cache.filePath(entry), key: sampleKey(sample), label: sample.label, position: i, clip: 0, crop: 0 };
  });
  const missing: ClipItem = { sample: 9, file: path.join(dir, 'missing.stcf'), label: 0, position: 3, clip: 0, crop: 0 };
  const full: BatchTask = { id: 0, epoch: 2, index: 0, items };
  const shrunk: BatchTask = { id: 1, epoch: 2, index: 1, items: [items[0]!, missing, items[2]!] };
  for (const output of ['float32', 'uint8'] as const) {
    for (const javascriptResampler of [false, true]) {
      const what = `${output}, ${javascriptResampler ? 'JavaScript' : 'addon'} resampler`;
      const settings: ClipSettings = {
        mode: 'train', source: { kind: 'cache' }, frames: 4, stride: 1, size: 24, output, normalization: NORMALIZATIONS.kinetics,
        scales: [...MULTISCALE_SCALES], flip: true, testClips: 1, testCrops: 1, seed: 7,
      };
      const maker = new ClipMaker(settings, { javascriptResampler });
      const bytes = 3 * maker.clipElements * (output === 'float32' ? 4 : 1);
      // A stale buffer: NaN as float32, an unlikely pixel value as uint8.
      const stale = (): ArrayBuffer => {
        const buffer = new ArrayBuffer(bytes);
        new Uint8Array(buffer).fill(output === 'float32' ? 0xff : 0xa5);
        return buffer;
      };
      const fresh = await maker.makeBatch(full);
      const into = stale();
      const reused = await maker.makeBatch(full, into);
      assert.equal(reused.data.buffer, into, `${what}: written into the given buffer`);
      assert.deepEqual(reused.data, fresh.data, `${what}: full batch`);

      const freshShrunk = await maker.makeBatch(shrunk);
      const reusedShrunk = await maker.makeBatch(shrunk, stale());
      assert.equal(reusedShrunk.count, 2);
      assert.equal(reusedShrunk.failures.length, 1);
      assert.equal(reusedShrunk.data.length, 2 * maker.clipElements);
      assert.deepEqual(reusedShrunk.data, freshShrunk.data, `${what}: shrunk batch`);
      assert.deepEqual(reusedShrunk.videoIndices, Int32Array.from([0, 2]));

      const wrongSize = new ArrayBuffer(bytes - 4);
      const ignored = await maker.makeBatch(full, wrongSize);
      assert.notEqual(ignored.data.buffer, wrongSize, `${what}: a buffer of another size is not used`);
      assert.deepEqual(ignored.data, fresh.data);
    }
  }
});

for (const output of ['float32', 'uint8'] as const) {
  for (const workers of [0, 1]) {
    test(`recycled buffers give the same batches as new ones over two epochs (${output}, workers ${workers}), and are reused`, async () => {
      // 11 samples in batches of 2: a smaller last batch, whose buffer no other batch of the epoch fits.
      const options: LoaderOptions = {
        samples: ds.splits.train2!.slice(0, 11), source: { kind: 'cache', dir: cacheDir }, mode: 'train', batchSize: 2, dropLast: false,
        frames: 4, size: 32, output, workers, prefetch: 2, seed: 5,
      };
      const plain = await ClipLoader.create(options);
      const recycling = await ClipLoader.create(options);
      try {
        const expected = await twoEpochs(plain, false);
        const actual = await twoEpochs(recycling, true);
        assert.equal(expected.seen.length, 12);
        assertSameBatches(actual.seen, expected.seen, `${output}, workers ${workers}`);
        assert.ok(recycling.stats.reusedBuffers > 0, `reused ${recycling.stats.reusedBuffers}`);
        assert.ok(recycling.stats.pooledBuffers <= 3, `pooled ${recycling.stats.pooledBuffers}`);
        assert.deepEqual(plain.stats, { reusedBuffers: 0, pooledBuffers: 0, startedBatches: 12 });
        assert.equal(recycling.stats.startedBatches, 12, 'no batch made twice');
        if (workers > 0) {
          // Handed to the worker by transfer, not by copy: the consumer's old view is detached.
          assert.ok(actual.batches.some((batch) => batch.data.byteLength === 0), 'a recycled buffer was transferred');
        }
      } finally {
        await Promise.all([plain.close(), recycling.close()]);
      }
    });
  }
}

test('a batch shrunk by an unreadable video is the same with recycled buffers', async () => {
  // Six videos in their own frame cache, one of whose files is then damaged: in batches of two,
  // one batch per epoch loses a clip.
  const samples = ds.splits.train2!.slice(0, 6);
  const damagedDir = path.join(dir, 'damaged-cache');
  await prepareCache(damagedDir, samples.map((s) => ({ key: sampleKey(s), path: s.path })), { shortSide: 48, quality: 95, quiet: true });
  const damaged = await FrameCache.open(damagedDir);
  await writeFile(damaged.filePath(damaged.entry(sampleKey(samples[3]!))!), 'garbage');
  for (const workers of [0, 1]) {
    const options: LoaderOptions = {
      samples, source: { kind: 'cache', dir: damagedDir }, mode: 'train', batchSize: 2, frames: 4, size: 32,
      output: 'float32', workers, prefetch: 1, seed: 3,
    };
    const plain = await ClipLoader.create(options);
    const recycling = await ClipLoader.create(options);
    try {
      const expected = await twoEpochs(plain, false);
      const actual = await twoEpochs(recycling, true);
      assert.equal(expected.seen.filter((batch) => batch.failures === 1).length, 2);
      assertSameBatches(actual.seen, expected.seen, `workers ${workers}`);
      assert.ok(recycling.stats.reusedBuffers > 0);
    } finally {
      await Promise.all([plain.close(), recycling.close()]);
    }
  }
});

test('recycling a batch twice, a batch of another loader, a copy of a batch or after close() is ignored', async () => {
  const options: LoaderOptions = {
    samples: ds.splits.train1!.slice(0, 8), source: { kind: 'cache', dir: cacheDir }, mode: 'train', batchSize: 2, frames: 4, size: 32,
    workers: 0, prefetch: 1, seed: 8,
  };
  const plain = await ClipLoader.create(options);
  const recycling = await ClipLoader.create(options);
  const other = await ClipLoader.create(options);
  try {
    const expected = await twoEpochs(plain, false);
    const foreign = (await other.epoch(0).next()).value as ClipBatch;
    const foreignSeen = seen(foreign);
    const actual: Seen[] = [];
    let previous: ClipBatch | undefined;
    for (const epoch of [0, 1]) {
      for await (const batch of recycling.epoch(epoch)) {
        actual.push(seen(batch));
        // A recycled buffer is pooled, or handed at once to the batch task that recycle() sends.
        const kept = () => recycling.stats.pooledBuffers + recycling.stats.reusedBuffers;
        const before = kept();
        recycling.recycle(batch);
        assert.equal(kept(), before + 1);
        recycling.recycle(batch);
        // With workers: 0 the previous batch's buffer may be this batch's: recycling it again must not pool that.
        if (previous) recycling.recycle(previous);
        recycling.recycle(foreign);
        recycling.recycle({ ...batch });
        assert.equal(kept(), before + 1);
        previous = batch;
      }
    }
    assertSameBatches(actual, expected.seen, 'recycled twice');
    // The other loader's batch was left alone.
    assert.deepEqual(foreign.data, foreignSeen.data);
    await recycling.close();
    other.recycle(foreign);
    await other.close();
    other.recycle(foreign);
    assert.equal(other.stats.pooledBuffers, 0);
  } finally {
    await Promise.all([plain.close(), recycling.close(), other.close()]);
  }
});
