import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { manualSeed, randn } from '../../src/engine/index.js';
import { createModel } from '../../src/models/registry.js';
import { saveModelCheckpoint } from '../../src/models/checkpoint.js';
import { writeSafetensors } from '../../src/nn/safetensors.js';
import { repoRoot } from '../helpers.js';
import { UserError } from '../../src/util/errors.js';
import { runTransfer, resumeTransferConfig } from '../../src/transfer/transfer.js';
import { validateTransferConfig } from '../../src/transfer/config.js';
import { transferConfig, transferData, type TransferData } from './fixture.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');
const env = { ...process.env, STCNET_THREADS: '1' };

function transfer(args: string[]) {
  return spawnSync(process.execPath, [cli, 'transfer', ...args], { encoding: 'utf8', timeout: 240_000, env });
}

function tinyFlags(data: TransferData, out: string, extra: string[] = []): string[] {
  return [data.root, '--cache', data.cache, '--teacher', data.teacher, '--out', out, '--frames', '4', '--size', '32', '--width-multiplier', '0.25',
    '--teacher-frames', '2', '--positions', '4', '--batch-size', '4', '--val-fraction', '0', '--workers', '1', ...extra];
}

function assertUserError(result: ReturnType<typeof transfer>, pattern: RegExp, out?: string): void {
  assert.equal(result.status, 2, `exit status 2, got ${result.status}; stderr: ${result.stderr}`);
  assert.match(result.stderr, pattern);
  assert.equal(result.stderr.trim().split('\n').length, 1, `one line: ${result.stderr}`);
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
  if (out) assert.ok(!existsSync(out), `${out} must not be created`);
}

/** The same checks in this process (no libtorch start per case): a UserError naming the problem, no run folder. */
async function assertRefused(make: () => Promise<unknown>, pattern: RegExp, out: string): Promise<void> {
  await assert.rejects(make(), (error: Error) => {
    assert.ok(error instanceof UserError, `a UserError, got ${error.stack}`);
    assert.match(error.message, pattern);
    return true;
  });
  assert.ok(!existsSync(out), `${out} must not be created`);
}

