import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, tempDir } from '../helpers.js';
import { createModel, manualSeed, saveModelCheckpoint } from '../../src/index.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000 });

test('eval and predict name a file in the way of --out before any clip is scored', () => {
  const dir = tempDir();
  manualSeed(0);
  const model = createModel('stc_resnet3d_18', { numClasses: 2, frames: 4, widthMultiplier: 0.125 });
  const checkpoint = join(dir, 'model.safetensors');
  saveModelCheckpoint(checkpoint, model, { classes: ['a', 'b'] });
  model.dispose();
  const file = join(dir, 'afile');
  writeFileSync(file, 'not a folder');
  const data = join(dir, 'data');
  mkdirSync(data);
  const video = join(dir, 'clip.mp4');
  writeFileSync(video, 'never decoded: the checks come first');

  const evalResult = run('eval', checkpoint, '--data', data, '--format', 'folder', '--out', join(file, 'report'));
  assert.equal(evalResult.status, 2, evalResult.stderr);
  assert.match(evalResult.stderr, new RegExp(`--out ${file}/report: ${file} is a file, not a folder`));

  const timeline = run('predict', checkpoint, video, '--timeline', '--out', join(file, 'timelines'));
  assert.equal(timeline.status, 2, timeline.stderr);
  assert.match(timeline.stderr, new RegExp(`--out ${file}/timelines: ${file} is a file, not a folder`));

  // Timeline flags without --timeline are refused even when they repeat a default value.
  const window = run('predict', checkpoint, video, '--window', '2', '--out', dir);
  assert.equal(window.status, 2, window.stderr);
  assert.match(window.stderr, /--window, --out apply only with --timeline/);
  assert.deepEqual(readdirSync(dir).sort(), ['afile', 'clip.mp4', 'data', 'model.safetensors']);
  assert.ok(!existsSync(join(file, 'report')));
});
