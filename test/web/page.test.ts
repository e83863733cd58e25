import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import Fastify, { type FastifyInstance } from 'fastify';
import type { Page } from 'playwright-core';
import { registerWebPage } from '../../src/serve/web.js';
import { exportOnnx } from '../../src/export/index.js';
import { repoRoot } from '../helpers.js';
import { launchChromium, type Browser } from './chromium.js';
import { PREDICT_CLIPS, servePage, type WebFixture } from './fixture.js';

/**
 * The browser page in Debian's headless Chromium, against `stcnet predict` on the same videos and
 * the same model (the checkpoint, and its ONNX export in the page).
 */

const cli = join(repoRoot, 'dist/src/cli/main.js');

interface PageResult {
  kind: 'video' | 'live';
  file?: string;
  clips: number;
  scores: number[];
  top: { index: number; label: string; score: number }[];
}
interface PageState {
  state: string;
  message: string;
  result: PageResult | null;
  model: { arch: string; classes: string[]; backend: string } | null;
}

let fixture: WebFixture;
let app: FastifyInstance;
let url: string;
let browser: Browser;

before(async () => {
  ({ fixture, app, url, browser } = await servePage());
});

after(async () => {
  await browser?.close();
  await app?.close();
});

const state = (page: Page): Promise<PageState> =>
  page.evaluate(() => {
    const p = (window as unknown as { stcnetPage: PageState }).stcnetPage;
    return { state: p.state, message: p.message, result: p.result, model: p.model };
  });

/** Waits until the page is in one of `states` (and `until` holds), failing with the page's message and log otherwise. */
async function waitFor(page: Page, states: string[], until = 'true', timeout = 60_000): Promise<PageState> {
  try {
    await page.waitForFunction(([wanted, condition]) => {
      const p = (window as unknown as { stcnetPage?: { state: string } }).stcnetPage;
      // eslint-disable-next-line no-new-func
      if (p === undefined) return false;
      if (p.state === 'error' && !(wanted as string[]).includes('error')) return true;
      return (wanted as string[]).includes(p.state) && new Function('p', `return ${condition as string}`)(p);
    }, [states, until] as const, { timeout });
  } catch (error) {
    const now = await state(page).catch(() => null);
    assert.fail(`the page did not reach ${states.join('/')}: ${(error as Error).message}\nstate: ${JSON.stringify(now)}\nlog:\n${browser.log.join('\n')}`);
  }
  return state(page);
}

async function openPage(): Promise<Page> {
  const page = browser.page;
  await page.goto(url);
  const ready = await waitFor(page, ['ready']);
  assert.equal(ready.state, 'ready', ready.message);
  return page;
}

/** The page's result for a video file given to its file input. */
async function scoreOnPage(page: Page, video: string): Promise<PageState> {
  await page.setInputFiles('#video-file', video);
  return waitFor(page, ['done'], `p.result && p.result.file === ${JSON.stringify(basename(video))}`);
}

interface PredictVideo {
  file: string;
  ok: boolean;
  clips: number;
  top: { index: number; label: string; score: number }[];
}

function predict(videos: string[], flags: string[] = []): PredictVideo[] {
  const run = spawnSync(process.execPath, [cli, 'predict', fixture.checkpoint, ...videos, '--json', '--quiet', '--top', '5', '--workers', '1', ...flags], {
    encoding: 'utf8', timeout: 120_000, env: { ...process.env, STCNET_THREADS: '1' },
  });
  assert.equal(run.status, 0, run.stderr);
  return (JSON.parse(run.stdout) as { videos: PredictVideo[] }).videos;
}

