import { test } from 'node:test';
import assert from 'node:assert/strict';
import { PairSampler, itemKey } from '../../src/transfer/pairs.js';
import { splitHeldOut } from '../../src/transfer/videos.js';
import { teacherFrameIndices } from '../../src/transfer/teacher.js';
import { UserError } from '../../src/util/errors.js';

test('a negative pair never takes its teacher frames from the student\'s own video, and a positive is the same video at the same position', () => {
  let negatives = 0;
  for (let seed = 0; seed < 40; seed++) {
    // Sample indices need not be contiguous (held-out videos are taken out of the list).
    const videos = Array.from({ length: 2 + (seed % 7) }, (_, i) => 3 * i + (seed % 3));
    const sampler = new PairSampler({ videos, positions: 1 + (seed % 4), negatives: 1 + (seed % 3), seed });
    for (let epoch = 0; epoch < 5; epoch++) {
      for (const pair of [...sampler.epochPairs(epoch), ...sampler.fixedPairs()]) {
        assert.ok(videos.includes(pair.video) && videos.includes(pair.partnerVideo), 'pairs use only the sampler\'s videos');
        assert.ok(pair.position >= 0 && pair.position < sampler.options.positions && pair.partnerPosition >= 0 && pair.partnerPosition < sampler.options.positions);
        if (pair.positive) {
          assert.equal(pair.partnerVideo, pair.video);
          assert.equal(pair.partnerPosition, pair.position);
        } else {
          negatives++;
          assert.notEqual(pair.partnerVideo, pair.video, `seed ${seed}, epoch ${epoch}: a negative pair from one video`);
        }
      }
    }
  }
  assert.ok(negatives > 1000, `${negatives} negatives checked`);
});

test('every epoch keeps the configured positive:negative ratio exactly and shows every (video, position) once as a student clip', () => {
  for (const negatives of [1, 2, 3, 0.5]) {
    let positives = 0;
    let total = 0;
    for (let seed = 0; seed < 20; seed++) {
      const videos = Array.from({ length: 5 + seed }, (_, i) => i);
      const sampler = new PairSampler({ videos, positions: 3, negatives, seed });
      for (let epoch = 0; epoch < 4; epoch++) {
        const pairs = sampler.epochPairs(epoch);
        assert.equal(pairs.length, videos.length * 3);
        const count = pairs.filter((p) => p.positive).length;
        assert.equal(count, Math.round(pairs.length / (1 + negatives)), `negatives ${negatives}, seed ${seed}, epoch ${epoch}`);
        assert.equal(new Set(pairs.map((p) => itemKey(p.video, p.position))).size, pairs.length, 'each student clip once per epoch');
        positives += count;
        total += pairs.length;
      }
    }
    assert.ok(Math.abs(positives / total - 1 / (1 + negatives)) < 0.01, `ratio over all draws: ${positives / total}`);
  }
});

test('pairs are a function of (seed, epoch): regenerated identically, different across epochs and seeds', () => {
  const make = (seed: number) => new PairSampler({ videos: [0, 1, 2, 3, 4, 5], positions: 4, negatives: 1, seed });
  assert.deepEqual(make(1).epochPairs(3), make(1).epochPairs(3));
  assert.notDeepEqual(make(1).epochPairs(3), make(1).epochPairs(4));
  assert.notDeepEqual(make(1).epochPairs(3), make(2).epochPairs(3));
  assert.deepEqual(make(1).fixedPairs(), make(1).fixedPairs());
  // Held-out pairs are 1:1 whatever the training ratio (chance is 50%).
  const fixed = new PairSampler({ videos: [7, 8, 9], positions: 2, negatives: 3, seed: 0 }).fixedPairs();
  assert.equal(fixed.length, 12);
  assert.equal(fixed.filter((p) => p.positive).length, 6);
});

test('the sampler refuses a single video (no negative is possible)', () => {
  assert.throws(() => new PairSampler({ videos: [4], positions: 2, negatives: 1, seed: 0 }), /at least 2/);
});

test('held-out videos: a fixed share chosen by seed and path, at least 2 on each side, clear errors when there are too few videos', () => {
  const samples = Array.from({ length: 20 }, (_, i) => ({ path: `/v/${i}.mp4`, relPath: `${i}.mp4`, label: -1 }));
  const split = splitHeldOut(samples, 0.2, 0, '/v');
  assert.equal(split.heldOut.length, 4);
  assert.equal(split.train.length, 16);
  assert.deepEqual([...split.train, ...split.heldOut].sort((a, b) => a - b), samples.map((_, i) => i));
  // The same videos whatever their order in the list.
  const reversed = splitHeldOut([...samples].reverse(), 0.2, 0, '/v');
  assert.deepEqual(reversed.heldOut.map((i) => [...samples].reverse()[i]!.relPath).sort(), split.heldOut.map((i) => samples[i]!.relPath).sort());
  assert.equal(splitHeldOut(samples.slice(0, 5), 0.1, 0, '/v').heldOut.length, 2, 'at least 2 held out');
  assert.equal(splitHeldOut(samples.slice(0, 2), 0, 0, '/v').train.length, 2);
  assert.throws(() => splitHeldOut(samples.slice(0, 1), 0, 0, '/v'), (e: Error) => e instanceof UserError && /has 1 video; transfer needs at least 2/.test(e.message));
  assert.throws(() => splitHeldOut([], 0.2, 0, '/v'), (e: Error) => e instanceof UserError && /has 0 videos/.test(e.message));
  assert.throws(() => splitHeldOut(samples.slice(0, 3), 0.2, 0, '/v'), (e: Error) => e instanceof UserError && /val-fraction/.test(e.message));
});

test('the teacher\'s frames are spread evenly over the student\'s clip', () => {
  assert.deepEqual(teacherFrameIndices(16, 4), [2, 6, 10, 14]);
  assert.deepEqual(teacherFrameIndices(4, 4), [0, 1, 2, 3]);
  assert.deepEqual(teacherFrameIndices(8, 1), [4]);
  assert.deepEqual(teacherFrameIndices(4, 2), [1, 3]);
});
