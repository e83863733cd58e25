import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { deflateRawSync } from 'node:zlib';
import { dispose, memory, Tensor } from '../../src/engine/index.js';
import { findStateDict, readTorchCheckpoint, tensorsIn } from '../../src/nn/torchload.js';
import { unpickle, PyGlobal } from '../../src/nn/unpickle.js';
import { UserError } from '../../src/util/errors.js';
import { tempDir } from '../helpers.js';
import { describe, expectedTensors, PWNED_MARKER, WEIGHTS } from './fixtures.js';

function isRowMajor(t: Tensor): boolean {
  const shape = t.shape;
  const strides = t.strides;
  let expected = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    if (shape[i] !== 1 && strides[i] !== expected) return false;
    expected *= shape[i]!;
  }
  return true;
}

function assertMatchesFixture(dict: Map<string, Tensor>, file: string): void {
  const expected = expectedTensors();
  assert.deepEqual([...dict.keys()], Object.keys(expected), file);
  for (const [name, want] of Object.entries(expected)) {
    const got = dict.get(name)!;
    assert.deepEqual(describe(got), want, `${file}: ${name}`);
    assert.ok(isRowMajor(got), `${file}: ${name} is contiguous`);
  }
}

test('torch.save zip files (stored and deflated) and legacy files read with exact values', () => {
  for (const file of ['state.pt', 'state_deflated.pt', 'legacy.pth']) {
    const root = readTorchCheckpoint(`${WEIGHTS}${file}`);
    assert.ok(root instanceof Map);
    assertMatchesFixture(findStateDict(root), file);
    dispose(root);
  }
});

test('views: a non-contiguous view and a window at a storage offset come out contiguous and right; shared storages load once', () => {
  const root = readTorchCheckpoint(`${WEIGHTS}state.pt`) as Map<string, Tensor>;
  const transposed = root.get('view.transposed')!;
  assert.deepEqual(transposed.shape, [5, 3]);
  assert.deepEqual(transposed.strides, [3, 1]);
  // shared.whole covers its storage, so it is used as is; shared.row is copied out of it.
  assert.ok(!root.get('shared.row')!.sharesStorageWith(root.get('shared.whole')!));
  dispose(root);
});

test('nested checkpoints: Hara-style {arch, epoch, state_dict, optimizer} and {model, epoch}', () => {
  const hara = readTorchCheckpoint(`${WEIGHTS}checkpoint.pth`) as Map<string, unknown>;
  assert.equal(hara.get('epoch'), 3);
  assert.equal(hara.get('arch'), 'resnet-18');
  const optimizer = hara.get('optimizer') as Map<string, unknown>;
  const state = optimizer.get('state') as Map<number, Map<string, Tensor>>;
  assert.deepEqual(state.get(0)!.get('momentum_buffer')!.toArray(), [1, 1]);
  assertMatchesFixture(findStateDict(hara, { stripPrefix: 'module.' }), 'checkpoint.pth');
  const prefixed = findStateDict(hara);
  assert.ok(prefixed.has('module.conv1.weight'));
  assert.throws(() => findStateDict(hara, { key: 'optimizer' }), /not a state dict/);
  assert.throws(() => findStateDict(hara, { key: 'nope' }), /has no "nope"/);
  dispose(hara);

  const nested = readTorchCheckpoint(`${WEIGHTS}model_nested.pt`) as Map<string, unknown>;
  assert.equal(nested.get('epoch'), 3);
  assertMatchesFixture(findStateDict(nested), 'model_nested.pt');
  dispose(nested);
  assert.throws(() => findStateDict(new Map([['epoch', 3]]), { fileName: 'x.pt' }), /x.pt: no state dict found .*top level: epoch/);
});

test('malicious pickles (os.system via __reduce__, a hand-made os.system, builtins.eval) are refused without running', () => {
  const cases: [string, string][] = [
    ['malicious_reduce.pt', 'posix.system'],
    ['malicious_os_system.pt', 'os.system'],
    ['malicious_eval.pt', 'builtins.eval'],
  ];
  for (const [file, global] of cases) {
    const path = `${WEIGHTS}${file}`;
    assert.throws(() => readTorchCheckpoint(path), (error: unknown) => {
      assert.ok(error instanceof UserError, String(error));
      assert.ok(error.message.startsWith(`${path}: `), error.message);
      assert.ok(error.message.includes(`references ${global},`), error.message);
      return true;
    }, file);
  }
  assert.equal(existsSync(PWNED_MARKER), false, 'nothing ran');
});

test('a corrupt or truncated checkpoint is rejected with the file name', () => {
  const dir = tempDir();
  const bytes = readFileSync(`${WEIGHTS}state.pt`);
  const cut = join(dir, 'cut.pt');
  writeFileSync(cut, bytes.subarray(0, bytes.length - 100));
  assert.throws(() => readTorchCheckpoint(cut), /cut\.pt: .*(zip|truncated)/);
  const legacy = readFileSync(`${WEIGHTS}legacy.pth`);
  const legacyCut = join(dir, 'legacy-cut.pth');
  writeFileSync(legacyCut, legacy.subarray(0, legacy.length - 10));
  assert.throws(() => readTorchCheckpoint(legacyCut), /legacy-cut\.pth: truncated file/);
  const before = memory().tensors;
  assert.throws(() => readTorchCheckpoint(legacyCut));
  assert.equal(memory().tensors, before, 'a failed load frees what it made');
});

