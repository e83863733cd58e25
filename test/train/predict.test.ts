import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromTypedArray, noGrad, tidy } from '../../src/engine/index.js';
import { loadModelCheckpoint } from '../../src/models/checkpoint.js';
import { decodeVideo } from '../../src/video/decode.js';
import { testClipIndices } from '../../src/data/samplers.js';
import { centerCropBox, cropResizeJs, normalizationTables, normalizeClip, renderClipUint8 } from '../../src/data/transforms.js';
import { predictTimeline, predictVideos, scoreSegments, timelineWindows } from '../../src/train/predict.js';
import { timelineChartSpec, timelineClasses, timelineCsv } from '../../src/train/predict_report.js';
import { renderChart } from '../../src/util/plot.js';
import { assertClose, sharedVideos, sharedVideosAvailable } from '../helpers.js';
import { predictFixture } from './predict_fixture.js';

test('timeline windows: a grid of starts every step, the tail covered by an end-aligned window, short videos one window', () => {
  assert.deepEqual(timelineWindows(6, 2, 1), [0, 1, 2, 3, 4].map((s) => ({ start: s, end: s + 2 })));
  assert.deepEqual(timelineWindows(10.381, 4, 3), [{ start: 0, end: 4 }, { start: 3, end: 7 }, { start: 6, end: 10 }, { start: 6.381, end: 10.381 }]);
  assert.deepEqual(timelineWindows(2.566667, 3, 2), [{ start: 0, end: 2.566667 }]);
  // Steps of 0.1 do not drift: eight windows of 0.3 s in one second, the last ending at 1.0.
  const fine = timelineWindows(1, 0.3, 0.1);
  assert.equal(fine.length, 8);
  assert.deepEqual(fine.at(-1), { start: 0.7, end: 1 });
  assert.throws(() => timelineWindows(5, 0, 1), /window and step must be positive/);
});

test('predict makes exactly the clips of the test-mode protocol: an independent decode, crop and normalisation gives the same scores', async (t) => {
  if (!sharedVideosAvailable(t, 'v_Basketball_g01_c01.avi')) return;
  const fixture = await predictFixture();
  const file = join(sharedVideos, 'v_Basketball_g01_c01.avi');
  const { model } = loadModelCheckpoint(fixture.checkpoint);
  try {
    const K = 3;
    const [result] = await predictVideos(model, [file], fixture.classes, { preprocessing: fixture.preprocessing, clips: K, top: 4 });
    assert.ok(result!.ok);
    // The reference: the whole video decoded at the short side, K evenly spaced 4-frame clips, the
    // centre square resized to 32² by the JavaScript resampler, normalised by lookup tables.
    const p = fixture.preprocessing;
    const video = await decodeVideo(file, { shortSide: p.shortSide });
    assert.deepEqual([video.width, video.height], [48, 36]);
    const clipSize = 3 * p.frames * p.size * p.size;
    const data = new Float32Array(K * clipSize);
    const scratch = new Uint8Array(clipSize);
    const tables = normalizationTables({ mean: p.mean as [number, number, number], std: p.std as [number, number, number] });
    testClipIndices(video.frames.length, p.frames, p.stride, K).forEach((indices, k) => {
      renderClipUint8(Array.from(indices, (i) => video.frames[i]!), video.width, video.height, centerCropBox(video.width, video.height), false, p.size, scratch, 0, cropResizeJs);
      normalizeClip(scratch, 0, clipSize / 3, tables, data, k * clipSize);
    });
    model.eval();
    const probabilities = noGrad(() => tidy(() => model.forward(fromTypedArray(data, [K, 3, p.frames, p.size, p.size])).softmax(1).toFloat32Array()));
    const expected = new Float32Array(4);
    for (let k = 0; k < K; k++) for (let c = 0; c < 4; c++) expected[c]! += probabilities[k * 4 + c]! / K;
    assertClose(result!.ok ? result!.scores : [], expected, { rtol: 1e-5, atol: 1e-6, what: 'video scores' });
    assert.equal(result!.ok && result!.views, K);
    assert.deepEqual(result!.ok && result!.top.map((t) => t.index), [...expected].map((s, i) => [s, i] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]).map(([, i]) => i));
  } finally {
    model.dispose();
  }
});

