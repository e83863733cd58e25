/**
 * Where a training step's time goes, operator by operator, in stcnet and in PyTorch: the same model
 * (stcnet's and the reference one, each seeded), the same batch shape and precision, each side profiled by
 * libtorch's operator profiler (stcnet's `profile`, PyTorch's torch.autograd.profiler) over --steps steps
 * after --warmup ones, one side after the other. Prints each side's largest operators by self time per step.
 *
 *   npm run build && node dist/bench/train/profile.js [--arch stc_resnext3d_101] [--frames 8] [--batch 4]
 *                                                     [--amp bf16|none] [--steps 2] [--warmup 3] [--threads 2] [--top 25]
 */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { F, fromTypedArray, manualSeed, operatorTimes, profile, randn, setNumThreads, tidy, type OperatorTime } from '../../src/engine/index.js';
import { SGD } from '../../src/optim/index.js';
import { withAutocast } from '../../src/train/autocast.js';
import { seededBenchModel } from '../../src/bench/seeded_model.js';
import { formatRow, repoRoot } from '../common.js';

const { values } = parseArgs({
  options: {
    arch: { type: 'string', default: 'stc_resnext3d_101' }, frames: { type: 'string', default: '8' }, batch: { type: 'string', default: '4' },
    amp: { type: 'string', default: 'bf16' }, steps: { type: 'string', default: '2' }, warmup: { type: 'string', default: '3' },
    threads: { type: 'string', default: '2' }, top: { type: 'string', default: '25' },
  },
});
const count = (name: keyof typeof values): number => {
  const value = Number(values[name]);
  if (!(Number.isInteger(value) && value >= 1)) throw new Error(`--${name} must be a positive integer, got ${values[name]}`);
  return value;
};
const [frames, batch, steps, warmup, threads, top] = (['frames', 'batch', 'steps', 'warmup', 'threads', 'top'] as const).map(count) as number[];
const amp = values.amp === 'bf16' ? 'bf16' : values.amp === 'none' ? 'none' : (() => { throw new Error(`--amp must be bf16 or none, got ${values.amp}`); })();
const arch = values.arch!;
setNumThreads(threads!);
const dir = mkdtempSync(path.join(tmpdir(), 'stcnet-profile-'));

function stcnetTrace(file: string): number[] {
  const model = seededBenchModel(arch, frames!, 101).train();
  const optimizer = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 1e-3 });
  manualSeed(0);
  const clips = randn([batch!, 3, frames!, 112, 112]);
  const labels = fromTypedArray(BigInt64Array.from({ length: batch! }, (_, i) => BigInt(i % 101)), [batch!]);
  const step = (): void => tidy(() => {
    optimizer.zeroGrad();
    const logits = withAutocast(amp, 'cpu', () => model.forward(clips)).float();
    F.crossEntropy(logits, labels).backward();
    optimizer.step();
  });
  const seconds: number[] = [];
  for (let i = 0; i < warmup!; i++) {
    const start = performance.now();
    step();
    seconds.push((performance.now() - start) / 1000);
  }
  profile(file, () => { for (let i = 0; i < steps!; i++) step(); });
  return seconds;
}

function torchTrace(file: string): number[] {
  const out = execFileSync('/usr/bin/python3', [path.join(repoRoot, 'bench/train/torch_profile.py'), '--arch', arch, '--frames', String(frames),
    '--batch', String(batch), '--amp', amp, '--threads', String(threads), '--warmup', String(warmup), '--steps', String(steps), '--trace', file],
  { encoding: 'utf8', maxBuffer: 16 << 20 });
  return (JSON.parse(out.trim().split('\n').pop()!) as { stepSeconds: number[] }).stepSeconds;
}

try {
  const sides: [string, number[], OperatorTime[]][] = [];
  for (const [side, trace] of [['stcnet', stcnetTrace], ['PyTorch', torchTrace]] as const) {
    const file = path.join(dir, `${side}.json`);
    const seconds = trace(file);
    sides.push([side, seconds, operatorTimes(file)]);
  }
  console.log(`bench/train/profile: ${arch}, ${frames}×112², batch ${batch}, ${amp === 'bf16' ? 'bf16 autocast' : 'float32'}, ${threads} threads; ` +
    `self time per step over ${steps} profiled steps`);
  for (const [side, seconds, times] of sides) {
    const total = times.reduce((sum, op) => sum + op.selfMs, 0) / steps!;
    console.log(`\n${side}: warm-up steps ${seconds.map((s) => s.toFixed(2)).join(' ')} s; operators ${total.toFixed(0)} ms per profiled step`);
    const widths = [44, 10, 10];
    console.log(formatRow(['operator', 'ms/step', 'calls/step'], widths));
    for (const op of times.slice(0, top)) console.log(formatRow([op.name.slice(0, 44), (op.selfMs / steps!).toFixed(1), String(op.calls / steps!)], widths));
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
