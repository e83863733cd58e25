import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runTransfer, resumeTransferConfig, type TransferEpochRecord, type TransferEvent } from '../../src/transfer/transfer.js';
import { runTraining } from '../../src/train/trainer.js';
import { validateConfig } from '../../src/train/config.js';
import { loadModelCheckpoint, readCheckpointMeta } from '../../src/models/checkpoint.js';
import { sameBytes } from '../../src/models/convert.js';
import { transferConfig, transferData } from './fixture.js';

const stepLosses = (into: number[]) => (event: TransferEvent) => {
  if (event.type === 'step') into.push(event.loss);
};

const records = (dir: string) => readFileSync(join(dir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as Record<string, unknown>);

// 6 videos: 2 held out, 4 × 4 positions = 16 pairs per epoch, batch 4: 4 steps per epoch.
const settings = { 'val-fraction': 0.34, 'batch-size': 4, 'cache-teacher': true, epochs: 2, lr: 0.01 };

test('a run stopped after 3 steps and resumed gives the losses of the run never stopped; the teacher cache serves epoch 2 entirely', async () => {
  const data = await transferData();
  const full = transferConfig(data, join(data.work, 'full'), settings);
  const fullLosses: number[] = [];
  const summary = await runTransfer(full, { onEvent: stepLosses(fullLosses) });
  assert.equal(summary.status, 'completed');
  assert.deepEqual(summary.videos, { train: 4, heldOut: 2 });
  assert.equal(fullLosses.length, 8);

  // The run folder, as stcnet train's.
  const files = readdirSync(full.out);
  for (const name of ['config.yaml', 'config.json', 'metrics.jsonl', 'last.safetensors', 'last.state.safetensors', 'best.safetensors', 'summary.json', 'teacher_cache.safetensors']) {
    assert.ok(files.includes(name), `${name} in the run folder (${files.join(', ')})`);
  }
  for (const chart of ['loss', 'accuracy', 'lr']) assert.ok(existsSync(join(full.out, 'plots', `${chart}.png`)), `plots/${chart}.png`);
  const epochs = records(full.out).filter((r) => r.type === 'epoch') as unknown as TransferEpochRecord[];
  assert.equal(epochs.length, 2);
  for (const epoch of epochs) {
    assert.ok(epoch.valAccuracy !== null && epoch.valAccuracy >= 0 && epoch.valAccuracy <= 1, 'held-out pair accuracy every epoch');
    assert.ok(Number.isFinite(epoch.valLoss));
  }
  // Epoch 1 fills the cache (training and held-out positions); epoch 2 computes nothing.
  assert.ok(epochs[0]!.teacherCache!.misses > 0);
  assert.equal(epochs[1]!.teacherCache!.misses, 0);
  assert.ok(epochs[1]!.teacherCache!.hits >= 16);
  assert.equal(epochs[1]!.teacherCache!.rows, 6 * 4, 'one row per (video, position)');

  const cut = transferConfig(data, join(data.work, 'cut'), settings);
  const controller = new AbortController();
  const before: number[] = [];
  const stopped = await runTransfer(cut, {
    signal: controller.signal,
    onEvent: (event) => {
      stepLosses(before)(event);
      if (event.type === 'step' && event.step === 3) controller.abort();
    },
  });
  assert.equal(stopped.status, 'interrupted');
  assert.equal(stopped.steps, 3);
  assert.deepEqual(before, fullLosses.slice(0, 3));
  const after: number[] = [];
  const resumed = await runTransfer(resumeTransferConfig(cut.out), { resume: true, onEvent: stepLosses(after) });
  assert.equal(resumed.status, 'completed');
  assert.equal(resumed.steps, 8);
  assert.deepEqual(after, fullLosses.slice(3), 'the resumed steps have the uninterrupted run\'s losses');
  assert.deepEqual(records(cut.out).filter((r) => r.type === 'step').map((r) => r.step), [1, 2, 3, 4, 5, 6, 7, 8]);
  const a = loadModelCheckpoint(join(full.out, 'last.safetensors')).model;
  const b = loadModelCheckpoint(join(cut.out, 'last.safetensors')).model;
  try {
    for (const [name, tensor] of a.stateDict()) assert.ok(sameBytes(tensor, b.stateDict().get(name)!), `student ${name} differs after the resume`);
  } finally {
    a.dispose();
    b.dispose();
  }
});

test('stcnet train --init takes the student checkpoint and fine-tunes it on labels', async () => {
  const data = await transferData();
  const out = join(data.work, 'student');
  await runTransfer(transferConfig(data, out, { epochs: 1 }));
  const checkpoint = join(out, 'last.safetensors');
  const meta = readCheckpointMeta(checkpoint)!;
  assert.equal(meta.arch, 'stc_resnet3d_18');
  assert.equal(meta.options.frames, 4);
  assert.deepEqual(meta.preprocessing && [meta.preprocessing.frames, meta.preprocessing.size], [4, 32]);
  const logs: string[] = [];
  const ft = validateConfig({
    root: data.root, cache: data.cache, out: join(data.work, 'finetune'), init: checkpoint, model: 'stc_resnet3d_18', frames: 4, size: 32,
    'width-multiplier': 0.25, 'batch-size': 2, epochs: 1, flip: false, workers: 1, quiet: true, 'val-split': 'none',
  }, 'test');
  const summary = await runTraining(ft, { onEvent: (event) => { if (event.type === 'log') logs.push(event.message); } });
  assert.equal(summary.status, 'completed');
  assert.ok(logs.some((line) => line.startsWith(`init: loaded ${checkpoint}`)), logs.join('\n'));
  assert.ok(logs.some((line) => /replaced it with a new one/.test(line)), 'the classifier is replaced for the dataset\'s 3 classes');
  // The fine-tuned model started from the student: its first layer moved only by one epoch of small steps.
  const student = loadModelCheckpoint(checkpoint).model;
  const tuned = loadModelCheckpoint(join(ft.out, 'last.safetensors')).model;
  try {
    assert.equal(tuned.numClasses, 3);
    const s = student.stateDict().get('layer4.1.conv2.weight')!.toFloat32Array();
    const t = tuned.stateDict().get('layer4.1.conv2.weight')!.toFloat32Array();
    let diff = 0;
    let norm = 0;
    for (let i = 0; i < s.length; i++) {
      diff += (s[i]! - t[i]!) ** 2;
      norm += s[i]! ** 2;
    }
    assert.ok(Math.sqrt(diff / norm) < 0.2, `fine-tuning started from the student's weights (relative change ${Math.sqrt(diff / norm)})`);
  } finally {
    student.dispose();
    tuned.dispose();
  }
});

test('without a frame cache the clips are decoded from the video files', async () => {
  const data = await transferData();
  const losses: number[] = [];
  const summary = await runTransfer(transferConfig(data, join(data.work, 'decoded'), { cache: undefined, 'short-side': 36, positions: 1, 'batch-size': 6, epochs: 1 }),
    { onEvent: stepLosses(losses) });
  assert.equal(summary.status, 'completed');
  assert.equal(losses.length, 1);
  assert.ok(Number.isFinite(losses[0]));
});