test('the page scores each video as `stcnet predict` does: the same top-1 class, probabilities within 0.05', async () => {
  const expected = predict(fixture.videos);
  const page = await openPage();
  const ready = await state(page);
  assert.equal(ready.model?.arch, 'stc_resnet3d_18');
  assert.deepEqual(ready.model?.classes, fixture.classes);
  assert.match(await page.textContent('#model-line') ?? '', /stc_resnet3d_18\): 4 classes, clips of 4 frames, 32×32 · WebAssembly/);

  const firstScores: number[][] = [];
  for (const [c, video] of fixture.videos.entries()) {
    const reference = expected[c]!;
    assert.ok(reference.ok, `predict failed on ${video}`);
    assert.equal(reference.clips, PREDICT_CLIPS);
    // Not a near-tie: the model was built so each video's class leads clearly.
    assert.equal(reference.top[0]!.index, c, `predict's top-1 for ${basename(video)}`);
    assert.ok(reference.top[0]!.score - reference.top[1]!.score > 0.5, `predict's top-2 for ${basename(video)}: ${JSON.stringify(reference.top)}`);

    const result = await scoreOnPage(page, video);
    assert.equal(result.state, 'done', result.message);
    assert.equal(result.result!.clips, PREDICT_CLIPS);
    // The top-1 as the page shows it.
    const shown = await page.$eval('#top1', (li) => ({ label: (li as HTMLElement).dataset.label, text: li.textContent }));
    assert.equal(shown.label, reference.top[0]!.label, `${basename(video)}: the page's top-1 vs predict's`);
    assert.match(shown.text ?? '', new RegExp(`^${reference.top[0]!.label}\\d+\\.\\d%$`));
    const scores = new Array<number>(fixture.classes.length).fill(NaN);
    for (const t of reference.top) scores[t.index] = t.score;
    result.result!.scores.forEach((score, i) => {
      assert.ok(Math.abs(score - scores[i]!) < 0.05, `${basename(video)}, ${fixture.classes[i]}: page ${score} vs predict ${scores[i]}`);
    });
    assert.equal(await page.locator('#bars li').count(), 4);
    assert.match(await page.textContent('#timing') ?? '', /^model \d+\.\d ms per clip \(mean \d+\.\d ms, \d+\.\d clips\/s\) · frames \d+\.\d ms$/);
    firstScores.push(result.result!.scores);
  }
  // Scored again, every frame is the same: the first analyses of a fresh browser once drew the
  // previous frame (or a blank one) after some seeks.
  for (const [c, video] of fixture.videos.entries()) {
    const again = await scoreOnPage(page, video);
    assert.deepEqual(again.result!.scores, firstScores[c], `${basename(video)} scored twice`);
  }
});

test('playing the video gives live predictions, one clip of the latest frames at a time', async () => {
  const page = await openPage();
  await scoreOnPage(page, fixture.videos[2]!);
  // Looped, so that a slow machine cannot reach the end before a clip's frames have been presented.
  await page.evaluate(() => {
    const video = document.getElementById('video') as HTMLVideoElement;
    video.loop = true;
    return video.play();
  });
  const live = await waitFor(page, ['live', 'done'], 'p.result && p.result.kind === "live"', 30_000);
  assert.equal(live.result?.kind, 'live', live.message);
  assert.equal(live.result!.top.length, 4);
  assert.ok(Math.abs(live.result!.scores.reduce((a, b) => a + b, 0) - 1) < 1e-4);
  assert.match(await page.textContent('#result-title') ?? '', /^Live/);
  await page.evaluate(() => {
    const video = document.getElementById('video') as HTMLVideoElement;
    video.pause();
    video.loop = false;
  });
  assert.equal((await state(page)).state, 'done', 'pausing stops the live predictions');
});

test('a WebM (VP9) video, whose frame rate the page measures by playing it: the same top-1 as `stcnet predict`', async () => {
  const webm = join(fixture.work, 'move_up.webm');
  const encode = spawnSync('ffmpeg', ['-v', 'error', '-y', '-i', fixture.videos[2]!, '-c:v', 'libvpx-vp9', '-lossless', '1', '-threads', '1', webm], { encoding: 'utf8', timeout: 60_000 });
  assert.equal(encode.status, 0, encode.stderr);
  const [reference] = predict([webm]);
  assert.equal(reference!.top[0]!.index, 2, JSON.stringify(reference));
  const page = await openPage();
  const result = await scoreOnPage(page, webm);
  assert.equal(result.state, 'done', result.message);
  assert.equal(result.result!.top[0]!.label, reference!.top[0]!.label);
  for (const t of reference!.top) assert.ok(Math.abs(result.result!.scores[t.index]! - t.score) < 0.05, `${t.label}: page ${result.result!.scores[t.index]} vs predict ${t.score}`);
});

test('the webcam (Chromium\'s fake camera): live predictions, and the camera stops', async () => {
  const camera = await launchChromium(['--use-fake-device-for-media-stream', '--use-fake-ui-for-media-stream']);
  try {
    const page = camera.page;
    await page.goto(url);
    await page.waitForFunction(() => (window as unknown as { stcnetPage?: { state: string } }).stcnetPage?.state === 'ready', null, { timeout: 60_000 });
    await page.click('#webcam');
    await page.waitForFunction(() => {
      const p = (window as unknown as { stcnetPage: { state: string; result: { kind: string } | null } }).stcnetPage;
      return p.state === 'error' || (p.result !== null && p.result.kind === 'live');
    }, null, { timeout: 60_000 });
    const live = await state(page);
    assert.equal(live.result?.kind, 'live', `${live.message}\n${camera.log.join('\n')}`);
    assert.equal(await page.textContent('#webcam'), 'Stop the webcam');
    await page.click('#webcam');
    const off = await state(page);
    assert.equal(off.message, 'The webcam is off.');
    assert.equal(await page.evaluate(() => (document.getElementById('video') as HTMLVideoElement).srcObject), null);
  } finally {
    await camera.close();
  }
});

