import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  generateSynth, planSynth, shapeClassName, SYNTH_CLASSES, SYNTH_SHAPES, synthFrames, synthObjectTruth, synthShapeMask,
  type SynthOptions, type SynthShape,
} from '../../src/data/synth.js';
import { loadDataset } from '../../src/data/formats/index.js';
import { tempDir } from '../helpers.js';

const base: SynthOptions = {
  out: '', classes: 4, videosPerClass: 6, width: 64, height: 48, fps: 12, minDuration: 0.5, maxDuration: 1,
  noise: 0, shake: 0, seed: 5, scene: 'plain', label: 'shape', quiet: true, jobs: 2,
};

/** Intersection over union of two 0/1 masks. */
function iou(a: Uint8Array, b: Uint8Array): number {
  let both = 0;
  let either = 0;
  for (let i = 0; i < a.length; i++) {
    both += a[i]! & b[i]!;
    either += a[i]! | b[i]!;
  }
  return either === 0 ? 0 : both / either;
}

test('synth --label shape: five shape classes, every motion mixed into each, motions never the label', () => {
  const { classes, videos } = planSynth(base);
  assert.deepEqual(classes.map((c) => c.name), ['Rectangle', 'Ellipse', 'Triangle', 'Cross', 'Ell']);
  assert.equal(videos.length, 5 * 6);
  for (const [label, shape] of SYNTH_SHAPES.entries()) {
    const own = videos.filter((v) => v.label === label);
    assert.ok(own.every((v) => v.shape === shape && v.className === shapeClassName(shape) && v.relPath.startsWith(`${shapeClassName(shape)}/`)));
    // 6 videos over 4 motions, round-robin: every motion appears in every shape class.
    assert.deepEqual(new Set(own.map((v) => v.motion)), new Set(SYNTH_CLASSES.slice(0, 4).map((c) => c.name)));
  }
  // The motion-labelled plan is unchanged: className is the motion, no shape forced.
  const motion = planSynth({ ...base, label: 'motion' });
  assert.ok(motion.videos.every((v) => v.motion === v.className && v.shape === undefined));
  assert.throws(() => planSynth({ ...base, label: 'colour' as never }), /--label must be motion or shape/);
});

test('synth --label shape: the rendered object is the labelled shape (it matches that shape\'s outline, not another\'s)', () => {
  const { videos } = planSynth(base);
  const { width: W, height: H } = base;
  const confusions: string[] = [];
  for (const video of videos) {
    const keys = { seed: base.seed, group: video.group, index: video.clip, shape: video.shape };
    const truth = synthObjectTruth(video.motion, video.frames, base, keys);
    assert.equal(truth.shape, video.shape);
    // Plain scenes: a bright object (value ≥ 0.85) on a dark background (value ≤ 0.3), no noise or shake.
    let t = 0;
    for (const frame of synthFrames(video.motion, video.frames, base, keys)) {
      if (t === 0 || t === video.frames - 1) {
        const object = new Uint8Array(W * H);
        for (let i = 0; i < object.length; i++) object[i] = Math.max(frame[3 * i]!, frame[3 * i + 1]!, frame[3 * i + 2]!) > 150 ? 1 : 0;
        const scores = SYNTH_SHAPES.map((shape) => iou(object, synthShapeMask(shape as SynthShape, truth.aspect, truth.poses[t]!, W, H)));
        const best = scores.indexOf(Math.max(...scores));
        if (SYNTH_SHAPES[best] !== video.shape || scores[best]! < 0.95) confusions.push(`${video.relPath} frame ${t}: IoU ${scores.map((s) => s.toFixed(2)).join('/')}`);
      }
      t++;
    }
  }
  assert.deepEqual(confusions, []);
});

test('synth --label shape: deterministic frames and a UCF101 dataset whose classes are the shapes', async () => {
  const { videos } = planSynth(base);
  const video = videos[7]!;
  const keys = { seed: base.seed, group: video.group, index: video.clip, shape: video.shape };
  const first = [...synthFrames(video.motion, video.frames, base, keys)].map((f) => Buffer.from(f).toString('base64'));
  const again = [...synthFrames(video.motion, video.frames, base, keys)].map((f) => Buffer.from(f).toString('base64'));
  assert.deepEqual(again, first);
  // Another shape under the same motion, group and index looks different (its draws are keyed by the shape).
  const other = [...synthFrames(video.motion, video.frames, base, { ...keys, shape: 'cross' })].map((f) => Buffer.from(f).toString('base64'));
  assert.notDeepEqual(other, first);

  const out = join(tempDir('stcnet-synth-shape-'), 'shapes');
  await generateSynth({ ...base, out, videosPerClass: 3, width: 32, height: 32 });
  const dataset = await loadDataset(out, 'ucf101');
  assert.deepEqual(dataset.classes, ['Rectangle', 'Ellipse', 'Triangle', 'Cross', 'Ell']);
  const meta = JSON.parse(readFileSync(join(out, 'synth.json'), 'utf8')) as { label: string; motions: string[]; videos: { path: string; shape: string; motion: string }[] };
  assert.equal(meta.label, 'shape');
  assert.deepEqual(meta.motions, SYNTH_CLASSES.slice(0, 4).map((c) => c.name));
  for (const sample of [...dataset.splits.train1!, ...dataset.splits.test1!]) {
    const entry = meta.videos.find((v) => v.path === sample.relPath)!;
    assert.equal(shapeClassName(entry.shape as SynthShape), dataset.classes[sample.label], sample.relPath);
  }
});
