import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MicroBatcher } from '../../src/serve/batcher.js';
import { parseFrames } from '../../src/serve/json_frames.js';
import { HttpError } from '../../src/serve/errors.js';
import { Limiter } from '../../src/serve/limiter.js';

/**
 * The batcher's rules with a plain function as the network (one class score per clip: its first
 * value), and the JSON frame format's checks.
 */
function batcher(maxBatch: number, waitMs: number) {
  const passes: number[] = [];
  const b = new MicroBatcher((data, count) => {
    passes.push(count);
    const out = new Float32Array(count * 2);
    for (let i = 0; i < count; i++) {
      out[2 * i] = data[i * 3]!;
      out[2 * i + 1] = -data[i * 3]!;
    }
    return out;
  }, { maxBatch, waitMs, numClasses: 2, clipElements: 3 });
  return { b, passes };
}

const clips = (...firsts: number[]) => Float32Array.from(firsts.flatMap((v) => [v, 0, 0]));

test('MicroBatcher: requests submitted together share passes of at most maxBatch requests, each gets its own rows', async () => {
  const { b, passes } = batcher(2, 1000);
  const results = await Promise.all([b.submit(clips(1, 2), 2), b.submit(clips(3), 1), b.submit(clips(4, 5, 6), 3)]);
  // A full batch runs at once (no 1 s wait); the third request waits for the next pass, not the timer.
  assert.deepEqual(passes, [3, 3]);
  assert.deepEqual(Array.from(results[0]!.probabilities), [1, -1, 2, -2]);
  assert.deepEqual(Array.from(results[1]!.probabilities), [3, -3]);
  assert.deepEqual(Array.from(results[2]!.probabilities), [4, -4, 5, -5, 6, -6]);
  assert.deepEqual(results.map((r) => [r.batchRequests, r.batchClips]), [[2, 3], [2, 3], [1, 3]]);
  assert.equal(b.passes, 2);
  assert.equal(b.meanBatch, 1.5);
});

test('MicroBatcher: maxBatch 1 runs each request alone; an aborted request is dropped before its pass; a failing pass rejects its requests', async () => {
  const { b, passes } = batcher(1, 0);
  await Promise.all([b.submit(clips(1), 1), b.submit(clips(2), 1)]);
  assert.deepEqual(passes, [1, 1]);
  const controller = new AbortController();
  const dropped = b.submit(clips(7), 1, controller.signal);
  controller.abort(new Error('client gone'));
  await assert.rejects(dropped, /client gone/);
  assert.deepEqual(passes, [1, 1], 'no pass for the aborted request');
  const failing = new MicroBatcher(() => { throw new Error('native failure'); }, { maxBatch: 4, waitMs: 0, numClasses: 2, clipElements: 3 });
  await assert.rejects(Promise.all([failing.submit(clips(1), 1), failing.submit(clips(2), 1)]), /native failure/);
  assert.equal(b.waiting, 0);
});

test('Limiter: at most `limit` at once, the rest in order', async () => {
  const limiter = new Limiter(2);
  let running = 0;
  let most = 0;
  const order: number[] = [];
  await Promise.all([0, 1, 2, 3, 4].map((i) => limiter.run(async () => {
    running++;
    most = Math.max(most, running);
    await new Promise((resolve) => setImmediate(resolve));
    order.push(i);
    running--;
  })));
  assert.equal(most, 2);
  assert.deepEqual(order, [0, 1, 2, 3, 4]);
});

function rejects(body: unknown, pattern: RegExp): void {
  assert.throws(() => parseFrames(body), (error: unknown) => error instanceof HttpError && error.status === 400 && pattern.test(error.message));
}

test('JSON frames: base64 and nested lists give the same bytes; every malformed field is a 400 naming it', () => {
  const pixels = Uint8Array.from({ length: 2 * 3 * 3 }, (_, i) => i * 7);
  const nested = [[[0, 7, 14], [21, 28, 35], [42, 49, 56]], [[63, 70, 77], [84, 91, 98], [105, 112, 119]]];
  const a = parseFrames({ width: 3, height: 2, frames: [Buffer.from(pixels).toString('base64')] });
  const b = parseFrames({ frames: [nested] });
  assert.deepEqual([a.width, a.height, b.width, b.height], [3, 2, 3, 2]);
  assert.deepEqual(Array.from(a.frames[0]!), Array.from(pixels));
  assert.deepEqual(Array.from(b.frames[0]!), Array.from(pixels));
  rejects([], /expected a JSON object/);
  rejects({ frames: 'x' }, /frames: expected a list/);
  rejects({ frames: [], extra: 1 }, /unknown field "extra"/);
  rejects({ frames: ['AAAA'] }, /needs "width" and "height"/);
  rejects({ width: 3, height: 2, frames: ['!!!!'] }, /frames\[0\]: not base64/);
  rejects({ width: 3, height: 2, frames: ['AAAA'] }, /frames\[0\]: 3 bytes, expected width × height × 3 = 18/);
  rejects({ width: 0, height: 2, frames: [] }, /width: expected an integer from 1 to 8192/);
  rejects({ frames: [nested, [[[0, 0, 0]]]] }, /frames\[1\]: 1 rows, expected height 2/);
  rejects({ frames: [[[[0, 0, 256]]]] }, /frames\[0\]\[0\]\[0\]\[2\]: expected an integer from 0 to 255, got 256/);
  rejects({ frames: [[[[0, 0]]]] }, /frames\[0\]\[0\]\[0\]: expected \[r, g, b\]/);
  rejects({ frames: [7] }, /frames\[0\]: expected a base64 string or an H×W×3 nested list/);
  assert.equal(parseFrames({ frames: [] }).frames.length, 0, 'an empty list parses; the service answers 422 (too few frames)');
});
