import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateSynth } from '../../src/data/synth.js';
import { loadDataset } from '../../src/data/formats/index.js';
import { sampleKey, uniqueSamples, type VideoDataset } from '../../src/data/dataset.js';
import { prepareCache } from '../../src/video/cache.js';
import { ClipLoader, type ClipBatch } from '../../src/data/loader.js';

let dir: string;
let cacheDir: string;
let ds: VideoDataset;

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'stcnet-loader-'));
  await generateSynth({ out: path.join(dir, 'synth'), classes: 4, videosPerClass: 4, width: 64, height: 48, fps: 25,
    minDuration: 0.6, maxDuration: 1.2, noise: 2, shake: 0, seed: 11, quiet: true, jobs: 2 });
  ds = await loadDataset(path.join(dir, 'synth'), 'ucf101');
  cacheDir = path.join(dir, 'cache');
  await prepareCache(cacheDir, uniqueSamples(ds).map((s) => ({ key: sampleKey(s), path: s.path })), { shortSide: 48, quality: 95, quiet: true });
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function collect(loader: ClipLoader, epoch: number): Promise<ClipBatch[]> {
  const out: ClipBatch[] = [];
  for await (const b of loader.epoch(epoch)) out.push(b);
  return out;
}

test('train batches: NCTHW float32, labels follow the samples, shuffled per epoch, deterministic for a seed across worker counts', async () => {
  const samples = ds.splits.train1!;
  const make = (workers: number, seed = 3): Promise<ClipLoader> => ClipLoader.create({
    samples, source: { kind: 'cache', dir: cacheDir }, mode: 'train', batchSize: 3, frames: 8, size: 32, workers, seed, prefetch: 2 });
  const a = await make(2);
  const b = await make(1);
  const c = await make(0, 4);
  try {
    assert.equal(a.batchesPerEpoch, Math.floor(samples.length / 3));
    const e0 = await collect(a, 0);
    const e0b = await collect(b, 0);
    const e1 = await collect(a, 1);
    assert.equal(e0.length, a.batchesPerEpoch);
    for (const batch of e0) {
      assert.deepEqual(batch.shape, [3, 3, 8, 32, 32]);
      assert.ok(batch.data instanceof Float32Array);
      assert.equal(batch.data.length, 3 * 3 * 8 * 32 * 32);
      batch.videoIndices.forEach((v, i) => assert.equal(batch.labels[i], samples[v]!.label));
    }
    e0.forEach((batch, i) => {
      assert.deepEqual(batch.videoIndices, e0b[i]!.videoIndices);
      assert.deepEqual(batch.data, e0b[i]!.data);
    });
    assert.notDeepEqual(e0.map((x) => [...x.videoIndices]), e1.map((x) => [...x.videoIndices]));
    const other = await collect(c, 0);
    assert.notDeepEqual(other[0]!.data, e0[0]!.data);
    // Every video appears at most once per epoch.
    const seen = e0.flatMap((x) => [...x.videoIndices]);
    assert.equal(new Set(seen).size, seen.length);
  } finally {
    await Promise.all([a.close(), b.close(), c.close()]);
  }
});

test('test mode: K clips x 3 crops per video, in order, with their video, clip and crop; uint8 output', async () => {
  const samples = ds.splits.test1!;
  const loader = await ClipLoader.create({ samples, source: { kind: 'cache', dir: cacheDir }, mode: 'test', batchSize: 4, frames: 4,
    size: 24, testClips: 2, testCrops: 3, output: 'uint8', workers: 2 });
  try {
    const batches = await collect(loader, 0);
    const n = batches.reduce((s, b) => s + b.shape[0], 0);
    assert.equal(n, samples.length * 6);
    const triples = batches.flatMap((b) => [...b.videoIndices].map((v, i) => `${v}:${b.clipIndices[i]}:${b.cropIndices[i]}`));
    const expected = samples.flatMap((_, v) => [0, 1].flatMap((k) => [0, 1, 2].map((c) => `${v}:${k}:${c}`)));
    assert.deepEqual(triples, expected);
    assert.ok(batches[0]!.data instanceof Uint8Array);
    assert.equal(batches[0]!.dtype, 'uint8');
    // Three crops of a 64x48 frame (cached at 64x48) differ: left, centre and right.
    const clip = 3 * 4 * 24 * 24;
    const first = batches[0]!.data;
    assert.notDeepEqual(first.subarray(0, clip), first.subarray(2 * clip, 3 * clip));
  } finally {
    await loader.close();
  }
});

