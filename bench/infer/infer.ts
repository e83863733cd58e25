/**
 * bench/infer (issue 9): inference clips/s of one model through stcnet (eager float32, folded
 * float32, folded bf16) and through PyTorch (eager float32, eager bf16 autocast, frozen TorchScript
 * + optimize_for_inference float32) with the same weights, same threads, in one run. Median of N
 * timed forwards after two warm-ups; ratios against the best PyTorch path; a logits check that both
 * sides compute the same function; the CPU's bf16 features and the load average.
 *
 *   node dist/bench/infer/infer.js [--threads 2] [--repeats 5] [--batches 1,8] [--arch stc_resnet3d_18]
 *        [--frames 16] [--size 112] [--classes 101] [--rounds 1] [--json OUT.json] [--bf16]
 *
 * --rounds N runs stcnet's side and PyTorch's side N times, alternating, and keeps each path's best
 * round (on a shared machine other work only ever adds time, and it may fall on one side's turn).
 *
 * The bf16 paths run only on a CPU with AVX-512 BF16 or AMX (elsewhere libtorch emulates bf16, over
 * 10× slower than float32, and a full-size run would take hours); --bf16 runs them anyway.
 */
import { readFileSync, writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { randn, tidy, noGrad, setNumThreads, getNumThreads, manualSeed, keep, type Tensor } from '../../src/engine/index.js';
import { BatchNorm3d, init, writeSafetensors } from '../../src/nn/index.js';
import { createModel, isModelName, prepareForInference, type ZooModel } from '../../src/models/index.js';
import { UserError } from '../../src/util/errors.js';
import { writeJsonAtomic } from '../../src/util/fs.js';
import { formatRow, runTorchBenchmark } from '../common.js';

const STCNET_PATHS = ['stcnet_f32', 'stcnet_folded_f32', 'stcnet_folded_bf16'] as const;
const TORCH_PATHS = ['torch_f32', 'torch_bf16', 'torch_frozen_f32'] as const;
const LABELS: Record<string, string> = {
  stcnet_f32: 'stcnet eager float32',
  stcnet_folded_f32: 'stcnet prepareForInference float32',
  stcnet_folded_bf16: 'stcnet prepareForInference bf16',
  torch_f32: 'PyTorch eager float32',
  torch_bf16: 'PyTorch eager bf16 autocast',
  torch_frozen_f32: 'PyTorch frozen TorchScript + optimize_for_inference f32',
};

function flag(name: string): string | undefined {
  const index = process.argv.indexOf(`--${name}`);
  if (index < 0) return undefined;
  const value = process.argv[index + 1];
  if (value === undefined || value.startsWith('--')) throw new UserError(`--${name} needs a value`);
  return value;
}

function intFlag(name: string, fallback: number): number {
  const text = flag(name);
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isInteger(value) || value < 1) throw new UserError(`--${name} must be a positive integer, got "${text}"`);
  return value;
}

function options() {
  const known = new Set(['threads', 'repeats', 'batches', 'arch', 'frames', 'size', 'classes', 'json', 'bf16', 'rounds']);
  for (const arg of process.argv.slice(2)) {
    if (arg.startsWith('--') && !known.has(arg.slice(2))) throw new UserError(`unknown flag ${arg} (expected --${[...known].join(', --')})`);
  }
  const arch = flag('arch') ?? 'stc_resnet3d_18';
  if (!isModelName(arch) || !/^(stc_)?res(net|next)3d_/.test(arch)) throw new UserError(`--arch must be one of the contract models (stc_resnet3d_18, resnext3d_50, ...), got "${arch}"`);
  const batchesText = flag('batches') ?? '1,8';
  const batches = batchesText.split(',').map(Number);
  if (batches.some((b) => !Number.isInteger(b) || b < 1)) throw new UserError(`--batches must list positive integers, e.g. 1,8; got "${batchesText}"`);
  return {
    threads: intFlag('threads', Math.min(2, availableParallelism())), repeats: intFlag('repeats', 5), batches, arch,
    frames: intFlag('frames', 16), size: intFlag('size', 112), classes: intFlag('classes', 101), json: flag('json'),
    forceBf16: process.argv.includes('--bf16'), rounds: intFlag('rounds', 1),
  };
}

