import { test } from 'node:test';
import assert from 'node:assert/strict';
import { appendFileSync, cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runTraining, resumeConfig, type TrainEvent } from '../../src/train/trainer.js';
import { RunDir } from '../../src/train/run_dir.js';
import { acquireLock } from '../../src/video/lock.js';
import { loadDataset } from '../../src/data/formats/index.js';
import { sampleKey, type VideoSample } from '../../src/data/dataset.js';
import { ClipLoader } from '../../src/data/loader.js';
import { FrameCache } from '../../src/video/cache.js';
import { UserError } from '../../src/util/errors.js';
import { tinyConfig, tinyData, type TinyData } from './fixture.js';

/**
 * The run folder is one run's at a time (a lock), videos that fail to load are named and never
 * scored, a damaged metrics.jsonl is an error naming its line, and a finished run resumed does nothing.
 */

function logsOf(into: string[]) {
  return (event: TrainEvent) => {
    if (event.type === 'log') into.push(event.message);
  };
}

function metricsLines(runDir: string): Record<string, unknown>[] {
  return readFileSync(join(runDir, 'metrics.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line));
}

/**
 * A copy of the tiny cache whose frames of `samples` are garbage (their videos fail to load); with
 * the frame file of each sample (what the loader names as the failure).
 */
async function damagedCache(data: TinyData, name: string, samples: VideoSample[]): Promise<{ dir: string; files: Map<VideoSample, string> }> {
  const dir = join(data.work, name);
  cpSync(data.cache, dir, { recursive: true });
  const cache = await FrameCache.open(dir);
  const files = new Map<VideoSample, string>();
  for (const sample of samples) {
    const entry = cache.entry(sampleKey(sample));
    assert.ok(entry, `${sample.path} is in the cache`);
    files.set(sample, cache.filePath(entry));
    writeFileSync(cache.filePath(entry), 'not frames');
  }
  return { dir, files };
}

test('a second run on a locked run folder (fresh or --resume) is refused before any work, naming the holder\'s pid', async () => {
  const data = await tinyData();
  const out = join(data.work, 'locked');
  mkdirSync(out);
  const lock = acquireLock(out, 'stcnet train');
  try {
    await assert.rejects(runTraining(tinyConfig(data, out, { epochs: 1 })),
      (error: Error) => error instanceof UserError && error.message.includes(`pid ${process.pid}`) && error.message.includes('stcnet train'));
    assert.ok(!existsSync(join(out, 'config.json')), 'nothing written');
  } finally {
    lock.release();
  }
  // The folder with only a released lock is empty again; a run there works, and leaves no lock.
  const summary = await runTraining(tinyConfig(data, out, { epochs: 1, 'val-split': 'none' }));
  assert.equal(summary.status, 'completed');
  assert.ok(!existsSync(join(out, '.lock')), 'the lock is released at the end');
  const steps = metricsLines(out).length;

  const again = acquireLock(out, 'stcnet train');
  try {
    await assert.rejects(runTraining(resumeConfig(out), { resume: true }),
      (error: Error) => error instanceof UserError && error.message.includes(`pid ${process.pid}`));
    assert.equal(metricsLines(out).length, steps, 'metrics untouched');
  } finally {
    again.release();
  }
  // An error inside the run releases the lock too.
  appendFileSync(join(out, 'metrics.jsonl'), 'null\n{"type":"step"}\n');
  await assert.rejects(runTraining(resumeConfig(out), { resume: true }), UserError);
  assert.ok(!existsSync(join(out, '.lock')), 'the lock is released after an error');
});

test('an interrupted run releases its lock, and --resume of the finished run does nothing and says it once', async () => {
  const data = await tinyData();
  const out = join(data.work, 'interrupt');
  const controller = new AbortController();
  const stopped = await runTraining(tinyConfig(data, out, { epochs: 1, 'val-split': 'none' }), {
    signal: controller.signal,
    onEvent: (event) => {
      if (event.type === 'step' && event.step === 2) controller.abort();
    },
  });
  assert.equal(stopped.status, 'interrupted');
  assert.ok(!existsSync(join(out, '.lock')));
  const logs: string[] = [];
  const done = await runTraining(resumeConfig(out), { resume: true, onEvent: logsOf(logs) });
  assert.equal(done.status, 'completed');
  assert.ok(logs.some((line) => /^done: 1 epoch, 4 steps;/.test(line)), logs.join('\n'));
  assert.ok(logs.some((line) => /, 1 epoch on cpu$/.test(line)), logs.join('\n'));
  const summaryBefore = readFileSync(join(out, 'summary.json'), 'utf8');

  const again: string[] = [];
  const nothing = await runTraining(resumeConfig(out), { resume: true, onEvent: logsOf(again) });
  assert.equal(nothing.status, 'completed');
  assert.equal(nothing.epochs, 1);
  assert.deepEqual(again, [`resume: ${out} already trained its 1 epoch; nothing to do`]);
  assert.equal(readFileSync(join(out, 'summary.json'), 'utf8'), summaryBefore, 'the summary of the real run stays');
  assert.ok(!existsSync(join(out, '.lock')));
});

test('metrics.jsonl: a damaged last line is dropped on resume; a damaged line before it is an error naming the file and line', async () => {
  const data = await tinyData();
  const out = join(data.work, 'damaged-metrics');
  const controller = new AbortController();
  await runTraining(tinyConfig(data, out, { epochs: 1, 'val-split': 'none' }), {
    signal: controller.signal,
    onEvent: (event) => {
      if (event.type === 'step' && event.step === 2) controller.abort();
    },
  });
  const file = join(out, 'metrics.jsonl');
  const good = readFileSync(file, 'utf8');
  const run = new RunDir(out);
  for (const bad of ['null', '{"type":"step","step":"x","epoch":1}', '{"type":"nope"}', '[1,2]', '{"type":"epoch"', '']) {
    writeFileSync(file, good.replace('\n', `\n${bad}\n`));
    assert.throws(() => run.readMetrics(), (error: Error) => error instanceof UserError && error.message.startsWith(`${file}: line 2: `), `line ${JSON.stringify(bad)}`);
  }
  // A crash mid-append: the last line is cut short, or is null; both are dropped.
  writeFileSync(file, good + '{"type":"step","st');
  assert.equal(run.readMetrics().length, 2);
  writeFileSync(file, good + 'null\n');
  assert.equal(run.readMetrics().length, 2);
  const resumed = await runTraining(resumeConfig(out), { resume: true });
  assert.equal(resumed.status, 'completed');
  assert.deepEqual(metricsLines(out).map((r) => (r.type === 'step' ? r.step : `epoch ${r.epoch}`)), [1, 2, 3, 4, 'epoch 1']);

  // The error reaches the user as such (not an internal TypeError) when a run resumes.
  writeFileSync(file, good.replace('\n', '\nnull\n'));
  await assert.rejects(runTraining(resumeConfig(out), { resume: true }), (error: Error) => error instanceof UserError && /metrics\.jsonl: line 2: /.test(error.message));
});

test('videos that fail to load are named once; a batch with none loaded takes no step; a validation with none loaded is no accuracy and never best', async () => {
  const data = await tinyData();
  const dataset = await loadDataset(data.root, 'ucf101');
  const train = dataset.splits.train1!;
  const val = dataset.splits.test1!;
  // The first batch of epoch 0 in the trainer's own order: the loader draws it from (seed, epoch, position).
  const probe = await ClipLoader.create({
    source: { kind: 'cache', dir: data.cache }, samples: train, mode: 'train', batchSize: 4, frames: 4, size: 32, workers: 1, seed: 0, flip: false,
  });
  let first: VideoSample[];
  try {
    const iterator = probe.epoch(0)[Symbol.asyncIterator]();
    const batch = (await iterator.next()).value!;
    await iterator.return?.();
    first = [...batch.videoIndices].map((index) => train[index]!);
  } finally {
    await probe.close();
  }
  assert.equal(first.length, 4);
  const { dir: cache } = await damagedCache(data, 'cache-bad', [...first, ...val]);
  const out = join(data.work, 'failures');
  const logs: string[] = [];
  const summary = await runTraining(tinyConfig(data, out, { cache, epochs: 2 }), { onEvent: logsOf(logs) });
  assert.equal(summary.status, 'completed');

  for (const sample of first) {
    assert.equal(logs.filter((line) => line.startsWith(`train: left out ${sample.path}: `)).length, 1, `${sample.path} named once:\n${logs.join('\n')}`);
  }
  for (const sample of val) {
    assert.equal(logs.filter((line) => line.startsWith(`validate: left out ${sample.path}: `)).length, 1, `${sample.path} named once`);
  }
  const records = metricsLines(out);
  const steps = records.filter((r) => r.type === 'step');
  assert.ok(steps.every((r) => typeof r.loss === 'number' && Number.isFinite(r.loss)), 'no NaN loss');
  const epoch1Steps = steps.filter((r) => r.epoch === 1);
  assert.deepEqual(epoch1Steps.map((r) => r.batch), [2, 3, 4], 'batch 1 (all failed) took no step');
  assert.ok(logs.some((line) => /^epoch 1, batch 1\/4: skipped/.test(line)), logs.join('\n'));
  const epochs = records.filter((r) => r.type === 'epoch');
  assert.equal(epochs.length, 2);
  for (const epoch of epochs) {
    assert.equal(epoch.valAccuracy, null);
    assert.equal(epoch.best, false);
  }
  assert.equal(epochs[0]!.steps, 3);
  assert.ok(logs.some((line) => /^epoch 1\/2: .*validation: none of the 8 validation clips could be loaded/.test(line)), logs.join('\n'));
  assert.equal(summary.best, null);
  assert.ok(!existsSync(join(out, 'best.safetensors')), 'no best from a validation that scored nothing');
});
