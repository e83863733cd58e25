/**
 * One rank of the synchronised-BatchNorm test: both ranks draw the same seeded batch of 8, each
 * normalises its half (rows rank, rank+2, ...) with synchronised BatchNorm, and backpropagates a
 * fixed weighting of the outputs scaled as DDP's mean loss is; rank 0 also runs plain BatchNorm
 * on the whole batch. Prints the gradients and running statistics as JSON.
 */
import { manualSeed, randn, tensor, Tensor } from '../../src/engine/index.js';
import { BatchNorm3d } from '../../src/nn/index.js';
import { jobFromEnv } from '../../src/distributed/env.js';
import { ProcessGroup } from '../../src/distributed/process_group.js';
import { GradientSync, synchroniseBatchNorm } from '../../src/distributed/ddp.js';

const job = jobFromEnv()!;
const group = await ProcessGroup.join(job);
manualSeed(11);
const x = randn([8, 3, 2, 3, 3]);
const w = randn([8, 3, 2, 3, 3]);
const rows = (t: Tensor) => t.index([tensor([0, 2, 4, 6].map((i) => i + job.rank), { dtype: 'int64' })]);

function run(bn: BatchNorm3d, input: Tensor, weights: Tensor, scale: number): { x: number[]; weight: number[]; bias: number[]; mean: number[]; var: number[] } {
  const leaf = input.detach().requiresGrad_(true);
  bn.forward(leaf).mul(weights).sum().mul(scale).backward();
  return { x: leaf.grad!.toArray(), weight: bn.weight!.grad!.toArray(), bias: bn.bias!.grad!.toArray(), mean: bn.runningMean!.toArray(), var: bn.runningVar!.toArray() };
}

const synced = new BatchNorm3d(3);
synchroniseBatchNorm(group, synced);
const sync = new GradientSync(group, synced, 'after-backward');
const local = run(synced, rows(x), rows(w), 1 / 4);
await sync.afterBackward();
const averaged = { weight: synced.weight!.grad!.toArray(), bias: synced.bias!.grad!.toArray() };
const whole = job.rank === 0 ? run(new BatchNorm3d(3), x, w, 1 / 8) : null;
process.stdout.write(JSON.stringify({ rank: job.rank, inputGrad: local.x, averaged, mean: local.mean, var: local.var, whole }) + '\n');
group.destroy();
