import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { manualSeed, noGrad, randn, tidy } from '../../src/engine/index.js';
import { createModel, loadModelCheckpoint, readCheckpointMeta } from '../../src/models/index.js';
import { generateSynth } from '../../src/data/synth.js';
import { loadDataset } from '../../src/data/formats/index.js';
import { sampleKey, uniqueSamples } from '../../src/data/dataset.js';
import { prepareCache } from '../../src/video/cache.js';
import { deflateTwin } from '../../src/train2d/deflate.js';
import { assertClose, repoRoot, tempDir } from '../helpers.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 300_000, env: { ...process.env, STCNET_THREADS: '1' } });

/** 5 shape classes × 4 tiny plain videos and their frame cache. */
let made: Promise<{ root: string; cache: string; work: string }> | undefined;
function shapeData() {
  made ??= (async () => {
    const work = tempDir('stcnet-train2d-');
    const root = join(work, 'shapes');
    const cache = join(work, 'cache');
    await generateSynth({
      out: root, label: 'shape', classes: 4, videosPerClass: 4, width: 48, height: 36, fps: 8, minDuration: 1, maxDuration: 1.5,
      noise: 2, shake: 0, seed: 3, jobs: 2, scene: 'plain', quiet: true,
    });
    const dataset = await loadDataset(root, 'ucf101');
    await prepareCache(cache, uniqueSamples(dataset).map((s) => ({ key: sampleKey(s), path: s.path })), { shortSide: 36, quality: 90, jobs: 2, quiet: true });
    return { root, cache, work };
  })();
  return made;
}

test('a 3D ResNet on one-frame clips is the 2D ResNet of its middle kernel slices (deflateTwin), BN statistics included', () => {
  for (const arch of ['resnet3d_18', 'resnet3d_50'] as const) {
    manualSeed(21);
    const twin = createModel(arch, { frames: 1, widthMultiplier: 0.25, numClasses: 5 });
    noGrad(() => {
      for (const [name, t] of twin.stateDict()) {
        if (name.endsWith('running_mean') || (name.endsWith('.bias') && !name.startsWith('fc'))) t.uniform_(-0.1, 0.1);
        if (name.endsWith('running_var')) t.uniform_(0.5, 1.5);
      }
      twin.fc.weight.mul_(0.05);
    });
    twin.eval();
    const teacher = deflateTwin(twin);
    assert.equal(teacher.arch, arch.replace('3d', '2d'));
    teacher.eval();
    manualSeed(22);
    const frames = randn([3, 3, 40, 40]);
    const expected = noGrad(() => tidy(() => twin.forward(frames.unsqueeze(2)).toFloat32Array()));
    const got = noGrad(() => tidy(() => teacher.forward(frames).toFloat32Array()));
    assertClose(got, expected, { atol: 1e-5, rtol: 0, what: `${teacher.arch} vs ${arch} on one-frame clips` });
    frames.dispose();
    teacher.dispose();
    twin.dispose();
  }
  const clipModel = createModel('resnet3d_18', { frames: 8, widthMultiplier: 0.25 });
  assert.throws(() => deflateTwin(clipModel), /built for 8-frame clips; only a one-frame model is a 2D network/);
  clipModel.dispose();
});

