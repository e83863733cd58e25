import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fromTypedArray, tensor, dispose, type Tensor } from '../../src/engine/index.js';
import { encodeSafetensors, parseSafetensors, readSafetensors, writeSafetensors } from '../../src/nn/safetensors.js';
import { UserError } from '../../src/util/errors.js';
import { runPython, tempDir } from '../helpers.js';
import { describe, expectedTensors, WEIGHTS } from './fixtures.js';

function sampleDict(): Map<string, Tensor> {
  return new Map<string, Tensor>([
    ['a.weight', tensor([[1.5, -2.25], [3, 4e-8]])],
    ['b.f64', tensor([Math.PI, -1e300], { dtype: 'float64' })],
    ['c.i64', fromTypedArray(new BigInt64Array([1n, -(2n ** 40n), 9007199254740991n]))],
    ['d.bf16', tensor([1, -0.5, 3.25]).to('bfloat16')],
    ['e.f16', tensor([[0.1, 65504]]).to('float16')],
    ['f.bool', fromTypedArray(new Uint8Array([1, 0, 1]), [3], { dtype: 'bool' })],
    ['g.i8', fromTypedArray(new Int8Array([-128, 127]))],
    ['h.i16', fromTypedArray(new Int16Array([-3, 300]))],
    ['i.i32', fromTypedArray(new Int32Array([2 ** 31 - 1]))],
    ['j.u8', fromTypedArray(new Uint8Array([255, 0]))],
    ['k.scalar', tensor(7)],
    ['l.empty', fromTypedArray(new Float32Array(0), [0, 4])],
    ['m.strided', tensor([[1, 2, 3], [4, 5, 6]]).T()],
  ]);
}

function assertSameDict(actual: Map<string, Tensor>, expected: Map<string, Tensor>): void {
  assert.deepEqual([...actual.keys()], [...expected.keys()]);
  for (const [name, want] of expected) assert.deepEqual(describe(actual.get(name)!), describe(want), name);
}

test('safetensors: TS write → TS read keeps names, order, dtypes, shapes, exact values and metadata', () => {
  const dir = tempDir();
  const dict = sampleDict();
  const path = join(dir, 'model.safetensors');
  writeSafetensors(path, dict, { format: 'pt', epoch: '3' });
  const { tensors, metadata } = readSafetensors(path);
  assertSameDict(tensors, dict);
  assert.deepEqual(metadata, { format: 'pt', epoch: '3' });
  assert.deepEqual(readdirSync(dir), ['model.safetensors'], 'the temporary file is renamed away');
  // The data section starts 8-byte aligned.
  assert.equal(Number(readFileSync(path).readBigUInt64LE(0)) % 8, 0);
  dispose([dict, tensors]);
});

test('safetensors: a file written by Python reads with exact values', () => {
  const { tensors, metadata } = readSafetensors(`${WEIGHTS}state.safetensors`);
  const expected = expectedTensors();
  assert.deepEqual([...tensors.keys()], Object.keys(expected));
  for (const [name, want] of Object.entries(expected)) assert.deepEqual(describe(tensors.get(name)!), want, name);
  assert.deepEqual(metadata, { format: 'pt', source: 'fixtures' });
  dispose(tensors);
});

test('safetensors: TS write → Python (our reader in scripts/reference/weights.py) reads the same values', () => {
  const dict = sampleDict();
  const path = join(tempDir(), 'from-ts.safetensors');
  writeSafetensors(path, dict, { written_by: 'stcnet' });
  const read = JSON.parse(runPython('scripts/reference/weights.py', ['read', path])) as {
    metadata: Record<string, string>; tensors: Record<string, unknown>;
  };
  assert.deepEqual(read.metadata, { written_by: 'stcnet' });
  assert.deepEqual(Object.keys(read.tensors), [...dict.keys()]);
  for (const [name, t] of dict) assert.deepEqual(read.tensors[name], describe(t), name);
  dispose(dict);
});

/** A valid file's bytes, and a helper that rebuilds a file from a header object and data. */
function craft(header: unknown, data = Buffer.alloc(0), lengthOverride?: bigint): Buffer {
  const json = Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(lengthOverride ?? BigInt(json.length));
  return Buffer.concat([prefix, json, data]);
}

function rejects(bytes: Buffer, pattern: RegExp): void {
  const path = join(tempDir(), 'broken.safetensors');
  writeFileSync(path, bytes);
  assert.throws(() => readSafetensors(path), (error: unknown) => {
    assert.ok(error instanceof UserError, `a UserError, got ${String(error)}`);
    assert.ok(error.message.startsWith(`${path}: `), `names the file: ${error.message}`);
    assert.match(error.message, pattern);
    return true;
  });
}

test('safetensors: malformed and truncated files are rejected, naming the file and the problem', () => {
  const good = encodeSafetensors(new Map([['x', tensor([1, 2, 3])], ['y', tensor([4, 5])]]));
  const entry = (dtype: string, shape: number[], offsets: number[]) => ({ dtype, shape, data_offsets: offsets });
  rejects(good.subarray(0, 5), /shorter than the 8-byte header length/);
  rejects(craft('{}', Buffer.alloc(0), 1000n), /header length 1000 is beyond the file size/);
  rejects(good.subarray(0, 20), /header length \d+ is beyond the file size/);
  rejects(good.subarray(0, good.length - 3), /run past the data section .*truncated/);
  rejects(craft('{"x": '), /not valid JSON/);
  rejects(craft('[1, 2]'), /not an object/);
  rejects(craft({ x: entry('F32', [2], [0, 8]) }, Buffer.alloc(4)), /run past the data section/);
  rejects(craft({ x: entry('F32', [2], [0, 8]), y: entry('F32', [1], [4, 8]) }, Buffer.alloc(12)), /overlap/);
  rejects(craft({ x: entry('F32', [1], [4, 8]) }, Buffer.alloc(8)), /unused before tensor "x"/);
  rejects(craft({ x: entry('F32', [1], [0, 4]) }, Buffer.alloc(8)), /trailing bytes/);
  rejects(craft({ x: entry('Q7', [1], [0, 4]) }, Buffer.alloc(4)), /unknown dtype "Q7"/);
  rejects(craft({ x: entry('U32', [1], [0, 4]) }, Buffer.alloc(4)), /dtype U32, which stcnet does not support/);
  rejects(craft({ x: entry('F32', [3], [0, 8]) }, Buffer.alloc(8)), /needs 12 bytes, data_offsets give 8/);
  rejects(craft({ x: entry('F32', [-1], [0, 4]) }, Buffer.alloc(4)), /bad shape/);
  rejects(craft({ x: entry('F32', [1], [4, 0]) }, Buffer.alloc(4)), /bad data_offsets/);
  rejects(craft({ __metadata__: { a: 1 } }), /__metadata__ value "a" is not a string/);
});

test('safetensors: parse from memory, and an empty dict round-trips', () => {
  const bytes = encodeSafetensors(new Map());
  const { tensors, metadata } = parseSafetensors(bytes);
  assert.equal(tensors.size, 0);
  assert.deepEqual(metadata, {});
});
