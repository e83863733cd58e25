import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, existsSync, chmodSync } from 'node:fs';
import { join } from 'node:path';
import { readSafetensors } from '../../src/nn/safetensors.js';
import { repoRoot } from '../helpers.js';
import { tinyData, type TinyData } from '../train/fixture.js';
import { freePort, runChild } from './spawn.js';

/**
 * Data-parallel training is the same training: 2 processes of batch B (1 thread each, over
 * loopback) end with the weights of 1 process of batch 2B, within 1e-5 relative, with BatchNorm
 * synchronised across the processes. Each run: 1 epoch of 2 optimizer steps on the tiny synthetic
 * set, then validation. Why 2 steps: this tiny model (8 channels, batch 8) amplifies rounding
 * ~10× per step; measured after 2 steps, 1 process with 1 thread against 2 threads (rounding
 * only) differ by 3e-8 over the whole model and 4e-6 on the worst tensor (a BN bias near zero);
 * 2 processes against 1 differ by 1.2e-7 and 1.4e-5 (SyncBN's sums run in another order).
 */

const cli = join(repoRoot, 'dist/src/cli/main.js');

function flags(data: TinyData, out: string, batch: number, extra: string[] = []): string[] {
  return ['train', data.root, '--cache', data.cache, '--out', out, '--frames', '4', '--size', '32', '--width-multiplier', '0.125',
    '--batch-size', String(batch), '--no-flip', '--workers', '1', '--epochs', '1', '--val-clips', '2', '--lr', '0.005', ...extra];
}

const env = (extra: NodeJS.ProcessEnv = {}) => ({ ...process.env, STCNET_THREADS: '1', STCNET_DIST_TIMEOUT: '120', ...extra });

/**
 * ‖a − b‖ / ‖a‖ over every float parameter and buffer of two checkpoints together, and the worst
 * single tensor by name; integer buffers (BN's batch counters) must be equal.
 */
function difference(a: string, b: string): { global: number; name: string; relative: number } {
  const left = readSafetensors(a).tensors;
  const right = readSafetensors(b).tensors;
  assert.deepEqual([...left.keys()].sort(), [...right.keys()].sort());
  let worst = { name: '', relative: 0 };
  let diffAll = 0;
  let normAll = 0;
  for (const [name, tensor] of left) {
    if (tensor.dtype !== 'float32') {
      assert.deepEqual(tensor.toArray(), right.get(name)!.toArray(), name);
      continue;
    }
    const x = tensor.toArray();
    const y = right.get(name)!.toArray();
    let diff = 0;
    let norm = 0;
    for (let i = 0; i < x.length; i++) {
      diff += (x[i]! - y[i]!) ** 2;
      norm += x[i]! ** 2;
    }
    const relative = Math.sqrt(diff) / Math.max(Math.sqrt(norm), 1e-12);
    if (relative > worst.relative) worst = { name, relative };
    diffAll += diff;
    normAll += norm;
  }
  return { global: Math.sqrt(diffAll / normAll), ...worst };
}

function assertSameWeights(a: string, b: string): void {
  const d = difference(a, b);
  assert.ok(d.global < 1e-5, `the weights differ by ${d.global} (relative, whole model)`);
  assert.ok(d.relative < 1e-4, `${d.name} differs by ${d.relative} (relative)`);
}

function epochRecords(run: string): { valAccuracy: number; loss: number }[] {
  return readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { type: string; valAccuracy: number; loss: number })
    .filter((r) => r.type === 'epoch');
}

let single: Promise<string> | undefined;
/** The reference: one process, batch 8. */
function singleRun(data: TinyData): Promise<string> {
  single ??= (async () => {
    const out = join(data.work, 'single');
    const run = await runChild(process.execPath, [cli, ...flags(data, out, 8), '--quiet'], env());
    assert.equal(run.code, 0, run.stderr);
    return out;
  })();
  return single;
}

