/**
 * stcnet's side of `stcnet bench`: runs one path of the plan in this process and prints its
 * PathResult as the last line. Usage: node stcnet_side.js PLAN_JSON PATH
 */
import { readFileSync } from 'node:fs';
import { F, fromTypedArray, keep, manualSeed, noGrad, randn, setNumThreads, tidy, type Tensor } from '../engine/index.js';
import { prepareForInference } from '../models/index.js';
import { SGD } from '../optim/index.js';
import { withAutocast } from '../train/autocast.js';
import { seededBenchModel } from './seeded_model.js';
import { medianSeconds, peakRssMiB } from './timing.js';
import type { BenchPlan, PathResult } from './plan.js';

function readFloats(file: string): Float32Array {
  const bytes = readFileSync(file);
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

/** The same seeded model the plan's weights file was written from (PyTorch's side loads that file). */
function loadModel(plan: BenchPlan) {
  const model = seededBenchModel(plan.arch, plan.frames, plan.classes);
  return plan.device === 'cpu' ? model : model.to(plan.device);
}

function inferencePath(plan: BenchPlan, path: string): PathResult {
  const model = loadModel(plan).eval();
  const forward: (x: Tensor) => Tensor = path === 'stcnet_eager_f32'
    ? (x) => noGrad(() => model.forward(x))
    : (() => {
      const prepared = prepareForInference(model, { dtype: path === 'stcnet_prepared_bf16' ? 'bfloat16' : 'float32' });
      return (x: Tensor) => prepared.forward(x);
    })();
  const onDevice = (x: Tensor) => (plan.device === 'cpu' ? x : x.to(plan.device));
  const clipShape = [3, plan.frames, plan.size, plan.size];
  const logits = Array.from(tidy(() => forward(onDevice(fromTypedArray(readFloats(plan.checkInput), [1, ...clipShape]))).float().toFloat32Array()));
  const rates: Record<string, number> = {};
  for (const batch of plan.inferBatches) {
    manualSeed(1);
    const x = keep(tidy(() => onDevice(randn([batch, ...clipShape]))));
    // Reading the logits back waits for the device, so a CUDA forward is timed whole.
    rates[batch] = batch / medianSeconds(() => tidy(() => { forward(x).toFloat32Array(); }), plan.repeats, plan.warmup);
    x.dispose();
  }
  return { path, rates, logits, peakRssMiB: peakRssMiB() };
}

function trainPath(plan: BenchPlan, path: string): PathResult {
  const model = loadModel(plan).train();
  const optimizer = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 1e-3 });
  const amp = path === 'stcnet_train_bf16' ? 'bf16' : 'none';
  const shape = [plan.trainBatch, 3, plan.frames, plan.size, plan.size];
  const onDevice = (x: Tensor) => (plan.device === 'cpu' ? x : x.to(plan.device));
  const clips = keep(tidy(() => onDevice(fromTypedArray(readFloats(plan.trainInput), shape))));
  const labels = keep(tidy(() => onDevice(fromTypedArray(BigInt64Array.from(JSON.parse(readFileSync(plan.trainLabels, 'utf8')) as number[], BigInt), [plan.trainBatch]))));
  let firstLoss: number | undefined;
  // The whole step a trainer runs: forward (under autocast when asked), float32 loss, backward, SGD update.
  const step = () => tidy(() => {
    optimizer.zeroGrad();
    const logits = withAutocast(amp, plan.device, () => model.forward(clips)).float();
    const loss = F.crossEntropy(logits, labels);
    loss.backward();
    optimizer.step();
    const value = loss.item();
    firstLoss ??= value;
  });
  const seconds = medianSeconds(step, plan.repeats, plan.warmup);
  return { path, rates: { [plan.trainBatch]: plan.trainBatch / seconds }, firstLoss, peakRssMiB: peakRssMiB() };
}

const [planFile, path] = process.argv.slice(2);
const plan = JSON.parse(readFileSync(planFile!, 'utf8')) as BenchPlan;
setNumThreads(plan.threads);
const result = path!.startsWith('stcnet_train_') ? trainPath(plan, path!) : inferencePath(plan, path!);
process.stdout.write(JSON.stringify(result) + '\n');
