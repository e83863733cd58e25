import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { dispose } from '../../src/engine/index.js';
import { loadStateDict } from '../../src/nn/weights.js';
import { readTorchCheckpoint, tensorsIn, findStateDict } from '../../src/nn/torchload.js';
import { tempDir } from '../helpers.js';

/**
 * A pickle of a few hundred bytes can describe a structure with 2^60 paths: list_i = [list_(i-1),
 * list_(i-1)] through the memo (BINPUT/BINGET), and a list that contains itself. Loading it must
 * visit each container once. Built here byte by byte as a legacy torch.save file holding one real
 * tensor beside the junk, so the load also has to succeed.
 */

const op = {
  PROTO: 0x80, STOP: 0x2e, MARK: 0x28, EMPTY_LIST: 0x5d, EMPTY_DICT: 0x7d, EMPTY_TUPLE: 0x29, BINPUT: 0x71, BINGET: 0x68,
  APPEND: 0x61, APPENDS: 0x65, SETITEM: 0x73, DUP: 0x32, TUPLE: 0x74, TUPLE1: 0x85, LIST: 0x6c, BININT1: 0x4b, NONE: 0x4e,
  NEWFALSE: 0x89, POP: 0x30, REDUCE: 0x52, BINPERSID: 0x51, GLOBAL: 0x63, SHORT_BINUNICODE: 0x8c, LONG1: 0x8a, BININT2: 0x4d,
};

const str = (text: string): number[] => [op.SHORT_BINUNICODE, text.length, ...Buffer.from(text, 'latin1')];
const global = (module: string, name: string): number[] => [op.GLOBAL, ...Buffer.from(`${module}\n${name}\n`, 'latin1')];
const pickle = (...body: number[]): number[] => [op.PROTO, 2, ...body, op.STOP];

/** ('storage', torch.FloatStorage, '0', 'cpu', 2, None) as a persistent id, then _rebuild_tensor_v2(storage, 0, (2,), (1,), False, OrderedDict()). */
const TENSOR = [
  ...global('torch._utils', '_rebuild_tensor_v2'), op.MARK,
  op.MARK, ...str('storage'), ...global('torch', 'FloatStorage'), ...str('0'), ...str('cpu'), op.BININT1, 2, op.NONE, op.TUPLE, op.BINPERSID,
  op.BININT1, 0, op.BININT1, 2, op.TUPLE1, op.BININT1, 1, op.TUPLE1, op.NEWFALSE,
  ...global('collections', 'OrderedDict'), op.EMPTY_TUPLE, op.REDUCE,
  op.TUPLE, op.REDUCE,
];

const DEPTH = 60;

function hostileChain(): number[] {
  const bytes = [op.EMPTY_LIST, op.BINPUT, 0, op.POP];
  for (let i = 1; i <= DEPTH; i++) {
    bytes.push(op.EMPTY_LIST, op.MARK, op.BINGET, i - 1, op.BINGET, i - 1, op.APPENDS, op.BINPUT, i);
    if (i < DEPTH) bytes.push(op.POP);
  }
  bytes.push(op.DUP, op.APPEND); // the last list also contains itself
  return bytes;
}

function hostileFile(): string {
  const magic = Buffer.alloc(10);
  let m = 0x1950a86a20f9469cfc6cn;
  for (let i = 0; i < 10; i++, m >>= 8n) magic[i] = Number(m & 0xffn);
  const value = pickle(op.EMPTY_DICT,
    ...str('state_dict'), op.EMPTY_DICT, ...str('w'), ...TENSOR, op.SETITEM, op.SETITEM,
    ...str('junk'), ...hostileChain(), op.SETITEM);
  const storage = Buffer.alloc(16);
  storage.writeBigInt64LE(2n, 0);
  storage.writeFloatLE(1.5, 8);
  storage.writeFloatLE(-2, 12);
  const bytes = Buffer.concat([
    Buffer.from(pickle(op.LONG1, 10, ...magic)),
    Buffer.from(pickle(op.BININT2, 0xe9, 0x03)), // protocol 1001
    Buffer.from(pickle(op.EMPTY_DICT)), // sys_info
    Buffer.from(value),
    Buffer.from(pickle(op.MARK, ...str('0'), op.LIST)), // storage keys
    storage,
  ]);
  assert.ok(bytes.length < 1000, `${bytes.length} bytes`);
  const file = join(tempDir(), 'hostile.pth');
  writeFileSync(file, bytes);
  return file;
}

// The timeout only turns a regression (2^60 visits) into a failure instead of a hang; the assertions count visits.
test('a pickle whose memo shares lists 2^60 ways (and a list inside itself) loads visiting each container once', { timeout: 120_000 }, () => {
  const file = hostileFile();
  const stats = { containers: 0 };
  const root = readTorchCheckpoint(file, { stats });
  const containers = DEPTH + 1 + 2; // the lists, the top dict and the state dict
  assert.equal(stats.containers, containers);
  const counted = { containers: 0 };
  const tensors = tensorsIn(root, new Set(), counted);
  assert.equal(counted.containers, containers);
  assert.equal(tensors.size, 1);
  assert.deepEqual([...findStateDict(root).keys()], ['w']);
  dispose([...tensors]);

  const dict = loadStateDict(file);
  assert.deepEqual([...dict.keys()], ['w']);
  assert.deepEqual(dict.get('w')!.toArray(), [1.5, -2]);
  dispose([...dict.values()]);
});
