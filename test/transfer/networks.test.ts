import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { arange, cat, fromTypedArray, manualSeed, noGrad, randn, tidy, type Tensor } from '../../src/engine/index.js';
import { createModel } from '../../src/models/registry.js';
import { SGD } from '../../src/optim/sgd.js';
import { sameBytes } from '../../src/models/convert.js';
import { NORMALIZATIONS } from '../../src/data/transforms.js';
import { TransferHead } from '../../src/transfer/head.js';
import { loadTeacher, teacherFeatures, teacherFrameIndices } from '../../src/transfer/teacher.js';
import { TeacherCache } from '../../src/transfer/teacher_cache.js';
import { ClipSource } from '../../src/transfer/clip_source.js';
import { listTransferVideos } from '../../src/transfer/videos.js';
import { PairSampler, itemKey } from '../../src/transfer/pairs.js';
import { itemsToLoad, runPairs, type PairNetworks } from '../../src/transfer/pair_batch.js';
import { assertClose, pythonJson, tempDir, type Packed } from '../helpers.js';
import { transferData } from './fixture.js';

test('the head follows the contract: 1024-D projections of each side, 2048 → 512 → 128 → 2, PyTorch names', () => {
  manualSeed(0);
  const head = new TransferHead(128, 512);
  try {
    const shapes = Object.fromEntries([...head.stateDict()].map(([name, t]) => [name, t.shape]));
    assert.deepEqual(shapes, {
      'student_proj.weight': [1024, 128], 'student_proj.bias': [1024],
      'teacher_proj.weight': [1024, 512], 'teacher_proj.bias': [1024],
      'fc1.weight': [512, 2048], 'fc1.bias': [512],
      'fc2.weight': [128, 512], 'fc2.bias': [128],
      'fc3.weight': [2, 128], 'fc3.bias': [2],
    });
    tidy(() => {
      const student = randn([5, 128]);
      const teacher = randn([5, 512]);
      const logits = head.forwardPair(student, teacher);
      assert.deepEqual(logits.shape, [5, 2]);
      // By hand: relu(cat(proj_s, proj_t)) → fc1 → relu → fc2 → relu → fc3.
      const joint = (student.matmul(head.student_proj.weight.T()).add(head.student_proj.bias!)).relu();
      const other = (teacher.matmul(head.teacher_proj.weight.T()).add(head.teacher_proj.bias!)).relu();
      const h1 = head.fc1.forward(cat([joint, other], 1)).relu();
      const expected = head.fc3.forward(head.fc2.forward(h1).relu());
      assertClose(logits.toFloat32Array(), expected.toFloat32Array(), { atol: 1e-5, what: 'head logits' });
      // forward() takes the two feature sets side by side.
      assertClose(head.forward(cat([student, teacher], 1)).toFloat32Array(), logits.toFloat32Array(), { atol: 1e-6, what: 'forward vs forwardPair' });
    });
  } finally {
    head.dispose();
  }
});

test('a torchvision resnet18 .pth loads by name as the teacher, frozen, and gives torchvision\'s pooled features', () => {
  const dir = tempDir();
  const pth = join(dir, 'resnet18.pth');
  const expected = pythonJson<Packed>('test/transfer/torchvision_teacher.py', [pth]);
  const teacher = loadTeacher(pth);
  try {
    assert.equal(teacher.arch, 'resnet2d_18', 'the depth is read from the names');
    assert.equal(teacher.training, false, 'eval mode');
    assert.ok(teacher.parameters().every((p) => !p.requiresGrad), 'no parameter requires a gradient');
    const features = noGrad(() => tidy(() => teacher.forwardFeatures(arange(0, 2 * 3 * 32 * 32).reshape([2, 3, 32, 32]).mul(0.01).sin()).toFloat32Array()));
    assert.deepEqual([2, features.length / 2], expected.shape);
    assertClose(features, expected.data, { rtol: 1e-4, atol: 1e-4, what: 'pooled features' });
  } finally {
    teacher.dispose();
  }
});

test('a stcnet resnet2d checkpoint and a plain state dict in torchvision names load as the same teacher', async () => {
  const data = await transferData();
  const a = loadTeacher(data.teacher);
  const b = loadTeacher(data.teacherPlain);
  try {
    assert.equal(b.arch, 'resnet2d_18');
    assert.equal(b.options.widthMultiplier, 0.25, 'the width is read from conv1');
    for (const [name, tensor] of a.stateDict()) assert.ok(sameBytes(tensor, b.stateDict().get(name)!), name);
  } finally {
    a.dispose();
    b.dispose();
  }
});

