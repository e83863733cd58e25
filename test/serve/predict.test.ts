import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { decodeVideo } from '../../src/video/decode.js';
import { serveFixture } from './fixture.js';
import { cli, health, multipart, request, startService, type ServiceProcess } from './service.js';

/**
 * POST /predict gives what `stcnet predict` gives on the same file (same clips, same averaging):
 * uploaded as a multipart file, as a raw body, or as its decoded frames in JSON. GET /model and
 * GET /health describe the service. Requests that arrive together share a forward pass and get
 * the same scores as alone.
 */

interface Prediction {
  model: string;
  labels: string[];
  indices: number[];
  scores: number[];
  views: number;
  input: { kind: string; frames: number; width: number; height: number };
  timing: { totalMs: number; inferenceMs: number; batchRequests: number; batchClips: number };
}

const CLIPS = 3;
let service: ServiceProcess | undefined;
after(async () => {
  await service?.stop();
});

/** Scores by class index from a top list that covers every class. */
function byIndex(p: { indices: number[]; scores: number[] }): number[] {
  const out: number[] = [];
  p.indices.forEach((index, i) => { out[index] = p.scores[i]!; });
  return out;
}

function assertScoresClose(actual: number[], expected: number[], what: string, tolerance = 1e-5): void {
  assert.equal(actual.length, expected.length, what);
  actual.forEach((value, i) => assert.ok(Math.abs(value - expected[i]!) <= tolerance, `${what}: class ${i}: ${value} vs ${expected[i]}`));
}

test('POST /predict on an uploaded video equals stcnet predict on the file (top-1 and every score within 1e-5)', async () => {
  const fixture = await serveFixture();
  service = await startService(fixture.checkpoint, ['--clips', String(CLIPS), '--top-k', '4', '--max-batch', '1']);
  const videos = fixture.videos.slice(0, 2);
  const cliRun = spawnSync(process.execPath, [cli, 'predict', fixture.checkpoint, ...videos, '--clips', String(CLIPS), '--top', '4', '--json', '--quiet'],
    { encoding: 'utf8', timeout: 300_000, env: { ...process.env, STCNET_THREADS: '1' } });
  assert.equal(cliRun.status, 0, cliRun.stderr);
  const expected = (JSON.parse(cliRun.stdout) as { videos: { top: { index: number; label: string; score: number }[] }[] }).videos;
  for (const [i, video] of videos.entries()) {
    const want = { indices: expected[i]!.top.map((t) => t.index), scores: expected[i]!.top.map((t) => t.score) };
    const content = readFileSync(video);
    const form = multipart('video', basename(video), content);
    const viaForm = await request(service.url, { method: 'POST', path: '/predict', headers: form.headers, body: form.body });
    assert.equal(viaForm.status, 200, viaForm.body);
    const p = viaForm.json<Prediction>();
    assert.equal(p.labels[0], expected[i]!.top[0]!.label, 'top-1 as stcnet predict');
    assert.deepEqual(p.indices, want.indices);
    assertScoresClose(byIndex(p), byIndex(want), `${basename(video)} (multipart)`);
    assert.equal(p.views, CLIPS);
    assert.equal(p.input.kind, 'video');
    assert.deepEqual([p.input.width, p.input.height], [48, 36]);
    assert.equal(p.timing.batchRequests, 1);
    assert.ok(p.timing.totalMs >= p.timing.inferenceMs);

    const viaRaw = await request(service.url, { method: 'POST', path: '/predict?top=2', headers: { 'content-type': 'video/mp4' }, body: content });
    assert.equal(viaRaw.status, 200, viaRaw.body);
    const raw = viaRaw.json<Prediction>();
    assert.deepEqual(raw.indices, want.indices.slice(0, 2), '?top=2 gives the two best');
    assertScoresClose(raw.scores, want.scores.slice(0, 2), `${basename(video)} (raw body)`);
  }
});

test('POST /predict with JSON frames (base64 or nested lists) scores them as the video they were decoded from', async () => {
  const fixture = await serveFixture();
  assert.ok(service, 'the service of the first test');
  const video = fixture.videos[2]!;
  const upload = await request(service.url, { method: 'POST', path: '/predict', headers: { 'content-type': 'application/octet-stream' }, body: readFileSync(video) });
  assert.equal(upload.status, 200, upload.body);
  // The frames the service decodes the upload into: the model's short side (GET /model says 36).
  const model = (await request(service.url, { path: '/model' })).json<{ input: { shortSide: number } }>();
  const decoded = await decodeVideo(video, { shortSide: model.input.shortSide });
  const body = JSON.stringify({ width: decoded.width, height: decoded.height, frames: decoded.frames.map((f) => Buffer.from(f).toString('base64')) });
  const viaJson = await request(service.url, { method: 'POST', path: '/predict', headers: { 'content-type': 'application/json' }, body });
  assert.equal(viaJson.status, 200, viaJson.body);
  const json = viaJson.json<Prediction>();
  assert.equal(json.input.kind, 'frames');
  assert.equal(json.input.frames, decoded.frames.length);
  assert.deepEqual(json.indices, upload.json<Prediction>().indices);
  assertScoresClose(byIndex(json), byIndex(upload.json<Prediction>()), 'JSON frames vs the upload');

  // Nested lists carry the same pixels as base64: the same scores.
  const small = decoded.frames.slice(0, 6).map((frame) => {
    const rows: number[][][] = [];
    for (let y = 0; y < decoded.height; y++) {
      const row: number[][] = [];
      for (let x = 0; x < decoded.width; x++) {
        const o = (y * decoded.width + x) * 3;
        row.push([frame[o]!, frame[o + 1]!, frame[o + 2]!]);
      }
      rows.push(row);
    }
    return rows;
  });
  const nested = await request(service.url, { method: 'POST', path: '/predict', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ frames: small }) });
  const b64 = await request(service.url, {
    method: 'POST', path: '/predict', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ width: decoded.width, height: decoded.height, frames: decoded.frames.slice(0, 6).map((f) => Buffer.from(f).toString('base64')) }),
  });
  assert.equal(nested.status, 200, nested.body);
  assert.equal(b64.status, 200, b64.body);
  assertScoresClose(byIndex(nested.json<Prediction>()), byIndex(b64.json<Prediction>()), 'nested lists vs base64', 0);
});

