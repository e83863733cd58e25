/**
 * ONNX Runtime's side of `stcnet bench`: the model PyTorch exported (torch.onnx.export of the same
 * weights), run by onnxruntime-node with the plan's threads, timed one forward per request
 * (serve_side.ts has the protocol). Usage: node ort_side.js PLAN_JSON PATH
 */
import { readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-node';
import { seededNormal } from './timing.js';
import { serveIterations } from './serve_side.js';
import type { BenchPlan } from './plan.js';

const [planFile] = process.argv.slice(2);
const plan = JSON.parse(readFileSync(planFile!, 'utf8')) as BenchPlan;
const session = await ort.InferenceSession.create(plan.onnx, {
  intraOpNumThreads: plan.threads, interOpNumThreads: 1, graphOptimizationLevel: 'all', executionMode: 'sequential',
});
const clip = [3, plan.frames, plan.size, plan.size];
const perClip = clip.reduce((a, b) => a * b, 1);
const run = async (data: Float32Array, batch: number) => {
  const output = await session.run({ [session.inputNames[0]!]: new ort.Tensor('float32', data, [batch, ...clip]) });
  return output[session.outputNames[0]!]!.data as Float32Array;
};
const checkBytes = readFileSync(plan.checkInput);
const logits = Array.from(await run(new Float32Array(checkBytes.buffer, checkBytes.byteOffset, perClip), 1));
const inputs = new Map(plan.inferBatches.map((batch) => [batch, seededNormal(batch * perClip, batch)]));
await serveIterations({ logits }, plan.inferBatches, plan.warmup, (batch) => run(inputs.get(batch)!, batch));