test('predict on real clips (AVI, MKV, 1080p H.264) and a file of garbage bytes: the garbage is reported, the rest go on', async (t) => {
  if (!sharedVideosAvailable(t, 'test.avi', 'S001C001P001R001A001_rgb.avi', 'flipping_a_pancake.mkv')) return;
  const fixture = await predictFixture();
  const garbage = join(fixture.work, 'garbage.mp4');
  writeFileSync(garbage, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256)));
  const files = [join(sharedVideos, 'test.avi'), garbage, join(sharedVideos, 'S001C001P001R001A001_rgb.avi'), join(sharedVideos, 'flipping_a_pancake.mkv')];
  const { model } = loadModelCheckpoint(fixture.checkpoint);
  try {
    const seen: string[] = [];
    const results = await predictVideos(model, files, fixture.classes, { preprocessing: fixture.preprocessing, clips: 2, top: 3, workers: 2 },
      (r) => seen.push(r.file));
    assert.deepEqual(results.map((r) => [r.file, r.ok]), files.map((f) => [f, f !== garbage]));
    assert.deepEqual([...seen].sort(), [...files].sort(), 'every video reported once as it finishes');
    const bad = results[1]!;
    assert.ok(!bad.ok && /unreadable|invalid|moov/i.test(bad.error), !bad.ok ? bad.error : '');
    assert.ok(!bad.ok && !/@ 0x[0-9a-f]+/.test(bad.error), 'no per-run ffmpeg addresses in the reason');
    for (const r of results) {
      if (!r.ok) continue;
      assert.equal(r.views, 2);
      assert.equal(r.top.length, 3);
      assert.ok(Math.abs(r.scores.reduce((a, b) => a + b, 0) - 1) < 1e-5, 'mean softmax sums to one');
      assert.ok(r.top[0]!.score >= r.top[1]!.score && r.top[1]!.score >= r.top[2]!.score);
      assert.ok(fixture.classes.includes(r.top[0]!.label));
    }
  } finally {
    model.dispose();
  }
});

test('a timeline over the longest real clip: every window scored, the last ending at the end, CSV and chart', async (t) => {
  if (!sharedVideosAvailable(t, 'flipping_a_pancake.mkv')) return;
  const fixture = await predictFixture();
  const file = join(sharedVideos, 'flipping_a_pancake.mkv');
  const { model } = loadModelCheckpoint(fixture.checkpoint);
  try {
    const progress: [number, number][] = [];
    const timeline = await predictTimeline(model, file, fixture.classes,
      { preprocessing: fixture.preprocessing, clips: 2, top: 2, window: 4, step: 3, workers: 2 }, (done, total) => progress.push([done, total]));
    assert.ok(Math.abs(timeline.duration - 10.381) < 0.01, `duration ${timeline.duration}`);
    assert.deepEqual(timeline.windows.map((w) => [w.start, w.end]),
      [[0, 4], [3, 7], [6, 10], [Math.round((timeline.duration - 4) * 1e6) / 1e6, timeline.duration]]);
    assert.ok(timeline.windows.every((w) => w.ok && w.scores!.length === 4 && w.top!.length === 2));
    assert.deepEqual(progress[0], [0, 4]);
    assert.deepEqual(progress.at(-1), [4, 4]);
    // Windows are real parts of the video: a window's scores equal scoring that segment alone.
    const [alone] = await scoreSegments(model, [{ path: file, start: 3, end: 7 }], { preprocessing: fixture.preprocessing, clips: 2 });
    assertClose(alone!.ok ? alone!.scores : [], timeline.windows[1]!.scores!, { what: 'window 3–7 s' });

    const csv = timelineCsv(timeline, fixture.classes).trimEnd().split('\n');
    assert.equal(csv[0], 'start,end,top1,top1_score,error,MoveRight,MoveLeft,MoveUp,MoveDown');
    assert.equal(csv.length, 5);
    assert.match(csv[2]!, /^3,7,(MoveRight|MoveLeft|MoveUp|MoveDown),0\.\d+,,/);
    const shown = timelineClasses(timeline, 3);
    assert.equal(shown.length, 3);
    assert.ok(timeline.windows.every((w) => shown.includes(w.top![0]!.index)), 'every window\'s top class is drawn');
    const { svg } = await renderChart(timelineChartSpec(timeline, fixture.classes));
    assert.match(svg, /flipping_a_pancake\.mkv: class scores over time/);
    assert.match(svg, /time \(s\)/);
  } finally {
    model.dispose();
  }
});

test('a timeline of a file that cannot be read throws its reason (the CLI reports it and goes on)', async () => {
  const fixture = await predictFixture();
  const garbage = join(fixture.work, 'garbage-timeline.mp4');
  writeFileSync(garbage, Buffer.alloc(2048, 7));
  const { model } = loadModelCheckpoint(fixture.checkpoint);
  try {
    await assert.rejects(predictTimeline(model, garbage, fixture.classes, { preprocessing: fixture.preprocessing, clips: 1, top: 1, window: 1, step: 1 }),
      (error: Error) => error.message.includes('garbage-timeline.mp4'));
  } finally {
    model.dispose();
  }
});
