import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, watch, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot } from '../helpers.js';
import { tinyData, type TinyData } from '../train/fixture.js';
import { loadModelCheckpoint } from '../../src/models/checkpoint.js';
import { TEMPORARY_SIBLING } from '../../src/util/fs.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');

/** The tiny run of the trainer tests, as flags. */
function tinyFlags(data: TinyData, out: string, extra: string[] = []): string[] {
  return ['train', data.root, '--cache', data.cache, '--out', out, '--frames', '4', '--size', '32', '--width-multiplier', '0.125',
    '--batch-size', '4', '--no-flip', '--workers', '1', '--quiet', ...extra];
}

function train(args: string[]) {
  return spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 240_000 });
}

function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
}

function stepsIn(runDir: string): number {
  const file = join(runDir, 'metrics.jsonl');
  if (!existsSync(file)) return 0;
  return readFileSync(file, 'utf8').split('\n').filter((line) => line.includes('"type":"step"')).length;
}

async function waitFor(condition: () => boolean, what: string, timeoutMs = 180_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

function assertUserError(result: ReturnType<typeof train>, pattern: RegExp, out?: string): void {
  assert.equal(result.status, 2, `exit status 2, got ${result.status}; stderr: ${result.stderr}`);
  assert.match(result.stderr, pattern);
  assert.equal(result.stderr.trim().split('\n').length, 1, `one line: ${result.stderr}`);
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
  if (out) assert.ok(!existsSync(out), `${out} must not be created`);
}

test('stcnet train: bad input is one clear line, exit 2, and no run folder', async () => {
  const data = await tinyData();
  const out = join(data.work, 'never');
  assertUserError(train(tinyFlags(data, out).map((a) => (a === data.root ? join(data.work, 'no-such-dataset') : a))),
    /^error: root: .*no-such-dataset: no such dataset folder$/m, out);
  assertUserError(train([...tinyFlags(data, out), '--model', 'stc_resnt3d_18']), /unknown model "stc_resnt3d_18" \(did you mean "stc_resnet3d_18"\?\)/, out);
  assertUserError(train([...tinyFlags(data, out), '--model', 'resnet2d_18']), /model: resnet2d_18 is a 2D image model/, out);
  assertUserError(train([...tinyFlags(data, out), '--model', 'r3d_18']), /width-multiplier: r3d_18 has no such option \(it takes numClasses, inChannels, frames, dropout\)/, out);
  const config = join(data.work, 'typo.yaml');
  writeFileSync(config, `root: ${data.root}\ncache: ${data.cache}\nout: ${out}\nlearning-rate: 0.1\nbatch_size: 4\n`);
  assertUserError(train(['train', '--config', config]), /typo\.yaml: unknown key "learning-rate" \(did you mean "lr"\?\); unknown key "batch_size" \(did you mean "batch-size"\?\)/, out);
  writeFileSync(config, `root: ${data.root}\nout: ${out}\nschedule: cosin\nepochs: 0\n`);
  const twoProblems = train(['train', '--config', config]);
  assertUserError(twoProblems, /schedule: expected one of "step", "multistep", "cosine", "plateau", got "cosin"/, out);
  assert.match(twoProblems.stderr, /epochs: expected a number > 0, got 0/, 'every problem is listed');
  assertUserError(train([...tinyFlags(data, out), '--schedule', 'multistep']), /milestones is required by schedule "multistep"/, out);
  assertUserError(train([...tinyFlags(data, out), '--split', 'train9']), /split: the dataset at .* has no split "train9" \(did you mean "train1"\?\); its splits: train1, test1, train2, test2, train3, test3/, out);
  assertUserError(train([...tinyFlags(data, out), '--freeze', 'layer9']), /freeze: stc_resnet3d_18 has no module "layer9" \(did you mean "layer1"\?\)/, out);

  // An --init checkpoint of another architecture names both.
  const other = join(data.work, 'other-arch');
  const made = train([...tinyFlags(data, other), '--model', 'resnet3d_10', '--epochs', '1', '--val-split', 'none']);
  assert.equal(made.status, 0, made.stderr);
  assertUserError(train([...tinyFlags(data, out), '--init', join(other, 'last.safetensors')]), /last\.safetensors: the checkpoint is a resnet3d_10, not stc_resnet3d_18/, out);

  // A folder that already holds a run is refused (pointing at --resume), and left as it was.
  const before = readdirSync(other).sort();
  assertUserError(train(tinyFlags(data, other)), /--out .*other-arch: the folder is not empty .*to continue that run, use --resume/);
  assert.deepEqual(readdirSync(other).sort(), before);
  assertUserError(train(['train', '--resume', other, '--lr', '0.5']), /--resume continues .* with its saved config; lr cannot change/);
});

test('stcnet train: Ctrl-C saves a loadable checkpoint and exits 130; --resume finishes the run', async () => {
  const data = await tinyData();
  const out = join(data.work, 'sigint');
  // 25 epochs (100 steps): far more than the two it waits for, however fast the machine.
  const child = spawn(process.execPath, [cli, ...tinyFlags(data, out, ['--epochs', '25', '--val-split', 'none'])], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk) => { stderr += chunk; });
  const done = exited(child);
  await waitFor(() => stepsIn(out) >= 2 || child.exitCode !== null, 'two training steps');
  child.kill('SIGINT');
  const { code } = await done;
  assert.equal(code, 130, stderr);
  assert.match(stderr, /interrupted; saving a checkpoint after this step/);
  const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
  assert.equal(summary.status, 'interrupted');
  assert.ok(summary.steps >= 2 && summary.steps < 100, `stopped early (${summary.steps} steps)`);
  const { model, meta } = loadModelCheckpoint(join(out, 'last.safetensors'));
  assert.equal(meta.arch, 'stc_resnet3d_18');
  model.dispose();

  const resumed = train(['train', '--resume', out, '--quiet']);
  assert.equal(resumed.status, 0, resumed.stderr);
  const final = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
  assert.equal(final.status, 'completed');
  assert.equal(final.steps, 100);
  assert.equal(stepsIn(out), 100, 'every step once in metrics.jsonl');
});

