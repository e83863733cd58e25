import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, systemPython } from '../helpers.js';
import { predictFixture } from '../train/predict_fixture.js';
import { cudaAvailable } from '../../src/engine/index.js';
import { loadDataset } from '../../src/data/formats/index.js';
import { sampleKey, uniqueSamples } from '../../src/data/dataset.js';
import { prepareCache } from '../../src/video/cache.js';
import { loadModelCheckpoint, saveModelCheckpoint } from '../../src/models/checkpoint.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 300_000 });

interface Report {
  kind: string; arch: string; checkpoint: string; videos: number; clips: number; clipsPerVideo: number; cropsPerClip: number;
  clipTop1: number; clipTop5: number; videoTop1: number; videoTop5: number; clipMeanClassAccuracy: number; videoMeanClassAccuracy: number;
  classes: string[]; confusion: number[][]; perClass: { class: string; videos: number; correct: number; accuracy: number }[];
  dataset: { root: string; format: string; split: string }; preprocessing: { frames: number; size: number; shortSide?: number };
}

/** A stcnet safetensors file re-saved as Hara et al.'s train.py saves (DataParallel keys, no num_batches_tracked). */
const HARA_SAVE = `
import json, struct, sys, torch
data = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', data[:8])[0]
header = json.loads(data[8:8 + n])
state = {}
for name, info in header.items():
    if name == '__metadata__' or name.endswith('num_batches_tracked'):
        continue
    assert info['dtype'] == 'F32', info
    begin, end = info['data_offsets']
    state['module.' + name] = torch.frombuffer(bytearray(data[8 + n + begin:8 + n + end]), dtype=torch.float32).reshape(info['shape']).clone()
torch.save({'epoch': 1, 'arch': 'resnet-18', 'state_dict': state, 'optimizer': {}}, sys.argv[2])
`;

const readReport = (dir: string) => JSON.parse(readFileSync(join(dir, 'report.json'), 'utf8')) as Report;
const csvRows = (file: string) => readFileSync(file, 'utf8').trimEnd().split('\n').map((line) => line.split(','));
const noTemporaries = (dir: string) => readdirSync(dir).filter((name) => /\.tmp-\d+-/.test(name));