test('stcnet train-2d on generated shape videos lowers the loss and writes a resnet2d teacher that loads by name', async () => {
  const data = await shapeData();
  const out = join(data.work, 'teacher');
  const result = run('train-2d', data.root, '--cache', data.cache, '--out', out, '--width-multiplier', '0.125', '--size', '32',
    '--epochs', '6', '--batch-size', '4', '--optimizer', 'adamw', '--lr', '0.003', '--workers', '1', '--no-flip');
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /train-2d: resnet2d_18 \(as its 3D twin on one-frame clips\)/);
  assert.match(result.stdout, /train-2d: wrote the 2D teacher .*teacher\.safetensors \(resnet2d_18, from best\.safetensors\)/);
  const epochs = readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { type: string; loss: number })
    .filter((r) => r.type === 'epoch');
  assert.equal(epochs.length, 6);
  assert.ok(epochs.at(-1)!.loss < epochs[0]!.loss, `loss went down: ${epochs.map((e) => e.loss.toFixed(3)).join(' → ')}`);
  for (const plot of ['loss.png', 'accuracy.svg']) assert.ok(existsSync(join(out, 'plots', plot)), plot);

  const teacherFile = join(out, 'teacher.safetensors');
  const meta = readCheckpointMeta(teacherFile)!;
  assert.equal(meta.arch, 'resnet2d_18');
  assert.equal(meta.options.widthMultiplier, 0.125);
  assert.deepEqual(meta.classes, ['Rectangle', 'Ellipse', 'Triangle', 'Cross', 'Ell']);
  assert.equal(meta.preprocessing?.frames, 1);
  const teacher = loadModelCheckpoint(teacherFile, { arch: 'resnet2d_18' }).model.eval();
  // The torchvision 2D names, every one (a strict load into a fresh resnet2d_18 of that width).
  const fresh = createModel('resnet2d_18', { widthMultiplier: 0.125, numClasses: 5, init: false });
  assert.deepEqual([...teacher.stateDict().keys()].sort(), [...fresh.stateDict().keys()].sort());
  fresh.dispose();
  // The teacher computes what the trained run's best checkpoint computes on one-frame clips.
  const best = loadModelCheckpoint(join(out, 'best.safetensors')).model.eval();
  manualSeed(4);
  const frames = randn([2, 3, 32, 32]);
  assertClose(noGrad(() => tidy(() => teacher.forward(frames).toFloat32Array())), noGrad(() => tidy(() => best.forward(frames.unsqueeze(2)).toFloat32Array())),
    { atol: 1e-5, rtol: 1e-5, what: 'teacher vs best' });
  frames.dispose();
  teacher.dispose();
  best.dispose();

  // The teacher inflates (the route to `stcnet train --init`).
  const inflated = join(data.work, 'inflated.safetensors');
  const inflate = run('inflate', teacherFile, '--arch', 'stc_resnet3d_18', '--frames', '4', '--num-classes', '4', '--out', inflated);
  assert.equal(inflate.status, 0, inflate.stderr);
  assert.equal(readCheckpointMeta(inflated)!.options.widthMultiplier, 0.125);

  // Resuming a finished run does nothing and leaves the teacher in place.
  const resumed = run('train-2d', '--resume', out);
  assert.equal(resumed.status, 0, resumed.stderr);
  assert.match(resumed.stdout, /already trained its 6 epochs; nothing to do/);
  assert.ok(existsSync(teacherFile));
});

test('stcnet train-2d: bad input is one clear line, exit 2, and no run folder', async () => {
  const data = await shapeData();
  const out = join(data.work, 'never');
  const cases: [string[], RegExp][] = [
    [['train-2d', data.root, '--out', out, '--model', 'resnet3d_18'], /--model expects one of resnet2d_18, resnet2d_34, resnet2d_50, got "resnet3d_18"/],
    [['train-2d', data.root, '--out', out, '--frames', '8'], /unknown flag --frames/],
    [['train-2d', data.root], /missing --out RUN_DIR/],
    [['train-2d', join(data.work, 'nowhere'), '--out', out], /root: .*nowhere: no such dataset folder/],
    [['train-2d', '--resume', join(data.work, 'no-run')], /--resume .*no-run: no config\.json there/],
  ];
  for (const [args, pattern] of cases) {
    const result = run(...args);
    assert.equal(result.status, 2, `${args.join(' ')}: exit 2, got ${result.status}: ${result.stderr}`);
    assert.match(result.stderr, pattern);
    assert.equal(result.stderr.trim().split('\n').length, 1, `one line: ${result.stderr}`);
    assert.ok(!existsSync(out), 'no run folder');
  }
});
