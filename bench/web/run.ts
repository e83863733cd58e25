/**
 * bench/web/run: clips per second of an exported model in the browser page (onnxruntime-web,
 * WebAssembly, in Debian's headless Chromium), beside the same ONNX file in onnxruntime-node and
 * stcnet's own libtorch inference (prepareForInference), batch 1, at the same thread counts, on the
 * same seeded model. Two models: STC-ResNet-18 at the paper's size (16×112², width 1, 101 classes)
 * and the demo's (8×48², width ×0.25, 6 classes). Each runs `--clips` timed clips after 2 warm-up ones.
 *
 *   node dist/bench/web/run.js [--threads 1,2] [--clips 5] [--models full,demo] [--json]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import Fastify from 'fastify';
import * as ort from 'onnxruntime-node';
import { manualSeed, randn, setNumThreads, tidy } from '../../src/engine/index.js';
import { createModel, prepareForInference } from '../../src/models/index.js';
import { saveModelCheckpoint, type Preprocessing } from '../../src/models/checkpoint.js';
import { NORMALIZATIONS } from '../../src/data/transforms.js';
import { exportOnnx } from '../../src/export/index.js';
import { registerWebPage } from '../../src/serve/web.js';
import { UserError } from '../../src/util/errors.js';
import { launchChromium } from '../../test/web/chromium.js';
import { formatRow } from '../common.js';

interface BenchModel {
  name: string;
  widthMultiplier: number;
  frames: number;
  size: number;
  classes: number;
}

const MODELS: Record<string, BenchModel> = {
  full: { name: 'stc_resnet3d_18 16×112² ×1', widthMultiplier: 1, frames: 16, size: 112, classes: 101 },
  demo: { name: 'stc_resnet3d_18 8×48² ×0.25 (demo)', widthMultiplier: 0.25, frames: 8, size: 48, classes: 6 },
};

function listFlag(name: string, fallback: string): string[] {
  const index = process.argv.indexOf(`--${name}`);
  return (index < 0 ? fallback : process.argv[index + 1] ?? '').split(',').map((s) => s.trim()).filter(Boolean);
}

function intFlag(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  if (index < 0) return fallback;
  const value = Number(process.argv[index + 1]);
  if (!Number.isInteger(value) || value < 1) throw new UserError(`--${name} must be a positive integer, got "${process.argv[index + 1]}"`);
  return value;
}

interface Row {
  model: string;
  runtime: string;
  threads: number;
  clipsPerSecond: number;
  medianMs: number;
}

/** A seeded model saved as a stcnet checkpoint, exported with `stcnet export`. */
async function exported(spec: BenchModel, dir: string): Promise<{ checkpoint: string; onnx: string }> {
  manualSeed(0);
  const model = createModel('stc_resnet3d_18', { numClasses: spec.classes, frames: spec.frames, widthMultiplier: spec.widthMultiplier });
  const preprocessing: Preprocessing = {
    frames: spec.frames, stride: 1, size: spec.size, mean: [...NORMALIZATIONS.kinetics.mean], std: [...NORMALIZATIONS.kinetics.std],
  };
  const checkpoint = join(dir, `${spec.frames}x${spec.size}.safetensors`);
  saveModelCheckpoint(checkpoint, model, { classes: Array.from({ length: spec.classes }, (_, i) => `class ${i}`), preprocessing });
  model.dispose();
  const onnx = join(dir, `${spec.frames}x${spec.size}.onnx`);
  await exportOnnx(checkpoint, onnx);
  return { checkpoint, onnx };
}

/** Median and rate of `clips` timed runs after 2 warm-ups. */
async function timeRuns(clips: number, run: () => Promise<void> | void): Promise<{ clipsPerSecond: number; medianMs: number }> {
  for (let i = 0; i < 2; i++) await run();
  const ms: number[] = [];
  const start = performance.now();
  for (let i = 0; i < clips; i++) {
    const t = performance.now();
    await run();
    ms.push(performance.now() - t);
  }
  const seconds = (performance.now() - start) / 1000;
  ms.sort((a, b) => a - b);
  return { clipsPerSecond: clips / seconds, medianMs: ms[Math.floor(ms.length / 2)]! };
}

