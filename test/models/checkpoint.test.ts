import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { manualSeed, randn, noGrad, tidy, dispose, type Tensor } from '../../src/engine/index.js';
import { readSafetensors, writeSafetensors } from '../../src/nn/safetensors.js';
import {
  createModel, saveModelCheckpoint, loadModelCheckpoint, readCheckpointMeta, STCNET_VERSION, type ModelName,
} from '../../src/models/index.js';
import { UserError } from '../../src/util/errors.js';
import { repoRoot, tempDir } from '../helpers.js';

const dir = tempDir('stcnet-checkpoint-');

function logits(model: { forward(x: Tensor): Tensor }, seed: number, shape: number[]): Float32Array {
  manualSeed(seed);
  return tidy(() => noGrad(() => model.forward(randn(shape)).toFloat32Array()));
}

test('createModel records the arch and every resolved option; createModel(arch, options) rebuilds the same shapes', () => {
  const model = createModel('stc_resnext3d_50', { widthMultiplier: 0.25, frames: 8, numClasses: 7, init: false });
  assert.equal(model.arch, 'stc_resnext3d_50');
  assert.deepEqual(model.options, {
    numClasses: 7, frames: 8, inChannels: 3, conv1TemporalSize: 7, conv1TemporalStride: 1, noMaxPool: false,
    widthMultiplier: 0.25, dropout: 0, shortcut: 'B', stcStages: [1, 2, 3], stcPlacement: 'block', reduction: 16,
    cardinality: 32, stemChannels: 16,
  });
  const again = createModel(model.arch, { ...model.options, init: false });
  const shapes = (m: typeof model) => [...m.stateDict()].map(([k, t]) => `${k}:${t.shape.join('x')}`);
  assert.deepEqual(shapes(again), shapes(model));
  model.resetClassifier(3);
  assert.equal(model.options.numClasses, 3);
  for (const name of ['r2plus1d_18', 'resnet2d_18'] as ModelName[]) {
    const m = createModel(name, { numClasses: 4, init: false });
    assert.equal(m.arch, name);
    assert.equal(m.options.numClasses, 4);
    m.dispose();
  }
  dispose([model, again].flatMap((m) => [...m.stateDict().values()]));
});

