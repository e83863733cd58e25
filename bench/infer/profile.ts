/**
 * bench/infer/profile: where an inference forward spends its time, per kind of stage (exclusive
 * times: a stage's own work, its children's excluded), for the eager model and the prepared one.
 * Sums over N forwards after a warm-up; the same seeded model as bench/infer.
 *
 *   node dist/bench/infer/profile.js [--arch stc_resnet3d_18] [--threads 2] [--repeats 3] [--batch 1] [--frames 16] [--size 112]
 */
import { availableParallelism, loadavg } from 'node:os';
import { F, randn, tidy, noGrad, setNumThreads, manualSeed, keep, type Tensor } from '../../src/engine/index.js';
import { Conv3d, BatchNorm3d, MaxPool3d, AdaptiveAvgPool3d, Linear, type Module } from '../../src/nn/index.js';
import { createModel, prepareForInference, StcBlock, BasicBlock, Bottleneck, type ModelName } from '../../src/models/index.js';
import { FoldedConv, FrozenStc, PassThrough, FrozenBlock } from '../../src/models/inference.js';
import { UserError } from '../../src/util/errors.js';

function intFlag(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  if (index < 0) return fallback;
  const value = Number(process.argv[index + 1]);
  if (!Number.isInteger(value) || value < 1) throw new UserError(`--${name} must be a positive integer, got "${process.argv[index + 1]}"`);
  return value;
}

const totals = new Map<string, number>();
const stack: { childTime: number }[] = [];

/** Wraps prototype[method] so that each call adds its exclusive time to the category `label(this)`. */
function instrument(prototype: object, method: string, label: (self: never) => string): void {
  const target = prototype as Record<string, (...args: unknown[]) => unknown>;
  const original = target[method]!;
  target[method] = function (this: never, ...args: unknown[]) {
    const frame = { childTime: 0 };
    stack.push(frame);
    const start = process.hrtime.bigint();
    try {
      return original.apply(this, args);
    } finally {
      const elapsed = Number(process.hrtime.bigint() - start) / 1e6;
      stack.pop();
      const parent = stack[stack.length - 1];
      if (parent) parent.childTime += elapsed;
      const key = label(this);
      totals.set(key, (totals.get(key) ?? 0) + elapsed - frame.childTime);
    }
  };
}

function kernelText(weight: Tensor): string {
  return weight.shape.slice(2).join('×');
}

function report(title: string, run: () => void, repeats: number): void {
  run();
  totals.clear();
  const start = process.hrtime.bigint();
  for (let i = 0; i < repeats; i++) run();
  const total = Number(process.hrtime.bigint() - start) / 1e6;
  const accounted = [...totals.values()].reduce((a, b) => a + b, 0);
  totals.set('rest (pooling to N×C, fc, input check, scopes)', total - accounted);
  console.log(`\n${title}: ${(total / repeats).toFixed(1)} ms per forward`);
  for (const [key, ms] of [...totals].sort((a, b) => b[1] - a[1])) {
    console.log(`  ${key.padEnd(52)} ${(ms / repeats).toFixed(1).padStart(9)} ms  ${(100 * ms / total).toFixed(1).padStart(5)}%`);
  }
}

function main(): void {
  const threads = intFlag('threads', Math.min(2, availableParallelism()));
  const repeats = intFlag('repeats', 3);
  const batch = intFlag('batch', 1);
  const frames = intFlag('frames', 16);
  const size = intFlag('size', 112);
  const archIndex = process.argv.indexOf('--arch');
  const arch = (archIndex >= 0 ? process.argv[archIndex + 1] : 'stc_resnet3d_18') as ModelName;
  setNumThreads(threads);
  manualSeed(0);
  const model = createModel(arch, { numClasses: 101, frames } as never).eval();
  const prepared = prepareForInference(model);
  const direct = prepareForInference(model, { winograd: false });
  const unfused = prepareForInference(model, { fusion: false });
  const dense = prepareForInference(model, { layout: 'dense' });
  const bf16 = prepareForInference(model, { dtype: 'bfloat16' });
  const x = keep(randn([batch, 3, frames, size, size]));

  instrument(Conv3d.prototype, 'forward', (c: Conv3d) => `conv ${kernelText(c.weight)}`);
  instrument(BatchNorm3d.prototype, 'forward', () => 'BatchNorm');
  instrument(StcBlock.prototype, 'forward', () => 'STC (gate and multiply)');
  instrument(MaxPool3d.prototype, 'forward', () => 'max pool');
  instrument(AdaptiveAvgPool3d.prototype, 'forward', () => 'average pool');
  instrument(Linear.prototype, 'forward', () => 'linear (fc)');
  instrument(BasicBlock.prototype, 'forward', () => 'block: residual add, ReLUs');
  instrument(Bottleneck.prototype, 'forward', () => 'block: residual add, ReLUs');
  instrument(FoldedConv.prototype, 'forward', (c: FoldedConv) => `conv ${kernelText(c.weight)} (BN folded, +ReLU)`);
  instrument(FrozenStc.prototype, 'gate', () => 'STC gate (pool, FCs)');
  instrument(FrozenBlock.prototype, 'mergeInto', () => 'merge: ReLU(identity + residual·gate)');
  instrument(FrozenBlock.prototype, 'mergeGated', () => 'STC gate and merge on the blocked layout (mkldnnStcMerge)');
  instrument(FoldedConv.prototype, 'forwardAddRelu', (c: FoldedConv) => `conv ${kernelText(c.weight)} (BN folded, +sum+ReLU)`);
  instrument(FrozenBlock.prototype, 'forward', () => 'block: bookkeeping (blocked layout: merge, layout conversions)');
  instrument(PassThrough.prototype, 'forward', (p: PassThrough) => `${(p as unknown as { module: Module }).module.constructor.name}`);

  console.log(`bench/infer/profile: ${arch}, batch ${batch}, ${frames}×${size}×${size}, ${threads} threads, sum of ${repeats} forwards; load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  report('eager float32 (model.forward under noGrad)', () => tidy(() => { noGrad(() => model.forward(x)).toFloat32Array(); }), repeats);
  report(`prepareForInference float32, blocked layout, fused merges, Winograd${F.mkldnnFusionEnabled ? '' : ' (not built: same as unfused)'}`,
    () => tidy(() => { prepared.forward(x).toFloat32Array(); }), repeats);
  report('prepareForInference float32, blocked layout, fused merges, direct convolutions only (winograd: false)',
    () => tidy(() => { direct.forward(x).toFloat32Array(); }), repeats);
  report('prepareForInference float32, blocked layout, unfused merges', () => tidy(() => { unfused.forward(x).toFloat32Array(); }), repeats);
  report('prepareForInference float32, dense layout', () => tidy(() => { dense.forward(x).toFloat32Array(); }), repeats);
  report(`prepareForInference bf16, ${bf16.layout} layout`, () => tidy(() => { bf16.forward(x).toFloat32Array(); }), repeats);
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
