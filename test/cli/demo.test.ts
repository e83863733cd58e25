import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, tempDir } from '../helpers.js';
import { loadModelCheckpoint } from '../../src/index.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');

test('stcnet demo --quick composes synth, prepare, train, eval, predict and explain into one folder', () => {
  const out = join(tempDir(), 'demo');
  const stdout = execFileSync(process.execPath, [cli, 'demo', '--quick', '--out', out, '--workers', '1', '--quiet'], { encoding: 'utf8', timeout: 600_000 });
  assert.match(stdout, /self-check passed/);
  for (const command of ['synth', 'prepare', 'train', 'eval', 'predict', 'explain']) assert.match(stdout, new RegExp(`\\$ stcnet ${command} `));
  assert.match(stdout, /== result: video top-1 \d+\.\d% on 8 held-out videos of 4 classes \(chance 25\.0%\)/);
  const run = join(out, 'train');
  for (const file of ['config.yaml', 'config.json', 'metrics.jsonl', 'summary.json', 'last.safetensors', 'best.safetensors',
    'plots/loss.png', 'plots/accuracy.svg', 'eval-test1/report.json', 'eval-test1/per_class.csv', 'eval-test1/confusion.png']) {
    assert.ok(existsSync(join(run, file)), `${file} in the run folder`);
  }
  const explained = readdirSync(join(run, 'explain')).sort();
  assert.equal(explained.length, 3, `one video explained: ${explained.join(', ')}`);
  for (const [i, suffix] of ['.cam.jpg', '.cam.mp4', '.explain.json'].entries()) assert.ok(explained[i]!.endsWith(suffix), explained[i]);
  const report = JSON.parse(readFileSync(join(run, 'eval-test1', 'report.json'), 'utf8')) as { videos: number; clips: number; classes: string[]; confusion: number[][] };
  assert.deepEqual(report.classes, ['MoveRight', 'MoveLeft', 'MoveUp', 'MoveDown']);
  assert.equal(report.clips, report.videos * 4);
  assert.equal(report.confusion.flat().reduce((a, b) => a + b, 0), report.videos);
  const epochs = readFileSync(join(run, 'metrics.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { type: string; loss: number })
    .filter((record) => record.type === 'epoch');
  assert.equal(epochs.length, 2);
  assert.ok(epochs.every((record) => Number.isFinite(record.loss)));
  // The checkpoint describes itself: nothing but the file rebuilds the model.
  const { model, meta } = loadModelCheckpoint(join(run, 'best.safetensors'));
  assert.equal(meta.arch, 'stc_resnet3d_18');
  assert.deepEqual(meta.classes, report.classes);
  // Trained from a cache at short side 48: the checkpoint says so, for decoding videos anywhere.
  assert.equal(meta.preprocessing?.shortSide, 48);
  model.dispose();

  // A second run with other data settings refuses the data it finds, naming both, before any work.
  const again = spawnSync(process.execPath, [cli, 'demo', '--quick', '--out', out, '--seed', '3'], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(again.status, 2);
  assert.match(again.stderr, /holds 4 classes × 6 videos, plain scenes, seed 0, this run asks for 4 classes × 6 videos, plain scenes, seed 3/);
  assert.doesNotMatch(again.stderr, /\n\s+at /, 'no stack trace for a user error');
  assert.ok(!existsSync(join(out, 'train-2')), 'no run folder was started');
});

test('stcnet demo with an unknown or unfit --model fails before any work and exits', () => {
  for (const [model, pattern] of [['stc_resnet3d_19', /unknown model "stc_resnet3d_19" \(did you mean "stc_resnet3d_1\d"\?\)/], ['resnet2d_18', /2D image model/]] as const) {
    const out = join(tempDir(), 'demo');
    const result = spawnSync(process.execPath, [cli, 'demo', '--out', out, '--model', model], { encoding: 'utf8', timeout: 60_000 });
    assert.equal(result.signal, null, 'the process exits by itself');
    assert.equal(result.status, 2, result.stderr);
    assert.match(result.stderr, pattern);
    assert.ok(!existsSync(join(out, 'data')), 'no videos were generated');
  }
});

test('stcnet: unknown commands and flags are user errors with exit status 2', () => {
  const unknown = spawnSync(process.execPath, [cli, 'trian'], { encoding: 'utf8' });
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /unknown command "trian" \(did you mean "train"\?\)/);
  const badFlag = spawnSync(process.execPath, [cli, 'demo', '--epochs', 'many'], { encoding: 'utf8' });
  assert.equal(badFlag.status, 2);
  assert.match(badFlag.stderr, /--epochs expects an integer, got "many"/);
  const help = spawnSync(process.execPath, [cli, '--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0);
  for (const name of ['demo', 'synth', 'prepare', 'data', 'train', 'eval', 'predict', 'models', 'convert', 'selfcheck']) assert.match(help.stdout, new RegExp(`\\n  ${name} `));
});