test('decoding straight from the video files matches the cache up to JPEG error; unreadable videos are left out and reported', async () => {
  const samples = ds.splits.test1!.slice(0, 3);
  const broken = { ...samples[0]!, path: path.join(dir, 'broken.mp4'), relPath: 'broken.mp4' };
  await writeFile(broken.path, 'garbage');
  const opts = { mode: 'test' as const, batchSize: 2, frames: 4, size: 32, testClips: 1, output: 'uint8' as const, workers: 1 };
  const fromVideo = await ClipLoader.create({ ...opts, samples: [...samples, broken], source: { kind: 'video', shortSide: 48 } });
  const fromCache = await ClipLoader.create({ ...opts, samples: [...samples, broken], source: { kind: 'cache', dir: cacheDir } });
  try {
    assert.equal(fromCache.skipped.length, 1);
    assert.match(fromCache.skipped[0]!.reason, /not in the frame cache/);
    const v = await collect(fromVideo, 0);
    const c = await collect(fromCache, 0);
    const failures = v.flatMap((b) => b.failures);
    assert.equal(failures.length, 1);
    assert.match(failures[0]!.path, /broken\.mp4$/);
    const vd = v.flatMap((b) => [...b.data]);
    const cd = c.flatMap((b) => [...b.data]);
    assert.equal(vd.length, cd.length);
    let err = 0;
    for (let i = 0; i < vd.length; i++) err += Math.abs(vd[i]! - cd[i]!);
    assert.ok(err / vd.length < 3, `mean abs difference ${err / vd.length}`);
  } finally {
    await fromVideo.close();
    await fromCache.close();
  }
});

test('an early break and close() leave no workers; a forgotten close() does not keep the process alive', async () => {
  const loader = await ClipLoader.create({ samples: ds.splits.train1!, source: { kind: 'cache', dir: cacheDir }, mode: 'train', batchSize: 2,
    frames: 4, size: 16, workers: 2, prefetch: 4 });
  for await (const b of loader.epoch(0)) {
    assert.equal(b.index, 0);
    break;
  }
  await loader.close();
  await loader.close();
  await assert.rejects(async () => {
    for await (const _ of loader.epoch(1)) void _;
  }, /after close/);
  const here = path.dirname(fileURLToPath(import.meta.url));
  const script = `
    import { ClipLoader } from ${JSON.stringify(path.resolve(here, '../../src/data/loader.js'))};
    const loader = await ClipLoader.create({ samples: ${JSON.stringify(ds.splits.train1!)}, source: { kind: 'cache', dir: ${JSON.stringify(cacheDir)} },
      mode: 'train', batchSize: 2, frames: 4, size: 16, workers: 2 });
    for await (const b of loader.epoch(0)) { console.log('got', b.shape[0]); break; }
  `;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 20000 });
  assert.equal(child.status, 0, child.stderr);
  assert.match(child.stdout, /got 2/);
});

test('a consumer slower than the workers still lets the event loop turn between batches (timers, signal handlers)', async () => {
  for (const workers of [0, 1, 2]) {
    const loader = await ClipLoader.create({
      samples: ds.splits.train1!, source: { kind: 'cache', dir: cacheDir }, mode: 'train', batchSize: 1, frames: 4, size: 32, workers, seed: 5, prefetch: 4 });
    try {
      let timerRan = false;
      let batches = 0;
      for await (const batch of loader.epoch(0)) {
        void batch;
        if (batches++ === 0) setTimeout(() => { timerRan = true; }, 0);
        // A training step: synchronous work during which the workers finish the next batches.
        const start = performance.now();
        while (performance.now() - start < 60) { /* busy */ }
      }
      assert.ok(batches >= 4, `${batches} batches`);
      assert.ok(timerRan, `workers ${workers}: a timer set at the first batch never ran during the epoch`);
    } finally {
      await loader.close();
    }
  }
});
