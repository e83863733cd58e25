import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { repoRoot } from '../helpers.js';
import { predictFixture } from '../train/predict_fixture.js';

/**
 * `stcnet/onnx` (the package's "./onnx" export) on a generated video: the same top-1 as `stcnet predict`
 * on the same checkpoint, video and clip count, with libtorch never loaded. The model is untrained
 * (seeded weights), which is enough: the scores differ per class, so the top-1 is not a tie.
 */

const cli = join(repoRoot, 'dist/src/cli/main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 300_000 });

interface EntryResult {
  libtorch: boolean;
  classes: string[];
  videos: { file: string; top: { index: number; label: string; score: number }[]; scores: number[] }[];
  clip: { fromFrames: { index: number; score: number }[]; fromVideo: { index: number; score: number }[] };
}

/** Runs the entry in a fresh process that imports only `stcnet/onnx` (resolved through package.json's exports). */
function runEntry(onnx: string, videos: string[]): EntryResult {
  const code = `
    import { readFileSync } from 'node:fs';
    const { loadOnnxModel, readOnnxMetadata } = await import('stcnet/onnx');
    const { decodeVideo } = await import('./dist/src/video/decode.js');
    const file = ${JSON.stringify(onnx)};
    const videos = ${JSON.stringify(videos)};
    const meta = readOnnxMetadata(file);
    const model = await loadOnnxModel(file, { threads: 1 });
    const out = { classes: model.classes, videos: [] };
    for (const video of videos) {
      const r = await model.predictVideo(video, { clips: 3, topK: 4 });
      out.videos.push({ file: video, top: r.top, scores: Array.from(r.scores) });
    }
    // One clip from decoded RGB frames (at the model's decode side) equals predictVideo with one clip.
    const decoded = await decodeVideo(videos[0], { shortSide: meta.preprocessing.shortSide });
    const fromFrames = await model.predictClip({ frames: decoded.frames, width: decoded.width, height: decoded.height }, { topK: 4 });
    const fromVideo = (await model.predictVideo(videos[0], { clips: 1, topK: 4 })).top;
    out.clip = { fromFrames, fromVideo };
    await model.close();
    out.libtorch = readFileSync('/proc/self/maps', 'utf8').includes('libtorch');
    process.stdout.write(JSON.stringify(out));
  `;
  const child = spawnSync(process.execPath, ['--input-type=module', '-e', code], { cwd: repoRoot, encoding: 'utf8', timeout: 120_000 });
  assert.equal(child.status, 0, child.stderr);
  return JSON.parse(child.stdout) as EntryResult;
}

test('stcnet/onnx predicts the same top-1 as stcnet predict on generated videos, without loading libtorch', async () => {
  const fixture = await predictFixture();
  const onnx = join(fixture.work, 'entry.onnx');
  const exported = run('export', fixture.checkpoint, '--onnx', onnx);
  assert.equal(exported.status, 0, exported.stderr);
  assert.match(exported.stdout, /^verified: ONNX Runtime equals stcnet on a random batch of 2 \(seed 0\): max \|diff\| \S+, max \|logit\| \S+ \(\S+ of it; limit 1e-4\)$/m);
  assert.match(exported.stdout, new RegExp(`^wrote ${onnx.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(\\d+\\.\\d MB\\)$`, 'm'));
  const videos = ['MoveRight', 'MoveUp', 'MoveDown'].map((name) => {
    const dir = join(fixture.data, name);
    return join(dir, readdirSync(dir).sort()[0]!);
  });
  const predicted = run('predict', fixture.checkpoint, ...videos, '--clips', '3', '--top', '4', '--json', '--quiet', '--workers', '1');
  assert.equal(predicted.status, 0, predicted.stderr);
  const expected = (JSON.parse(predicted.stdout) as { videos: { file: string; top: { index: number; label: string; score: number }[] }[] }).videos;

  const entry = runEntry(onnx, videos);
  assert.equal(entry.libtorch, false, 'libtorch was loaded by stcnet/onnx');
  assert.deepEqual(entry.classes, fixture.classes);
  for (const [i, video] of entry.videos.entries()) {
    const reference = expected[i]!;
    assert.equal(video.file, reference.file);
    // Not a tie: the top-1 is ahead of the runner-up by more than the float error of either runtime.
    assert.ok(reference.top[0]!.score - reference.top[1]!.score > 1e-5, `${video.file}: stcnet predict's top two are tied`);
    assert.equal(video.top[0]!.label, reference.top[0]!.label, `${video.file}: top-1`);
    assert.deepEqual(video.top.map((t) => t.index), reference.top.map((t) => t.index), `${video.file}: top-4 order`);
    for (const [k, t] of video.top.entries()) assert.ok(Math.abs(t.score - reference.top[k]!.score) < 1e-5, `${video.file}: score of ${t.label}`);
    assert.ok(Math.abs(video.scores.reduce((a, b) => a + b, 0) - 1) < 1e-5);
  }
  assert.deepEqual(entry.clip.fromFrames.map((t) => t.index), entry.clip.fromVideo.map((t) => t.index));
  for (const [k, t] of entry.clip.fromFrames.entries()) assert.ok(Math.abs(t.score - entry.clip.fromVideo[k]!.score) < 1e-6);
});

/** Relative imports (static and dynamic) of a compiled module, resolved to files. */
function localImports(file: string): string[] {
  const text = readFileSync(file, 'utf8');
  const specifiers = [...text.matchAll(/(?:^|\s)(?:import|export)\s[^;]*?from\s+'([^']+)'|import\(\s*'([^']+)'\s*\)|^import\s+'([^']+)'/gm)]
    .map((m) => m[1] ?? m[2] ?? m[3]!);
  return specifiers.filter((s) => s.startsWith('.')).map((s) => resolve(dirname(file), s));
}

test('nothing stcnet/onnx can import reaches the engine or the libtorch addon', () => {
  const manifest = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { exports: Record<string, string> };
  const entry = join(repoRoot, manifest.exports['./onnx']!);
  assert.ok(existsSync(entry), `${entry} (package.json exports "./onnx")`);
  const seen = new Set<string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (seen.has(file)) continue;
    seen.add(file);
    for (const next of localImports(file)) queue.push(next);
  }
  const reached = [...seen].map((f) => f.slice(join(repoRoot, 'dist/src/').length));
  assert.ok(reached.includes('onnx/model.js') && reached.includes('data/clip.js'), reached.join(', '));
  const forbidden = reached.filter((f) => f.startsWith('engine/') || f.startsWith('nn/') || f.startsWith('models/') || f.startsWith('train/'));
  assert.deepEqual(forbidden, [], `stcnet/onnx reaches ${forbidden.join(', ')}`);
  // The one place that loads libtorch is engine/native.js (loadAddon(TORCH_ADDON)); nothing reached calls it.
  for (const file of seen) assert.doesNotMatch(readFileSync(file, 'utf8'), /loadAddon(<[^>]*>)?\(TORCH_ADDON/, `${file} loads the libtorch addon`);
});
