import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { noGrad, tidy, dispose, tensor, type Tensor } from '../../src/engine/index.js';
import { BatchNorm1d, Linear, Sequential, StateDictError, loadStateDict } from '../../src/nn/index.js';
import { createModel, loadModelCheckpoint, type ZooModel } from '../../src/models/index.js';
import { readF32 } from './fixtures.js';
import { haraFixture } from './hara_fixture.js';
import { assertClose } from '../helpers.js';

function logitsOf(model: ZooModel): number[] {
  const { dir, inputShape } = haraFixture();
  return tidy(() => noGrad(() => model.eval().forward(readF32(join(dir, 'hara.input.f32'), inputShape)).toArray())) as number[];
}

function expectedLogits(): number[] {
  const { dir, logitsShape } = haraFixture();
  const t = readF32(join(dir, 'hara.logits.f32'), logitsShape);
  const values = t.toArray() as number[];
  t.dispose();
  return values;
}

test('a BatchNorm state dict without num_batches_tracked loads strictly, the counter set to 0 (as PyTorch)', () => {
  const net = new Sequential(new Linear(3, 2), new BatchNorm1d(2));
  net.train();
  tidy(() => net.forward(tensor([[1, 2, 3], [4, 5, 6]])));
  const counter = net.stateDict().get('1.num_batches_tracked')!;
  assert.equal(counter.item(), 1);
  const dict = new Map([...net.stateDict()].filter(([key]) => !key.endsWith('num_batches_tracked')).map(([k, t]) => [k, t.clone()] as [string, Tensor]));
  const report = net.loadStateDict(dict, { strict: true });
  assert.deepEqual(report, { missing: [], unexpected: [], mismatched: [] });
  assert.equal(counter.item(), 0);
  // A dict with DataParallel's prefix on every key loads too.
  net.loadStateDict(new Map([...dict].map(([key, t]) => [`module.${key}`, t])));
  // Only the counter has a default: a missing running mean still fails a strict load.
  const withoutMean = new Map(dict);
  withoutMean.delete('1.running_mean');
  assert.throws(() => net.loadStateDict(withoutMean), (e: Error) => e instanceof StateDictError && /missing keys: 1\.running_mean$/m.test(e.message));
  dispose([...dict.values()]);
  net.dispose();
});

for (const file of ['hara_legacy.pth', 'hara_zip.pth']) {
  test(`Hara et al.'s checkpoint layout (${file}: module. keys, no num_batches_tracked, optimizer) loads strictly and gives PyTorch's logits`, () => {
    const { dir, arch, options } = haraFixture();
    const dict = loadStateDict(join(dir, file));
    assert.ok(dict.has('conv1.weight') && !dict.has('module.conv1.weight'), 'module. is stripped without being asked');
    assert.ok(![...dict.keys()].some((key) => key.endsWith('num_batches_tracked')));
    const model = createModel(arch, { ...options, init: false });
    model.loadStateDict(dict, { strict: true });
    dispose([...dict.values()]);
    for (const [key, value] of model.stateDict()) if (key.endsWith('num_batches_tracked')) assert.equal(value.item(), 0, key);
    assertClose(logitsOf(model), expectedLogits(), { rtol: 1e-4, atol: 1e-5, what: 'logits' });
    model.dispose();
  });
}

test('loadModelCheckpoint of Hara\'s layout given only the arch: width and classes from the shapes, PyTorch\'s logits', () => {
  const { dir, arch, options } = haraFixture();
  const { model, meta } = loadModelCheckpoint(join(dir, 'hara_legacy.pth'), { arch });
  assert.equal(meta.arch, arch);
  assert.equal(model.options.widthMultiplier, options.widthMultiplier);
  assert.equal(model.numClasses, options.numClasses);
  assertClose(logitsOf(model), expectedLogits(), { rtol: 1e-4, atol: 1e-5, what: 'logits' });
  assert.throws(() => loadModelCheckpoint(join(dir, 'hara_legacy.pth')), /hara_legacy\.pth: a PyTorch checkpoint does not say which model it is; pass its architecture/);
  model.dispose();
});