test('requests that arrive together share one forward pass and get the scores they get alone', async () => {
  const fixture = await serveFixture();
  assert.ok(service);
  // Frames as JSON: no decode in the way, so the three requests are queued together.
  const bodies = await Promise.all(fixture.videos.slice(0, 3).map(async (video) => {
    const decoded = await decodeVideo(video, { shortSide: 36 });
    return JSON.stringify({ width: decoded.width, height: decoded.height, frames: decoded.frames.map((f) => Buffer.from(f).toString('base64')) });
  }));
  const json = { 'content-type': 'application/json' };
  const alone = [];
  for (const body of bodies) alone.push((await request(service.url, { method: 'POST', path: '/predict', headers: json, body })).json<Prediction>());
  // A pass of 3 with a 60 s wait: the pass runs when, and only when, the three requests are all queued.
  const batching = await startService(fixture.checkpoint, ['--clips', String(CLIPS), '--top-k', '4', '--max-batch', '3', '--batch-wait-ms', '60000']);
  try {
    const together = await Promise.all(bodies.map((body) => request(batching.url, { method: 'POST', path: '/predict', headers: json, body })));
    for (const [i, answer] of together.entries()) {
      assert.equal(answer.status, 200, answer.body);
      const p = answer.json<Prediction>();
      assert.equal(p.timing.batchRequests, 3, 'the three requests shared a pass');
      assert.equal(p.timing.batchClips, 3 * CLIPS);
      assert.deepEqual(p.indices, alone[i]!.indices);
      assertScoresClose(byIndex(p), byIndex(alone[i]!), `video ${i} batched vs alone`);
    }
    const h = await health(batching.url);
    assert.equal(h.forwardPasses, 1);
  } finally {
    await batching.stop();
  }
});

test('stcnet serve --dtype bfloat16: GET /model says so, and POST /predict gives the top-1 of stcnet predict --dtype bfloat16, scores within 1e-5', async () => {
  const fixture = await serveFixture();
  const bf16 = await startService(fixture.checkpoint, ['--clips', '1', '--top-k', '4', '--dtype', 'bfloat16']);
  try {
    const model = (await request(bf16.url, { path: '/model' })).json<{ runtime: string; dtype: string }>();
    assert.deepEqual([model.runtime, model.dtype], ['prepared', 'bfloat16']);
    const video = fixture.videos[0]!;
    const cliRun = spawnSync(process.execPath, [cli, 'predict', fixture.checkpoint, video, '--clips', '1', '--top', '4', '--dtype', 'bfloat16', '--json', '--quiet'],
      { encoding: 'utf8', timeout: 300_000, env: { ...process.env, STCNET_THREADS: '1' } });
    assert.equal(cliRun.status, 0, cliRun.stderr);
    const json = JSON.parse(cliRun.stdout) as { dtype: string; videos: { top: { index: number; label: string; score: number }[] }[] };
    assert.equal(json.dtype, 'bfloat16');
    const expected = json.videos[0]!.top;
    const answer = await request(bf16.url, { method: 'POST', path: '/predict', headers: { 'content-type': 'video/mp4' }, body: readFileSync(video) });
    assert.equal(answer.status, 200, answer.body);
    const p = answer.json<Prediction>();
    assert.equal(p.labels[0], expected[0]!.label);
    assertScoresClose(byIndex(p), byIndex({ indices: expected.map((t) => t.index), scores: expected.map((t) => t.score) }), 'bf16 service vs bf16 predict');
  } finally {
    await bf16.stop();
  }
});

test('GET /model describes the model and its input; GET /health the service', async () => {
  const fixture = await serveFixture();
  assert.ok(service);
  const model = await request(service.url, { path: '/model' });
  assert.equal(model.status, 200);
  assert.match(String(model.headers['content-type']), /application\/json/);
  const m = model.json<Record<string, unknown> & { input: Record<string, unknown> }>();
  assert.equal(m.arch, 'stc_resnet3d_18');
  assert.equal(m.name, 'model');
  assert.deepEqual(m.classes, fixture.classes);
  assert.equal(m.numClasses, 4);
  assert.equal(m.clips, CLIPS);
  assert.equal(m.crops, 1);
  assert.equal(m.runtime, 'prepared');
  assert.equal(m.dtype, 'float32');
  assert.deepEqual({ ...m.input, mean: undefined, std: undefined }, { frames: 4, stride: 1, size: 32, shortSide: 36, layout: 'NCTHW', mean: undefined, std: undefined });
  assert.equal((m.input.mean as number[]).length, 3);
  assert.equal((m.input.std as number[]).length, 3);

  const h = await health(service.url);
  assert.equal(h.status, 'ok');
  assert.equal(h.inFlight, 0);
  assert.equal(h.waiting, 0);
  assert.ok(h.served >= 10, `served ${h.served}`);
  assert.equal(h.uploadFiles, 0, 'every upload removed');
  assert.ok(h.liveTensors > 0);
  const missing = await request(service.url, { path: '/nope' });
  assert.equal(missing.status, 404);
  assert.match(missing.json<{ error: string }>().error, /no route GET \/nope; endpoints: POST \/predict, GET \/health, GET \/model/);
});
