import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ScoreAccumulator } from '../../src/train/metrics.js';

test('clip and video accuracy: scores averaged per video, top-1 and top-5, confusion and per-class', () => {
  const scores = new ScoreAccumulator(6);
  // Video 0 (label 2): one clip wrong, one right; the average favours class 2.
  scores.add(Float32Array.from([0, 0, 0.4, 0.6, 0, 0, 0, 0, 0.9, 0.1, 0, 0]), [2, 2], [0, 0]);
  // Video 1 (label 5): both clips rank it sixth of six, so it misses top-1 and top-5 alike.
  scores.add(Float32Array.from([0.3, 0.2, 0.2, 0.2, 0.1, 0, 0.3, 0.2, 0.2, 0.2, 0.1, 0]), [5, 5], [1, 1]);
  const report = scores.report();
  assert.equal(report.clips, 4);
  assert.equal(report.videos, 2);
  assert.equal(report.clipTop1, 0.25);
  assert.equal(report.clipTop5, 0.5);
  assert.equal(report.videoTop1, 0.5);
  assert.equal(report.videoTop5, 0.5);
  assert.equal(report.confusion[2]![2], 1);
  assert.equal(report.confusion[5]![0], 1);
  assert.deepEqual(report.perClass.map((c) => c.videos), [0, 0, 1, 0, 0, 1]);
});

test('NaN or tied scores never count as correct', () => {
  const nan = new ScoreAccumulator(3);
  nan.add(Float32Array.from([NaN, NaN, NaN, NaN, NaN, NaN]), [1, 2], [0, 1]);
  assert.deepEqual([nan.report().clipTop1, nan.report().videoTop1], [0, 0]);
  const tied = new ScoreAccumulator(3);
  tied.add(Float32Array.from([0.5, 0.5, 0, 1 / 3, 1 / 3, 1 / 3]), [1, 0], [0, 1]);
  const report = tied.report();
  assert.deepEqual([report.clipTop1, report.videoTop1], [0, 0]);
  assert.equal(report.confusion[1]![1], 0);
});
