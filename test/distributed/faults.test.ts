import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { readSafetensors } from '../../src/nn/safetensors.js';
import { repoRoot } from '../helpers.js';
import { tinyData, type TinyData } from '../train/fixture.js';
import { freePort, runChild } from './spawn.js';

/** A job whose workers die or are interrupted ends cleanly, says who and why, and never hangs. */

const cli = join(repoRoot, 'dist/src/cli/main.js');

function flags(data: TinyData, out: string, port: number, extra: string[] = []): string[] {
  return ['train', data.root, '--cache', data.cache, '--out', out, '--frames', '4', '--size', '32', '--width-multiplier', '0.125',
    '--batch-size', '4', '--no-flip', '--workers', '1', '--val-split', 'none', '--nproc-per-node', '2', '--master', `127.0.0.1:${port}`, ...extra];
}

const env = (extra: NodeJS.ProcessEnv = {}) => ({ ...process.env, STCNET_THREADS: '1', ...extra });

/** Resolves once rank 0 has written a step record (training is under way on every rank). */
async function firstStep(out: string, launcher: ChildProcess): Promise<void> {
  const metrics = join(out, 'metrics.jsonl');
  for (;;) {
    if (launcher.exitCode !== null) throw new Error('the launcher ended before the first step');
    if (existsSync(metrics) && readFileSync(metrics, 'utf8').includes('"type":"step"')) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test('killing one worker ends the run: the launcher names the rank, the survivor fails naming it, well within the timeout', async () => {
  const data = await tinyData();
  const out = join(data.work, 'killed');
  let launcher: ChildProcess | undefined;
  const finished = runChild(process.execPath, [cli, ...flags(data, out, await freePort(), ['--epochs', '500', '--quiet'])], env({ STCNET_DIST_TIMEOUT: '60' }), (child) => { launcher = child; });
  await new Promise((resolve) => setTimeout(resolve, 200));
  await firstStep(out, launcher!);
  let stderrSoFar = '';
  launcher!.stderr!.on('data', (chunk: Buffer) => { stderrSoFar += chunk.toString(); });
  const killedAt = Date.now();
  // The worker pids, from the launcher's /proc children.
  const children = readFileSync(`/proc/${launcher!.pid}/task/${launcher!.pid}/children`, 'utf8').trim().split(/\s+/).map(Number);
  assert.equal(children.length, 2);
  process.kill(children[1]!, 'SIGKILL');
  const run = await finished;
  const seconds = (Date.now() - killedAt) / 1000;
  assert.notEqual(run.code, 0);
  assert.match(run.stderr, /launch: rank 1 \(pid \d+\) was killed by SIGKILL/);
  assert.match(run.stderr, /error: rank 0 of 2: .* failed: rank 1 stopped answering \(died or froze\)/);
  assert.ok(seconds < 60, `the run took ${seconds} s to end after the kill (timeout 60 s)`);
  void stderrSoFar;
  // The checkpoint rank 0 wrote before is whole (written atomically), or there is none yet.
  if (existsSync(join(out, 'last.safetensors'))) readSafetensors(join(out, 'last.safetensors')).tensors.forEach((t) => t.dispose());
});

test('Ctrl-C stops every worker after the same step, rank 0 saves a loadable checkpoint, and resuming needs the same world size', async () => {
  const data = await tinyData();
  const out = join(data.work, 'interrupted');
  let launcher: ChildProcess | undefined;
  const finished = runChild(process.execPath, [cli, ...flags(data, out, await freePort(), ['--epochs', '500'])], env(), (child) => { launcher = child; });
  await new Promise((resolve) => setTimeout(resolve, 200));
  await firstStep(out, launcher!);
  launcher!.kill('SIGINT');
  const run = await finished;
  assert.equal(run.code, 130, run.stderr);
  assert.match(run.stderr, /launch: interrupted; the workers stop after this step/);
  // After the step that was running (or the epoch, when that step ended one).
  assert.match(run.stdout, /interrupted (at epoch \d+, batch \d+\/\d+|after epoch \d+): saved .*last\.safetensors/);
  assert.doesNotMatch(run.stderr, /error|Connection/);
  const { tensors } = readSafetensors(join(out, 'last.safetensors'));
  assert.ok(tensors.size > 10);
  for (const t of tensors.values()) t.dispose();
  // One process cannot continue what two started: the split of each epoch would change.
  const single = await runChild(process.execPath, [cli, 'train', '--resume', out], env());
  assert.equal(single.code, 2);
  assert.match(single.stderr, /error: --resume .*: the run was trained by 2 processes, not 1; resume it with the same world size/);
  // Two processes continue it (stopped again after a step of their own).
  const stepsBefore = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').length;
  let resumed: ChildProcess | undefined;
  const again = runChild(process.execPath, [cli, 'train', '--resume', out, '--nproc-per-node', '2', '--master', `127.0.0.1:${await freePort()}`], env(), (child) => { resumed = child; });
  for (;;) {
    if (resumed!.exitCode !== null) break;
    if (readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').length > stepsBefore) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  resumed!.kill('SIGINT');
  const second = await again;
  assert.equal(second.code, 130, second.stderr);
  assert.match(second.stdout, /resume: .* at epoch \d+, batch \d+\/\d+, step \d+/);
});

test('a port already in use is a clear error from the launcher, before any worker starts', async () => {
  const data = await tinyData();
  const port = await freePort();
  const blocker = createServer();
  await new Promise<void>((resolve) => blocker.listen(port, '0.0.0.0', resolve));
  try {
    const run = await runChild(process.execPath, [cli, ...flags(data, join(data.work, 'port'), port, ['--epochs', '1'])], env());
    assert.equal(run.code, 2);
    assert.match(run.stderr, new RegExp(`^error: --master: port ${port} is already in use on this machine`, 'm'));
    assert.doesNotMatch(run.stderr, /launch: 2 workers/);
  } finally {
    blocker.close();
  }
});

test('launcher flags are validated before any work starts', async () => {
  const bad = await runChild(process.execPath, [cli, 'train', 'x', '--out', 'y', '--nnodes', '2'], env());
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--nnodes: only with --nproc-per-node N/);
  const noMaster = await runChild(process.execPath, [cli, 'train', 'x', '--out', 'y', '--nproc-per-node', '2', '--nnodes', '2', '--node-rank', '1'], env());
  assert.equal(noMaster.code, 2);
  assert.match(noMaster.stderr, /--master: required with --nnodes above 1/);
});
