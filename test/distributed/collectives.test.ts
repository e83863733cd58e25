import { test } from 'node:test';
import assert from 'node:assert/strict';
import { fileURLToPath } from 'node:url';
import type { ChildProcess } from 'node:child_process';
import { freePort, runChild, torchrunEnv, type Finished } from './spawn.js';

const worker = fileURLToPath(new URL('./collective_worker.js', import.meta.url));

async function job(world: number, extra: NodeJS.ProcessEnv = {}, started?: (rank: number, child: ChildProcess) => void): Promise<Finished[]> {
  const port = await freePort();
  return Promise.all(Array.from({ length: world }, (_, rank) => runChild(process.execPath, [worker], torchrunEnv(port, rank, world, extra), (child) => started?.(rank, child))));
}

test('two ranks over loopback: all-reduce (sum, max), broadcast, all-gather and barrier give every rank the same exact results', async () => {
  const runs = await job(2);
  for (const run of runs) assert.equal(run.code, 0, run.stderr);
  for (const [rank, run] of runs.entries()) {
    const result = JSON.parse(run.stdout.trim()) as Record<string, unknown>;
    assert.equal(result.rank, rank);
    assert.deepEqual(result.summed, [0, 3, 6, 9]); // (1 + 2) · [0, 1, 2, 3]
    assert.deepEqual(result.maxed, [10]);
    assert.deepEqual(result.broadcasted, [42, 7]);
    assert.deepEqual(result.gatheredShape, [2, 2]);
    assert.deepEqual(result.gathered, [0, 0, 1, 1]);
    // Rank 1 waited ~300 ms for rank 0 in the all-reduce, and its timers kept running meanwhile.
    if (rank === 1) assert.ok((result.ticksWhileWaiting as number) >= 5, `event loop blocked: ${String(result.ticksWhileWaiting)} ticks`);
  }
});

test('a rank that dies makes the other fail with an error naming the operation and the dead rank, well within the timeout', async () => {
  const started = Date.now();
  const [rank0, rank1] = await job(2, { STCNET_TEST_FAULT: 'exit', STCNET_DIST_TIMEOUT: '60' });
  assert.equal(rank1!.code, 3);
  assert.equal(rank0!.code, 2, rank0!.stderr);
  assert.match(rank0!.stderr, /^error: rank 0 of 2: test all-reduce failed: rank 1 stopped answering/m);
  assert.ok(Date.now() - started < 50_000, 'the survivor waited for the whole timeout instead of seeing the peer gone');
});

test('a frozen rank (SIGSTOP) makes the other fail after the timeout, naming it', async () => {
  const port = await freePort();
  const env = { STCNET_TEST_FAULT: 'freeze', STCNET_DIST_TIMEOUT: '4' };
  let frozen: ChildProcess | undefined;
  const rank1 = runChild(process.execPath, [worker], torchrunEnv(port, 1, 2, env), (child) => { frozen = child; });
  const rank0 = await runChild(process.execPath, [worker], torchrunEnv(port, 0, 2, env));
  frozen!.kill('SIGKILL'); // still stopped: only SIGKILL ends it
  await rank1;
  assert.equal(rank0.code, 2, rank0.stderr);
  assert.match(rank0.stderr, /^error: rank 0 of 2: test all-reduce failed: rank 1 stopped answering \(died or froze\).*timed out/im);
});

test('a rank that hangs (its event loop busy, heartbeat alive) makes the other fail after the timeout, naming it as never arriving', async () => {
  const [rank0, rank1] = await job(2, { STCNET_TEST_FAULT: 'hang', STCNET_DIST_TIMEOUT: '4' });
  assert.equal(rank0!.code, 2, rank0!.stderr);
  // Rank 1's heartbeat thread still beats (its event loop just never reaches the collective), so
  // the error is Gloo's timeout, named with the operation.
  // Its heartbeat went on, but it entered one collective fewer than rank 0.
  assert.match(rank0!.stderr, /^error: rank 0 of 2: test all-reduce failed: rank 1 never reached it \(busy or stuck before it\).*timed out/im);
  assert.equal(rank1!.code, 4);
});

test('a port already in use is a clear error', async () => {
  const port = await freePort();
  const { createServer } = await import('node:net');
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(port, '0.0.0.0', resolve));
  try {
    const run = await runChild(process.execPath, [worker], torchrunEnv(port, 0, 1));
    assert.equal(run.code, 2);
    assert.match(run.stderr, new RegExp(`^error: MASTER_PORT=${port}: port ${port} is already in use`, 'm'));
  } finally {
    blocker.close();
  }
});

test('bad torchrun variables are named', async () => {
  const run = await runChild(process.execPath, [worker], { ...torchrunEnv(1, 0, 2), RANK: '2' });
  assert.equal(run.code, 2);
  assert.match(run.stderr, /RANK=2: must be below WORLD_SIZE=2/);
});

test('synchronised BatchNorm over 2 ranks = BatchNorm over the whole batch: outputs\' gradients, averaged weight and bias gradients, running statistics', async () => {
  const port = await freePort();
  const syncWorker = fileURLToPath(new URL('./syncbn_worker.js', import.meta.url));
  const runs = await Promise.all([0, 1].map((rank) => runChild(process.execPath, [syncWorker], torchrunEnv(port, rank, 2))));
  for (const run of runs) assert.equal(run.code, 0, run.stderr);
  type Out = { inputGrad: number[]; averaged: { weight: number[]; bias: number[] }; mean: number[]; var: number[];
    whole: { x: number[]; weight: number[]; bias: number[]; mean: number[]; var: number[] } | null };
  const [a, b] = runs.map((run) => JSON.parse(run.stdout.trim()) as Out) as [Out, Out];
  const whole = a.whole!;
  const close = (x: number[], y: number[], what: string) => x.forEach((v, i) => assert.ok(Math.abs(v - y[i]!) <= 1e-5 * Math.max(1, Math.abs(y[i]!)), `${what}[${i}]: ${v} vs ${y[i]}`));
  for (const rank of [a, b]) {
    close(rank.averaged.weight, whole.weight, 'weight grad');
    close(rank.averaged.bias, whole.bias, 'bias grad');
    close(rank.mean, whole.mean, 'running mean');
    close(rank.var, whole.var, 'running var');
  }
  // Rank r holds rows r, r+2, ...; its input gradient is of the sum of the ranks' losses (DDP then
  // averages the weights' gradients over the ranks), so twice the whole batch's mean loss's.
  const per = whole.x.length / 8;
  for (const [r, out] of [[0, a], [1, b]] as const) {
    for (let j = 0; j < 4; j++) {
      close(out.inputGrad.slice(j * per, (j + 1) * per).map((v) => v / 2), whole.x.slice((2 * j + r) * per, (2 * j + r + 1) * per), `rank ${r} input grad row ${j}`);
    }
  }
});