test('stcnet eval CHECKPOINT on a generated dataset: every figure, CSV and chart, consistent with each other and with stcnet predict', async () => {
  const fixture = await predictFixture();
  const out = join(fixture.work, 'eval-a');
  const result = run('eval', fixture.checkpoint, '--data', fixture.data, '--format', 'ucf101', '--split', 'test1', '--clips', '2', '--workers', '1', '--out', out);
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /^clip accuracy {3}top-1 \d+\.\d% {2}top-5 100\.0% {2}mean class \d+\.\d% {2}\(16 clips\)$/m);
  assert.match(result.stdout, /^video accuracy {2}top-1 \d+\.\d% {2}top-5 100\.0% {2}mean class \d+\.\d% {2}\(8 videos, 2 clips each; chance 25\.0%\)$/m);
  assert.match(result.stderr, /eval: stc_resnet3d_18 from .*model\.safetensors on ucf101 .* split test1: 8 videos, 2 clips per video, 4×32²/);
  assert.match(result.stderr, /clips\/s ETA/);
  assert.deepEqual(readdirSync(out).sort(), ['confusion.csv', 'confusion.png', 'confusion.svg', 'per_class.csv', 'report.json', 'videos.csv']);

  const report = readReport(out);
  assert.equal(report.kind, 'stcnet-eval');
  assert.deepEqual([report.arch, report.videos, report.clips, report.clipsPerVideo, report.cropsPerClip], ['stc_resnet3d_18', 8, 16, 2, 1]);
  assert.deepEqual(report.classes, fixture.classes);
  assert.deepEqual(report.dataset, { root: fixture.data, format: 'ucf101', split: 'test1' });
  assert.equal(report.confusion.flat().reduce((a, b) => a + b, 0), 8);
  assert.deepEqual(report.perClass.map((c) => c.videos), [2, 2, 2, 2]);

  // videos.csv holds each video's prediction; the report's figures follow from it.
  const videos = csvRows(join(out, 'videos.csv'));
  assert.deepEqual(videos[0], ['video', 'label', 'predicted', 'score', 'correct', 'true_rank', 'top5']);
  assert.equal(videos.length, 9);
  const correct = videos.slice(1).filter((row) => row[4] === 'true').length;
  assert.equal(report.videoTop1, correct / 8);
  const perClassCorrect = fixture.classes.map((name) => videos.slice(1).filter((row) => row[1] === name && row[4] === 'true').length);
  assert.deepEqual(report.perClass.map((c) => c.correct), perClassCorrect);
  assert.equal(report.videoMeanClassAccuracy, perClassCorrect.reduce((a, b) => a + b / 2, 0) / 4);
  fixture.classes.forEach((name, i) => {
    fixture.classes.forEach((predicted, j) => {
      assert.equal(report.confusion[i]![j], videos.slice(1).filter((row) => row[1] === name && row[2] === predicted).length, `confusion ${name} → ${predicted}`);
    });
  });
  const perClass = csvRows(join(out, 'per_class.csv'));
  assert.deepEqual(perClass[0], ['index', 'class', 'videos', 'correct', 'accuracy', 'top5_correct', 'top5_accuracy', 'clips', 'clip_correct', 'clip_accuracy', 'predicted', 'precision']);
  assert.deepEqual(perClass.slice(1).map((row) => [row[1], Number(row[2]), Number(row[3]), Number(row[7])]), fixture.classes.map((name, i) => [name, 2, perClassCorrect[i], 4]));
  const confusion = csvRows(join(out, 'confusion.csv'));
  assert.deepEqual(confusion[0], ['true \\ predicted', ...fixture.classes]);
  assert.deepEqual(confusion.slice(1).map((row) => row.slice(1).map(Number)), report.confusion);
  assert.deepEqual([...readFileSync(join(out, 'confusion.png')).subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  assert.match(readFileSync(join(out, 'confusion.svg'), 'utf8'), /Confusion matrix \(videos\)/);

  // stcnet predict on the same videos scores them the same way (the same clips, the same model).
  const files = videos.slice(1).map((row) => join(fixture.data, row[0]!));
  const predicted = run('predict', fixture.checkpoint, ...files, '--clips', '2', '--top', '1', '--json', '--quiet');
  assert.equal(predicted.status, 0, predicted.stderr);
  const json = JSON.parse(predicted.stdout) as { videos: { file: string; top: { label: string; score: number }[] }[] };
  json.videos.forEach((video, i) => {
    assert.equal(video.top[0]!.label, videos[i + 1]![2], video.file);
    assert.ok(Math.abs(video.top[0]!.score - Number(videos[i + 1]![3])) < 2e-6, `${video.file}: ${video.top[0]!.score} vs ${videos[i + 1]![3]}`);
  });
});

test('stcnet eval --dtype bfloat16: the prepared network in bf16 predicts what float32 does, scores within 0.02, and the report says bfloat16', async () => {
  const fixture = await predictFixture();
  const outs = { float32: join(fixture.work, 'eval-f32'), bfloat16: join(fixture.work, 'eval-bf16') };
  for (const [dtype, out] of Object.entries(outs)) {
    const result = run('eval', fixture.checkpoint, '--data', fixture.data, '--format', 'ucf101', '--split', 'test1', '--clips', '2', '--workers', '1',
      '--dtype', dtype, '--out', out, '--quiet');
    assert.equal(result.status, 0, result.stderr);
    assert.equal((readReport(out) as Report & { dtype: string }).dtype, dtype);
  }
  const [f32, bf16] = [outs.float32, outs.bfloat16].map((out) => csvRows(join(out, 'videos.csv')).slice(1));
  assert.equal(bf16!.length, 8);
  bf16!.forEach((row, i) => {
    assert.equal(row[2], f32![i]![2], `${row[0]}: bf16 predicts ${row[2]}, float32 ${f32![i]![2]}`);
    assert.ok(Math.abs(Number(row[3]) - Number(f32![i]![3])) < 0.02, `${row[0]}: score ${row[3]} vs ${f32![i]![3]}`);
  });
  assert.equal(readReport(outs.bfloat16).videoTop1, readReport(outs.float32).videoTop1);
  const bad = run('eval', fixture.checkpoint, '--data', fixture.data, '--dtype', 'float16');
  assert.equal(bad.status, 2);
  assert.match(bad.stderr, /--dtype/);
});

test('stcnet eval RUN_DIR: the run\'s config gives the dataset, cache and split, 3 crops, the report lands in RUN_DIR/eval-SPLIT and a rerun replaces it', async () => {
  const fixture = await predictFixture();
  const runDir = join(fixture.work, 'run');
  mkdirSync(runDir);
  const cache = join(fixture.work, 'cache');
  const dataset = await loadDataset(fixture.data, 'ucf101');
  await prepareCache(cache, uniqueSamples(dataset).map((sample) => ({ key: sampleKey(sample), path: sample.path })), { shortSide: 36, quality: 90, jobs: 2, quiet: true });
  writeFileSync(join(runDir, 'config.json'), JSON.stringify({ root: fixture.data, format: 'ucf101', cache, split: 'train1', 'val-split': 'test1', frames: 4, size: 32 }));
  writeFileSync(join(runDir, 'metrics.jsonl'), '');
  // As stcnet train saves a model trained from a cache: preprocessing without a short side (the cache has it).
  const { model } = loadModelCheckpoint(fixture.checkpoint);
  const { shortSide: _, ...fromCache } = fixture.preprocessing;
  saveModelCheckpoint(join(runDir, 'last.safetensors'), model, { classes: fixture.classes, preprocessing: fromCache });
  model.dispose();
  const first = run('eval', runDir, '--clips', '1', '--crops', '3', '--workers', '1', '--quiet');
  assert.equal(first.status, 0, first.stderr);
  assert.equal(first.stderr, '', 'quiet: no progress');
  const out = join(runDir, 'eval-test1');
  const report = readReport(out);
  assert.deepEqual([report.videos, report.clips, report.clipsPerVideo, report.cropsPerClip], [8, 8, 1, 3]);
  assert.equal(report.checkpoint, join(runDir, 'last.safetensors'));
  assert.deepEqual(report.dataset, { root: fixture.data, format: 'ucf101', split: 'test1', cache }, 'frames from the run\'s cache');
  assert.match(first.stdout, /\(8 videos, 1 clip × 3 crops each; chance 25\.0%\)/);

  const second = run('eval', runDir, '--clips', '2', '--split', 'test2', '--cache', 'none', '--out', out, '--workers', '1', '--quiet');
  assert.equal(second.status, 0, second.stderr);
  const replaced = readReport(out);
  assert.deepEqual([replaced.dataset.split, replaced.clipsPerVideo, replaced.cropsPerClip], ['test2', 2, 1]);
  assert.deepEqual(replaced.dataset, { root: fixture.data, format: 'ucf101', split: 'test2' }, '--cache none decodes the videos');
  assert.equal(replaced.preprocessing.shortSide, 36, 'decoded at the short side of the run\'s cache');

  const notCache = run('eval', runDir, '--cache', fixture.data);
  assert.equal(notCache.status, 2);
  assert.match(notCache.stderr, /is not a frame cache \(no meta\.json\)/);
  assert.deepEqual(noTemporaries(runDir), []);
});

test('stcnet eval on a PyTorch checkpoint in Hara et al.\'s layout (module. prefixes, no num_batches_tracked) given --arch, --frames and --labels', async () => {
  const fixture = await predictFixture();
  const pth = join(fixture.work, 'hara.pth');
  // The safetensors file read by hand (header length, JSON header, raw float32 data) and saved as
  // Hara et al.'s train.py saves: {'epoch', 'arch', 'state_dict' (DataParallel keys), 'optimizer'}.
  const python = spawnSync(systemPython, ['-c', HARA_SAVE, fixture.checkpoint, pth], { encoding: 'utf8' });
  assert.equal(python.status, 0, python.stderr);
  const labels = join(fixture.work, 'classInd.txt');
  writeFileSync(labels, fixture.classes.map((name, i) => `${i + 1} ${name}`).join('\r\n') + '\r\n');
  const out = join(fixture.work, 'eval-pth');
  const result = run('eval', pth, '--arch', 'stc_resnet3d_18', '--frames', '4', '--labels', labels, '--data', fixture.data, '--clips', '1', '--workers', '1', '--out', out, '--quiet');
  assert.equal(result.status, 0, result.stderr);
  const report = readReport(out);
  assert.equal(report.arch, 'stc_resnet3d_18');
  assert.equal(report.videos, 8);
  // No preprocessing in a PyTorch file: Hara et al.'s (16 frames asked of a 4-frame model are not
  // taken; the model's own clip length is), 112² crops.
  assert.deepEqual([report.preprocessing.frames, report.preprocessing.size], [4, 112]);

  const wrongArch = run('eval', pth, '--arch', 'resnet3d_18', '--data', fixture.data, '--out', join(fixture.work, 'never-1'));
  assert.equal(wrongArch.status, 2);
  assert.match(wrongArch.stderr, /hara\.pth does not fit resnet3d_18/);
  assert.ok(!existsSync(join(fixture.work, 'never-1')));
});

test('stcnet eval leaves out a video that cannot be decoded, names it, and scores the rest', async () => {
  const fixture = await predictFixture();
  const data = join(fixture.work, 'data-broken');
  cpSync(fixture.data, data, { recursive: true });
  const broken = readFileSync(join(data, 'testlist01.txt'), 'utf8').split(/\r?\n/)[0]!.trim();
  writeFileSync(join(data, broken), Buffer.from(Array.from({ length: 3000 }, (_, i) => (i * 13 + 5) % 251)));
  const out = join(fixture.work, 'eval-broken');
  const result = run('eval', fixture.checkpoint, '--data', data, '--clips', '1', '--workers', '1', '--out', out, '--quiet');
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stderr, new RegExp(`eval: left out ${join(data, broken).replace(/[.]/g, '\\.')}: `));
  assert.match(result.stdout, /^1 video could not be read and is left out \(see report\.json "failures"\)$/m);
  const report = readReport(out) as Report & { failures: { path: string; reason: string }[] };
  assert.equal(report.videos, 7);
  assert.deepEqual(report.failures.map((f) => f.path), [join(data, broken)]);
  assert.doesNotMatch(report.failures[0]!.reason, /@ 0x/);
});

