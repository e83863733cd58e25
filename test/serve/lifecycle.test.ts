import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { spawnSync } from 'node:child_process';
import { createServer } from 'node:net';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers.js';
import { serveFixture } from './fixture.js';
import { cli, eventually, health, request, startService, type Answer } from './service.js';

/**
 * The service's life: a full queue answers 503 with Retry-After and frees up when work ends;
 * SIGTERM during a request lets it finish (200), refuses new connections, then exits 0 with its
 * upload folder removed. And `stcnet serve` checks every flag before it loads the model.
 */

/** A raw upload whose first half is sent now; `finish()` sends the rest and resolves with the answer. */
function halfSent(url: string, body: Buffer): { finish(): Promise<Answer> } {
  let resolveAnswer: (answer: Answer) => void;
  let rejectAnswer: (error: Error) => void;
  const answer = new Promise<Answer>((resolve, reject) => { resolveAnswer = resolve; rejectAnswer = reject; });
  const req = http.request(new URL('/predict', url), { method: 'POST', agent: false, headers: { 'content-type': 'video/mp4', 'content-length': body.length } }, (response) => {
    let text = '';
    response.setEncoding('utf8').on('data', (c: string) => { text += c; }).on('end', () => resolveAnswer({
      status: response.statusCode!, headers: response.headers, body: text, json: <T>() => JSON.parse(text) as T,
    }));
  });
  req.on('error', (error) => rejectAnswer(error));
  // A failure before finish() is awaited (the service killed mid-upload) is reported by finish(), not as unhandled.
  answer.catch(() => undefined);
  req.write(body.subarray(0, body.length >> 1));
  return {
    finish: () => {
      req.end(body.subarray(body.length >> 1));
      return answer;
    },
  };
}

test('a full queue answers 503 with Retry-After and a clear message; the slot frees when the request ends', async () => {
  const fixture = await serveFixture();
  const s = await startService(fixture.checkpoint, ['--clips', '1', '--max-queue', '1']);
  try {
    const video = readFileSync(fixture.videos[0]!);
    const holder = halfSent(s.url, video);
    await eventually(async () => (await health(s.url)).inFlight === 1, 'the first upload to hold the one slot');
    const refused = await request(s.url, { method: 'POST', path: '/predict', headers: { 'content-type': 'video/mp4' }, body: video });
    assert.equal(refused.status, 503, refused.body);
    assert.match(String(refused.headers['retry-after']), /^[1-9]\d*$/);
    const body = refused.json<{ error: string; code: string }>();
    assert.equal(body.code, 'busy');
    assert.match(body.error, /^the service is busy \(1 requests in progress, --max-queue 1\); retry later$/);
    assert.equal((await health(s.url)).status, 'ok', 'GET /health is not queued');
    assert.equal((await holder.finish()).status, 200);
    await eventually(async () => (await health(s.url)).inFlight === 0, 'the slot to be released');
    const again = await request(s.url, { method: 'POST', path: '/predict', headers: { 'content-type': 'video/mp4' }, body: video });
    assert.equal(again.status, 200, again.body);
  } finally {
    await s.stop();
  }
});

test('SIGTERM during a request: the request completes, new connections are refused, the process exits 0 and removes its uploads folder', async () => {
  const fixture = await serveFixture();
  const tmp = tempDir('stcnet-serve-sigterm-');
  const s = await startService(fixture.checkpoint, ['--clips', '2', '--tmp-dir', tmp]);
  const video = readFileSync(fixture.videos[1]!);
  const upload = halfSent(s.url, video);
  await eventually(async () => (await health(s.url)).uploadFiles === 1, 'the upload to be in progress');
  s.child.kill('SIGTERM');
  await eventually(async () => /SIGTERM: no new requests; finishing 1 in flight/.test(s.stderr()), 'the service to begin stopping');
  await assert.rejects(request(s.url, { path: '/health' }), /ECONNREFUSED/, 'no new connections while stopping');
  const answer = await upload.finish();
  assert.equal(answer.status, 200, answer.body);
  assert.deepEqual(answer.json<{ indices: number[] }>().indices.length, 4);
  assert.deepEqual(await s.exited, { code: 0, signal: null });
  assert.match(s.stderr(), /serve: stopped/);
  assert.deepEqual(readdirSync(tmp), []);
});