test('stcnet train: a second run on a folder in use (--resume or fresh) is refused before any work, naming the first\'s pid', async () => {
  const data = await tinyData();
  const out = join(data.work, 'busy');
  // Far more epochs than the test waits for: the first run is still training whatever the machine's
  // speed, and is stopped with Ctrl-C once the second runs were refused.
  const child = spawn(process.execPath, [cli, ...tinyFlags(data, out, ['--epochs', '500', '--val-split', 'none'])], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk) => { stderr += chunk; });
  const done = exited(child);
  await waitFor(() => stepsIn(out) >= 1 || child.exitCode !== null, 'a training step');
  assert.equal(child.exitCode, null, `the first run is still training; stderr: ${stderr}`);
  const holder = new RegExp(`is in use by another run \\(stcnet train, pid ${child.pid} on `);
  assertUserError(train(['train', '--resume', out, '--quiet']), holder);
  assertUserError(train(tinyFlags(data, out, ['--epochs', '2'])), holder);
  child.kill('SIGINT');
  const { code } = await done;
  assert.equal(code, 130, stderr);
  const steps = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { type: string; step?: number })
    .filter((record) => record.type === 'step').map((record) => record.step);
  assert.deepEqual(steps, steps.map((_, index) => index + 1), 'only the first run wrote metrics.jsonl: every step once, in order');
  assert.ok(!existsSync(join(out, '.lock')), 'the lock is gone after the run');
});

test('stcnet train: SIGKILL while a checkpoint is being written leaves the previous one loadable and resumable', async () => {
  const data = await tinyData();
  const out = join(data.work, 'sigkill');
  // A wider model makes each checkpoint large enough (tens of MB, fsync'd) to be caught mid-write.
  const child = spawn(process.execPath, [cli, ...tinyFlags(data, out, ['--epochs', '3', '--checkpoint-every', '1', '--width-multiplier', '0.5', '--val-split', 'none'])],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  const done = exited(child);
  await waitFor(() => existsSync(join(out, 'last.state.safetensors')) || child.exitCode !== null, 'a first complete checkpoint');
  let caught = false;
  const watcher = watch(out, (_event, name) => {
    if (!caught && name && TEMPORARY_SIBLING.test(String(name))) {
      caught = true;
      child.kill('SIGKILL');
    }
  });
  const { signal } = await done;
  watcher.close();
  assert.equal(signal, 'SIGKILL', 'the run was killed while writing a checkpoint');
  const leftovers = readdirSync(out).filter((name) => TEMPORARY_SIBLING.test(name));
  assert.ok(leftovers.length > 0, 'killed mid-write: a temporary file is left, under its temporary name only');
  const { model } = loadModelCheckpoint(join(out, 'last.safetensors'));
  model.dispose();
  const { model: fromState } = loadModelCheckpoint(join(out, 'last.state.safetensors'));
  fromState.dispose();

  const resumed = train(['train', '--resume', out, '--no-quiet']);
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stdout, /resume: removed \d+ half-written files? of the stopped run/);
  assert.deepEqual(readdirSync(out).filter((name) => TEMPORARY_SIBLING.test(name)), []);
  assert.equal(JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8')).status, 'completed');
});

test('stcnet train: a config file gives the settings, flags override it, and the run folder records the result', async () => {
  const data = await tinyData();
  const out = join(data.work, 'from-config');
  const config = join(data.work, 'recipe.yaml');
  writeFileSync(config, ['root: data', 'cache: cache', 'frames: 4', 'size: 32', 'width-multiplier: 0.125', 'batch-size: 4', 'flip: false',
    'workers: 1', 'epochs: 3', 'optimizer: adamw', 'val-split: none', ''].join('\n'));
  const result = train(['train', '--config', config, '--epochs', '1', '--out', out, '--label-smoothing', '0.1']);
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /done: 1 epoch, 4 steps/);
  const saved = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8'));
  assert.equal(saved.epochs, 1, 'the flag overrides the file');
  assert.equal(saved['label-smoothing'], 0.1);
  assert.equal(saved.optimizer, 'adamw', 'from the file');
  assert.equal(saved.root, data.root, 'paths in a config file are relative to the file');
  const help = spawnSync(process.execPath, [cli, 'train', '--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0);
  assert.match(help.stdout, /examples:\n {2}stcnet synth/);
  assert.match(help.stdout, /--resume <string>/);
});