test('stcnet eval refuses bad input before any work, exit 2, nothing written', async () => {
  const fixture = await predictFixture();
  const out = join(fixture.work, 'never');
  const many = join(fixture.work, 'many.txt');
  writeFileSync(many, Array.from({ length: 400 }, (_, i) => `class ${i}`).join('\n'));
  const cases: [string[], RegExp][] = [
    [['eval', join(fixture.work, 'missing.safetensors'), '--data', fixture.data], /missing\.safetensors: no such checkpoint file or run folder/],
    [['eval', fixture.checkpoint, '--data', fixture.data, '--arch', 'resnet3d_18'], /model\.safetensors: the checkpoint is a stc_resnet3d_18, not resnet3d_18/],
    [['eval', fixture.checkpoint, '--data', fixture.data, '--labels', many], /--labels .*many\.txt: names 400 classes, but the model has 4 outputs/],
    [['eval', fixture.checkpoint, '--data', fixture.data, '--clip', '3'], /unknown flag --clip; did you mean --clips\?/],
    [['eval', fixture.checkpoint, '--data', fixture.data, '--crops', '2'], /--crops expects one of 1, 3, got "2"/],
    [['eval', fixture.checkpoint], /--data ROOT is required for a checkpoint outside a run folder/],
    [['eval', fixture.checkpoint, '--data', join(fixture.work, 'nowhere')], /dataset root .*nowhere does not exist/],
    [['eval', fixture.checkpoint, '--data', fixture.data, '--split', 'test9'], /has no split "test9"; its splits: .*test1/],
    [['eval', fixture.checkpoint, '--data', fixture.data, '--num-classes', '101'], /classifier has 4 outputs, --num-classes says 101/],
  ];
  const reordered = join(fixture.work, 'reordered.txt');
  writeFileSync(reordered, ['MoveLeft', 'MoveRight', 'MoveUp', 'MoveDown'].join('\n'));
  if (!cudaAvailable()) cases.push([['eval', fixture.checkpoint, '--data', fixture.data, '--device', 'cuda'], /--device cuda: this libtorch has no CUDA device/]);
  cases.push([['eval', fixture.checkpoint, '--data', fixture.data, '--labels', reordered], /--labels .*reordered\.txt and the dataset's classes differ at class 0: "MoveLeft" vs "MoveRight"/]);
  for (const [args, message] of cases) {
    const result = run(...args, '--out', out);
    assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, message);
    assert.doesNotMatch(result.stderr, /internal error|\n\s+at /);
    assert.ok(!existsSync(out), `${args.join(' ')} wrote ${out}`);
  }
  // A folder that is not an earlier report is never replaced.
  const precious = join(fixture.work, 'precious');
  mkdirSync(precious);
  writeFileSync(join(precious, 'notes.txt'), 'keep me');
  const refused = run('eval', fixture.checkpoint, '--data', fixture.data, '--out', precious);
  assert.equal(refused.status, 2);
  assert.match(refused.stderr, /--out .*precious: the folder exists and holds something other than an earlier report/);
  assert.deepEqual(readdirSync(precious), ['notes.txt']);
  assert.deepEqual(noTemporaries(fixture.work), []);
});

test('stcnet eval --help shows examples without loading libtorch', () => {
  const probe = `
    import { readFileSync } from 'node:fs';
    process.argv = [process.argv[0], ${JSON.stringify(cli)}, 'eval', '--help'];
    await import(${JSON.stringify(cli)});
    setTimeout(() => process.stderr.write(readFileSync('/proc/self/maps', 'utf8').includes('libtorch') ? 'LOADED' : 'NOT LOADED'), 200);
  `;
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', probe], { encoding: 'utf8' });
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /^stcnet eval: /);
  assert.match(result.stdout, /\nexamples:\n {2}stcnet eval runs\//);
  assert.match(result.stdout, /--crops <string> \[1\|3\]/);
  assert.equal(result.stderr, 'NOT LOADED');
});
