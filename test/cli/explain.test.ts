import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, tempDir } from '../helpers.js';
import { predictFixture, FIXTURE_CLASSES } from '../train/predict_fixture.js';
import { jpeg } from '../../src/video/jpeg.js';
import { probeVideo } from '../../src/video/probe.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 300_000 });

interface Summary {
  file: string; ok: boolean; error?: string; class?: { index: number; label: string; score: number }; top?: { label: string }[];
  stage?: number; stageShape?: number[]; clipShape?: number[]; frameImportance?: number[]; files?: string[];
}

test('stcnet explain: per video a picture, a video and a JSON of Grad-CAM; an undecodable file is reported and the rest go on', async () => {
  const fixture = await predictFixture();
  const out = join(tempDir('stcnet-explain-'), 'maps');
  const videos = [join(fixture.data, 'MoveLeft', 'v_MoveLeft_g01_c01.mp4'), join(fixture.data, 'MoveUp', 'v_MoveUp_g02_c01.mp4')];
  const garbage = join(fixture.work, 'garbage-explain.mp4');
  writeFileSync(garbage, Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 31 + 7) % 251)));
  const result = run('explain', fixture.checkpoint, videos[0]!, garbage, videos[1]!, '--out', out, '--stage', '2', '--top', '2');
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stderr, new RegExp(`explain: ${garbage}: `));
  assert.match(result.stderr, /explain: 1 of 3 videos could not be decoded/);
  const lines = result.stdout.trimEnd().split('\n');
  assert.match(lines[0]!, new RegExp(`^${videos[0]}: (${FIXTURE_CLASSES.join('|')}) \\d+\\.\\d% \\(stage 2, map 1×4×4; one frame at this stage, the same map in every frame\\)$`));
  assert.match(lines[2]!, new RegExp(`^${garbage}: failed: `));
  assert.deepEqual(readdirSync(out).sort(), ['v_MoveLeft_g01_c01', 'v_MoveUp_g02_c01'].flatMap((name) => [`${name}.cam.jpg`, `${name}.cam.mp4`, `${name}.explain.json`]).sort());
  for (const video of videos) {
    const base = join(out, video.split('/').pop()!.replace('.mp4', ''));
    const summary = JSON.parse(readFileSync(`${base}.explain.json`, 'utf8')) as Summary & { checkpoint: string; arch: string };
    assert.equal(summary.checkpoint, fixture.checkpoint);
    assert.equal(summary.arch, 'stc_resnet3d_18');
    assert.ok(FIXTURE_CLASSES.includes(summary.class!.label));
    assert.equal(summary.top!.length, 2);
    assert.equal(summary.top![0]!.label, summary.class!.label, 'unasked, the explained class is the top one');
    assert.deepEqual([summary.stage, summary.stageShape, summary.clipShape], [2, [1, 4, 4], [4, 32, 32]]);
    assert.equal(summary.frameImportance!.length, 4);
    assert.ok(summary.frameImportance!.every((v) => v >= 0 && v <= 1));
    // 32² frames are repeated 4× to 128²: two rows of 4 tiles with 2-pixel gaps.
    assert.deepEqual(jpeg().header(readFileSync(`${base}.cam.jpg`)), [4 * 128 + 3 * 2, 2 * 128 + 2]);
    const probe = await probeVideo(`${base}.cam.mp4`);
    assert.deepEqual([probe.width, probe.height], [128, 128]);
  }

  const asked = run('explain', fixture.checkpoint, videos[0]!, '--out', out, '--class', 'MoveDown', '--json', '--quiet');
  assert.equal(asked.status, 0, asked.stderr);
  assert.equal(asked.stderr, '');
  const parsed = JSON.parse(asked.stdout) as { videos: Summary[] };
  assert.equal(parsed.videos[0]!.class!.label, 'MoveDown');
  const byIndex = JSON.parse(run('explain', fixture.checkpoint, videos[0]!, '--out', out, '--class', '3', '--json', '--quiet').stdout) as { videos: Summary[] };
  assert.deepEqual(byIndex.videos[0]!.frameImportance, parsed.videos[0]!.frameImportance, 'class 3 is MoveDown, the map is the same');

  const twice = run('explain', fixture.checkpoint, videos[0]!, videos[0]!, '--out', join(out, 'twice'), '--stage', '1', '--quiet');
  assert.equal(twice.status, 0, twice.stderr);
  assert.match(twice.stdout, /\(stage 1, map 2×8×8; strongest in frame [1-4] of 4\)/, 'two frames at stage 1: the strongest is named');
  assert.deepEqual(readdirSync(join(out, 'twice')).filter((name) => name.endsWith('.json')).sort(),
    ['v_MoveLeft_g01_c01-2.explain.json', 'v_MoveLeft_g01_c01.explain.json'], 'a name given twice is made unique');

  // What a killed run leaves (an encoder's temporary file of a process that no longer runs) is removed.
  const stale = join(out, 'twice', '.v_MoveLeft_g01_c01.cam.mp4.tmp-999999-abcdefgh');
  writeFileSync(stale, 'partial');
  assert.equal(run('explain', fixture.checkpoint, videos[0]!, '--out', join(out, 'twice'), '--quiet').status, 0);
  assert.equal(existsSync(stale), false, 'the stale temporary file is gone');

  const none = run('explain', fixture.checkpoint, garbage, '--out', join(out, 'none'), '--quiet');
  assert.equal(none.status, 1, 'no video explained');
  assert.equal(existsSync(join(out, 'none')) ? readdirSync(join(out, 'none')).length : 0, 0);
});

test('stcnet explain: a bad flag, class, video or checkpoint is one line naming it, exit 2, before any work', async () => {
  const fixture = await predictFixture();
  const video = join(fixture.data, 'MoveLeft', 'v_MoveLeft_g01_c01.mp4');
  const out = join(tempDir('stcnet-explain-'), 'maps');
  const cases: [string[], RegExp][] = [
    [['--class', 'Jump'], /--class Jump: not a class name or index of the checkpoint; its classes: MoveRight, MoveLeft, MoveUp, MoveDown/],
    [['--class', '4'], /--class 4: not a class name or index/],
    [['--stage', '5'], /--stage/],
    [['--alpha', '2'], /--alpha/],
  ];
  for (const [flags, message] of cases) {
    const result = run('explain', fixture.checkpoint, video, '--out', out, ...flags);
    assert.equal(result.status, 2, `${flags.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, message);
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    assert.equal(existsSync(out), false, 'nothing written');
  }
  const missing = run('explain', fixture.checkpoint, join(fixture.work, 'nope.mp4'), '--out', out);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /nope\.mp4: no such video file or folder/);
  const notCheckpoint = run('explain', video, video, '--out', out);
  assert.equal(notCheckpoint.status, 2, notCheckpoint.stderr);
  assert.equal(notCheckpoint.stderr.trim().split('\n').length, 1, notCheckpoint.stderr);
});