test('stcnet transfer: teacher checkpoints with other names are refused, naming the file and what a teacher is', async () => {
  const data = await transferData();
  manualSeed(0);
  const video = createModel('stc_resnet3d_18', { widthMultiplier: 0.25, frames: 4 });
  const threeD = join(data.work, 'video-model.safetensors');
  saveModelCheckpoint(threeD, video);
  const threeDPlain = join(data.work, 'video-model-plain.safetensors');
  writeSafetensors(threeDPlain, video.stateDict());
  video.dispose();
  const random = join(data.work, 'random.safetensors');
  const tensor = randn([4, 4]);
  writeSafetensors(random, new Map([['encoder.weight', tensor]]));
  tensor.dispose();
  const out = join(data.work, 'never');
  const withTeacher = (teacher: string) => tinyFlags(data, out).map((arg, i, all) => (all[i - 1] === '--teacher' ? teacher : arg));
  assertUserError(transfer(withTeacher(threeD)), /teacher: .*video-model\.safetensors is not a 2D ResNet teacher \(it is a stcnet checkpoint of stc_resnet3d_18, a 3D video model\)/, out);
  assertUserError(transfer(withTeacher(random)), /teacher: .*random\.safetensors is not a 2D ResNet teacher \(it has no conv1\.weight; its names begin encoder\.weight\)/, out);
  const run = (teacher: string) => () => runTransfer(transferConfig(data, out, { teacher }));
  await assertRefused(run(threeDPlain), /teacher: .*video-model-plain\.safetensors is not a 2D ResNet teacher \(its conv1\.weight is 5-D \(a 3D video model\)/, out);
  await assertRefused(run(join(data.work, 'missing.pth')), /teacher: .*missing\.pth: no such file/, out);
  await assertRefused(run(data.root), /is a folder, expected a weights file/, out);
  await assertRefused(run(join(data.root, 'classInd.txt')), /unknown weights format "\.txt"/, out);
});

test('stcnet transfer: a student that cannot take the clips, fewer than 2 videos and bad flags are clear errors before any work', async () => {
  const data = await transferData();
  const out = join(data.work, 'never');
  // An STC student built for 8-frame clips cannot take 4-frame ones.
  manualSeed(0);
  const stc = createModel('stc_resnet3d_18', { widthMultiplier: 0.25, frames: 8 });
  const init = join(data.work, 'stc-8-frames.safetensors');
  saveModelCheckpoint(init, stc);
  stc.dispose();
  assertUserError(transfer(tinyFlags(data, out, ['--init', init])),
    /frames: the student .*stc-8-frames\.safetensors \(stc_resnet3d_18\) is built for 8-frame clips and cannot take 4-frame clips .*use --frames 8/, out);
  // One video: no negative pair can be made.
  const one = join(data.work, 'one-video');
  mkdirSync(join(one, 'clips'), { recursive: true });
  const firstClass = readdirSync(data.root).find((name) => name.startsWith('Move'))!;
  const firstVideo = readdirSync(join(data.root, firstClass))[0]!;
  copyFileSync(join(data.root, firstClass, firstVideo), join(one, 'clips', firstVideo));
  const noCache = (root: string) => tinyFlags(data, out).filter((arg, i, all) => arg !== '--cache' && all[i - 1] !== '--cache').map((arg) => (arg === data.root ? root : arg));
  assertUserError(transfer(noCache(one)), /root: .*one-video has 1 video; transfer needs at least 2 \(a negative pair is frames of another video\)/, out);
  assertUserError(transfer([data.root, '--out', out]), /missing --teacher WEIGHTS/, out);

  const run = (overrides: Record<string, unknown>) => () => runTransfer(transferConfig(data, out, overrides));
  await assertRefused(run({ model: 'resnet2d_18' }), /model: resnet2d_18 is a 2D image model; the student must be a 3D video model/, out);
  await assertRefused(run({ init: data.teacher, model: 'resnet3d_18' }), /init: .* is a resnet2d_18 checkpoint, a 2D model/, out);
  await assertRefused(run({ init, model: 'resnet3d_18', frames: 8 }), /init: .*stc-8-frames\.safetensors is a stc_resnet3d_18 checkpoint; give --model stc_resnet3d_18/, out);
  const empty = join(data.work, 'no-videos');
  mkdirSync(empty, { recursive: true });
  await assertRefused(run({ root: empty, cache: undefined }), /has 0 videos; transfer needs at least 2/, out);
  await assertRefused(run({ 'batch-size': 100 }), /batch-size: 6 training videos × 4 positions give 24 pairs per epoch, fewer than one batch of 100/, out);
  await assertRefused(run({ cache: join(data.work, 'no-cache') }), /cache: .*no-cache: no such folder/, out);
  assert.throws(() => transferConfig(data, out, { 'teacher-frames': 8 }), /teacher-frames must be at most frames \(4\)/);
  assert.throws(() => transferConfig(data, out, { negatives: 0 }), /negatives: expected a number > 0, got 0/);
  assert.throws(() => validateTransferConfig({ root: data.root, teacher: data.teacher, out, teacher_frames: 2 }), /unknown key "teacher_frames" \(did you mean "teacher-frames"\?\)/);
  assert.throws(() => resumeTransferConfig(join(data.work, 'nowhere')), /no config\.json there \(not a stcnet transfer run folder/);
});

function exited(child: ChildProcess): Promise<{ code: number | null }> {
  return new Promise((resolve) => child.once('exit', (code) => resolve({ code })));
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

test('stcnet transfer: Ctrl-C saves a checkpoint and exits 130; --resume finishes the run', async () => {
  const data = await transferData();
  const out = join(data.work, 'interrupted');
  // Far more epochs than the test waits for, so the run is still going when the signal comes.
  const child = spawn(process.execPath, [cli, 'transfer', ...tinyFlags(data, out, ['--epochs', '200', '--quiet'])], { stdio: ['ignore', 'pipe', 'pipe'], env });
  let stderr = '';
  child.stderr!.on('data', (chunk) => { stderr += chunk; });
  const done = exited(child);
  await waitFor(() => stepsIn(out) >= 2 || child.exitCode !== null, 'two transfer steps');
  child.kill('SIGINT');
  const { code } = await done;
  assert.equal(code, 130, stderr);
  assert.match(stderr, /interrupted; saving a checkpoint after this step/);
  const summary = JSON.parse(readFileSync(join(out, 'summary.json'), 'utf8'));
  assert.equal(summary.status, 'interrupted');
  const steps = summary.steps as number;
  assert.ok(steps >= 2 && steps < 1200, `stopped early (${steps} steps)`);
  assert.ok(!existsSync(join(out, '.lock')), 'the lock is released');
  // The config cannot change on resume (it would be another run), except workers and quiet.
  assertUserError(transfer(['--resume', out, '--lr', '0.5']), /lr cannot change \(only workers, quiet may\)/);
  // The resumed run continues from the step it saved (stopped again after two more).
  const resumed = spawn(process.execPath, [cli, 'transfer', '--resume', out, '--quiet'], { stdio: ['ignore', 'pipe', 'pipe'], env });
  const resumedDone = exited(resumed);
  await waitFor(() => stepsIn(out) >= steps + 2 || resumed.exitCode !== null, 'two more steps after the resume');
  resumed.kill('SIGINT');
  assert.equal((await resumedDone).code, 130);
  const records = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { type: string; step?: number });
  const numbers = records.filter((r) => r.type === 'step').map((r) => r.step);
  assert.deepEqual(numbers, numbers.map((_, i) => i + 1), 'every step once, in order, across the resume');
});
