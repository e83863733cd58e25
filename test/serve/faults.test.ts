import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers.js';
import { serveFixture } from './fixture.js';
import { eventually, health, multipart, request, startService, streamUntilAnswered, type Answer, type ServiceProcess } from './service.js';

/**
 * Bad requests each get a clear 4xx with a JSON message and the service keeps serving: a text file,
 * a truncated MP4, a body over the limit (declared or streamed: cut off early, never read whole), a
 * wrong content type, a 1-frame clip, malformed JSON. A client that disconnects mid-upload leaves no
 * file, no tensor and no slot behind; live tensors and RSS stay flat over repeated requests.
 */

let service: ServiceProcess | undefined;
const tmp = tempDir('stcnet-serve-tmp-');
after(async () => {
  await service?.stop();
});

async function started(): Promise<ServiceProcess> {
  const fixture = await serveFixture();
  service ??= await startService(fixture.checkpoint, ['--clips', '2', '--max-upload-mb', '1', '--tmp-dir', tmp, '--max-seconds', '30']);
  return service;
}

function assertRefused(answer: Answer, status: number, code: string, message: RegExp): void {
  assert.equal(answer.status, status, answer.body);
  assert.match(String(answer.headers['content-type']), /application\/json/);
  const body = answer.json<{ error: string; code: string; status: number }>();
  assert.equal(body.code, code);
  assert.equal(body.status, status);
  assert.match(body.error, message);
}

async function stillServes(s: ServiceProcess, video: string): Promise<void> {
  const ok = await request(s.url, { method: 'POST', path: '/predict', headers: { 'content-type': 'video/mp4' }, body: readFileSync(video) });
  assert.equal(ok.status, 200, `the service still serves: ${ok.body}`);
}

const post = (s: ServiceProcess, headers: Record<string, string | number>, body: Buffer | string) => request(s.url, { method: 'POST', path: '/predict', headers, body });

