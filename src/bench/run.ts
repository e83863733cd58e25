/**
 * `stcnet bench`: the same work through stcnet and through every path a PyTorch user could pick
 * (eager float32, bf16 autocast, frozen TorchScript, ONNX Runtime on PyTorch's export), same
 * weights, inputs and threads. Each path runs in a process of its own, so its peak RSS is its own.
 * All paths of a task stay loaded and take turns (an untimed and a timed iteration each), round
 * after round: the ratio of stcnet's best to the best peer is taken within each round, so a drift of
 * the machine's speed (whole minutes 1.5× slower on a shared VM) falls on both sides of it.
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../util/errors.js';
import { cpuFlags } from '../engine/runtime.js';
import { packageRoot } from '../util/addon.js';
import { median, seededNormal } from './timing.js';
import { startSide, type SideProcess } from './side_process.js';
import { isBf16Path, PATHS, type BenchDevice, type BenchPlan, type BenchTask, type PathResult } from './plan.js';

export type Peer = 'torch' | 'ort';

export interface BenchOptions extends Pick<BenchPlan, 'arch' | 'frames' | 'size' | 'classes' | 'threads' | 'device' | 'repeats' | 'warmup' | 'inferBatches' | 'trainBatch'> {
  tasks: BenchTask[];
  /** bf16 paths run when the hardware has native bf16 (AVX-512 BF16, AMX, or a GPU), or always with `bf16: true`. */
  bf16: boolean;
  peers: Peer[];
  python: string;
  /** Progress: one line per path loaded and per round timed. */
  onProgress?: (line: string) => void;
}

export interface TaskReport {
  task: BenchTask;
  batches: number[];
  results: Record<string, PathResult>;
  /** Largest |logit| difference from PyTorch eager float32, relative to its largest |logit| (inference). */
  logitDeviation: Record<string, number>;
  /** First-step loss difference from PyTorch float32, relative (training). */
  lossDeviation: Record<string, number>;
  /**
   * Per batch size: stcnet's best path ÷ the best peer path (by their median rates), and the ratio of
   * the best of each side within each round: its median (`ratio`) and range.
   */
  bestRatio: Record<string, { stcnet: string; peer: string; ratio: number; low: number; high: number }>;
}

export interface BenchReport extends Pick<BenchOptions, 'arch' | 'frames' | 'size' | 'classes' | 'threads' | 'device' | 'repeats'> {
  date: string;
  cpu: { model: string; flags: string[] };
  torchVersion: string | null;
  loadBefore: number[];
  loadAfter: number[];
  tasks: TaskReport[];
}

/** The CPU's model name and the flags that decide the kernels a benchmark measures. */
export function cpuFeatures(): { model: string; flags: string[] } {
  const all = cpuFlags() ?? new Set<string>();
  return { model: cpus()[0]?.model ?? 'unknown', flags: ['avx2', 'avx512f', 'avx512_bf16', 'amx_bf16', 'amx_tile'].filter((flag) => all.has(flag)) };
}

export function hasNativeBf16(device: BenchDevice): boolean {
  if (device === 'cuda') return true;
  const flags = cpuFlags();
  return flags !== null && (flags.has('avx512_bf16') || flags.has('amx_bf16'));
}

const here = path.dirname(fileURLToPath(import.meta.url));

function runChild(command: string, args: string[], what: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, env: { ...process.env, STCNET_QUIET: '1' } },
      (error, stdout, stderr) => {
        if (error) {
          const detail = (stderr || error.message).trim().split('\n').slice(-3).join(' | ');
          reject(new UserError(`bench: ${what} failed: ${detail}`));
          return;
        }
        resolve(stdout.trim().split('\n').pop() ?? '');
      });
  });
}

function torchScript(): string {
  return path.join(packageRoot(), 'scripts', 'bench', 'torch_side.py');
}

function sideCommand(plan: string, benchPath: string, python: string): [string, string[]] {
  const side = benchPath.split('_')[0];
  if (side === 'torch') return [python, [torchScript(), plan, benchPath]];
  return [process.execPath, [path.join(here, side === 'ort' ? 'ort_side.js' : 'stcnet_side.js'), plan, benchPath]];
}

