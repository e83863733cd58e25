import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, sharedVideos, sharedVideosAvailable, systemPython } from '../helpers.js';
import { predictFixture } from '../train/predict_fixture.js';
import { cudaAvailable } from '../../src/engine/index.js';
import { loadModelCheckpoint, saveModelCheckpoint } from '../../src/models/checkpoint.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 300_000 });

/** Bytes that are no video, named .mp4. */
function garbageFile(dir: string, name = 'garbage.mp4'): string {
  const file = join(dir, name);
  writeFileSync(file, Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 31 + 7) % 251)));
  return file;
}

test('stcnet predict: a table per video, the undecodable file reported on stderr and in --json, the rest go on', async (t) => {
  if (!sharedVideosAvailable(t, 'test.avi', 'demo_skeleton.mp4')) return;
  const fixture = await predictFixture();
  const garbage = garbageFile(fixture.work);
  const avi = join(sharedVideos, 'test.avi');
  const hd = join(sharedVideos, 'demo_skeleton.mp4'); // 1920×1080 H.264
  const table = run('predict', fixture.checkpoint, avi, garbage, hd, '--clips', '1', '--top', '2', '--workers', '2');
  assert.equal(table.status, 0, table.stderr);
  const lines = table.stdout.trimEnd().split('\n');
  assert.equal(lines[0], `${avi} (1 clip)`);
  assert.match(lines[1]!, /^ {3}1\. (MoveRight|MoveLeft|MoveUp|MoveDown) +\d+\.\d%$/);
  assert.match(lines[2]!, /^ {3}2\. /);
  assert.match(lines[3]!, new RegExp(`^${garbage}: failed: `));
  assert.equal(lines[4], `${hd} (1 clip)`);
  assert.equal(lines.length, 7);
  assert.match(table.stderr, new RegExp(`predict: ${garbage}: `));
  assert.match(table.stderr, /predict: 1 of 3 videos could not be decoded/);
  assert.match(table.stderr, /videos\/s ETA/);

  const json = run('predict', fixture.checkpoint, avi, garbage, hd, '--clips', '1', '--top', '4', '--json', '--quiet');
  assert.equal(json.status, 0, json.stderr);
  const parsed = JSON.parse(json.stdout) as {
    arch: string; clips: number; failed: number;
    videos: { file: string; ok: boolean; clips?: number; top?: { index: number; label: string; score: number }[]; error?: string }[];
  };
  assert.equal(parsed.arch, 'stc_resnet3d_18');
  assert.equal(parsed.failed, 1);
  assert.deepEqual(parsed.videos.map((v) => [v.file, v.ok]), [[avi, true], [garbage, false], [hd, true]]);
  assert.match(parsed.videos[1]!.error!, /\S/);
  assert.doesNotMatch(parsed.videos[1]!.error!, /@ 0x/);
  for (const video of [parsed.videos[0]!, parsed.videos[2]!]) {
    assert.equal(video.clips, 1);
    assert.deepEqual(video.top!.map((t) => t.label).sort(), [...fixture.classes].sort());
    assert.ok(Math.abs(video.top!.reduce((a, t) => a + t.score, 0) - 1) < 1e-5);
  }
  assert.match(json.stderr, new RegExp(`predict: ${garbage}: `), 'failures still on stderr with --quiet');
  assert.doesNotMatch(json.stderr, /ETA/);
});

test('stcnet predict DIR --csv with --labels; exit status 1 when no video could be decoded', async () => {
  const fixture = await predictFixture();
  const labels = join(fixture.work, 'names.txt');
  writeFileSync(labels, 'right\nleft\nup\ndown\n');
  const dir = join(fixture.data, 'MoveUp');
  const csv = run('predict', fixture.checkpoint, dir, '--clips', '1', '--top', '1', '--csv', '--labels', labels, '--quiet');
  assert.equal(csv.status, 0, csv.stderr);
  const rows = csv.stdout.trimEnd().split('\n').map((line) => line.split(','));
  assert.deepEqual(rows[0], ['file', 'rank', 'class_index', 'class', 'score', 'error']);
  assert.deepEqual(rows.slice(1).map((row) => row[0]), readdirSync(dir).sort().map((name) => join(dir, name)));
  for (const row of rows.slice(1)) {
    assert.equal(row[1], '1');
    assert.equal(row[3], ['right', 'left', 'up', 'down'][Number(row[2])]);
  }

  const garbage = garbageFile(fixture.work, 'only.mp4');
  const none = run('predict', fixture.checkpoint, garbage, '--quiet');
  assert.equal(none.status, 1);
  assert.match(none.stdout, /only\.mp4: failed: /);
  assert.match(none.stderr, /predict: 1 of 1 videos could not be decoded/);
});

