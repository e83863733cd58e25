/**
 * bench/serve/load: `stcnet serve` under load on loopback. 200 requests (raw video uploads) from 8
 * concurrent clients (node's fetch), against a seeded STC-ResNet-18 at width ×0.5 (8 frames of 112²,
 * 101 classes: the shape of a UCF101 model, at a size a 2-core machine serves in minutes), once per
 * batching setting. Reports p50/p95/max latency, throughput, the mean requests per forward pass, and
 * the service's live tensors and RSS before and after (they must stay flat).
 *
 *   node dist/bench/serve/load.js [--requests 200] [--concurrency 8] [--clips 1] [--width 0.5]
 *     [--frames 8] [--size 112] [--threads N] [--settings 1:0,8:10] [--input video|frames] [--out load.json]
 *
 * --settings is a list of MAX_BATCH:WAIT_MS pairs (1:0 is no batching across requests).
 * --input frames sends each video's first 16 frames, decoded beforehand at the model's short side,
 * as JSON (base64): no ffmpeg in the service, so the forward pass is what the clients wait for.
 */
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { repoRoot } from '../common.js';
import { generateSynth } from '../../src/data/synth.js';
import { NORMALIZATIONS } from '../../src/data/transforms.js';
import { manualSeed } from '../../src/engine/index.js';
import { createModel } from '../../src/models/registry.js';
import { saveModelCheckpoint } from '../../src/models/checkpoint.js';
import { UserError } from '../../src/util/errors.js';
import { decodeVideo } from '../../src/video/decode.js';

function flag(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index < 0 ? fallback : (process.argv[index + 1] ?? '');
}
function positive(name: string, fallback: number, integer = true): number {
  const value = Number(flag(name, String(fallback)));
  if (!(value > 0) || (integer && !Number.isInteger(value))) throw new UserError(`--${name} must be a positive ${integer ? 'integer' : 'number'}`);
  return value;
}

const requests = positive('requests', 200);
const concurrency = positive('concurrency', 8);
const clips = positive('clips', 1);
const width = positive('width', 0.5, false);
const frames = positive('frames', 8);
const size = positive('size', 112);
const threads = positive('threads', availableParallelism());
const settings = flag('settings', '1:0,8:10').split(',').map((pair) => {
  const [batch, wait] = pair.split(':').map(Number);
  if (!Number.isInteger(batch) || batch! < 1 || !(wait! >= 0)) throw new UserError(`--settings: "${pair}" is not MAX_BATCH:WAIT_MS`);
  return { maxBatch: batch!, waitMs: wait! };
});
const outFile = process.argv.includes('--out') ? flag('out', '') : undefined;
const input = flag('input', 'video');
if (input !== 'video' && input !== 'frames') throw new UserError(`--input must be video or frames, got "${input}"`);

interface Health { liveTensors: number; rssBytes: number; uploadFiles: number; inFlight: number; forwardPasses: number; served: number }

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)]!;
}

async function startService(checkpoint: string, maxBatch: number, waitMs: number): Promise<{ url: string; stop(): Promise<number | null> }> {
  const child = spawn(process.execPath, [join(repoRoot, 'dist/src/cli/main.js'), 'serve', checkpoint, '--port', '0', '--quiet', '--threads', String(threads),
    '--clips', String(clips), '--max-batch', String(maxBatch), '--batch-wait-ms', String(waitMs), '--max-queue', String(4 * concurrency)],
  { stdio: ['ignore', 'pipe', 'inherit'] });
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  // The service goes with the benchmark when it is interrupted.
  const forward = () => child.kill('SIGTERM');
  process.once('SIGINT', forward).once('SIGTERM', forward);
  void exited.then(() => process.off('SIGINT', forward).off('SIGTERM', forward));
  let out = '';
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      const match = /listening on (\S+)/.exec(out);
      if (match) resolve(match[1]!);
    });
    void exited.then((code) => reject(new Error(`stcnet serve exited with ${code} before listening`)));
  });
  return { url, stop: () => { child.kill('SIGTERM'); return exited; } };
}

interface Timing { batchRequests: number; decodeMs: number; queueMs: number; inferenceMs: number }

async function predict(url: string, body: Uint8Array<ArrayBuffer> | string): Promise<{ ms: number; status: number; timing: Timing | undefined; error?: string }> {
  const started = performance.now();
  const type = typeof body === 'string' ? 'application/json' : 'video/mp4';
  const response = await fetch(`${url}/predict`, { method: 'POST', headers: { 'content-type': type }, body });
  const json = (await response.json()) as { timing?: Timing; code?: string; error?: string };
  return { ms: performance.now() - started, status: response.status, timing: json.timing, ...(json.error ? { error: `${response.status} ${json.code}: ${json.error}` } : {}) };
}

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);

async function health(url: string): Promise<Health> {
  return (await (await fetch(`${url}/health`)).json()) as Health;
}

