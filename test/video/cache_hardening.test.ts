import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { appendFile, copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateSynth } from '../../src/data/synth.js';
import { loadDataset } from '../../src/data/formats/index.js';
import { sampleKey, uniqueSamples, type VideoSample } from '../../src/data/dataset.js';
import { ClipLoader } from '../../src/data/loader.js';
import { cacheFileFor, FrameCache, openCachedVideo, prepareCache, readAllCachedFrames, type PrepareItem } from '../../src/video/cache.js';
import { decodeFramesProbeless, decodeVideo } from '../../src/video/decode.js';
import { encodeVideoBatch } from '../../src/video/encode.js';
import { probeVideo } from '../../src/video/probe.js';
import { UserError } from '../../src/util/errors.js';

let dir: string;
let videos: VideoSample[];
let items: PrepareItem[];
const settings = { shortSide: 32, quality: 90, quiet: true, jobs: 2 };

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'stcnet-cache-hardening-'));
  await generateSynth({ out: path.join(dir, 'synth'), classes: 2, videosPerClass: 3, width: 64, height: 48, fps: 25,
    minDuration: 0.6, maxDuration: 1, noise: 4, shake: 1, seed: 13, quiet: true, jobs: 2 });
  videos = uniqueSamples(await loadDataset(path.join(dir, 'synth'), 'ucf101'));
  items = videos.map((s) => ({ key: sampleKey(s), path: s.path }));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

let counter = 0;
const fresh = (name: string): string => path.join(dir, `${name}-${counter++}`);

/** A pid no process has (one that just ended). */
function deadPid(): number {
  return spawnSync(process.execPath, ['-e', '']).pid!;
}

function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  assert.equal(a.length, b.length);
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i]! - b[i]!);
  return sum / a.length;
}

test('distinct keys never share a frame file: names differing outside ASCII, and manifest paths with ..', async () => {
  assert.notEqual(cacheFileFor('a/é.mp4'), cacheFileFor('a/è.mp4'));
  assert.notEqual(cacheFileFor('../x/a.mp4'), cacheFileFor('x/a.mp4'));
  assert.match(cacheFileFor('Class/v_1.avi@2-4'), /^Class\/v_1\.avi@2-4\.[0-9a-f]{16}\.stcf$/);
  for (const key of ['../../x/a.mp4', '.hidden/.a.mp4', 'a//b/./c.mp4']) {
    const file = cacheFileFor(key);
    assert.ok(!file.split('/').some((part) => part === '..' || part.startsWith('.')), `${key} -> ${file}`);
  }

  // Four different videos whose keys layout 1 mapped to two file names.
  const root = fresh('manifest');
  await mkdir(path.join(root, 'm', 'x'), { recursive: true });
  await mkdir(path.join(root, 'x'), { recursive: true });
  const placed = ['m/é.mp4', 'm/è.mp4', 'x/a.mp4', 'm/x/a.mp4'];
  for (let i = 0; i < placed.length; i++) await copyFile(videos[i]!.path, path.join(root, placed[i]!));
  await writeFile(path.join(root, 'm', 'list.csv'), 'path,label\né.mp4,0\nè.mp4,1\n../x/a.mp4,0\nx/a.mp4,1\n');
  const ds = await loadDataset(path.join(root, 'm', 'list.csv'), 'manifest');
  const samples = ds.splits.all!;
  assert.deepEqual(samples.map((s) => s.relPath), ['é.mp4', 'è.mp4', '../x/a.mp4', 'x/a.mp4']);
  const cacheDir = path.join(root, 'cache');
  const result = await prepareCache(cacheDir, samples.map((s) => ({ key: sampleKey(s), path: s.path })), settings);
  assert.equal(result.cached, 4);
  const cache = await FrameCache.open(cacheDir);
  assert.equal(new Set([...cache.entries.values()].map((e) => e.file)).size, 4);
  // Each cached video is nearest (in pixels) to its own source among the four.
  const direct = await Promise.all(samples.map((s) => decodeVideo(s.path, { shortSide: 32 })));
  samples.forEach((sample, i) => {
    const cached = readAllCachedFrames(cache.filePath(cache.entry(sampleKey(sample))!));
    assert.equal(cached.header.key, sampleKey(sample));
    assert.equal(cached.frames.length, direct[i]!.frames.length, sample.relPath);
    const distances = direct.map((d) => meanAbsDiff(cached.frames[0]!, d.frames[0]!));
    assert.equal(distances.indexOf(Math.min(...distances)), i, `${sample.relPath}: cached frames are another video's (${distances.join(', ')})`);
  });

  // Should a file still stand under another key's name, readers refuse it instead of serving it.
  const [first, second] = [cache.entry(sampleKey(samples[0]!))!, cache.entry(sampleKey(samples[1]!))!];
  await copyFile(cache.filePath(first), cache.filePath(second));
  assert.throws(() => openCachedVideo(cache.filePath(second), second.key), /holds the frames of "é\.mp4", not of "è\.mp4"/);
  const loader = await ClipLoader.create({ samples: [samples[1]!], source: { kind: 'cache', dir: cacheDir }, mode: 'test', batchSize: 1,
    frames: 2, size: 16, testClips: 1, workers: 0 });
  try {
    for await (const batch of loader.epoch(0)) {
      assert.equal(batch.shape[0], 0);
      assert.match(batch.failures[0]!.reason, /holds the frames of/);
      // Named by the video, as users know it, with the cache file that was read beside it.
      assert.equal(batch.failures[0]!.path, samples[1]!.path);
      assert.equal(batch.failures[0]!.file, cache.filePath(second));
    }
  } finally {
    await loader.close();
  }
});