/** Checks, before any work, that the peers asked for can run here. */
export async function checkPeers(options: Pick<BenchOptions, 'peers' | 'python' | 'device'>): Promise<string | null> {
  let torchVersion: string | null = null;
  if (options.peers.includes('torch') || options.peers.includes('ort')) {
    try {
      torchVersion = await runChild(options.python, ['-c', 'import torch; print(torch.__version__)'], `${options.python} -c "import torch"`);
    } catch {
      throw new UserError(`bench: the PyTorch peers need ${options.python} with torch (Debian: apt install python3-torch; or set --python); --peers none skips them`);
    }
  }
  if (options.peers.includes('ort')) {
    if (options.device !== 'cpu') throw new UserError('bench: --peers ort runs on the CPU only; with --device cuda use --peers torch');
    try {
      await import('onnxruntime-node');
    } catch (error) {
      throw new UserError(`bench: --peers ort needs the npm package onnxruntime-node (${(error as Error).message.split('\n')[0]})`);
    }
  }
  return torchVersion;
}

function planPaths(options: BenchOptions, task: BenchTask): string[] {
  const sides = PATHS[task];
  const lists = [sides.stcnet as readonly string[], ...options.peers.map((peer) => sides[peer] as readonly string[])];
  // Interleaved (stcnet, PyTorch, ONNX Runtime, stcnet, ...): a change in the machine's load falls on every side alike.
  const longest = Math.max(...lists.map((list) => list.length));
  const order: string[] = [];
  for (let i = 0; i < longest; i++) for (const list of lists) if (list[i]) order.push(list[i]!);
  return order.filter((p) => options.bf16 || !isBf16Path(p));
}

function relativeDeviation(values: number[], reference: number[]): number {
  const scale = Math.max(...reference.map(Math.abs), 1e-12);
  return Math.max(...values.map((v, i) => Math.abs(v - reference[i]!))) / scale;
}

const isOurs = (name: string) => name.startsWith('stcnet_');

/**
 * stcnet's fastest path ÷ the fastest peer path within one round (not necessarily the paths fastest
 * overall), from each path's seconds by batch size and round.
 */
function roundRatio(seconds: Record<string, Record<string, number[]>>, batch: number, round: number): number {
  const fastest = (ours: boolean) => Math.min(...Object.entries(seconds).filter(([name]) => isOurs(name) === ours).map(([, s]) => s[batch]![round]!));
  return fastest(false) / fastest(true);
}

function summarise(task: BenchTask, batches: number[], results: Record<string, PathResult>): TaskReport {
  const referencePath = task === 'infer' ? 'torch_eager_f32' : 'torch_train_f32';
  const reference = results[referencePath];
  const logitDeviation: Record<string, number> = {};
  const lossDeviation: Record<string, number> = {};
  for (const [name, result] of Object.entries(results)) {
    if (result.logits && reference?.logits) logitDeviation[name] = relativeDeviation(result.logits, reference.logits);
    if (result.firstLoss !== undefined && reference?.firstLoss !== undefined) {
      lossDeviation[name] = Math.abs(result.firstLoss - reference.firstLoss) / Math.abs(reference.firstLoss);
    }
  }
  const bestRatio: TaskReport['bestRatio'] = {};
  const seconds = Object.fromEntries(Object.entries(results).map(([name, r]) => [name, r.roundSeconds]));
  for (const batch of batches) {
    const best = (side: boolean) => Object.entries(results).filter(([name]) => isOurs(name) === side)
      .reduce<[string, number]>((top, [name, r]) => (r.rates[batch]! > top[1] ? [name, r.rates[batch]!] : top), ['', 0]);
    const [stcnet] = best(true);
    const [peer] = best(false);
    if (!peer) continue;
    const ratios = results[stcnet]!.roundSeconds[batch]!.map((_, round) => roundRatio(seconds, batch, round));
    bestRatio[batch] = { stcnet, peer, ratio: median(ratios), low: Math.min(...ratios), high: Math.max(...ratios) };
  }
  return { task, batches, results, logitDeviation, lossDeviation, bestRatio };
}

/**
 * Every path of `task` loaded at once (one process each), then `repeats` rounds in which each path
 * runs one untimed and one timed iteration per batch size, in an order that turns every round.
 */
