import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fromTypedArray, tensor, dispose } from '../../src/engine/index.js';
import { BatchNorm1d, Linear, ReLU, Sequential } from '../../src/nn/layers.js';
import { loadStateDict, saveStateDict } from '../../src/nn/weights.js';
import { UserError } from '../../src/util/errors.js';
import { assertClose, tempDir } from '../helpers.js';
import { describe, expectedTensors, WEIGHTS } from './fixtures.js';

test('loadStateDict picks the reader by extension; .pt, .pth and .safetensors give the same dict', () => {
  const expected = expectedTensors();
  for (const file of ['state.pt', 'state.safetensors', 'legacy.pth', 'checkpoint.pth', 'model_nested.pt']) {
    const dict = loadStateDict(`${WEIGHTS}${file}`, { stripPrefix: 'module.' });
    assert.deepEqual([...dict.keys()], Object.keys(expected), file);
    for (const [name, want] of Object.entries(expected)) assert.deepEqual(describe(dict.get(name)!), want, `${file}: ${name}`);
    dispose(dict);
  }
});

test('loadStateDict of a zip-format .bin works; a nested checkpoint needs no key; `module.` on every key goes unasked', () => {
  const dir = tempDir();
  copyFileSync(`${WEIGHTS}checkpoint.pth`, join(dir, 'pytorch_model.bin'));
  const dict = loadStateDict(join(dir, 'pytorch_model.bin'));
  assert.ok(dict.size > 0 && [...dict.keys()].every((key) => !key.startsWith('module.')), [...dict.keys()].join());
  assert.ok(dict.has('conv1.weight'));
  dispose(dict);
  const kept = loadStateDict(join(dir, 'pytorch_model.bin'), { stripPrefix: '' });
  assert.ok([...kept.keys()].every((key) => key.startsWith('module.')));
  dispose(kept);
  const explicit = loadStateDict(`${WEIGHTS}checkpoint.pth`, { key: 'state_dict', stripPrefix: 'module.' });
  assert.ok(explicit.has('conv1.weight'));
  dispose(explicit);
});

test('saveStateDict → loadStateDict round trip', () => {
  const path = join(tempDir(), 'w.safetensors');
  const dict = new Map([['fc.weight', tensor([[1, 2], [3, 4]])], ['fc.bias', tensor([0.5, -0.5])]]);
  saveStateDict(path, dict, { arch: 'test' });
  const back = loadStateDict(path);
  for (const [name, t] of dict) assert.deepEqual(describe(back.get(name)!), describe(t));
  dispose([dict, back]);
});

test('loadStateDict errors are UserErrors naming the file', () => {
  const dir = tempDir();
  const cases: [string, string | Buffer, RegExp][] = [
    ['missing.safetensors', '', /no such weights file/],
    ['weights.onnx', 'x', /unknown weights format ".onnx"/],
    ['text.pt', 'hello, not a checkpoint', /not a PyTorch checkpoint/],
    ['short.safetensors', Buffer.from([1, 2]), /not a valid safetensors file/],
  ];
  for (const [name, content, pattern] of cases) {
    const path = join(dir, name);
    if (name !== 'missing.safetensors') writeFileSync(path, content);
    assert.throws(() => loadStateDict(path), (error: unknown) => {
      assert.ok(error instanceof UserError);
      assert.ok(error.message.includes(path), error.message);
      assert.match(error.message, pattern);
      return true;
    }, name);
  }
});

test('a DataParallel checkpoint from PyTorch loads into our Module (strict) and gives PyTorch\'s output', () => {
  const model = new Sequential(new Linear(4, 3), new BatchNorm1d(3), new ReLU(), new Linear(3, 2));
  const dict = loadStateDict(`${WEIGHTS}sequential_dp.pth`, { stripPrefix: 'module.' });
  model.loadStateDict(dict);
  dispose(dict);
  model.eval();
  const { input, output } = JSON.parse(readFileSync(`${WEIGHTS}sequential_dp.json`, 'utf8')) as Record<string, { shape: number[]; values: number[] }>;
  const x = fromTypedArray(new Float32Array(input!.values), input!.shape);
  const y = model.forward(x);
  assertClose(y.toArray(), output!.values, { rtol: 1e-5, atol: 1e-6, what: 'output' });
  dispose([x, y]);
  model.dispose();
});