test('a file that is not a video and a .onnx that is not a model: a clear message on the page, which keeps working', async () => {
  const page = await openPage();
  const notVideo = join(fixture.work, 'notes.mp4');
  writeFileSync(notVideo, 'this is a text file, not a video\n'.repeat(50));
  await page.setInputFiles('#video-file', notVideo);
  const failed = await waitFor(page, ['error']);
  assert.equal(failed.state, 'error');
  assert.match(failed.message, /^notes\.mp4: the browser cannot decode this video/);

  const notModel = join(fixture.work, 'notes.onnx');
  writeFileSync(notModel, 'not a model');
  await page.setInputFiles('#model-file', notModel);
  const refused = await waitFor(page, ['error'], 'p.message.startsWith("notes.onnx")');
  assert.match(refused.message, /^notes\.onnx: not an ONNX model/);
  // The model in use is kept, and the next video is scored.
  const after = await scoreOnPage(page, fixture.videos[1]!);
  assert.equal(after.state, 'done', after.message);
  assert.equal(after.result?.top[0]?.index, 1);
});

test('a model opened from a local file replaces the server\'s, and a fixed-batch export works too', async () => {
  // The same checkpoint exported with a fixed batch of 2: the page repeats its clip to fill the batch.
  const fixed = join(fixture.work, 'fixed-batch.onnx');
  await exportOnnx(fixture.checkpoint, fixed, { batch: 2 });
  const page = await openPage();
  const before = await scoreOnPage(page, fixture.videos[3]!);
  await page.setInputFiles('#model-file', fixed);
  // Opening a model re-scores the open video with it.
  const after = await waitFor(page, ['done'], 'p.model && p.model.name === "fixed-batch.onnx" && p.result && p.result.file');
  assert.match(await page.textContent('#model-line') ?? '', /^fixed-batch\.onnx \(stc_resnet3d_18\)/);
  assert.equal(after.result?.top[0]?.index, 3);
  after.result!.scores.forEach((score, i) => assert.ok(Math.abs(score - before.result!.scores[i]!) < 1e-5, `${fixture.classes[i]}: ${score} vs ${before.result!.scores[i]}`));
});

test('the server: MIME types, cross-origin isolation, only the files the page needs, and the model', async () => {
  const get = (path: string) => app.inject({ method: 'GET', url: path });
  const page = await get('/');
  assert.equal(page.statusCode, 200);
  assert.match(String(page.headers['content-type']), /^text\/html/);
  assert.equal(page.headers['cross-origin-opener-policy'], 'same-origin');
  assert.equal(page.headers['cross-origin-embedder-policy'], 'require-corp');
  for (const path of ['/web/app.js', '/web/clip.js', '/dist/src/data/transforms.js', '/dist/src/data/samplers.js', '/ort/ort.wasm.min.mjs']) {
    const response = await get(path);
    assert.equal(response.statusCode, 200, path);
    assert.match(String(response.headers['content-type']), /^text\/javascript/, path);
  }
  const wasm = await get('/ort/ort-wasm-simd-threaded.wasm');
  assert.equal(wasm.statusCode, 200);
  assert.equal(wasm.headers['content-type'], 'application/wasm');
  assert.equal(wasm.headers['cross-origin-embedder-policy'], 'require-corp');
  const model = await get('/model.onnx');
  assert.equal(model.statusCode, 200);
  assert.deepEqual(model.rawPayload, readFileSync(fixture.onnx));
  assert.equal(model.headers['x-model-name'], 'model.onnx');
  for (const path of ['/web/missing.js', '/web/..%2F..%2Fpackage.json', '/dist/src/data/loader.js', '/ort/ort.wasm.min.mjs.map', '/ort/..%2Fpackage.json']) {
    assert.equal((await get(path)).statusCode, 404, path);
  }
});

test('registerWebPage refuses a missing file and a file that is not an exported model, naming it', async () => {
  const missing = join(fixture.work, 'missing.onnx');
  await assert.rejects(registerWebPage(Fastify(), { onnxFile: missing }), (error: Error) => error.name === 'UserError' && error.message.startsWith(missing));
  await assert.rejects(registerWebPage(Fastify(), { onnxFile: fixture.checkpoint }),
    (error: Error) => error.name === 'UserError' && error.message.startsWith(`${fixture.checkpoint}: not an ONNX model`));
});
