import os from 'node:os';
import path from 'node:path';
import { defineCommand } from './args.js';
import { UserError } from '../util/errors.js';

/**
 * `stcnet bench`: stcnet against every PyTorch path a user could pick, on this machine, in one run
 * (issue 9's contract). The heavy parts load only inside `run`.
 */
const flags = {
  model: { type: 'string', description: 'models to measure, comma-separated (contract models: stc_resnet3d_18, stc_resnet3d_50, stc_resnext3d_101, resnet3d_18, ...)', default: 'stc_resnet3d_18' },
  frames: { type: 'int', description: 'clip length', default: 16, min: 1 },
  size: { type: 'int', description: 'crop size (height = width)', default: 112, min: 16 },
  classes: { type: 'int', description: 'classifier outputs', default: 101, min: 2 },
  tasks: { type: 'string', description: 'what to measure: infer, train or infer,train', default: 'infer,train' },
  batches: { type: 'string', description: 'inference batch sizes, comma-separated', default: '1,8' },
  'train-batch': { type: 'int', description: 'training batch size', default: 8, min: 1 },
  threads: { type: 'int', description: 'intra-op threads on every side', default: os.availableParallelism(), min: 1 },
  repeats: { type: 'int', description: 'rounds: in each, every path runs one untimed and one timed iteration per batch size, taking turns (medians are reported)', default: 5, min: 1 },
  warmup: { type: 'int', description: 'untimed iterations per path and batch size before the rounds', default: 2, min: 0 },
  peers: { type: 'string', description: 'peer paths: torch (eager f32, bf16 autocast, frozen TorchScript), ort (ONNX Runtime), none', default: 'torch,ort' },
  bf16: { type: 'string', description: 'bf16 paths: auto (only where the CPU has AVX-512 BF16 or AMX, or on a GPU), on, off', default: 'auto', choices: ['auto', 'on', 'off'] },
  device: { type: 'string', description: 'where the models run (cuda needs a CUDA libtorch and a CUDA PyTorch)', default: 'cpu', choices: ['cpu', 'cuda'] },
  python: { type: 'string', description: 'Python with PyTorch for the peers', default: process.env.STCNET_TORCH_PYTHON ?? '/usr/bin/python3' },
  quick: { type: 'boolean', description: 'one model, inference at batch 1 and a training step at batch 4, 3 repeats: the ratios in about 2 minutes', default: false },
  json: { type: 'string', description: 'also write the full report (every figure) to this JSON file' },
  quiet: { type: 'boolean', description: 'no progress lines', default: false },
} as const;

const CONTRACT_MODEL = /^(stc_)?(resnet3d_(10|18|34|50|101|152|200)|resnext3d_(50|101|152))$/;

function positiveList(flag: string, text: string): number[] {
  const values = text.split(',').map((part) => Number(part.trim()));
  if (!values.length || values.some((v) => !Number.isInteger(v) || v < 1)) throw new UserError(`--${flag} must list positive integers, e.g. 1,8; got "${text}"`);
  return values;
}

function choiceList<T extends string>(flag: string, text: string, allowed: readonly T[]): T[] {
  const values = text.split(',').map((part) => part.trim()).filter(Boolean);
  for (const value of values) if (!allowed.includes(value as T)) throw new UserError(`--${flag}: "${value}" is not one of ${allowed.join(', ')}`);
  return values as T[];
}

export const command = defineCommand({
  name: 'bench',
  summary: 'measure training and inference speed against PyTorch (eager, bf16, frozen TorchScript) and ONNX Runtime on this machine',
  usage: 'stcnet bench [--model M[,M...]] [--quick] [--tasks infer,train] [--batches 1,8] [--threads N] [--json OUT]',
  flags,
  examples: [
    'stcnet bench --quick',
    'stcnet bench --model stc_resnet3d_18,stc_resnet3d_50 --repeats 10 --json bench.json',
    'stcnet bench --model stc_resnext3d_101 --frames 8 --train-batch 4 --peers torch',
  ],
  async run({ flags: f }) {
    const models = f.model.split(',').map((m) => m.trim()).filter(Boolean);
    for (const model of models) {
      if (!CONTRACT_MODEL.test(model)) throw new UserError(`--model: "${model}" is not a model the PyTorch reference builds (resnet3d_N, resnext3d_N, with or without stc_)`);
    }
    if (f.quick && models.length > 1) throw new UserError('--quick measures one model; give one --model');
    const tasks = choiceList('tasks', f.tasks, ['infer', 'train'] as const);
    if (!tasks.length) throw new UserError('--tasks must name infer, train or both');
    const peersText = f.peers.trim() === 'none' ? '' : f.peers;
    const peers = choiceList('peers', peersText, ['torch', 'ort'] as const);
    const inferBatches = f.quick ? [1] : positiveList('batches', f.batches);
    const { runBench, checkPeers, hasNativeBf16 } = await import('../bench/run.js');
    const { formatBenchReport } = await import('../bench/format.js');
    const { writeJsonAtomic, checkFolderCreatable } = await import('../util/fs.js');
    if (f.json) checkFolderCreatable(path.dirname(path.resolve(f.json)), '--json');
    if (f.device === 'cuda') {
      const { cudaAvailable } = await import('../engine/index.js');
      if (!cudaAvailable()) throw new UserError('--device cuda: this libtorch has no CUDA device (build with LIBTORCH pointing at a CUDA libtorch)');
    }
    const torchVersion = await checkPeers({ peers, python: f.python, device: f.device as 'cpu' | 'cuda' });
    const bf16 = f.bf16 === 'on' || (f.bf16 === 'auto' && hasNativeBf16(f.device as 'cpu' | 'cuda'));
    if (f.bf16 === 'auto' && !bf16 && !f.quiet) {
      process.stderr.write('bench: bf16 paths skipped: this CPU has neither AVX-512 BF16 nor AMX, so bf16 runs emulated (over 10× slower); --bf16 on runs them anyway\n');
    }
    const reports = [];
    for (const arch of models) {
      const report = await runBench({
        arch, frames: f.frames, size: f.size, classes: f.classes, threads: f.threads, device: f.device as 'cpu' | 'cuda',
        repeats: f.quick ? 3 : f.repeats, warmup: f.quick ? 1 : f.warmup, tasks, inferBatches,
        trainBatch: f.quick ? 4 : f['train-batch'], bf16, peers, python: f.python,
        ...(f.quiet ? {} : { onProgress: (line: string) => process.stderr.write(line + '\n') }),
      }, torchVersion);
      process.stdout.write(formatBenchReport(report) + (models.length > 1 ? '\n' : ''));
      reports.push(report);
    }
    if (f.json) writeJsonAtomic(f.json, reports.length === 1 ? reports[0] : reports);
  },
});
