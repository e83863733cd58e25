import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../helpers.js';
import { tinyData } from '../train/fixture.js';
import { freePort, runChild } from './spawn.js';

/** Two "machines" on loopback: one launcher per node, node 0 hosting the rendezvous, node 1 started first. */

const cli = join(repoRoot, 'dist/src/cli/main.js');

test('--nnodes 2: node 1\'s launcher waits for node 0\'s rendezvous; the job trains as one (world size 2) and only node 0\'s rank 0 writes', async () => {
  const data = await tinyData();
  const out = join(data.work, 'two-nodes');
  const port = await freePort();
  const node = (rank: number) => runChild(process.execPath, [cli, 'train', data.root, '--cache', data.cache, '--out', out, '--frames', '4', '--size', '32',
    '--width-multiplier', '0.125', '--batch-size', '4', '--no-flip', '--workers', '1', '--epochs', '1', '--val-split', 'none', '--quiet',
    '--nproc-per-node', '1', '--nnodes', '2', '--node-rank', String(rank), '--master', `127.0.0.1:${port}`], { ...process.env, STCNET_THREADS: '1' });
  const second = node(1);
  await new Promise((resolve) => setTimeout(resolve, 1500));
  const [first, later] = await Promise.all([node(0), second]);
  assert.equal(first.code, 0, first.stderr);
  assert.equal(later.code, 0, later.stderr);
  assert.match(later.stderr, /launch: 1 worker on node 1 of 2 \(world size 2, rendezvous 127\.0\.0\.1:\d+/);
  assert.equal(JSON.parse(readFileSync(join(out, 'distributed.json'), 'utf8')).worldSize, 2);
  const steps = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { type: string }).filter((r) => r.type === 'step');
  assert.equal(steps.length, 2); // 16 videos, global batch 8
});
