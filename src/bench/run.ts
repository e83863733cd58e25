/**
 * `stcnet bench`: the same work through stcnet and through every path a PyTorch user could pick
 * (eager float32, bf16 autocast, frozen TorchScript, ONNX Runtime on PyTorch's export), same
 * weights, inputs and threads. Each path runs in a process of its own, so its peak RSS is its own;
 * the paths take turns, and with several rounds each keeps its best (on a shared machine other work
 * only ever adds time).
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from '../util/errors.js';
import { cpuFlags } from '../engine/runtime.js';
import { packageRoot } from '../util/addon.js';
import { seededNormal } from './timing.js';
import { isBf16Path, PATHS, type BenchDevice, type BenchPlan, type BenchTask, type PathResult } from './plan.js';

export type Peer = 'torch' | 'ort';

export interface BenchOptions extends Pick<BenchPlan, 'arch' | 'frames' | 'size' | 'classes' | 'threads' | 'device' | 'repeats' | 'warmup' | 'inferBatches' | 'trainBatch'> {
  rounds: number;
  tasks: BenchTask[];
  /** bf16 paths run when the hardware has native bf16 (AVX-512 BF16, AMX, or a GPU), or always with `bf16: true`. */
  bf16: boolean;
  peers: Peer[];
  python: string;
  /** One line per finished path (progress). */
  onPath?: (done: number, total: number, result: PathResult) => void;
}

export interface TaskReport {
  task: BenchTask;
  batches: number[];
  results: Record<string, PathResult>;
  /** Largest |logit| difference from PyTorch eager float32, relative to its largest |logit| (inference). */
  logitDeviation: Record<string, number>;
  /** First-step loss difference from PyTorch float32, relative (training). */
  lossDeviation: Record<string, number>;
  /** stcnet's best path ÷ the best peer path, per batch size. */
  bestRatio: Record<string, { stcnet: string; peer: string; ratio: number }>;
}

export interface BenchReport extends Pick<BenchOptions, 'arch' | 'frames' | 'size' | 'classes' | 'threads' | 'device' | 'repeats' | 'rounds'> {
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

function runPath(plan: string, benchPath: string, python: string): Promise<PathResult> {
  const side = benchPath.split('_')[0];
  const run = side === 'torch'
    ? runChild(python, [torchScript(), plan, benchPath], benchPath)
    : runChild(process.execPath, [path.join(here, side === 'ort' ? 'ort_side.js' : 'stcnet_side.js'), plan, benchPath], benchPath);
  return run.then((line) => JSON.parse(line) as PathResult);
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
  for (const batch of batches) {
    const best = (side: (name: string) => boolean) => Object.entries(results).filter(([name]) => side(name))
      .reduce<[string, number]>((top, [name, r]) => (r.rates[batch]! > top[1] ? [name, r.rates[batch]!] : top), ['', 0]);
    const [stcnet, ours] = best((name) => name.startsWith('stcnet_'));
    const [peer, theirs] = best((name) => !name.startsWith('stcnet_'));
    if (peer) bestRatio[batch] = { stcnet, peer, ratio: ours / theirs };
  }
  return { task, batches, results, logitDeviation, lossDeviation, bestRatio };
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
    const paths = Object.fromEntries(options.tasks.map((task) => [task, planPaths(options, task)])) as Record<BenchTask, string[]>;
    const total = options.rounds * Object.values(paths).reduce((sum, list) => sum + list.length, 0);
    const best: Record<BenchTask, Record<string, PathResult>> = { infer: {}, train: {} };
    let done = 0;
    for (let round = 0; round < options.rounds; round++) {
      for (const task of options.tasks) {
        for (const benchPath of paths[task]) {
          const result = await runPath(planFile, benchPath, options.python);
          options.onPath?.(++done, total, result);
          const kept = best[task][benchPath];
          if (!kept) best[task][benchPath] = result;
          else {
            for (const [batch, rate] of Object.entries(result.rates)) kept.rates[batch] = Math.max(kept.rates[batch]!, rate);
            kept.peakRssMiB = Math.max(kept.peakRssMiB, result.peakRssMiB);
          }
        }
      }
    }
    return {
      date: new Date().toISOString().replace('T', ' ').slice(0, 16), arch: options.arch, frames: options.frames, size: options.size,
      classes: options.classes, threads: options.threads, device: options.device, repeats: options.repeats, rounds: options.rounds,
      cpu: cpuFeatures(), torchVersion, loadBefore, loadAfter: loadavg(),
      tasks: options.tasks.map((task) => summarise(task, task === 'infer' ? options.inferBatches : [options.trainBatch], best[task])),
    };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
