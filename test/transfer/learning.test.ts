import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { loadDataset } from '../../src/data/formats/index.js';
import { uniqueSamples } from '../../src/data/dataset.js';
import { runTransfer } from '../../src/transfer/transfer.js';
import { transferConfig, transferData } from './fixture.js';

const mean = (values: number[]) => values.reduce((a, b) => a + b, 0) / values.length;

test('transfer steps on generated videos lower the pair loss (3 videos, seeded)', async () => {
  const data = await transferData();
  // Three of the videos (one per class), listed in a manifest beside them so the frame cache serves them.
  const samples = uniqueSamples(await loadDataset(data.root, 'ucf101')).filter((_, i) => i % 2 === 0);
  const manifest = join(data.root, 'three.jsonl');
  writeFileSync(manifest, samples.map((s) => JSON.stringify({ path: s.relPath, label: 'any' })).join('\n') + '\n');
  const losses: number[] = [];
  // Every pair of an epoch in one batch (3 videos × 4 positions), AdamW: a steady descent in 30 steps.
  const config = transferConfig(data, join(data.work, 'learning'), {
    root: manifest, format: 'manifest', 'batch-size': 12, positions: 4, epochs: 30, optimizer: 'adamw', lr: 0.001, 'cache-teacher': true,
  });
  const summary = await runTransfer(config, { onEvent: (event) => { if (event.type === 'step') losses.push(event.loss); } });
  assert.equal(summary.status, 'completed');
  assert.equal(losses.length, 30);
  assert.ok(losses.every(Number.isFinite));
  const first = mean(losses.slice(0, 6));
  const last = mean(losses.slice(-6));
  // Chance is ln 2 ≈ 0.693; the first steps sit there.
  assert.ok(Math.abs(first - Math.LN2) < 0.05, `first steps' loss ${first.toFixed(3)} should start near chance`);
  assert.ok(last < first - 0.15, `pair loss of the last 6 steps ${last.toFixed(3)} should be clearly below the first 6 (${first.toFixed(3)}); all: ${losses.map((l) => l.toFixed(3)).join(' ')}`);
});