async function main(): Promise<void> {
  const work = await mkdtemp(join(tmpdir(), 'stcnet-bench-serve-'));
  try {
    const data = join(work, 'data');
    // Eight videos of 160×120 at 25 fps, 2–3 s each (50–75 frames): uploads of a few tens of kB.
    await generateSynth({ out: data, classes: 8, videosPerClass: 1, width: 160, height: 120, fps: 25, minDuration: 2, maxDuration: 3,
      noise: 4, shake: 1, seed: 3, jobs: 2, scene: 'varied', quiet: true });
    const files = readdirSync(data, { recursive: true, withFileTypes: true }).filter((e) => e.isFile() && e.name.endsWith('.mp4'))
      .map((e) => join(e.parentPath, e.name));
    const shortSide = Math.round((size * 8) / 7);
    const videos: (Uint8Array<ArrayBuffer> | string)[] = [];
    for (const file of files) {
      if (input === 'video') {
        videos.push(new Uint8Array(readFileSync(file)));
      } else {
        const decoded = await decodeVideo(file, { shortSide, maxFrames: 16 });
        videos.push(JSON.stringify({ width: decoded.width, height: decoded.height, frames: decoded.frames.map((f) => Buffer.from(f).toString('base64')) }));
      }
    }
    manualSeed(0);
    const model = createModel('stc_resnet3d_18', { numClasses: 101, frames, widthMultiplier: width });
    const checkpoint = join(work, 'model.safetensors');
    saveModelCheckpoint(checkpoint, model, {
      classes: Array.from({ length: 101 }, (_, i) => `class_${i}`),
      preprocessing: { frames, stride: 1, size, mean: [...NORMALIZATIONS.kinetics.mean], std: [...NORMALIZATIONS.kinetics.std], shortSide },
    });
    model.dispose();
    const machine = { cpu: cpus()[0]?.model ?? 'unknown', cores: availableParallelism(), loadavgAtStart: loadavg().map((v) => Number(v.toFixed(2))) };
    const setup = { model: 'stc_resnet3d_18', widthMultiplier: width, frames, size, classes: 101, clips, requests, concurrency, threads,
      input, videos: videos.length, bodyBytes: videos.map((v) => v.length) };
    process.stderr.write(`bench/serve: ${JSON.stringify(setup)}\nmachine: ${JSON.stringify(machine)}\n`);
    const rows = [];
    for (const { maxBatch, waitMs } of settings) {
      const service = await startService(checkpoint, maxBatch, waitMs);
      // Warm-up: one round per client, not timed.
      await Promise.all(Array.from({ length: concurrency }, (_, i) => predict(service.url, videos[i % videos.length]!)));
      const before = await health(service.url);
      const latencies: number[] = [];
      const timings: Timing[] = [];
      const rssSamples: number[] = [];
      const failures: string[] = [];
      let next = 0;
      const started = performance.now();
      await Promise.all(Array.from({ length: concurrency }, async () => {
        while (next < requests) {
          const i = next++;
          // RSS at each quarter of the run: a leak climbs steadily, an allocator's high-water mark levels off.
          if (i > 0 && i % Math.max(1, Math.floor(requests / 4)) === 0) void health(service.url).then((h) => rssSamples.push(h.rssBytes));
          const result = await predict(service.url, videos[i % videos.length]!);
          if (result.status !== 200) {
            if (failures.length === 0) process.stderr.write(`bench/serve: request ${i} failed: ${result.error ?? result.status}\n`);
            failures.push(result.error ?? String(result.status));
          }
          latencies.push(result.ms);
          if (result.timing) timings.push(result.timing);
        }
      }));
      const wallS = (performance.now() - started) / 1000;
      const afterwards = await health(service.url);
      const exitCode = await service.stop();
      latencies.sort((a, b) => a - b);
      const row = {
        maxBatch, waitMs, requests, failures: failures.length, ...(failures.length > 0 ? { firstFailure: failures[0] } : {}), wallS: Number(wallS.toFixed(2)),
        throughput: Number((requests / wallS).toFixed(2)),
        p50Ms: Math.round(percentile(latencies, 50)), p95Ms: Math.round(percentile(latencies, 95)), maxMs: Math.round(latencies[latencies.length - 1]!),
        meanBatchRequests: Number(mean(timings.map((t) => t.batchRequests)).toFixed(2)),
        meanDecodeMs: Math.round(mean(timings.map((t) => t.decodeMs))), meanQueueMs: Math.round(mean(timings.map((t) => t.queueMs))),
        meanInferenceMs: Math.round(mean(timings.map((t) => t.inferenceMs))),
        liveTensors: [before.liveTensors, afterwards.liveTensors], rssMb: [before.rssBytes, ...rssSamples, afterwards.rssBytes].map((b) => Math.round(b / 1024 ** 2)),
        uploadFilesAfter: afterwards.uploadFiles, exitCode,
      };
      rows.push(row);
      process.stderr.write(`${JSON.stringify(row)}\n`);
    }
    const report = { date: new Date().toISOString(), machine: { ...machine, loadavgAtEnd: loadavg().map((v) => Number(v.toFixed(2))) }, setup, rows };
    const lines = ['| max batch | wait ms | req/s | p50 ms | p95 ms | max ms | mean reqs/pass | mean decode / queue / forward ms | failures | live tensors before→after | RSS MB before→after |',
      '|---|---|---|---|---|---|---|---|---|---|---|',
      ...rows.map((r) => `| ${r.maxBatch} | ${r.waitMs} | ${r.throughput} | ${r.p50Ms} | ${r.p95Ms} | ${r.maxMs} | ${r.meanBatchRequests} | ` +
        `${r.meanDecodeMs} / ${r.meanQueueMs} / ${r.meanInferenceMs} | ${r.failures} | ${r.liveTensors.join('→')} | ${r.rssMb.join('→')} |`)];
    lines[0] = lines[0]!.replace('RSS MB before→after', 'RSS MB before→(each quarter)→after');
    process.stdout.write(lines.join('\n') + '\n');
    if (outFile) writeFileSync(outFile, JSON.stringify(report, null, 2) + '\n');
  } finally {
    await rm(work, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  process.stderr.write(`bench/serve: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exitCode = 1;
});