test('a cache of the older layout is refused with a rebuild hint, and rebuilt with --overwrite', async () => {
  const cacheDir = fresh('legacy');
  await mkdir(path.join(cacheDir, 'frames', 'MoveRight'), { recursive: true });
  await writeFile(path.join(cacheDir, 'meta.json'), JSON.stringify({ version: 1, shortSide: 32, quality: 90, created: '2026-11-30T00:00:00.000Z' }));
  await writeFile(path.join(cacheDir, 'frames', 'MoveRight', 'v_MoveRight_g01_c01.mp4.stcf'), 'old');
  await writeFile(path.join(cacheDir, 'index.jsonl'), JSON.stringify({ key: 'MoveRight/v_MoveRight_g01_c01.mp4', file: 'MoveRight/v_MoveRight_g01_c01.mp4.stcf',
    frames: 20, width: 43, height: 32, fps: 25 }) + '\n');
  await assert.rejects(FrameCache.open(cacheDir), (e: unknown) => e instanceof UserError && /layout 1/.test(e.message) && /--overwrite/.test(e.message));
  await assert.rejects(prepareCache(cacheDir, items, settings), (e: unknown) => e instanceof UserError && /layout 1/.test(e.message) && /--overwrite/.test(e.message));
  const rebuilt = await prepareCache(cacheDir, items, { ...settings, overwrite: true });
  assert.equal(rebuilt.cached, items.length);
  assert.equal(existsSync(path.join(cacheDir, 'frames', 'MoveRight', 'v_MoveRight_g01_c01.mp4.stcf')), false);
  assert.equal((await FrameCache.open(cacheDir)).entries.size, items.length);
});

test('two prepare runs on one cache: the second is refused naming the first one\'s pid; nothing mixed or doubled', async () => {
  for (const other of [settings, { ...settings, shortSide: 24, overwrite: true }]) {
    const cacheDir = fresh('concurrent');
    const results = await Promise.allSettled([prepareCache(cacheDir, items, settings), prepareCache(cacheDir, items, other)]);
    const refused = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    assert.equal(refused.length, 1);
    assert.ok(refused[0]!.reason instanceof UserError, String(refused[0]!.reason));
    assert.match(refused[0]!.reason.message, new RegExp(`in use by another run \\(stcnet prepare, pid ${process.pid} on `));
    // Either may get there first; the cache is the winner's alone.
    const winner = results[0]!.status === 'fulfilled' ? settings : other;
    const cache = await FrameCache.open(cacheDir);
    assert.equal(cache.meta.shortSide, winner.shortSide);
    assert.ok([...cache.entries.values()].every((e) => Math.min(e.width, e.height) === winner.shortSide));
    const lines = (await readFile(path.join(cacheDir, 'index.jsonl'), 'utf8')).split('\n').filter(Boolean);
    assert.equal(lines.length, items.length);
    assert.equal(existsSync(path.join(cacheDir, '.lock')), false, 'the lock is released');
  }
});

