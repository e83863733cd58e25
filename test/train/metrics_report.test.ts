import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ScoreAccumulator, topClasses } from '../../src/train/metrics.js';
import { isEvalReportFolder, writeEvalReport } from '../../src/train/report.js';
import { writeFolderAtomic } from '../../src/train/output_dir.js';
import { tempDir } from '../helpers.js';

/**
 * A hand-made score matrix (6 classes, 5 videos, 9 clips) whose every figure was worked out on paper:
 *   v0 (class 0): [.7 .1 .1 .1 0 0] right, [.2 .5 .1 .1 .1 0] wrong (rank 1)  → mean [.45 .3 ...] right
 *   v1 (class 0): [.1 .6 .1 .1 .1 0] rank 1, [.3 .4 .1 .1 .1 0] rank 1          → mean [.2 .5 ...] predicts 1
 *   v2 (class 1): [0 .1 .2 .2 .2 .3] rank 4, [0 .9 .1 0 0 0] right             → mean [0 .5 .15 .1 .1 .15] right
 *   v3 (class 2): [.2 .2 0 .2 .2 .2] rank 5 (out of the top five)             → predicts 0 (first of the tied)
 *   v4 (class 2): [0 0 1 0 0 0] twice                                           → right
 */
const ROWS: [number, number, number[]][] = [
  [0, 0, [0.7, 0.1, 0.1, 0.1, 0, 0]], [0, 0, [0.2, 0.5, 0.1, 0.1, 0.1, 0]],
  [1, 0, [0.1, 0.6, 0.1, 0.1, 0.1, 0]], [1, 0, [0.3, 0.4, 0.1, 0.1, 0.1, 0]],
  [2, 1, [0, 0.1, 0.2, 0.2, 0.2, 0.3]], [2, 1, [0, 0.9, 0.1, 0, 0, 0]],
  [3, 2, [0.2, 0.2, 0, 0.2, 0.2, 0.2]],
  [4, 2, [0, 0, 1, 0, 0, 0]], [4, 2, [0, 0, 1, 0, 0, 0]],
];

function accumulate(order: number[], batch: number): ScoreAccumulator {
  const scores = new ScoreAccumulator(6);
  for (let i = 0; i < order.length; i += batch) {
    const rows = order.slice(i, i + batch).map((r) => ROWS[r]!);
    scores.add(Float32Array.from(rows.flatMap((r) => r[2])), rows.map((r) => r[1]), rows.map((r) => r[0]));
  }
  return scores;
}

test('hand-made scores: clip and video top-1/top-5, mean class accuracy, confusion, per class, predictions', () => {
  const report = accumulate(ROWS.map((_, i) => i), 4).report();
  assert.equal(report.clips, 9);
  assert.equal(report.videos, 5);
  assert.equal(report.clipTop1, 4 / 9);
  assert.equal(report.clipTop5, 8 / 9);
  assert.equal(report.videoTop1, 3 / 5);
  assert.equal(report.videoTop5, 4 / 5);
  // Per class clip accuracy 1/4, 1/2, 2/3; video accuracy 1/2, 1, 1/2.
  assert.equal(report.clipMeanClassAccuracy, (1 / 4 + 1 / 2 + 2 / 3) / 3);
  assert.equal(report.videoMeanClassAccuracy, (1 / 2 + 1 + 1 / 2) / 3);
  assert.deepEqual(report.confusion, [
    [1, 1, 0, 0, 0, 0],
    [0, 1, 0, 0, 0, 0],
    [1, 0, 1, 0, 0, 0],
    [0, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0],
    [0, 0, 0, 0, 0, 0],
  ]);
  assert.deepEqual(report.perClass.slice(0, 3), [
    { videos: 2, correct: 1, accuracy: 0.5, top5Correct: 2, top5Accuracy: 1, clips: 4, clipCorrect: 1, clipAccuracy: 0.25, predicted: 2, precision: 0.5 },
    { videos: 1, correct: 1, accuracy: 1, top5Correct: 1, top5Accuracy: 1, clips: 2, clipCorrect: 1, clipAccuracy: 0.5, predicted: 2, precision: 0.5 },
    { videos: 2, correct: 1, accuracy: 0.5, top5Correct: 1, top5Accuracy: 0.5, clips: 3, clipCorrect: 2, clipAccuracy: 2 / 3, predicted: 1, precision: 1 },
  ]);
  assert.deepEqual(report.perClass[5], { videos: 0, correct: 0, accuracy: 0, top5Correct: 0, top5Accuracy: 0, clips: 0, clipCorrect: 0, clipAccuracy: 0, predicted: 0, precision: 0 });
  const v = report.videoPredictions;
  assert.deepEqual(v.map((p) => [p.video, p.label, p.predicted, p.rank, p.views]), [[0, 0, 0, 0, 2], [1, 0, 1, 1, 2], [2, 1, 1, 0, 2], [3, 2, 0, 5, 1], [4, 2, 2, 0, 2]]);
  assert.deepEqual(v[1]!.top5, [1, 0, 2, 3, 4]);
  assert.deepEqual(v[3]!.top5, [0, 1, 3, 4, 5]);
  assert.ok(Math.abs(v[1]!.score - 0.5) < 1e-7);
  assert.ok(Math.abs(v[0]!.score - 0.45) < 1e-7);
});