async function measureTask(task: BenchTask, batches: number[], names: string[], planFile: string, options: BenchOptions): Promise<Record<string, PathResult>> {
  const sides: SideProcess[] = [];
  const say = (line: string) => options.onProgress?.(`bench ${options.arch} ${task}: ${line}`);
  try {
    for (const name of names) {
      const [command, args] = sideCommand(planFile, name, options.python);
      sides.push(await startSide(name, command, args));
      say(`[${sides.length}/${names.length}] ${name} loaded, checked and warmed up`);
    }
    const seconds = Object.fromEntries(sides.map((side) => [side.path, Object.fromEntries(batches.map((batch) => [batch, [] as number[]]))]));
    for (let round = 0; round < options.repeats; round++) {
      const order = [...sides.slice(round % sides.length), ...sides.slice(0, round % sides.length)];
      if (round % 2 === 1) order.reverse();
      for (const batch of batches) {
        // A path that sat idle while the others ran is slower for an iteration or two (measured: a bf16
        // forward of stc_resnet3d_50 at batch 1, 30 ms against 18 back to back), and the previous path's
        // OpenMP threads spin on after its last loop: each turn is one untimed iteration, then the timed one.
        for (const side of order) seconds[side.path]![batch]!.push(await side.time(batch, 1));
      }
      say(`round ${round + 1}/${options.repeats}` + (names.some((name) => !isOurs(name))
        ? `: stcnet's best ÷ the best peer ${batches.map((batch) => `${roundRatio(seconds, batch, round).toFixed(2)}× at batch ${batch}`).join(', ')}` : ''));
    }
    const results: Record<string, PathResult> = {};
    for (const side of sides) {
      const roundSeconds = seconds[side.path]!;
      results[side.path] = {
        path: side.path, ...side.check, roundSeconds, peakRssMiB: await side.end(),
        rates: Object.fromEntries(batches.map((batch) => [batch, batch / median(roundSeconds[batch]!)])),
      };
    }
    return results;
  } finally {
    for (const side of sides) side.kill();
  }
}

export async function runBench(options: BenchOptions, torchVersion: string | null): Promise<BenchReport> {
  const dir = mkdtempSync(path.join(tmpdir(), 'stcnet-bench-'));
  try {
    const plan: BenchPlan = {
      arch: options.arch, frames: options.frames, size: options.size, classes: options.classes, threads: options.threads,
      device: options.device, repeats: options.repeats, warmup: options.warmup, inferBatches: options.inferBatches,
      trainBatch: options.trainBatch, weights: path.join(dir, 'weights.safetensors'), checkInput: path.join(dir, 'check.f32'),
      trainInput: path.join(dir, 'train.f32'), trainLabels: path.join(dir, 'labels.json'), onnx: path.join(dir, 'model.onnx'),
    };
    const perClip = 3 * options.frames * options.size * options.size;
    const { writeSafetensors } = await import('../nn/index.js');
    const { seededBenchModel } = await import('./seeded_model.js');
    writeSafetensors(plan.weights, seededBenchModel(options.arch, options.frames, options.classes).stateDict());
    writeFileSync(plan.checkInput, seededNormal(perClip, 7));
    writeFileSync(plan.trainInput, seededNormal(perClip * options.trainBatch, 11));
    writeFileSync(plan.trainLabels, JSON.stringify(Array.from({ length: options.trainBatch }, (_, i) => (i * 7) % options.classes)));
    const planFile = path.join(dir, 'plan.json');
    writeFileSync(planFile, JSON.stringify(plan));

    const loadBefore = loadavg();
    if (options.peers.includes('ort') && options.tasks.includes('infer')) {
      await runChild(options.python, [torchScript(), planFile, 'export'], 'torch.onnx.export of the model');
    }
    const reports: TaskReport[] = [];
    for (const task of options.tasks) {
      const batches = task === 'infer' ? options.inferBatches : [options.trainBatch];
      reports.push(summarise(task, batches, await measureTask(task, batches, planPaths(options, task), planFile, options)));
    }
    return {
      date: new Date().toISOString().replace('T', ' ').slice(0, 16), arch: options.arch, frames: options.frames, size: options.size,
      classes: options.classes, threads: options.threads, device: options.device, repeats: options.repeats,
      cpu: cpuFeatures(), torchVersion, loadBefore, loadAfter: loadavg(), tasks: reports,
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
