import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { F, randn, tidy, manualSeed, profile, operatorTimes } from '../../src/engine/index.js';

// profile(file, fn): libtorch's operator profiler around fn, to a Chrome trace; operatorTimes sums one.

test('profile records the forward\'s and the backward\'s operators to a Chrome trace, and operatorTimes sums them by self time', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'stcnet-profile-test-'));
  try {
    manualSeed(5);
    const file = path.join(dir, 'trace.json');
    const result = profile(file, () => tidy(() => {
      const x = randn([2, 3, 4, 8, 8]);
      const w = randn([4, 3, 3, 3, 3]).requiresGrad_();
      const loss = F.conv3d(x, w, null, { padding: 1 }).relu().sum();
      loss.backward();
      return loss.item() as number;
    }));
    assert.ok(Number.isFinite(result), 'fn\'s result comes back');
    const trace = JSON.parse(readFileSync(file, 'utf8')) as { name: string; ph: string }[];
    assert.ok(Array.isArray(trace) && trace.some((e) => e.ph === 'X'), 'complete events, as chrome://tracing reads them');
    const times = operatorTimes(file);
    const names = times.map((op) => op.name);
    for (const name of ['aten::relu', 'aten::sum', 'aten::convolution_backward', 'aten::threshold_backward']) {
      assert.ok(names.includes(name), `${name} recorded (got ${names.slice(0, 12).join(', ')})`);
    }
    assert.equal(times.find((op) => op.name === 'aten::convolution_backward')!.calls, 1);
    assert.ok(times.every((op) => op.selfMs >= -1e-6 && op.calls >= 1), 'self times are the durations less the children\'s');
    for (let i = 1; i < times.length; i++) assert.ok(times[i - 1]!.selfMs >= times[i]!.selfMs, 'largest first');
    // The profiler is off again: a second profile starts cleanly, and nothing was left recording.
    profile(path.join(dir, 'again.json'), () => tidy(() => randn([2]).add(1)));
    assert.ok(operatorTimes(path.join(dir, 'again.json')).some((op) => op.name === 'aten::add'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('operatorTimes: self time is a parent\'s duration less its children\'s, per thread (a hand-made trace)', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'stcnet-profile-test-'));
  try {
    const file = path.join(dir, 'made.json');
    writeFileSync(file, JSON.stringify({ traceEvents: [
      { name: 'outer', ph: 'X', ts: 0, dur: 1000, tid: 1 },
      { name: 'inner', ph: 'X', ts: 100, dur: 300, tid: 1 },
      { name: 'inner', ph: 'X', ts: 500, dur: 200, tid: 1 },
      { name: 'outer', ph: 'X', ts: 50, dur: 400, tid: 2 },  // another thread: no nesting with thread 1
      { name: 'marker', ph: 'i', ts: 10, tid: 1 },
    ] }));
    assert.deepEqual(operatorTimes(file), [
      { name: 'outer', calls: 2, selfMs: 0.9 },
      { name: 'inner', calls: 2, selfMs: 0.5 },
    ]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('profile refuses an async fn and a second profile inside the first; operatorTimes names a file it cannot read', async () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'stcnet-profile-test-'));
  try {
    assert.throws(() => profile(path.join(dir, 'a.json'), () => Promise.resolve(1)), /profile: fn must be synchronous/);
    assert.throws(() => profile(path.join(dir, 'b.json'), () => profile(path.join(dir, 'c.json'), () => 1)), /a profile is already being recorded/);
    profile(path.join(dir, 'd.json'), () => 1);  // the failures above left the profiler off
    const unwritable = path.join(dir, 'no-such-folder', 'e.json');
    assert.throws(() => profile(unwritable, () => 1), new RegExp(`profileStart: cannot write ${unwritable.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}`));
    const missing = path.join(dir, 'missing.json');
    assert.throws(() => operatorTimes(missing), new RegExp(`operatorTimes: ${missing.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is not a readable Chrome trace`));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
