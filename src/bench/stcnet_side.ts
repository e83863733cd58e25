/**
 * stcnet's side of `stcnet bench`: one path of the plan, loaded once and timed one iteration per
 * request (serve_side.ts has the protocol). Usage: node stcnet_side.js PLAN_JSON PATH
 */
import { readFileSync } from 'node:fs';
import { F, fromTypedArray, keep, manualSeed, noGrad, randn, setNumThreads, tidy, type Tensor } from '../engine/index.js';
import { prepareForInference } from '../models/index.js';
import { SGD } from '../optim/index.js';
import { withAutocast } from '../train/autocast.js';
import { seededBenchModel } from './seeded_model.js';
import { serveIterations } from './serve_side.js';
import type { BenchPlan } from './plan.js';

function readFloats(file: string): Float32Array {
  const bytes = readFileSync(file);
  return new Float32Array(bytes.buffer, bytes.byteOffset, bytes.byteLength / 4);
}

/** The same seeded model the plan's weights file was written from (PyTorch's side loads that file). */
function loadModel(plan: BenchPlan) {
  const model = seededBenchModel(plan.arch, plan.frames, plan.classes);
  return plan.device === 'cpu' ? model : model.to(plan.device);
}

async function inferencePath(plan: BenchPlan, path: string): Promise<void> {
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
  manualSeed(1);
  const inputs = new Map(plan.inferBatches.map((batch) => [batch, keep(tidy(() => onDevice(randn([batch, ...clipShape]))))]));
  // Reading the logits back waits for the device, so a CUDA forward is timed whole.
  await serveIterations({ logits }, plan.inferBatches, plan.warmup, (batch) => tidy(() => { forward(inputs.get(batch)!).toFloat32Array(); }));
}

async function trainPath(plan: BenchPlan, path: string): Promise<void> {
  const model = loadModel(plan).train();
  const optimizer = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 1e-3 });
  const amp = path === 'stcnet_train_bf16' ? 'bf16' : 'none';
  const shape = [plan.trainBatch, 3, plan.frames, plan.size, plan.size];
  const onDevice = (x: Tensor) => (plan.device === 'cpu' ? x : x.to(plan.device));
  const clips = keep(tidy(() => onDevice(fromTypedArray(readFloats(plan.trainInput), shape))));
  const labels = keep(tidy(() => onDevice(fromTypedArray(BigInt64Array.from(JSON.parse(readFileSync(plan.trainLabels, 'utf8')) as number[], BigInt), [plan.trainBatch]))));
  // The whole step a trainer runs: forward (under autocast when asked), float32 loss, backward, SGD update.
  const step = () => tidy(() => {
    optimizer.zeroGrad();
    const logits = withAutocast(amp, plan.device, () => model.forward(clips)).float();
    const loss = F.crossEntropy(logits, labels);
    loss.backward();
    optimizer.step();
    return loss.item() as number;
  });
  const firstLoss = step();
  await serveIterations({ firstLoss }, [plan.trainBatch], Math.max(0, plan.warmup - 1), step);
}

const [planFile, path] = process.argv.slice(2);
const plan = JSON.parse(readFileSync(planFile!, 'utf8')) as BenchPlan;
setNumThreads(plan.threads);
await (path!.startsWith('stcnet_train_') ? trainPath(plan, path!) : inferencePath(plan, path!));