test('stcnet predict: the decode short side comes from --short-side, else the checkpoint, else a guess that is said', async () => {
  const fixture = await predictFixture();
  const { model } = loadModelCheckpoint(fixture.checkpoint);
  const { shortSide: _, ...noSide } = fixture.preprocessing;
  const checkpoint = join(fixture.work, 'no-short-side.safetensors');
  saveModelCheckpoint(checkpoint, model, { classes: fixture.classes, preprocessing: noSide });
  model.dispose();
  const video = join(fixture.data, 'MoveUp', 'v_MoveUp_g01_c01.mp4');
  const shortSide = (args: string[]) => {
    const result = run('predict', ...args, video, '--clips', '1', '--json');
    assert.equal(result.status, 0, result.stderr);
    const json = JSON.parse(result.stdout) as { preprocessing: { shortSide: number }; shortSideFrom: string };
    return { side: json.preprocessing.shortSide, from: json.shortSideFrom, stderr: result.stderr };
  };
  const guessed = shortSide([checkpoint]);
  assert.deepEqual([guessed.side, guessed.from], [37, 'guess']);
  assert.match(guessed.stderr, /no-short-side\.safetensors does not record the short side its training frames had; decoding at 37 \(--short-side sets it/);
  const given = shortSide([checkpoint, '--short-side', '36']);
  assert.deepEqual([given.side, given.from], [36, 'flag']);
  assert.doesNotMatch(given.stderr, /does not record/);
  const recorded = shortSide([fixture.checkpoint]);
  assert.deepEqual([recorded.side, recorded.from], [36, 'checkpoint']);
});

test('stcnet predict --timeline: windows over a real clip as CSV and chart files; an undecodable file is reported', async (t) => {
  if (!sharedVideosAvailable(t, 'demo.mp4')) return;
  const fixture = await predictFixture();
  const garbage = garbageFile(fixture.work, 'broken.mp4');
  const video = join(sharedVideos, 'demo.mp4'); // 10.0 s
  const out = join(fixture.work, 'timelines');
  const result = run('predict', fixture.checkpoint, garbage, video, '--timeline', '--window', '5', '--step', '5', '--clips', '1', '--top', '2', '--out', out);
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /broken\.mp4: failed: /);
  assert.match(result.stdout, /demo\.mp4 \(10\.00 s, 2 windows of 5 s every 5 s\)\n {2}0\.00–5\.00 s {3}\w+ \d+\.\d%, \w+ \d+\.\d%\n {2}5\.00–10\.00 s {2}\w+ /);
  assert.match(result.stderr, /predict: .*broken\.mp4: /);
  assert.match(result.stderr, /timeline demo\.mp4: 100% 2\/2/);
  assert.deepEqual(readdirSync(out).sort(), ['demo.mp4.timeline.csv', 'demo.mp4.timeline.png', 'demo.mp4.timeline.svg']);
  const csv = readFileSync(join(out, 'demo.mp4.timeline.csv'), 'utf8').trimEnd().split('\n');
  assert.equal(csv[0], 'start,end,top1,top1_score,error,MoveRight,MoveLeft,MoveUp,MoveDown');
  assert.match(csv[1]!, /^0,5,\w+,0\.\d+,,0\.\d+,0\.\d+,0\.\d+,0\.\d+$/);
  assert.match(csv[2]!, /^5,10,/);
  assert.equal(csv.length, 3);
  assert.match(readFileSync(join(out, 'demo.mp4.timeline.svg'), 'utf8'), /demo\.mp4: class scores over time/);
});

test('stcnet predict on a torchvision checkpoint (a plain state dict of r3d_18) given --arch and --labels: torchvision\'s preprocessing', async (t) => {
  if (!sharedVideosAvailable(t, 'v_Basketball_g01_c01.avi')) return;
  const fixture = await predictFixture();
  const pth = join(fixture.work, 'r3d_18.pth');
  const python = spawnSync(systemPython, ['-c', [
    'import sys, torch, torchvision',
    'torch.manual_seed(0)',
    'torch.save(torchvision.models.video.r3d_18(num_classes=4).state_dict(), sys.argv[1])',
  ].join('\n'), pth], { encoding: 'utf8' });
  if (python.status !== 0 && /No module named/.test(python.stderr)) {
    t.skip(`${systemPython} has no torchvision`);
    return;
  }
  assert.equal(python.status, 0, python.stderr);
  const labels = join(fixture.work, 'four.txt');
  writeFileSync(labels, 'alpha\nbeta\ngamma\ndelta\n');
  const video = join(sharedVideos, 'v_Basketball_g01_c01.avi');
  const result = run('predict', pth, video, '--arch', 'r3d_18', '--labels', labels, '--clips', '1', '--top', '4', '--json', '--quiet');
  assert.equal(result.status, 0, result.stderr);
  const json = JSON.parse(result.stdout) as { arch: string; preprocessing: { frames: number; size: number; mean: number[]; std: number[]; shortSide: number };
    videos: { ok: boolean; top: { label: string }[] }[] };
  assert.equal(json.arch, 'r3d_18');
  assert.deepEqual(json.preprocessing, { frames: 16, stride: 1, size: 112, mean: [0.43216, 0.394666, 0.37645], std: [0.22803, 0.22145, 0.216989], shortSide: 128 });
  assert.deepEqual(json.videos[0]!.top.map((c) => c.label).sort(), ['alpha', 'beta', 'delta', 'gamma']);

  const noArch = run('predict', pth, video);
  assert.equal(noArch.status, 2);
  assert.match(noArch.stderr, /r3d_18\.pth: a PyTorch checkpoint does not say which model it is; pass its architecture/);
});

