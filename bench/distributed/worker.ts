/**
 * One rank of bench/distributed (stcnet side): the demo configuration's model trained with SGD on
 * fixed random batches (the loader is left out: this measures compute and gradient communication),
 * gradients averaged by c10d's Reducer during backward. Run with torchrun's variables; rank 0
 * prints one JSON line: {"step_s": mean seconds per step after warm-up, "world": W}.
 */
import { F, manualSeed, randint, randn, setNumThreads, tidy } from '../../src/engine/index.js';
import { createModel } from '../../src/models/index.js';
import { SGD } from '../../src/optim/index.js';
import { jobFromEnv } from '../../src/distributed/env.js';
import { ProcessGroup } from '../../src/distributed/process_group.js';
import { broadcastState, GradientSync } from '../../src/distributed/ddp.js';

const arg = (name: string, fallback: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
};
const steps = arg('steps', 10);
const warmup = arg('warmup', 3);
const batch = arg('batch', 8);
const frames = arg('frames', 8);
const size = arg('size', 48);
const width = arg('width', 0.25);
setNumThreads(1);
const job = jobFromEnv()!;
const group = await ProcessGroup.join(job);
manualSeed(0);
const model = createModel('stc_resnet3d_18', { numClasses: 12, frames, widthMultiplier: width });
await broadcastState(group, model);
const sync = new GradientSync(group, model, 'overlap');
const optimizer = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 1e-3 });
model.train();
manualSeed(1 + job.rank);
const x = randn([batch, 3, frames, size, size]);
const y = randint(0, 12, [batch]);
let start = 0;
for (let step = 0; step < warmup + steps; step++) {
  if (step === warmup) {
    await group.barrier('bench barrier');
    start = performance.now();
  }
  tidy(() => {
    const loss = F.crossEntropy(model.forward(x), y);
    sync.beforeBackward();
    loss.backward();
  });
  await sync.afterBackward();
  optimizer.step();
  optimizer.zeroGrad();
}
await group.barrier('bench barrier');
const seconds = (performance.now() - start) / 1000;
if (job.rank === 0) process.stdout.write(JSON.stringify({ step_s: seconds / steps, world: job.worldSize }) + '\n');
group.destroy();
