/**
 * bench/onnx/run: clips/s of an exported model in ONNX Runtime (onnxruntime-node, CPU) beside stcnet's
 * own inference (prepareForInference, libtorch) on the same weights and the same clips.
 * The model is a seeded stc_resnet3d_18 (101 classes, 16×112×112) saved as a checkpoint and exported
 * with `exportOnnx` (which checks the two agree). Per batch size: one warm-up run of each, then
 * `--repeats` timed runs, the two runtimes alternating so that load from other processes falls on
 * both alike; the median is reported.
 *
 *   node dist/bench/onnx/run.js [--threads 2] [--repeats 5] [--batches 1,8] [--frames 16] [--size 112] [--json]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromTypedArray, manualSeed, noGrad, setNumThreads, tidy } from '../../src/engine/index.js';
import { createModel, prepareForInference } from '../../src/models/index.js';
import { saveModelCheckpoint } from '../../src/models/checkpoint.js';
import { NORMALIZATIONS } from '../../src/data/transforms.js';
import { exportOnnx } from '../../src/export/index.js';
import { randomClips } from '../../src/export/verify.js';
import { UserError } from '../../src/util/errors.js';
import { formatRow } from '../common.js';

function flag(name: string): string | undefined {
  const index = process.argv.indexOf(`--${name}`);
  return index < 0 ? undefined : process.argv[index + 1];
}

function intFlag(name: string, fallback: number): number {
  const text = flag(name);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new UserError(`--${name} must be a positive integer, got "${text}"`);
  return value;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

async function seconds(fn: () => unknown): Promise<number> {
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

interface Row {
  batch: number;
  stcnetSeconds: number;
  onnxSeconds: number;
  stcnetClipsPerSecond: number;
  onnxClipsPerSecond: number;
  /** ONNX Runtime's clips/s over stcnet's. */
  ratio: number;
}

async function main(): Promise<void> {
  const threads = intFlag('threads', 2);
  const repeats = intFlag('repeats', 5);
  const frames = intFlag('frames', 16);
  const size = intFlag('size', 112);
  const batches = (flag('batches') ?? '1,8').split(',').map((b) => {
    const n = Number(b);
    if (!Number.isInteger(n) || n < 1) throw new UserError(`--batches must list positive integers, got "${b}"`);
    return n;
  });
  if (repeats < 5) throw new UserError('--repeats must be at least 5 (the median of fewer is noise on a shared machine)');
  const json = process.argv.includes('--json');
  setNumThreads(threads);

  const work = mkdtempSync(join(tmpdir(), 'stcnet-bench-onnx-'));
  try {
    manualSeed(0);
    const model = createModel('stc_resnet3d_18', { numClasses: 101, frames }).eval();
    const checkpoint = join(work, 'model.safetensors');
    const preprocessing = { frames, stride: 1, size, mean: [...NORMALIZATIONS.kinetics.mean], std: [...NORMALIZATIONS.kinetics.std], shortSide: size };
    saveModelCheckpoint(checkpoint, model, { classes: Array.from({ length: 101 }, (_, i) => `class ${i}`), preprocessing });
    const onnxFile = join(work, 'model.onnx');
    const exported = await exportOnnx(checkpoint, onnxFile);
    const prepared = prepareForInference(model);
    const ort = await import('onnxruntime-node');
    const session = await ort.InferenceSession.create(onnxFile, {
      executionProviders: ['cpu'], intraOpNumThreads: threads, interOpNumThreads: 1, graphOptimizationLevel: 'all',
    });
    const load = () => loadavg().map((l) => l.toFixed(2)).join(' ');
    const header = `bench/onnx: stc_resnet3d_18, 101 classes, ${frames}×${size}×${size}, ${threads} threads each ` +
      `(ONNX Runtime ${ort.env.versions.common}, intra-op ${threads}); median of ${repeats} after a warm-up; load before: ${load()}`;
    if (!json) console.log(`${header}\nexport check: max |diff| ${exported.verified!.maxAbsDiff.toExponential(2)} at max |logit| ${exported.verified!.maxLogit.toPrecision(3)}`);

    const rows: Row[] = [];
    for (const batch of batches) {
      const shape = [batch, 3, frames, size, size];
      const clips = randomClips(shape, batch);
      const runStcnet = () => noGrad(() => tidy(() => { prepared.forward(fromTypedArray(clips, shape)).toFloat32Array(); }));
      const runOnnx = async () => {
        const input = new ort.Tensor('float32', clips, shape);
        const outputs = await session.run({ clips: input });
        input.dispose();
        for (const tensor of Object.values(outputs)) tensor.dispose();
      };
      await seconds(runStcnet);
      await seconds(runOnnx);
      const stcnetTimes: number[] = [];
      const onnxTimes: number[] = [];
      for (let i = 0; i < repeats; i++) {
        stcnetTimes.push(await seconds(runStcnet));
        onnxTimes.push(await seconds(runOnnx));
      }
      const stcnetSeconds = median(stcnetTimes);
      const onnxSeconds = median(onnxTimes);
      rows.push({
        batch, stcnetSeconds, onnxSeconds, stcnetClipsPerSecond: batch / stcnetSeconds, onnxClipsPerSecond: batch / onnxSeconds, ratio: stcnetSeconds / onnxSeconds,
      });
    }
    await session.release();
    prepared.dispose();
    model.dispose();

    if (json) {
      console.log(JSON.stringify({ model: 'stc_resnet3d_18', classes: 101, frames, size, threads, repeats, loadAfter: loadavg(), rows }));
      return;
    }
    const widths = [6, 14, 14, 16, 16, 10];
    console.log(formatRow(['batch', 'stcnet ms', 'ONNX RT ms', 'stcnet clips/s', 'ONNX RT clips/s', 'ORT/stcnet'], widths));
    for (const r of rows) {
      console.log(formatRow([String(r.batch), (1000 * r.stcnetSeconds).toFixed(0), (1000 * r.onnxSeconds).toFixed(0),
        r.stcnetClipsPerSecond.toFixed(2), r.onnxClipsPerSecond.toFixed(2), `${r.ratio.toFixed(2)}x`], widths));
    }
    console.log(`load after: ${load()}`);
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  if (error instanceof UserError) {
    console.error(error.message);
    process.exit(2);
  }
  throw error;
});