test('the figures do not depend on row order or batch size', () => {
  const reference = accumulate(ROWS.map((_, i) => i), 9).report();
  for (const [order, batch] of [[[8, 3, 0, 6, 1, 5, 2, 7, 4], 1], [[4, 2, 7, 0, 1, 3, 5, 6, 8], 2]] as const) {
    const report = accumulate([...order], batch).report();
    assert.deepEqual(report, reference);
  }
});

test('three crops: a clip is scored on the mean of its crops, a video on all its views', () => {
  // One video of class 0, two clips × three crops, rows arriving out of order over two batches.
  //   clip 0: [.6 .4 0] [.2 .8 0] [.5 .5 0] → sum [1.3 1.7 0]: wrong (one crop alone was right)
  //   clip 1: [.9 .1 0] [.4 .6 0] [.5 .3 .2] → sum [1.8 1.0 .2]: right
  //   video: [3.1 2.7 .2] / 6 → right
  const scores = new ScoreAccumulator(3, { cropsPerClip: 3 });
  scores.add(Float32Array.from([0.6, 0.4, 0, 0.9, 0.1, 0, 0.2, 0.8, 0]), [0, 0, 0], [7, 7, 7], [0, 1, 0]);
  scores.add(Float32Array.from([0.4, 0.6, 0, 0.5, 0.5, 0, 0.5, 0.3, 0.2]), [0, 0, 0], [7, 7, 7], [1, 0, 1]);
  const report = scores.report();
  assert.equal(report.clips, 2);
  assert.equal(report.clipTop1, 0.5);
  assert.equal(report.videoTop1, 1);
  assert.deepEqual(report.videoPredictions.map((p) => [p.video, p.predicted, p.views]), [[7, 0, 6]]);
  assert.ok(Math.abs(report.videoPredictions[0]!.score - 3.1 / 6) < 1e-7);
  assert.equal(report.perClass[0]!.clipCorrect, 1);
});

test('bad rows are refused: labels outside the classes, a video with two labels, missing clip indices', () => {
  const scores = new ScoreAccumulator(2);
  assert.throws(() => scores.add(Float32Array.from([0.5, 0.5]), [-1], [0]), /label -1 is not a class index in \[0, 2\)/);
  assert.throws(() => scores.add(Float32Array.from([0.5, 0.5]), [0, 1], [0, 1]), /2 scores for 2 rows of 2 classes/);
  scores.add(Float32Array.from([0.9, 0.1]), [0], [3]);
  assert.throws(() => scores.add(Float32Array.from([0.9, 0.1]), [1], [3]), /video 3 has rows with labels 0 and 1/);
  assert.throws(() => new ScoreAccumulator(2, { cropsPerClip: 3 }).add(Float32Array.from([1, 0]), [0], [0]), /clip indices are needed/);
});

test('topClasses: best first, ties by index, NaN last', () => {
  assert.deepEqual(topClasses(Float32Array.from([0.1, NaN, 0.5, 0.5, 0.2]), 5), [2, 3, 4, 0, 1]);
  assert.deepEqual(topClasses([3, 1, 2], 2), [0, 2]);
});

test('a report folder is replaced whole or not at all: a failure while writing leaves the earlier report and no temporary folder', async () => {
  const dir = tempDir();
  const out = join(dir, 'eval-test1');
  const first = new ScoreAccumulator(2);
  first.add(Float32Array.from([0.9, 0.1, 0.2, 0.8]), [0, 1], [0, 1]);
  const context = {
    checkpoint: 'm.safetensors', arch: 'stc_resnet3d_18', classes: ['a', 'b'], dataset: { root: 'data', format: 'ucf101', split: 'test1' },
    preprocessing: { frames: 4, stride: 1, size: 32, mean: [0.5, 0.5, 0.5], std: [0.25, 0.25, 0.25] }, clips: 1, crops: 1,
    samples: [{ path: '/d/a.mp4', relPath: 'a.mp4' }, { path: '/d/b.mp4', relPath: 'b.mp4' }], failures: [], elapsedSeconds: 1,
  };
  await writeEvalReport(out, first.report(), context);
  assert.ok(isEvalReportFolder(out));
  assert.equal(readFileSync(join(out, 'videos.csv'), 'utf8'), 'video,label,predicted,score,correct,true_rank,top5\na.mp4,a,a,0.9,true,1,a|b\nb.mp4,b,b,0.8,true,1,b|a\n');
  const before = readFileSync(join(out, 'report.json'), 'utf8');
  await assert.rejects(writeFolderAtomic(out, isEvalReportFolder, async (temporary) => {
    writeFileSync(join(temporary, 'report.json'), '{"kind": "stcnet-eval", "half": true}');
    throw new Error('disk full (simulated)');
  }), /disk full/);
  assert.equal(readFileSync(join(out, 'report.json'), 'utf8'), before);
  assert.deepEqual(readdirSync(dir), ['eval-test1']);
});