export function cpuFeatures(): { model: string; flags: string[] } {
  const text = readFileSync('/proc/cpuinfo', 'utf8');
  const model = /^model name\s*:\s*(.*)$/m.exec(text)?.[1] ?? 'unknown';
  const all = new Set((/^flags\s*:\s*(.*)$/m.exec(text)?.[1] ?? '').split(/\s+/));
  return { model, flags: ['avx2', 'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile'].filter((f) => all.has(f)) };
}

/** Seeded weights with non-trivial BatchNorm statistics (a trained model's are far from 0 and 1). */
function seededModel(arch: string, frames: number, classes: number): ZooModel {
  manualSeed(0);
  const model = createModel(arch as never, { numClasses: classes, frames } as never).eval();
  noGrad(() => {
    for (const [, m] of model.namedModules()) {
      if (!(m instanceof BatchNorm3d)) continue;
      init.normal_(m.runningMean!, 0, 0.1);
      init.uniform_(m.runningVar!, 0.5, 1.5);
      init.normal_(m.weight!, 1, 0.1);
      init.normal_(m.bias!, 0, 0.1);
    }
  });
  return model;
}

/**
 * Clips/s of each path at one batch size, the paths taking turns (one timed forward each per round),
 * so that a change in the machine's load during the run falls on every path alike.
 */
function medianRates(forwards: Record<string, (x: Tensor) => Tensor>, shape: number[], repeats: number): Record<string, number> {
  const x = keep(randn(shape));
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(forwards).map((k) => [k, []]));
  for (let round = -2; round < repeats; round++) {  // two warm-up rounds
    for (const [path, forward] of Object.entries(forwards)) {
      const start = process.hrtime.bigint();
      tidy(() => { forward(x).toFloat32Array(); });
      if (round >= 0) times[path]!.push(Number(process.hrtime.bigint() - start) / 1e9);
    }
  }
  x.dispose();
  return Object.fromEntries(Object.entries(times).map(([path, list]) => [path, shape[0]! / median(list)]));
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

