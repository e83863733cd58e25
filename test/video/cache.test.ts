import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { generateSynth } from '../../src/data/synth.js';
import { loadDataset } from '../../src/data/formats/index.js';
import { sampleKey, uniqueSamples } from '../../src/data/dataset.js';
import { FrameCache, prepareCache, readAllCachedFrames } from '../../src/video/cache.js';
import { decodeVideo } from '../../src/video/decode.js';
import { probeVideo } from '../../src/video/probe.js';
import { VideoError } from '../../src/video/process.js';
import { sharedVideos, sharedVideosAvailable } from '../helpers.js';
import { UserError } from '../../src/util/errors.js';

const SHARED = sharedVideos;

test('probe and decode real clips: AVI/MPEG-4, Matroska without a frame count, resize to a short side', async (t) => {
  if (!sharedVideosAvailable(t, 'v_Basketball_g01_c01.avi', 'flipping_a_pancake.mkv', 'test.mp4')) return;
  const ucf = await probeVideo(path.join(SHARED, 'v_Basketball_g01_c01.avi'));
  assert.deepEqual([ucf.width, ucf.height, ucf.codec], [320, 240, 'mpeg4']);
  assert.ok(Math.abs(ucf.fps - 29.97) < 0.01);
  const mkv = await probeVideo(path.join(SHARED, 'flipping_a_pancake.mkv'));
  assert.equal(mkv.framesEstimated, true);
  assert.ok(Math.abs(mkv.frames - 311) <= 1);
  const decoded = await decodeVideo(path.join(SHARED, 'v_Basketball_g01_c01.avi'), { shortSide: 64 });
  assert.deepEqual([decoded.width, decoded.height, decoded.frames.length], [85, 64, 141]);
  const trimmed = await decodeVideo(path.join(SHARED, 'test.mp4'), { shortSide: 32, start: 2, end: 3 });
  assert.ok(Math.abs(trimmed.frames.length - 30) <= 1, `${trimmed.frames.length} frames`);
});

test('prepare: cache matches a direct decode, corrupt inputs are reported and skipped, resume, settings check', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'stcnet-cache-'));
  const synth = path.join(dir, 'synth');
  await generateSynth({ out: synth, classes: 3, videosPerClass: 3, width: 64, height: 48, fps: 25, minDuration: 1, maxDuration: 1.5,
    noise: 4, shake: 1, seed: 5, quiet: true, jobs: 2 });
  // Corrupt inputs listed in a manifest next to good videos.
  const good = (await loadDataset(synth, 'ucf101')).splits.train1!;
  const bytes = await readFile(good[0]!.path);
  await writeFile(path.join(synth, 'truncated.mp4'), bytes.subarray(0, Math.floor(bytes.length / 3)));
  await writeFile(path.join(synth, 'empty.mp4'), '');
  await writeFile(path.join(synth, 'text.avi'), 'this is not a video\n');
  const rows = ['path,label', ...good.slice(0, 4).map((s) => `${s.relPath},ok`), 'truncated.mp4,bad', 'empty.mp4,bad', 'text.avi,bad', 'missing.mp4,bad'];
  await writeFile(path.join(synth, 'list.csv'), rows.join('\n') + '\n');
  const ds = await loadDataset(path.join(synth, 'list.csv'), 'manifest');
  assert.deepEqual(ds.missing.map((m) => path.basename(m.path)), ['missing.mp4']);
  const items = uniqueSamples(ds).map((s) => ({ key: sampleKey(s), path: s.path }));
  const cacheDir = path.join(dir, 'cache');
  const result = await prepareCache(cacheDir, items, { shortSide: 32, quality: 95, quiet: true, jobs: 2 });
  assert.equal(result.cached, 4);
  const reasons = Object.fromEntries(result.failed.map((f) => [path.basename(f.file), f.reason]));
  assert.deepEqual(Object.keys(reasons).sort(), ['empty.mp4', 'text.avi', 'truncated.mp4']);
  assert.equal(reasons['empty.mp4'], 'zero-length file');
  assert.match(reasons['text.avi']!, /unreadable/);
  assert.match(reasons['truncated.mp4']!, /unreadable|truncated|undecodable/);
  const report = await readFile(path.join(cacheDir, 'report.csv'), 'utf8');
  assert.match(report, /^file,reason\n/);
  assert.match(report, /empty\.mp4,zero-length file/);

  // The cache decodes to the same pixels as a direct decode, up to JPEG error.
  const cache = await FrameCache.open(cacheDir);
  const sample = ds.splits.all![0]!;
  const entry = cache.entry(sampleKey(sample))!;
  const cached = readAllCachedFrames(cache.filePath(entry));
  const direct = await decodeVideo(sample.path, { shortSide: 32 });
  assert.equal(cached.frames.length, direct.frames.length);
  assert.deepEqual([cached.header.width, cached.header.height], [direct.width, direct.height]);
  let err = 0;
  let n = 0;
  direct.frames.forEach((frame, t) => {
    for (let i = 0; i < frame.length; i++) err += Math.abs(frame[i]! - cached.frames[t]![i]!);
    n += frame.length;
  });
  assert.ok(err / n < 3, `mean abs difference ${err / n}`);

  // Resume: nothing to do; a lost file is redone; other settings are refused.
  const again = await prepareCache(cacheDir, items, { shortSide: 32, quality: 95, quiet: true });
  assert.deepEqual([again.cached, again.skipped], [0, 4]);
  await rm(cache.filePath(entry));
  const redo = await prepareCache(cacheDir, items, { shortSide: 32, quality: 95, quiet: true });
  assert.deepEqual([redo.cached, redo.skipped], [1, 3]);
  assert.ok(existsSync(cache.filePath(entry)));
  await assert.rejects(prepareCache(cacheDir, items, { shortSide: 48, quality: 95, quiet: true }), (e: unknown) => e instanceof UserError && /--overwrite/.test(e.message));
  await assert.rejects(probeVideo(path.join(synth, 'missing.mp4')), (e: unknown) => e instanceof VideoError && e.reason === 'file not found');
  await rm(dir, { recursive: true, force: true });
});
