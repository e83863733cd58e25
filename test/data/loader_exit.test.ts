import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateSynth } from '../../src/data/synth.js';
import { loadDataset } from '../../src/data/formats/index.js';
import { sampleKey, uniqueSamples, type VideoSample } from '../../src/data/dataset.js';
import { prepareCache } from '../../src/video/cache.js';

/**
 * How a process that holds a ClipLoader ends: by itself when the loader was never used (idle workers
 * must not keep the event loop alive), and never by a signal when it exits while workers are busy
 * (the JPEG addon is called from worker threads that are torn down mid-call).
 */

let dir: string;
let cacheDir: string;
let samples: VideoSample[];
const loaderModule = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/data/loader.js');

before(async () => {
  dir = await mkdtemp(path.join(os.tmpdir(), 'stcnet-loader-exit-'));
  await generateSynth({ out: path.join(dir, 'synth'), classes: 3, videosPerClass: 4, width: 64, height: 48, fps: 25,
    minDuration: 1, maxDuration: 1.5, noise: 2, shake: 0, seed: 3, quiet: true, jobs: 2 });
  const ds = await loadDataset(path.join(dir, 'synth'), 'ucf101');
  samples = ds.splits.train1!;
  cacheDir = path.join(dir, 'cache');
  await prepareCache(cacheDir, uniqueSamples(ds).map((s) => ({ key: sampleKey(s), path: s.path })), { shortSide: 48, quality: 90, quiet: true });
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

interface Outcome { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; killedByTest: boolean }

/** Runs an ES module script in a child node (with `nodeFlags`); kills it (and says so) after `timeoutMs`. */
function runScript(script: string, env: Record<string, string>, timeoutMs: number, nodeFlags: string[] = []): Promise<Outcome> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...nodeFlags, '--input-type=module', '-e', script], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let killedByTest = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => { stdout += chunk; });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
    const timer = setTimeout(() => {
      killedByTest = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, killedByTest });
    });
  });
}

const loaderScript = (options: string): string => `
  import { ClipLoader } from ${JSON.stringify(loaderModule)};
  const samples = JSON.parse(process.env.SAMPLES);
  const loader = await ClipLoader.create({ samples, source: { kind: 'cache', dir: process.env.CACHE }, ${options} });
`;

test('a loader that is created and never iterated or closed does not keep the process alive', async () => {
  const script = loaderScript("mode: 'train', batchSize: 2, frames: 4, size: 16, workers: 2") + `console.log('created', loader.batchesPerEpoch);`;
  const outcome = await runScript(script, { SAMPLES: JSON.stringify(samples), CACHE: cacheDir }, 30_000);
  assert.equal(outcome.killedByTest, false, 'the child was still alive after 30 s');
  assert.equal(outcome.code, 0, outcome.stderr);
  assert.match(outcome.stdout, /created \d+/);
});

test('a process started with V8 and per-process node flags (node --trace-gc …) still gets loader workers', async () => {
  // Workers refuse such flags (new Worker threw ERR_WORKER_INVALID_EXEC_ARGV): they are left out, the rest inherited.
  const script = loaderScript("mode: 'train', batchSize: 2, frames: 4, size: 16, workers: 1") + `
    const { value } = await loader.epoch(0).next();
    console.log('batch of', value.shape.join('x'));
    await loader.close();
  `;
  const flags = ['--trace-gc', '--max-old-space-size=512', '--stack-trace-limit=20', '--enable-source-maps'];
  const outcome = await runScript(script, { SAMPLES: JSON.stringify(samples), CACHE: cacheDir }, 60_000, flags);
  assert.equal(outcome.code, 0, outcome.stderr);
  assert.match(outcome.stdout, /batch of 2x3x4x16x16/);
});

test('process.exit while loader workers are busy never kills the process by a signal (20 runs)', async () => {
  // The first batch proves the workers run; more are being made (60 batches, 12 ahead) when exit
  // comes, at a different moment in each run.
  const script = loaderScript("mode: 'test', testClips: 10, testCrops: 3, batchSize: 4, frames: 16, size: 112, workers: 3, prefetch: 12") + `
    const batches = loader.epoch(0)[Symbol.asyncIterator]();
    await batches.next();
    setTimeout(() => process.exit(0), Number(process.env.DELAY));
    for (;;) if ((await batches.next()).done) break;
  `;
  const failures: string[] = [];
  for (let run = 0; run < 20; run++) {
    const outcome = await runScript(script, { SAMPLES: JSON.stringify(samples), CACHE: cacheDir, DELAY: String(run) }, 60_000);
    if (outcome.signal !== null || outcome.code !== 0) {
      failures.push(`run ${run}: ${outcome.signal ?? `exit ${outcome.code}`}${outcome.killedByTest ? ' (hung, killed by the test)' : ''}: ` +
        (outcome.stderr.split('\n').find((line) => line.trim()) ?? ''));
    }
  }
  assert.deepEqual(failures, []);
});