/** The networks of a tiny transfer, for step-level tests. */
async function tinyNetworks(cache: boolean) {
  const data = await transferData();
  const samples = await listTransferVideos({ root: data.root, format: 'videos' });
  const source = await ClipSource.create({ samples, source: { kind: 'cache', dir: data.cache }, frames: 4, stride: 1, size: 32, positions: 4, workers: 0 });
  const teacher = loadTeacher(data.teacher);
  manualSeed(1);
  const student = createModel('stc_resnet3d_18', { widthMultiplier: 0.25, frames: 4 });
  const head = new TransferHead(student.numFeatures, teacher.numFeatures);
  const nets: PairNetworks = {
    student, head, teacher, teacherFrames: teacherFrameIndices(4, 2), studentNorm: NORMALIZATIONS.kinetics, teacherNorm: NORMALIZATIONS.imagenet,
    cache: cache ? new TeacherCache(teacher.numFeatures) : null, device: 'cpu',
  };
  const sampler = new PairSampler({ videos: samples.map((_, i) => i), positions: 4, negatives: 1, seed: 0 });
  const dispose = async () => {
    student.dispose();
    head.dispose();
    teacher.dispose();
    await source.close();
  };
  return { nets, source, sampler, dispose };
}

const snapshot = (tensors: Map<string, Tensor>) => new Map([...tensors].map(([name, t]) => [name, t.clone()]));

test('training steps never give the teacher a gradient: its weights and BatchNorm statistics stay bit-identical, the student\'s change', async () => {
  const { nets, source, sampler, dispose } = await tinyNetworks(false);
  const teacherBefore = snapshot(nets.teacher.stateDict());
  const studentBefore = snapshot(nets.student.stateDict());
  const optimizer = new SGD([...nets.student.parameters(), ...nets.head.parameters()], { lr: 0.1, momentum: 0.9 });
  // Even an optimizer that (wrongly) held the teacher's parameters would find no gradient to apply.
  const teacherOptimizer = new SGD(nets.teacher.parameters(), { lr: 1 });
  try {
    nets.student.train();
    nets.head.train();
    const pairs = sampler.epochPairs(0);
    for (let b = 0; b < 4; b++) {
      const batch = pairs.slice(b * 6, (b + 1) * 6);
      const loaded = await source.load(itemsToLoad(batch, null));
      optimizer.zeroGrad();
      const result = runPairs(nets, batch, loaded, true);
      assert.equal(result.pairs, 6);
      assert.ok(Number.isFinite(result.loss));
      assert.ok(nets.teacher.parameters().every((p) => p.grad === null), 'no teacher parameter has a gradient');
      assert.equal(nets.teacher.training, false);
      optimizer.step();
      teacherOptimizer.step();
    }
    for (const [name, tensor] of nets.teacher.stateDict()) assert.ok(sameBytes(tensor, teacherBefore.get(name)!), `teacher ${name} changed`);
    const changed = [...nets.student.stateDict()].filter(([name, t]) => !sameBytes(t, studentBefore.get(name)!));
    assert.ok(changed.length > 10, `the student trained (${changed.length} tensors changed)`);
  } finally {
    optimizer.dispose();
    teacherOptimizer.dispose();
    for (const t of [...teacherBefore.values(), ...studentBefore.values()]) t.dispose();
    await dispose();
  }
});

test('the teacher cache gives the features the teacher computes again, and round-trips through its file exactly', async () => {
  const { nets, source, sampler, dispose } = await tinyNetworks(true);
  try {
    const cache = nets.cache!;
    nets.student.eval();
    nets.head.eval();
    // Fill the cache from batches of pairs (features computed several clips at a time).
    const pairs = sampler.epochPairs(0);
    for (let b = 0; b < 4; b++) {
      const batch = pairs.slice(b * 6, (b + 1) * 6);
      runPairs(nets, batch, await source.load(itemsToLoad(batch, cache)), false);
    }
    assert.ok(cache.size >= 12, `${cache.size} rows cached`);
    // Each cached row against the teacher run on that clip alone.
    for (let video = 0; video < 6; video++) {
      for (let position = 0; position < 4; position++) {
        const key = itemKey(video, position);
        if (!cache.has(key)) continue;
        const loaded = await source.load([{ video, position }]);
        const alone = noGrad(() => tidy(() => {
          const pixels = fromTypedArray(loaded.data, [1, 3, 4, 32, 32], { dtype: 'uint8' }).float().div(255);
          const norm = NORMALIZATIONS.imagenet;
          const x = pixels.sub(fromTypedArray(Float32Array.from(norm.mean), [1, 3, 1, 1, 1])).div(fromTypedArray(Float32Array.from(norm.std), [1, 3, 1, 1, 1]));
          return teacherFeatures(nets.teacher, x, nets.teacherFrames).toFloat32Array();
        }));
        assertClose(cache.lookup(key)!, alone, { rtol: 1e-5, atol: 1e-5, what: `cached features of ${key}` });
      }
    }
    // On disk: the same bits back; another fingerprint (another teacher or data) gives an empty cache.
    const file = join(tempDir(), 'teacher_cache.safetensors');
    cache.save(file, 'abc');
    const back = TeacherCache.load(file, nets.teacher.numFeatures, 'abc');
    assert.equal(back.size, cache.size);
    for (let video = 0; video < 6; video++) {
      for (let position = 0; position < 4; position++) {
        const key = itemKey(video, position);
        if (cache.has(key)) assert.deepEqual(back.lookup(key), cache.lookup(key));
      }
    }
    assert.equal(TeacherCache.load(file, nets.teacher.numFeatures, 'other').size, 0);
    assert.equal(TeacherCache.load(join(tempDir(), 'none.safetensors'), nets.teacher.numFeatures, 'abc').size, 0);
  } finally {
    await dispose();
  }
});