test('stcnet predict refuses bad input before any work, exit 2, nothing written', async () => {
  const fixture = await predictFixture();
  const video = join(fixture.data, 'MoveUp', 'v_MoveUp_g01_c01.mp4');
  const hundred = join(fixture.work, 'hundred.txt');
  writeFileSync(hundred, Array.from({ length: 101 }, (_, i) => `class ${i}`).join('\n'));
  const out = join(fixture.work, 'never');
  const emptyDir = join(fixture.work, 'no-videos');
  mkdirSync(emptyDir, { recursive: true });
  writeFileSync(join(emptyDir, 'notes.txt'), 'not a video');
  const cases: [string[], RegExp][] = [
    [['predict', join(fixture.work, 'missing.safetensors'), video], /missing\.safetensors: no such checkpoint file or run folder/],
    [['predict', fixture.checkpoint, join(fixture.work, 'missing.mp4')], /missing\.mp4: no such video file or folder/],
    [['predict', fixture.checkpoint, video, '--timeline', '--arch', 'r3d_18'], /model\.safetensors: the checkpoint is a stc_resnet3d_18, not r3d_18/],
    [['predict', fixture.checkpoint, video, '--timeline', '--labels', hundred], /names 101 classes, but the model has 4 outputs/],
    [['predict', fixture.checkpoint, video, '--labels', join(fixture.work, 'nolabels.txt')], /nolabels\.txt: no such file or folder/],
    [['predict', fixture.checkpoint, video, '--windows', '3'], /unknown flag --windows; did you mean --window\?/],
    [['predict', fixture.checkpoint, video, '--json', '--csv'], /--json and --csv are two output formats; give one/],
    [['predict', fixture.checkpoint, video, '--window', '3'], /--window applies only with --timeline/],
    [['predict', fixture.checkpoint], /missing CHECKPOINT VIDEO/],
    [['predict', fixture.checkpoint, emptyDir], /a folder without video files/],
    [['predict', fixture.checkpoint, video, '--timeline', '--out', fixture.checkpoint], /--out .*model\.safetensors: is a file, expected a folder/],
  ];
  if (!cudaAvailable()) cases.push([['predict', fixture.checkpoint, video, '--device', 'cuda'], /--device cuda: this libtorch has no CUDA device/]);
  for (const [args, message] of cases) {
    // A timeline case writes into `out` unless refused; --out is refused without --timeline.
    const result = run(...(args.includes('--out') || !args.includes('--timeline') ? args : [...args, '--out', out]));
    assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, message);
    assert.doesNotMatch(result.stderr, /internal error|\n\s+at /);
    assert.ok(!existsSync(out), `${args.join(' ')} created ${out}`);
  }
});

test('stcnet predict --help shows examples without loading libtorch', () => {
  const probe = `
    import { readFileSync } from 'node:fs';
    process.argv = [process.argv[0], ${JSON.stringify(cli)}, 'predict', '--help'];
    await import(${JSON.stringify(cli)});
    setTimeout(() => process.stderr.write(readFileSync('/proc/self/maps', 'utf8').includes('libtorch') ? 'LOADED' : 'NOT LOADED'), 200);
  `;
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', probe], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /^stcnet predict: /);
  assert.match(result.stdout, /\nexamples:\n {2}stcnet predict /);
  assert.match(result.stdout, /--timeline/);
  assert.equal(result.stderr, 'NOT LOADED');
});

test('stcnet predict DIR takes the videos of its subfolders too (a dataset root), sorted, hidden names skipped', async () => {
  const fixture = await predictFixture();
  mkdirSync(join(fixture.data, '.hidden'), { recursive: true });
  writeFileSync(join(fixture.data, '.hidden', 'v_Hidden_g01_c01.mp4'), 'never read');
  const result = run('predict', fixture.checkpoint, fixture.data, '--csv', '--top', '1', '--clips', '1', '--quiet');
  assert.equal(result.status, 0, result.stderr);
  const files = result.stdout.trim().split('\n').slice(1).map((line) => line.split(',')[0]!);
  const expected = ['MoveDown', 'MoveLeft', 'MoveRight', 'MoveUp']
    .flatMap((name) => readdirSync(join(fixture.data, name)).filter((file) => file.endsWith('.mp4')).sort().map((file) => join(fixture.data, name, file)));
  assert.deepEqual(files, expected);
});
