import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { basename, join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import { repoRoot } from '../helpers.js';
import type { Browser } from './chromium.js';
import { servePage, type WebFixture } from './fixture.js';

/**
 * The page's WebGPU backend, on Chromium's software adapter (SwiftShader: WebGPU on the CPU, in the
 * browser package). Slow, so one clip per video on both sides; a file of its own to keep each test
 * file short.
 */

let fixture: WebFixture;
let app: FastifyInstance;
let url: string;
let browser: Browser;

before(async () => {
  ({ fixture, app, url, browser } = await servePage({ softwareWebGpu: true }));
});

after(async () => {
  await browser?.close();
  await app?.close();
});

interface PageState {
  state: string;
  message: string;
  result: { file?: string; clips: number; scores: number[]; top: { index: number; label: string }[] } | null;
  model: { backend: string } | null;
}

test('WebGPU (Chromium\'s software adapter): the same top-1 and probabilities as `stcnet predict`', async () => {
  const video = fixture.videos[1]!;
  const run = spawnSync(process.execPath, [join(repoRoot, 'dist/src/cli/main.js'), 'predict', fixture.checkpoint, video, '--json', '--quiet', '--clips', '1', '--workers', '1'], {
    encoding: 'utf8', timeout: 120_000, env: { ...process.env, STCNET_THREADS: '1' },
  });
  assert.equal(run.status, 0, run.stderr);
  const reference = (JSON.parse(run.stdout) as { videos: { top: { index: number; label: string; score: number }[] }[] }).videos[0]!;

  const page = browser.page;
  const state = () => page.evaluate(() => {
    const p = (window as unknown as { stcnetPage: PageState }).stcnetPage;
    return { state: p.state, message: p.message, result: p.result, model: p.model };
  });
  await page.goto(url);
  await page.waitForFunction(() => ['ready', 'error'].includes((window as unknown as { stcnetPage?: { state: string } }).stcnetPage?.state ?? ''), null, { timeout: 120_000 });
  const ready = await state();
  assert.equal(ready.state, 'ready', `${ready.message}\n${browser.log.join('\n')}`);
  assert.equal(ready.model?.backend, 'WebGPU');
  assert.match(await page.textContent('#model-line') ?? '', / · WebGPU$/);
  await page.fill('#clips', '1');
  await page.setInputFiles('#video-file', video);
  await page.waitForFunction((name) => {
    const p = (window as unknown as { stcnetPage: PageState }).stcnetPage;
    return p.state === 'error' || (p.state === 'done' && p.result?.file === name);
  }, basename(video), { timeout: 120_000 });
  const result = await state();
  assert.equal(result.state, 'done', `${result.message}\n${browser.log.join('\n')}`);
  assert.equal(result.result!.clips, 1);
  assert.equal(result.result!.top[0]!.label, reference.top[0]!.label);
  assert.equal(reference.top[0]!.index, 1);
  for (const t of reference.top) assert.ok(Math.abs(result.result!.scores[t.index]! - t.score) < 0.05, `${t.label}: page ${result.result!.scores[t.index]} vs predict ${t.score}`);
});
