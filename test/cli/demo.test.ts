import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, tempDir } from '../helpers.js';
import { createModel, loadStateDict, tidy } from '../../src/index.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');

test('stcnet demo --quick runs the whole pipeline and leaves a loadable checkpoint and metrics', () => {
  const out = join(tempDir(), 'demo');
  const stdout = execFileSync(process.execPath, [cli, 'demo', '--quick', '--out', out, '--workers', '1'], { encoding: 'utf8', timeout: 180_000 });
  assert.match(stdout, /self-check passed/);
  assert.match(stdout, /video accuracy top-1 \d+\.\d%/);
  const metrics = JSON.parse(readFileSync(join(out, 'metrics.json'), 'utf8')) as {
    history: { epoch: number; loss: number }[]; evaluation: { videos: number; clips: number; confusion: number[][] }; classes: string[];
  };
  assert.deepEqual(metrics.classes, ['MoveRight', 'MoveLeft', 'MoveUp', 'MoveDown']);
  assert.equal(metrics.history.length, 2);
  assert.ok(metrics.history.every((h) => Number.isFinite(h.loss)));
  assert.equal(metrics.evaluation.clips, metrics.evaluation.videos * 4);
  assert.equal(metrics.evaluation.confusion.flat().reduce((a, b) => a + b, 0), metrics.evaluation.videos);
  assert.ok(existsSync(join(out, 'cache', 'index.jsonl')));
  tidy(() => {
    const model = createModel('stc_resnet3d_18', { numClasses: 4, frames: 8, widthMultiplier: 0.25 });
    model.loadStateDict(loadStateDict(join(out, 'model.safetensors')), { strict: true });
    model.dispose();
  });

  // A second run with other settings refuses the data it finds, naming both.
  const again = spawnSync(process.execPath, [cli, 'demo', '--quick', '--out', out, '--seed', '3'], { encoding: 'utf8' });
  assert.equal(again.status, 2);
  assert.match(again.stderr, /holds 4 classes × 6 videos, plain scenes, seed 0, this run asks for 4 classes × 6 videos, plain scenes, seed 3/);
  assert.doesNotMatch(again.stderr, /at .*\.js/, 'no stack trace for a user error');
});

test('stcnet: unknown commands and flags are user errors with exit status 2', () => {
  const unknown = spawnSync(process.execPath, [cli, 'trian'], { encoding: 'utf8' });
  assert.equal(unknown.status, 2);
  assert.match(unknown.stderr, /unknown command "trian"/);
  const badFlag = spawnSync(process.execPath, [cli, 'demo', '--epochs', 'many'], { encoding: 'utf8' });
  assert.equal(badFlag.status, 2);
  assert.match(badFlag.stderr, /--epochs expects an integer, got "many"/);
  const help = spawnSync(process.execPath, [cli, '--help'], { encoding: 'utf8' });
  assert.equal(help.status, 0);
  for (const name of ['demo', 'synth', 'prepare', 'data', 'models', 'convert', 'selfcheck']) assert.match(help.stdout, new RegExp(`\\n  ${name} `));
});