test('a text file, a truncated MP4, a 1-frame clip, a wrong content type and bad JSON each get a clear 4xx; the service keeps serving', async () => {
  const fixture = await serveFixture();
  const s = await started();
  const text = readFileSync(fixture.textFile);
  const form = multipart('video', 'notes.txt', text, 'text/plain');
  assertRefused(await post(s, form.headers, form.body), 422, 'undecodable', /^the upload is not a video ffmpeg can decode \(unreadable: /);
  assertRefused(await post(s, { 'content-type': 'video/mp4' }, text), 422, 'undecodable', /not a video ffmpeg can decode/);
  assertRefused(await post(s, { 'content-type': 'text/plain' }, text), 415, 'unsupported_media_type',
    /Content-Type "text\/plain" is not accepted; send multipart\/form-data \(a file field\), video\/\* or application\/octet-stream/);
  assertRefused(await post(s, { 'content-type': 'image/png' }, text), 415, 'unsupported_media_type', /"image\/png" is not accepted/);
  await stillServes(s, fixture.videos[0]!);

  const truncated = await post(s, { 'content-type': 'video/mp4' }, readFileSync(fixture.truncated));
  assertRefused(truncated, 422, 'undecodable', /not a video ffmpeg can decode \((undecodable|truncated|unreadable): /);
  assert.doesNotMatch(truncated.body, /@ 0x/, 'no ffmpeg context tags');
  const one = multipart('clip', 'one.mp4', readFileSync(fixture.oneFrame));
  assertRefused(await post(s, one.headers, one.body), 422, 'too_short', /^the video has 1 frame; at least 2 are needed/);
  assertRefused(await post(s, { 'content-type': 'application/json' }, '{"frames": [[[[1, 2, 3]]]]}'), 422, 'too_short', /^frames has 1 frame; at least 2/);
  assertRefused(await post(s, { 'content-type': 'application/json' }, '{"frames": [[[1, 2, 3'), 400, 'bad_json', /the JSON body does not parse/);
  assertRefused(await post(s, { 'content-type': 'application/json' }, '{"frames": [[[[1, 2]]]]}'), 400, 'bad_frames', /frames\[0\]\[0\]\[0\]: expected \[r, g, b\]/);
  assertRefused(await post(s, { 'content-type': 'video/mp4' }, Buffer.alloc(0)), 422, 'empty_upload', /the upload is empty/);
  const noFile = Buffer.from('--b\r\nContent-Disposition: form-data; name="note"\r\n\r\nhello\r\n--b--\r\n');
  assertRefused(await post(s, { 'content-type': 'multipart/form-data; boundary=b', 'content-length': noFile.length }, noFile), 422, 'no_file', /has no file part/);
  assertRefused(await request(s.url, { method: 'POST', path: '/predict?top=0', headers: { 'content-type': 'video/mp4' }, body: 'x' }), 400, 'bad_top', /\?top=0: expected an integer from 1 to 4/);
  await stillServes(s, fixture.videos[1]!);
  assert.equal((await health(s.url)).status, 'ok');
  const withParameters = await post(s, { 'content-type': 'video/mp4; codecs="avc1.42E01E"' }, readFileSync(fixture.videos[3]!));
  assert.equal(withParameters.status, 200, `a media type with parameters: ${withParameters.body}`);
  // A temp cleaner removing the upload folder under a running service: the next upload makes it again.
  for (const folder of readdirSync(tmp)) rmSync(join(tmp, folder), { recursive: true, force: true });
  await stillServes(s, fixture.videos[2]!);
  assert.equal(readdirSync(tmp).length, 1);
});

test('a body over --max-upload-mb is cut off early: 413 for a declared 2 GB, a streamed body and a multipart file, without reading them', async () => {
  const fixture = await serveFixture();
  const s = await started();
  const chunk = Buffer.alloc(64 * 1024, 7);
  const twoGb = 2 * 1024 ** 3;
  // Declared: refused on the header, before a byte of the body is read.
  const declared = await streamUntilAnswered(s.url, { 'content-type': 'video/mp4', 'content-length': twoGb }, chunk, twoGb);
  assertRefused(declared.answer, 413, 'upload_too_large', /larger than 1 MB \(the service's --max-upload-mb\)/);
  assert.equal(declared.answer.headers.connection, 'close');
  // Streamed without a length (chunked): counted as it arrives and cut at the limit.
  const streamed = await streamUntilAnswered(s.url, { 'content-type': 'video/mp4', 'transfer-encoding': 'chunked' }, chunk, twoGb);
  assertRefused(streamed.answer, 413, 'upload_too_large', /^the upload is larger than 1 MB/);
  assert.ok(streamed.sent < 64 * 1024 * 1024, `cut off early: ${streamed.sent} bytes sent before the answer`);
  const boundary = 'big';
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="video"; filename="big.mp4"\r\nContent-Type: video/mp4\r\n\r\n`);
  const inForm = await new Promise<{ answer: Answer; sent: number }>((resolve, reject) => {
    const req = http.request(new URL('/predict', s.url), { method: 'POST', agent: false, headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'transfer-encoding': 'chunked' } });
    let sent = 0;
    let answered = false;
    req.on('response', (response) => {
      answered = true;
      let body = '';
      response.setEncoding('utf8').on('data', (c: string) => { body += c; }).on('end', () => {
        req.destroy();
        resolve({ answer: { status: response.statusCode!, headers: response.headers, body, json: <T>() => JSON.parse(body) as T }, sent });
      });
    });
    req.on('error', (error) => { if (!answered) reject(error); });
    req.write(head);
    const pump = (): void => {
      while (!answered && sent < twoGb) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once('drain', pump);
      }
    };
    pump();
  });
  assertRefused(inForm.answer, 413, 'upload_too_large', /larger than 1 MB/);
  assert.ok(inForm.sent < 64 * 1024 * 1024, `multipart cut off early: ${inForm.sent} bytes`);
  await stillServes(s, fixture.videos[2]!);
  await eventually(async () => (await health(s.url)).uploadFiles === 0, 'the cut-off uploads removed');
});

/** Starts an upload, waits until the service holds it (its temp file exists), then cuts the connection. */
async function disconnectMidUpload(s: ServiceProcess, headers: Record<string, string | number>, first: Buffer): Promise<void> {
  const req = http.request(new URL('/predict', s.url), { method: 'POST', headers, agent: false });
  req.on('error', () => undefined);
  req.write(first);
  await eventually(async () => (await health(s.url)).uploadFiles === 1, 'the upload to reach its temp file');
  req.destroy();
  await eventually(async () => {
    const h = await health(s.url);
    return h.uploadFiles === 0 && h.inFlight === 0;
  }, 'the cut upload to be cleaned up');
}

test('clients that disconnect mid-upload leak nothing: temp files, slots, live tensors and RSS stay flat over repeated requests', async () => {
  const fixture = await serveFixture();
  const s = await started();
  const video = readFileSync(fixture.videos[3]!);
  const warm = async () => { for (let i = 0; i < 3; i++) await stillServes(s, fixture.videos[i % 4]!); };
  await warm();
  const before = await health(s.url);
  for (let round = 0; round < 8; round++) {
    // A raw body that stops half-way, and a multipart file that stops half-way.
    await disconnectMidUpload(s, { 'content-type': 'video/mp4', 'content-length': video.length }, video.subarray(0, video.length >> 1));
    const form = multipart('video', 'v.mp4', video);
    await disconnectMidUpload(s, form.headers, form.body.subarray(0, form.body.length >> 1));
    await stillServes(s, fixture.videos[round % 4]!);
    assertRefused(await post(s, { 'content-type': 'video/mp4' }, readFileSync(fixture.truncated)), 422, 'undecodable', /./);
  }
  const afterwards = await health(s.url);
  assert.equal(afterwards.liveTensors, before.liveTensors, 'live tensors flat');
  assert.equal(afterwards.inFlight, 0);
  assert.equal(afterwards.uploadFiles, 0);
  const grownMb = (afterwards.rssBytes - before.rssBytes) / 1024 ** 2;
  assert.ok(grownMb < 48, `RSS flat: grew ${grownMb.toFixed(1)} MB over 32 requests`);
  // The service's only trace in --tmp-dir is its (empty) upload folder.
  const folders = readdirSync(tmp);
  assert.equal(folders.length, 1);
  assert.match(folders[0]!, /^stcnet-serve-/);
  assert.deepEqual(readdirSync(join(tmp, folders[0]!)), []);
  const code = await s.stop();
  service = undefined;
  assert.deepEqual(code, { code: 0, signal: null });
  assert.deepEqual(readdirSync(tmp), [], 'the upload folder is removed at exit');
});