async function browserRun(onnx: string, threads: number, clips: number): Promise<{ clipsPerSecond: number; medianMs: number; threads: number }> {
  const app = Fastify();
  await registerWebPage(app, { onnxFile: onnx });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  const browser = await launchChromium();
  try {
    await browser.page.goto(`${url}/?backend=wasm&threads=${threads}`);
    await browser.page.waitForFunction(() => ['ready', 'error'].includes((window as unknown as { stcnetPage?: { state: string } }).stcnetPage?.state ?? ''),
      null, { timeout: 300_000 });
    const result = await browser.page.evaluate(async (n) => {
      const page = (window as unknown as { stcnetPage: { state: string; message: string; benchmark(n: number): Promise<{ clipsPerSecond: number; medianMs: number; threads: number }> } }).stcnetPage;
      if (page.state !== 'ready') throw new Error(page.message);
      return page.benchmark(n);
    }, clips);
    return result;
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${browser.log.join('\n')}`);
  } finally {
    await browser.close();
    await app.close();
  }
}

async function main(): Promise<void> {
  const threadCounts = listFlag('threads', '1,2').map(Number);
  if (threadCounts.some((t) => !Number.isInteger(t) || t < 1)) throw new UserError('--threads takes positive integers, comma-separated (1,2)');
  const clips = intFlag('clips', 5);
  const names = listFlag('models', 'full,demo');
  for (const name of names) if (!MODELS[name]) throw new UserError(`--models: unknown model "${name}"; choose from ${Object.keys(MODELS).join(', ')}`);
  const json = process.argv.includes('--json');
  const dir = mkdtempSync(join(tmpdir(), 'stcnet-bench-web-'));
  const rows: Row[] = [];
  const say = (line: string) => { if (!json) console.log(line); };
  say(`bench/web: ${cpus()[0]?.model ?? 'cpu'} (${availableParallelism()} cores), load ${loadavg().map((l) => l.toFixed(2)).join(' ')}, ${new Date().toISOString()}`);
  try {
    for (const name of names) {
      const spec = MODELS[name]!;
      say(`exporting ${spec.name}…`);
      const { onnx } = await exported(spec, dir);
      const shape = [1, 3, spec.frames, spec.size, spec.size];
      manualSeed(1);
      const input = tidy(() => randn(shape).toFloat32Array());
      for (const threads of threadCounts) {
        const browser = await browserRun(onnx, threads, clips);
        rows.push({ model: spec.name, runtime: 'browser (onnxruntime-web, wasm)', ...browser });
        say(formatRow([spec.name, 'browser wasm', String(browser.threads), browser.clipsPerSecond.toFixed(2), browser.medianMs.toFixed(0)], [36, 14, 3, 8, 8]));

        const session = await ort.InferenceSession.create(onnx, { intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all' });
        const feeds = { [session.inputNames[0]!]: new ort.Tensor('float32', input, shape) };
        const node = await timeRuns(clips, async () => { await session.run(feeds); });
        await session.release();
        rows.push({ model: spec.name, runtime: 'onnxruntime-node', threads, ...node });
        say(formatRow([spec.name, 'ort-node', String(threads), node.clipsPerSecond.toFixed(2), node.medianMs.toFixed(0)], [36, 14, 3, 8, 8]));

        setNumThreads(threads);
        manualSeed(0);
        const model = createModel('stc_resnet3d_18', { numClasses: spec.classes, frames: spec.frames, widthMultiplier: spec.widthMultiplier });
        model.eval();
        const prepared = prepareForInference(model);
        const x = randn(shape);
        const own = await timeRuns(clips, () => { tidy(() => prepared.forward(x).toFloat32Array()); });
        x.dispose();
        prepared.dispose();
        model.dispose();
        rows.push({ model: spec.name, runtime: 'stcnet (libtorch, prepareForInference)', threads, ...own });
        say(formatRow([spec.name, 'stcnet', String(threads), own.clipsPerSecond.toFixed(2), own.medianMs.toFixed(0)], [36, 14, 3, 8, 8]));
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  if (json) console.log(JSON.stringify({ date: new Date().toISOString(), load: loadavg(), clips, rows }));
  else {
    console.log(`\n${formatRow(['model', 'runtime', 'thr', 'clips/s', 'ms/clip'], [36, 40, 3, 8, 8])}`);
    for (const r of rows) console.log(formatRow([r.model, r.runtime, String(r.threads), r.clipsPerSecond.toFixed(2), r.medianMs.toFixed(0)], [36, 40, 3, 8, 8]));
  }
}

main().catch((error) => {
  console.error(error instanceof UserError ? `bench/web: ${error.message}` : error);
  process.exit(error instanceof UserError ? 2 : 1);
});