test('round trip: a small STC model (width 0.25, 8 frames) comes back from the file alone with equal logits', () => {
  manualSeed(3);
  const model = createModel('stc_resnet3d_18', { widthMultiplier: 0.25, frames: 8, numClasses: 5, reduction: { tcb: 4, scb: 8 } });
  // Non-default running statistics, so the buffers are part of what must round-trip.
  model.train();
  manualSeed(4);
  tidy(() => noGrad(() => model.forward(randn([2, 3, 8, 32, 32]))));
  model.eval();
  const file = join(dir, 'small.safetensors');
  const classes = ['a', 'b', 'c', 'd', 'e'];
  const preprocessing = { frames: 8, stride: 2, size: 32, mean: [0.43, 0.4, 0.37], std: [0.23, 0.22, 0.22], shortSide: 40 };
  saveModelCheckpoint(file, model, { classes, preprocessing, extra: { epoch: '3' } });

  // Plain safetensors readers see arch, frames and classes as strings.
  const { tensors, metadata } = readSafetensors(file);
  dispose([...tensors.values()]);
  assert.equal(metadata.arch, 'stc_resnet3d_18');
  assert.equal(metadata.frames, '8');
  assert.deepEqual(JSON.parse(metadata.classes!), classes);
  assert.equal(metadata.stcnet_version, STCNET_VERSION);
  assert.equal(STCNET_VERSION, JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')).version);

  const meta = readCheckpointMeta(file)!;
  assert.equal(meta.arch, 'stc_resnet3d_18');
  assert.deepEqual(meta.classes, classes);
  assert.deepEqual(meta.preprocessing, preprocessing);
  assert.deepEqual(meta.extra, { epoch: '3' });
  assert.deepEqual(meta.options.reduction, { tcb: 4, scb: 8 });

  const { model: loaded, meta: loadedMeta, headReset } = loadModelCheckpoint(file);
  assert.equal(headReset, false);
  assert.equal(loaded.training, true, 'a loaded model is in train mode, as a built one');
  loaded.eval();
  assert.deepEqual(loaded.options, model.options);
  assert.deepEqual(loadedMeta.classes, classes);
  assert.deepEqual(logits(loaded, 9, [2, 3, 8, 32, 32]), logits(model, 9, [2, 3, 8, 32, 32]));
  // The file leaves nothing behind but itself.
  assert.deepEqual(readdirSync(dir).filter((f) => f.includes('small')), ['small.safetensors']);
  model.dispose();
  loaded.dispose();
});

test('fine-tuning load: numClasses different from the checkpoint\'s replaces the classifier after a strict load', () => {
  const model = createModel('resnet3d_10', { widthMultiplier: 0.25, numClasses: 6 });
  const file = join(dir, 'ft.safetensors');
  saveModelCheckpoint(file, model, { classes: ['a', 'b', 'c', 'd', 'e', 'f'] });
  const { model: loaded, headReset, meta } = loadModelCheckpoint(file, { numClasses: 2 });
  assert.equal(headReset, true);
  assert.equal(meta.classes, undefined, 'the file\'s class names describe the replaced head');
  assert.equal(meta.options.numClasses, 2);
  assert.equal(loaded.numClasses, 2);
  assert.equal(loaded.options.widthMultiplier, 0.25);
  model.dispose();
  loaded.dispose();
});

test('extra tensors (optimizer state) ride along and are kept apart from the model\'s', () => {
  const model = createModel('resnet3d_10', { widthMultiplier: 0.25, numClasses: 3 });
  const file = join(dir, 'extra.safetensors');
  const moment = randn([4]);
  saveModelCheckpoint(file, model, { extraTensors: new Map([['optimizer.state.0.momentum_buffer', moment]]), extra: { 'optimizer.json': '{}' } });
  const { model: loaded, extraTensors, meta } = loadModelCheckpoint(file, { keepExtraTensors: true });
  assert.deepEqual([...extraTensors!.keys()], ['optimizer.state.0.momentum_buffer']);
  assert.deepEqual(extraTensors!.get('optimizer.state.0.momentum_buffer')!.toArray(), moment.toArray());
  assert.equal(meta.extra['optimizer.json'], '{}');
  assert.throws(() => saveModelCheckpoint(file, model, { extra: { arch: 'x' } }), /extra metadata key "arch" is reserved/);
  assert.throws(() => saveModelCheckpoint(file, model, { classes: ['only-one'] }), /1 class names for a model with 3 outputs/);
  dispose([moment, ...extraTensors!.values()]);
  model.dispose();
  loaded.dispose();
});

test('a plain state dict has no checkpoint metadata; loading it needs an arch, and frames/width are inferred', () => {
  const model = createModel('stc_resnet3d_18', { widthMultiplier: 0.25, frames: 8, numClasses: 4 });
  const file = join(dir, 'plain.safetensors');
  writeSafetensors(file, model.stateDict());
  assert.equal(readCheckpointMeta(file), null);
  assert.throws(() => loadModelCheckpoint(file), (e: Error) => e instanceof UserError && /plain.safetensors: a plain state dict .*pass its architecture/.test(e.message));
  const { model: loaded } = loadModelCheckpoint(file, { arch: 'stc_resnet3d_18' });
  assert.equal(loaded.options.frames, 8);
  assert.equal(loaded.options.widthMultiplier, 0.25);
  assert.equal(loaded.numClasses, 4);
  assert.throws(() => loadModelCheckpoint(file, { arch: 'resnet3d_18' }), /does not fit resnet3d_18 .*\n.*unexpected keys: layer1\.0\.stc/);
  model.dispose();
  loaded.dispose();
});

test('damaged metadata is a UserError naming the file and the field', () => {
  const model = createModel('resnet3d_10', { widthMultiplier: 0.25, numClasses: 2, init: false });
  const cases: [Record<string, string>, RegExp][] = [
    [{ arch: 'resnet3d_11' }, /bad\.safetensors: checkpoint metadata "arch" is malformed: unknown model "resnet3d_11" \(did you mean "resnet3d_10"/],
    [{ arch: 'resnet3d_10', options: '{"widthMultiplier": 0.25' }, /bad\.safetensors: checkpoint metadata "options" is not valid JSON/],
    [{ arch: 'resnet3d_10', options: '{"widthMultiplier": -1}' }, /bad\.safetensors: checkpoint metadata "options" is malformed: .*widthMultiplier/],
    [{ arch: 'resnet3d_10', options: '{"stcStages": [1]}' }, /"options" has stcStages, which resnet3d_10 does not take/],
    [{ arch: 'resnet3d_10', classes: '"a,b"' }, /bad\.safetensors: checkpoint metadata "classes" is malformed/],
    [{ arch: 'resnet3d_10', frames: 'eight' }, /bad\.safetensors: checkpoint metadata "frames" is not valid JSON/],
    [{ arch: 'resnet3d_10', preprocessing: '{"frames": 8}' }, /bad\.safetensors: checkpoint metadata "preprocessing" is malformed: .*stride/],
  ];
  const file = join(dir, 'bad.safetensors');
  for (const [metadata, pattern] of cases) {
    writeSafetensors(file, model.stateDict(), metadata);
    assert.throws(() => readCheckpointMeta(file), (e: Error) => e instanceof UserError && pattern.test(e.message), JSON.stringify(metadata));
    assert.throws(() => loadModelCheckpoint(file), (e: Error) => e instanceof UserError && pattern.test(e.message));
  }
  writeFileSync(join(dir, 'x.pth'), '');
  assert.throws(() => readCheckpointMeta(join(dir, 'x.pth')), /x\.pth: checkpoint metadata lives in \.safetensors files/);
  assert.throws(() => readCheckpointMeta(join(dir, 'missing.safetensors')), (e: Error) => e instanceof UserError && /missing\.safetensors: no such file/.test(e.message));
  model.dispose();
});
