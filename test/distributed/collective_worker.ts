/**
 * One rank of the collectives test, run as its own process with torchrun's variables. Prints one
 * JSON line with what each collective gave; STCNET_TEST_FAULT makes rank 1 misbehave instead:
 * 'exit' (dies before the all-reduce), 'hang' (its event loop never reaches it), 'freeze' (SIGSTOP).
 */
import { arange, manualSeed, tensor } from '../../src/engine/index.js';
import { jobFromEnv } from '../../src/distributed/env.js';
import { ProcessGroup } from '../../src/distributed/process_group.js';

const fail = (error: unknown): void => {
  process.stderr.write(`error: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(2);
};
let job: NonNullable<ReturnType<typeof jobFromEnv>>;
let group: ProcessGroup;
try {
  job = jobFromEnv()!;
  if (!job) throw new Error('collective_worker: run me with torchrun-style variables');
  manualSeed(0);
  group = await ProcessGroup.join(job);
} catch (error) {
  fail(error);
  throw error;
}
const fault = process.env.STCNET_TEST_FAULT;
try {
  if (fault && job.rank === 1) {
    if (fault === 'exit') process.exit(3);
    // Frozen for longer than the peer's timeout, then gone.
    if (fault === 'hang') await new Promise(() => setTimeout(() => process.exit(4), 10_000));
    // Frozen whole (as a stopped process or a machine that stalls): its heartbeat thread stops too.
    if (fault === 'freeze') process.kill(process.pid, 'SIGSTOP');
  }
  // Sum over ranks of (rank + 1) · [0, 1, 2, 3]
  const summed = arange(0, 4, 1, { dtype: 'float32' }).mul(job.rank + 1);
  // A timer that must keep firing while this rank waits in the collective (the event loop is free).
  let ticks = 0;
  const timer = setInterval(() => ticks++, 10);
  if (job.rank === 0) await new Promise((resolve) => setTimeout(resolve, 300)); // rank 1 waits meanwhile
  await group.allReduce([summed], 'test all-reduce');
  const maxed = tensor([job.rank * 10], { dtype: 'float32' });
  await group.allReduce([maxed], 'test all-reduce max', 'max');
  const broadcasted = tensor([job.rank === 0 ? 42 : -1, job.rank === 0 ? 7 : -1], { dtype: 'int64' });
  await group.broadcast([broadcasted], 'test broadcast');
  const gathered = await group.allGather(tensor([job.rank, job.rank * job.rank], { dtype: 'float32' }), 'test all-gather');
  await group.barrier('test barrier');
  clearInterval(timer);
  process.stdout.write(JSON.stringify({
    rank: job.rank, summed: summed.toArray(), maxed: maxed.toArray(), broadcasted: broadcasted.toArray(),
    gathered: gathered.toArray(), gatheredShape: gathered.shape, ticksWhileWaiting: ticks,
  }) + '\n');
} catch (error) {
  fail(error);
} finally {
  group.destroy();
}