test('a second signal while stopping exits at once (status 1), still removing the upload folder', async () => {
  const fixture = await serveFixture();
  const tmp = tempDir('stcnet-serve-sigint-');
  const s = await startService(fixture.checkpoint, ['--clips', '1', '--tmp-dir', tmp]);
  const upload = halfSent(s.url, readFileSync(fixture.videos[2]!));
  await eventually(async () => (await health(s.url)).uploadFiles === 1, 'the upload to be in progress');
  s.child.kill('SIGINT');
  await eventually(async () => /SIGINT: no new requests; finishing 1 in flight/.test(s.stderr()), 'the service to begin stopping');
  s.child.kill('SIGINT');
  assert.deepEqual(await s.exited, { code: 1, signal: null });
  assert.match(s.stderr(), /SIGINT again: exiting without waiting for the requests in flight/);
  assert.deepEqual(readdirSync(tmp), []);
  await assert.rejects(upload.finish(), /ECONNRESET|EPIPE|socket hang up/);
});

test('stcnet serve checks its flags and files before loading the model; a port in use is a clear error', async () => {
  const fixture = await serveFixture();
  const run = (...args: string[]) => spawnSync(process.execPath, [cli, 'serve', ...args], { encoding: 'utf8', timeout: 120_000, env: { ...process.env, STCNET_THREADS: '1' } });
  const cases: [string[], RegExp][] = [
    [[join(fixture.work, 'missing.safetensors')], /missing\.safetensors: no such checkpoint file or run folder/],
    [[fixture.checkpoint, '--port', '70000'], /flag --port must be at most 65535, got 70000/],
    [[fixture.checkpoint, '--max-batch', '0'], /flag --max-batch must be at least 1/],
    [[fixture.checkpoint, '--min-frames', '9', '--max-frames', '4'], /--min-frames 9 is more than --max-frames 4/],
    [[fixture.checkpoint, '--onnx', 'model.onnx'], /--onnx applies only with --static/],
    [[fixture.checkpoint, '--static', '--onnx', join(fixture.work, 'none.onnx')], /--onnx .*none\.onnx: no such file/],
    [[fixture.checkpoint, '--tmp-dir', join(fixture.work, 'nowhere')], /--tmp-dir .*nowhere: no such folder/],
    [[fixture.checkpoint, '--crops', '2'], /flag --crops expects one of 1, 3, got "2"/],
    [[fixture.checkpoint, '--max-upload-mb', '0'], /flag --max-upload-mb must be at least 0\.001/],
  ];
  for (const [args, message] of cases) {
    const result = run(...args);
    assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, message);
    assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
  }
  const help = run('--help');
  assert.equal(help.status, 0);
  for (const flag of ['--host', '--port', '--threads', '--max-batch', '--batch-wait-ms', '--max-upload-mb', '--max-seconds', '--max-queue', '--clips', '--crops', '--top-k', '--static', '--onnx']) {
    assert.match(help.stdout, new RegExp(`  ${flag} `), flag);
  }
  const notAFile = join(fixture.work, 'plain.txt');
  writeFileSync(notAFile, 'x');
  assert.equal(run(fixture.checkpoint, '--tmp-dir', notAFile).status, 2);

  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  const port = (blocker.address() as { port: number }).port;
  try {
    const busy = run(fixture.checkpoint, '--port', String(port), '--quiet');
    assert.equal(busy.status, 2, busy.stderr);
    assert.match(busy.stderr, new RegExp(`--port ${port}: the port is in use on 127\\.0\\.0\\.1 \\(--port 0 picks a free one\\)`));
  } finally {
    blocker.close();
  }
});