test('across processes: a second prepare is refused naming the first one\'s pid; after the first is killed, its lock is stale', async () => {
  const cacheDir = fresh('processes');
  const cacheModule = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/video/cache.js');
  // Many keys for one video keep the first run busy for seconds.
  const many = Array.from({ length: 200 }, (_, i) => ({ key: `k${i}`, path: items[0]!.path }));
  const script = `
    import { prepareCache } from ${JSON.stringify(cacheModule)};
    try {
      const r = await prepareCache(process.env.CACHE, JSON.parse(process.env.ITEMS), { shortSide: 32, quality: 90, quiet: true, jobs: 1 });
      console.log('cached ' + r.cached);
    } catch (error) {
      console.log(error.name + ': ' + error.message);
    }
  `;
  const start = (list: PrepareItem[]) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, CACHE: cacheDir, ITEMS: JSON.stringify(list) } });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk; });
    const done = new Promise<string>((resolve) => child.on('close', () => resolve(stdout)));
    return { child, done };
  };
  const first = start(many);
  for (let i = 0; i < 2000 && !existsSync(path.join(cacheDir, '.lock')); i++) await new Promise((resolve) => setTimeout(resolve, 10));
  const second = await start(items).done;
  assert.match(second, new RegExp(`^UserError: .* is in use by another run \\(stcnet prepare, pid ${first.child.pid} on `));
  first.child.kill('SIGKILL');
  await first.done;
  assert.ok(existsSync(path.join(cacheDir, '.lock')), 'a killed run leaves its lock');
  const resumed = await prepareCache(cacheDir, many.slice(0, 3), settings);
  assert.equal(resumed.cached + resumed.skipped, 3);
  assert.equal(existsSync(path.join(cacheDir, '.lock')), false);
});

test('a lock left by a process that is gone is taken over; one from another host is refused', async () => {
  const cacheDir = fresh('stale');
  await mkdir(cacheDir);
  const pid = deadPid();
  await writeFile(path.join(cacheDir, '.lock'), JSON.stringify({ pid, host: os.hostname(), started: '2026-12-01T00:00:00.000Z', purpose: 'stcnet prepare' }));
  assert.equal((await prepareCache(cacheDir, items.slice(0, 1), settings)).cached, 1);
  assert.equal(existsSync(path.join(cacheDir, '.lock')), false);
  await writeFile(path.join(cacheDir, '.lock'), JSON.stringify({ pid, host: 'elsewhere.example', started: '2026-12-01T00:00:00.000Z', purpose: 'stcnet prepare' }));
  await assert.rejects(prepareCache(cacheDir, items, settings),
    (e: unknown) => e instanceof UserError && e.message.includes(`pid ${pid} on elsewhere.example`) && e.message.includes('.lock'));
});