function main(): void {
  const o = options();
  setNumThreads(o.threads);
  const cpu = cpuFeatures();
  const bf16 = o.forceBf16 || cpu.flags.includes('avx512_bf16') || cpu.flags.includes('amx_bf16');
  const stcnetPaths = STCNET_PATHS.filter((p) => bf16 || !p.endsWith('bf16'));
  const torchPaths = TORCH_PATHS.filter((p) => bf16 || !p.endsWith('bf16'));
  const loadBefore = loadavg();
  const model = seededModel(o.arch, o.frames, o.classes);
  const dir = mkdtempSync(join(tmpdir(), 'stcnet-bench-infer-'));
  try {
    const weights = join(dir, 'weights.safetensors');
    writeSafetensors(weights, model.stateDict());
    manualSeed(1);
    const checkShape = [1, 3, o.frames, o.size, o.size];
    const check = keep(randn(checkShape));
    writeFileSync(join(dir, 'check.f32'), check.toFloat32Array());

    const forwards: Record<string, (x: Tensor) => Tensor> = {
      stcnet_f32: (x) => noGrad(() => model.forward(x)),
      stcnet_folded_f32: (() => { const p = prepareForInference(model); return (x: Tensor) => p.forward(x); })(),
    };
    if (bf16) {
      const p = prepareForInference(model, { dtype: 'bfloat16' });
      forwards.stcnet_folded_bf16 = (x: Tensor) => p.forward(x);
    }
    const results: Record<string, Record<string, number>> = {};
    const logits: Record<string, number[]> = {};
    for (const path of stcnetPaths) logits[path] = Array.from(tidy(() => forwards[path]!(check).toFloat32Array()));
    const config = {
      arch: o.arch, options: { frames: o.frames, num_classes: o.classes }, weights, check_input: join(dir, 'check.f32'), check_shape: checkShape,
      threads: o.threads, repeats: o.repeats, batches: o.batches, frames: o.frames, size: o.size, paths: torchPaths,
    };
    writeFileSync(join(dir, 'config.json'), JSON.stringify(config));
    const keepBest = (path: string, batch: number, rate: number) => {
      const entry = results[path] ??= {};
      entry[String(batch)] = Math.max(entry[String(batch)] ?? 0, rate);
    };
    let torchVersion = '';
    for (let round = 1; round <= o.rounds; round++) {
      for (const b of o.batches) {
        const rates = medianRates(forwards, [b, 3, o.frames, o.size, o.size], o.repeats);
        for (const path of stcnetPaths) keepBest(path, b, rates[path]!);
        console.error(`round ${round}: stcnet batch ${b}`, rates, `load ${loadavg()[0]!.toFixed(2)}`);
      }
      const theirs = runTorchBenchmark<{ torch: string; results: Record<string, Record<string, number>>; logits: Record<string, number[]> }>(
        'bench/infer/torch_side.py', [join(dir, 'config.json')]);
      torchVersion = theirs.torch;
      for (const [path, rates] of Object.entries(theirs.results)) for (const b of o.batches) keepBest(path, b, rates[String(b)]!);
      Object.assign(logits, theirs.logits);
      console.error(`round ${round}: PyTorch`, theirs.results, `load ${loadavg()[0]!.toFixed(2)}`);
    }
    const loadAfter = loadavg();

    // Same function on both sides: every path's logits against PyTorch eager float32, relative to its max logit.
    const reference = logits.torch_f32!;
    const scale = Math.max(...reference.map(Math.abs));
    const deviation = Object.fromEntries(Object.entries(logits).map(([path, values]) =>
      [path, Math.max(...values.map((v, i) => Math.abs(v - reference[i]!))) / scale]));

    const date = new Date().toISOString().replace('T', ' ').slice(0, 16);
    console.log(`bench/infer: ${o.arch}, ${o.classes} classes, ${o.frames}×${o.size}×${o.size}, ${getNumThreads()} threads, median of ${o.repeats}${o.rounds > 1 ? `, best of ${o.rounds} alternating rounds` : ''}, ${date} UTC`);
    console.log(`CPU: ${cpu.model}, ${availableParallelism()} cores, flags: ${cpu.flags.join(' ') || 'none of avx2/avx512/amx'}; PyTorch ${torchVersion}`);
    if (!bf16) console.log('bf16 paths skipped: this CPU has neither AVX-512 BF16 nor AMX, so libtorch emulates bf16 (over 10× slower than float32); --bf16 runs them anyway');
    console.log(`load average (1/5/15 min): before ${loadBefore.map((l) => l.toFixed(2)).join(' ')}, after ${loadAfter.map((l) => l.toFixed(2)).join(' ')}`);
    const widths = [56, ...o.batches.flatMap(() => [10, 8]), 12];
    console.log(formatRow(['path (clips/s; ratio = ÷ best PyTorch path)', ...o.batches.flatMap((b) => [`batch ${b}`, 'ratio']), 'logits dev'], widths));
    const best = Object.fromEntries(o.batches.map((b) => [b, Math.max(...torchPaths.map((p) => results[p]?.[String(b)] ?? 0))]));
    for (const path of [...TORCH_PATHS, ...STCNET_PATHS]) {
      if (!results[path]) continue;
      const cells = o.batches.flatMap((b) => [results[path]![String(b)]!.toFixed(2), (results[path]![String(b)]! / best[b]!).toFixed(2)]);
      console.log(formatRow([LABELS[path]!, ...cells, deviation[path]!.toExponential(1)], widths));
    }
    if (o.json) writeJsonAtomic(o.json, { date, ...o, cpu, loadBefore, loadAfter, torch: torchVersion, results, deviation });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

try {
  main();
} catch (error) {
  if (error instanceof UserError) {
    console.error(error.message);
    process.exit(2);
  }
  throw error;
}