test('the unpickler: opcodes torch.save uses, memo, marks, and refusals', () => {
  const hooks = {
    findGlobal: (module: string, name: string) => {
      if (module === 'collections' && name === 'OrderedDict') return new PyGlobal('collections.OrderedDict', () => new Map());
      throw new Error(`refused ${module}.${name}`);
    },
    persistentLoad: (pid: unknown) => ({ pid }),
  };
  // {'a': [1, -2, 300, 70000, 2**70, 1.5, True, None, 'é'], 'b': (memo of a's list)}
  const pickle = Buffer.concat([
    Buffer.from([0x80, 0x02, 0x7d, 0x71, 0x00, 0x28]), // PROTO 2, EMPTY_DICT, BINPUT 0, MARK
    Buffer.from([0x8c, 0x01]), Buffer.from('a'), // SHORT_BINUNICODE 'a'
    Buffer.from([0x5d, 0x71, 0x01, 0x28]), // EMPTY_LIST, BINPUT 1, MARK
    Buffer.from([0x4b, 0x01, 0x4a, 0xfe, 0xff, 0xff, 0xff, 0x4d, 0x2c, 0x01]), // 1, -2, 300
    Buffer.from([0x4a, 0x70, 0x11, 0x01, 0x00]), // 70000
    Buffer.from([0x8a, 0x09, 0, 0, 0, 0, 0, 0, 0, 0, 0x40]), // LONG1 2**70
    Buffer.from([0x47, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0, 0x88, 0x4e]), // 1.5, True, None
    Buffer.from([0x58, 0x02, 0, 0, 0]), Buffer.from('é'), // BINUNICODE
    Buffer.from([0x65]), // APPENDS
    Buffer.from([0x8c, 0x01]), Buffer.from('b'), Buffer.from([0x68, 0x01, 0x85]), // 'b', BINGET 1, TUPLE1
    Buffer.from([0x75, 0x2e]), // SETITEMS, STOP
  ]);
  const { value, end } = unpickle(pickle, hooks);
  assert.equal(end, pickle.length);
  const dict = value as Map<string, unknown>;
  const list = dict.get('a') as unknown[];
  assert.deepEqual(list, [1, -2, 300, 70000, 2n ** 70n, 1.5, true, null, 'é']);
  assert.equal((dict.get('b') as unknown[])[0], list, 'memo returns the same object');
  assert.throws(() => unpickle(Buffer.from('\x80\x02cos\nsystem\n)R.', 'latin1'), hooks), /refused os.system/);
  assert.throws(() => unpickle(Buffer.from([0x80, 0x02, 0x7d]), hooks), /ends early/);
  assert.throws(() => unpickle(Buffer.from([0x80, 0x02, 0xff]), hooks), /unsupported pickle opcode 0xff/);
  assert.throws(() => unpickle(Buffer.from('\x80\x02ccollections\nOrderedDict\n)\x81.', 'latin1'), hooks), /refusing to instantiate collections.OrderedDict/);
});

test('a deflated data.pkl with a storage past its bounds is rejected', () => {
  // A hand-built archive: one float storage of 2 elements, a tensor claiming 3.
  const pickle = Buffer.from(
    '\x80\x02ctorch._utils\n_rebuild_tensor_v2\n((X\x07\x00\x00\x00storagectorch\nFloatStorage\nX\x01\x00\x00\x000X\x03\x00\x00\x00cpuK\x02tQK\x00K\x03\x85K\x01\x85\x89)tR.',
    'latin1');
  const path = join(tempDir(), 'bounds.pt');
  writeFileSync(path, zip([['archive/data.pkl', pickle], ['archive/data/0', Buffer.alloc(8)]]));
  assert.throws(() => readTorchCheckpoint(path), /bounds\.pt: a tensor of size \[3\] .* reaches past its storage 0 \(2 elements\)/);
  assert.equal(tensorsIn(new Map()).size, 0);
});

/** A minimal zip writer (deflate) for hand-built archives. */
function zip(entries: [string, Buffer][]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  for (const [name, data] of entries) {
    const compressed = deflateRawSync(data);
    const nameBytes = Buffer.from(name);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(8, 8);
    local.writeUInt32LE(compressed.length, 18);
    local.writeUInt32LE(data.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE(8, 10);
    central.writeUInt32LE(compressed.length, 20);
    central.writeUInt32LE(data.length, 24);
    central.writeUInt16LE(nameBytes.length, 28);
    central.writeUInt32LE(offset, 42);
    locals.push(local, nameBytes, compressed);
    centrals.push(central, nameBytes);
    offset += 30 + nameBytes.length + compressed.length;
  }
  const directory = Buffer.concat(centrals);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(directory.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, directory, end]);
}