test('index.jsonl ending in a partial line (a crash mid-append) is repaired; a damaged line is named', async () => {
  const cacheDir = fresh('partial');
  await prepareCache(cacheDir, items.slice(0, 3), settings);
  const indexFile = path.join(cacheDir, 'index.jsonl');
  await appendFile(indexFile, '{"key":"MoveLeft/v_MoveLeft_g0');
  const next = await prepareCache(cacheDir, items.slice(0, 4), settings);
  assert.deepEqual([next.cached, next.skipped], [1, 3]);
  let text = await readFile(indexFile, 'utf8');
  assert.ok(text.endsWith('\n'));
  // Jobs finish in any order: compare the sets of keys.
  assert.deepEqual(text.split('\n').filter(Boolean).map((line) => (JSON.parse(line) as { key: string }).key).sort(), items.slice(0, 4).map((i) => i.key).sort());
  assert.ok((await FrameCache.open(cacheDir)).entry(items[3]!.key));

  // A whole last line that lost only its newline is kept (and terminated).
  await writeFile(indexFile, text.slice(0, -1));
  const again = await prepareCache(cacheDir, items.slice(0, 5), settings);
  assert.deepEqual([again.cached, again.skipped], [1, 4]);
  text = await readFile(indexFile, 'utf8');
  assert.equal(text.split('\n').filter(Boolean).length, 5);

  // Damage anywhere else is an error naming the file and line.
  const lines = text.split('\n');
  lines[1] = lines[1]!.replace('"frames":', '"frames":"many","x":');
  await writeFile(indexFile, lines.join('\n'));
  await assert.rejects(FrameCache.open(cacheDir), (e: unknown) => e instanceof UserError && e.message.includes(`${indexFile}:2 is damaged (frames:`));
  await writeFile(path.join(cacheDir, 'meta.json'), JSON.stringify({ format: 'stcnet frame cache', version: 2, shortSide: 32, quality: 'high', created: 'x' }));
  await assert.rejects(FrameCache.open(cacheDir), (e: unknown) => e instanceof UserError && /meta\.json is not a stcnet frame cache's meta\.json \(quality:/.test(e.message));
});

test('--overwrite never deletes a folder stcnet did not make', async () => {
  const plain = fresh('not-a-cache');
  await mkdir(path.join(plain, 'frames'), { recursive: true });
  await writeFile(path.join(plain, 'frames', 'precious.txt'), 'keep me');
  await assert.rejects(prepareCache(plain, items, { ...settings, overwrite: true }),
    (e: unknown) => e instanceof UserError && /is not empty and is not a frame cache/.test(e.message));
  assert.equal(await readFile(path.join(plain, 'frames', 'precious.txt'), 'utf8'), 'keep me');

  const foreign = fresh('foreign-meta');
  await mkdir(path.join(foreign, 'frames'), { recursive: true });
  await writeFile(path.join(foreign, 'frames', 'precious.txt'), 'keep me');
  await writeFile(path.join(foreign, 'meta.json'), JSON.stringify({ name: 'my project', version: 3 }));
  await assert.rejects(prepareCache(foreign, items, { ...settings, overwrite: true }),
    (e: unknown) => e instanceof UserError && /not a stcnet frame cache's meta\.json/.test(e.message));
  assert.equal(await readFile(path.join(foreign, 'frames', 'precious.txt'), 'utf8'), 'keep me');
  assert.equal(existsSync(path.join(foreign, '.lock')), false);
});

test('filesystem errors in prepare and synth are UserErrors naming the path', async () => {
  const file = path.join(fresh('parent'), 'a-file');
  await mkdir(path.dirname(file));
  await writeFile(file, 'not a folder');
  await assert.rejects(prepareCache(path.join(file, 'cache'), items, settings),
    (e: unknown) => e instanceof UserError && e.message.includes(file) && /a parent of this path is a file/.test(e.message));
  await assert.rejects(generateSynth({ out: path.join(file, 'synth'), classes: 2, videosPerClass: 1, width: 32, height: 32, fps: 10,
    minDuration: 0.5, maxDuration: 0.5, noise: 0, shake: 0, seed: 1, quiet: true }),
  (e: unknown) => e instanceof UserError && e.message.includes(file) && /a parent of this path is a file/.test(e.message));
  await assert.rejects(prepareCache(fresh('bad-settings'), items, { ...settings, quality: 101 }), /quality must be an integer 1\.\.100, got 101/);
});

test('a video whose name starts with - reaches ffmpeg and ffprobe as a file, never as an option', async () => {
  const work = fresh('dash');
  await mkdir(work);
  await copyFile(videos[0]!.path, path.join(work, '-x.mp4'));
  const cwd = process.cwd();
  process.chdir(work);
  try {
    const info = await probeVideo('-x.mp4');
    assert.deepEqual([info.width, info.height], [64, 48]);
    const decoded = await decodeVideo('-x.mp4', { shortSide: 32 });
    assert.ok(decoded.frames.length > 0);
    const frames: number[] = [];
    const probeless = await decodeFramesProbeless('-x.mp4', { shortSide: 32 }, (_frame, index) => frames.push(index));
    assert.deepEqual([probeless.probed, frames.length], [false, decoded.frames.length]);
    const result = await prepareCache('-cache', [{ key: '-x.mp4', path: '-x.mp4' }], settings);
    assert.deepEqual([result.cached, result.failed], [1, []]);
    await encodeVideoBatch(['-y.mp4'], [4], { width: 32, height: 32, fps: 10 }, Array.from({ length: 4 }, () => new Uint8Array(32 * 32 * 3)));
    assert.equal((await probeVideo('-y.mp4')).width, 32);
  } finally {
    process.chdir(cwd);
  }
});