test('2 processes × batch 4 (launcher, synchronised BN, Reducer overlap) = 1 process × batch 8 within 1e-5; rank 0 alone writes; validation gathers every rank', async () => {
  const data = await tinyData();
  const reference = await singleRun(data);
  const out = join(data.work, 'ddp');
  const port = await freePort();
  const run = await runChild(process.execPath, [cli, ...flags(data, out, 4, ['--nproc-per-node', '2', '--master', `127.0.0.1:${port}`, '--sync-bn'])], env());
  assert.equal(run.code, 0, run.stderr);
  assert.match(run.stdout, /distributed: rank 0 of 2 \(Gloo\), gradients averaged in buckets during backward/);
  assert.doesNotMatch(run.stdout, /rank 1 of 2/); // rank 1 prints nothing but errors
  assertSameWeights(join(reference, 'last.safetensors'), join(out, 'last.safetensors'));
  // The same validation (every rank's clips gathered) and the same global training loss.
  const [a, b] = [epochRecords(reference), epochRecords(out)];
  assert.equal(b.length, 1);
  for (let e = 0; e < 1; e++) {
    assert.equal(b[e]!.valAccuracy, a[e]!.valAccuracy);
    assert.ok(Math.abs(b[e]!.loss - a[e]!.loss) < 1e-5 * Math.abs(a[e]!.loss), `epoch ${e + 1} loss ${b[e]!.loss} vs ${a[e]!.loss}`);
  }
  assert.equal(JSON.parse(readFileSync(join(out, 'distributed.json'), 'utf8')).worldSize, 2);
  for (const file of ['summary.json', 'last.state.safetensors', 'config.json']) assert.ok(existsSync(join(out, file)), file);
});

test('a plain shell script with torchrun\'s variables starts a job (gradients all-reduced after backward) with the same result', async () => {
  const data = await tinyData();
  const reference = await singleRun(data);
  const out = join(data.work, 'script');
  const port = await freePort();
  const script = join(data.work, 'job.sh');
  const command = [process.execPath, cli, ...flags(data, out, 4, ['--sync-bn', '--grad-sync', 'after-backward', '--quiet'])].map((a) => `'${a}'`).join(' ');
  writeFileSync(script, `#!/bin/sh
# What torchrun (or a Slurm or Kubernetes wrapper) does: the same command, once per rank.
export MASTER_ADDR=127.0.0.1 MASTER_PORT=${port} WORLD_SIZE=2 LOCAL_WORLD_SIZE=2
RANK=0 LOCAL_RANK=0 ${command} &
first=$!
RANK=1 LOCAL_RANK=1 ${command}
second=$?
wait $first
exit $(( $? + second ))
`);
  chmodSync(script, 0o755);
  const run = await runChild('/bin/sh', [script], env());
  assert.equal(run.code, 0, run.stderr);
  assertSameWeights(join(reference, 'last.safetensors'), join(out, 'last.safetensors'));
});

test('--clip-grad-norm in 2 processes clips the averaged gradients: the same norms and weights as 1 process × batch 8', async () => {
  const data = await tinyData();
  // Below the gradients' norm on this data (checked below), so every step clips.
  const clip = ['--clip-grad-norm', '0.05', '--sync-bn', '--quiet'];
  const single = join(data.work, 'clip-single');
  const reference = await runChild(process.execPath, [cli, ...flags(data, single, 8, clip)], env());
  assert.equal(reference.code, 0, reference.stderr);
  const out = join(data.work, 'clip-ddp');
  const port = await freePort();
  const run = await runChild(process.execPath, [cli, ...flags(data, out, 4, [...clip, '--nproc-per-node', '2', '--master', `127.0.0.1:${port}`])], env());
  assert.equal(run.code, 0, run.stderr);
  const norms = (dir: string) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { type: string; gradNorm?: number })
    .filter((r) => r.type === 'step').map((r) => r.gradNorm!);
  const [expected, got] = [norms(single), norms(out)];
  assert.equal(got.length, 2);
  expected.forEach((norm, step) => {
    assert.ok(norm > 0.05, `step ${step + 1}: norm ${norm} is above the limit`);
    assert.ok(Math.abs(got[step]! - norm) < 1e-5 * norm, `step ${step + 1}: norm ${got[step]} in 2 processes, ${norm} in one`);
  });
  assertSameWeights(join(single, 'last.safetensors'), join(out, 'last.safetensors'));
});
