import { closeSync, openSync, renameSync, unlinkSync, writeSync, fsyncSync } from 'node:fs';
import { fromTypedArray, bytesPerElement, type DType, type Tensor } from '../engine/index.js';
import { UserError } from '../util/errors.js';
import { fsUserError, temporarySibling } from '../util/fs.js';
import { bufferSource, openFileSource, type ByteSource } from './bytesource.js';

/**
 * safetensors, read and written by our own code. Layout: an 8-byte little-endian header length N,
 * N bytes of JSON `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {k: v}}`,
 * then the tensors' raw little-endian bytes, offsets relative to the end of the header.
 */

export type SafetensorsDType = 'F64' | 'F32' | 'F16' | 'BF16' | 'I64' | 'I32' | 'I16' | 'I8' | 'U8' | 'BOOL';

const TO_DTYPE: Record<SafetensorsDType, DType> = {
  F64: 'float64', F32: 'float32', F16: 'float16', BF16: 'bfloat16',
  I64: 'int64', I32: 'int32', I16: 'int16', I8: 'int8', U8: 'uint8', BOOL: 'bool',
};
const FROM_DTYPE = Object.fromEntries(Object.entries(TO_DTYPE).map(([code, dtype]) => [dtype, code])) as Record<DType, SafetensorsDType>;
/** Names the format defines that we cannot hold, so the error can say "unsupported" rather than "unknown". */
const KNOWN_UNSUPPORTED = new Set(['U16', 'U32', 'U64', 'F8_E4M3', 'F8_E5M2', 'C64']);
/** The reference implementation refuses headers above 100 MB; so do we, before allocating. */
const MAX_HEADER_BYTES = 100_000_000;

export interface SafetensorsEntry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  /** Byte range within the data section. */
  begin: number;
  end: number;
}

export interface SafetensorsHeader {
  entries: SafetensorsEntry[];
  metadata: Record<string, string>;
  /** File offset where the data section starts (8 + header length). */
  dataStart: number;
}

export interface SafetensorsContents {
  tensors: Map<string, Tensor>;
  metadata: Record<string, string>;
}

function malformed(source: ByteSource, what: string): UserError {
  return new UserError(`${source.name}: not a valid safetensors file: ${what}`);
}

/** Parses and validates the header against the source's size; reads no tensor data. */
export function readSafetensorsHeader(source: ByteSource): SafetensorsHeader {
  if (source.size < 8) throw malformed(source, `file is ${source.size} bytes, shorter than the 8-byte header length`);
  const headerLength = source.read(0, 8).readBigUInt64LE(0);
  if (headerLength > BigInt(source.size - 8)) {
    throw malformed(source, `header length ${headerLength} is beyond the file size (${source.size} bytes; truncated file?)`);
  }
  if (headerLength > BigInt(MAX_HEADER_BYTES)) throw malformed(source, `header length ${headerLength} exceeds ${MAX_HEADER_BYTES} bytes`);
  const length = Number(headerLength);
  const text = source.read(8, length).toString('utf8');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw malformed(source, `header is not valid JSON (${(error as Error).message})`);
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw malformed(source, 'header JSON is not an object');

  const dataStart = 8 + length;
  const dataLength = source.size - dataStart;
  const metadata: Record<string, string> = {};
  const entries: SafetensorsEntry[] = [];
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (value === null || typeof value !== 'object' || Array.isArray(value)) throw malformed(source, '__metadata__ is not an object');
      for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
        if (typeof item !== 'string') throw malformed(source, `__metadata__ value "${key}" is not a string`);
        metadata[key] = item;
      }
      continue;
    }
    entries.push(parseEntry(source, name, value));
  }

  // The data section must be covered exactly: no gaps, no overlaps, nothing past its end.
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let covered = 0;
  for (const entry of sorted) {
    if (entry.end > dataLength) {
      throw malformed(source, `tensor "${entry.name}" data_offsets [${entry.begin}, ${entry.end}] run past the data section ` +
        `(${dataLength} bytes; truncated file?)`);
    }
    if (entry.begin < covered) throw malformed(source, `tensor "${entry.name}" data_offsets [${entry.begin}, ${entry.end}] overlap another tensor`);
    if (entry.begin > covered) throw malformed(source, `data_offsets leave bytes ${covered}..${entry.begin} unused before tensor "${entry.name}"`);
    covered = entry.end;
  }
  if (covered !== dataLength) throw malformed(source, `data section is ${dataLength} bytes but the tensors cover ${covered} (trailing bytes)`);
  return { entries, metadata, dataStart };
}

function parseEntry(source: ByteSource, name: string, value: unknown): SafetensorsEntry {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) throw malformed(source, `tensor "${name}" is not an object`);
  const { dtype, shape, data_offsets: offsets } = value as Record<string, unknown>;
  if (typeof dtype !== 'string') throw malformed(source, `tensor "${name}" has no dtype`);
  if (!(dtype in TO_DTYPE)) {
    throw malformed(source, KNOWN_UNSUPPORTED.has(dtype) ? `tensor "${name}" has dtype ${dtype}, which stcnet does not support`
      : `tensor "${name}" has unknown dtype "${dtype}"`);
  }
  if (!Array.isArray(shape) || !shape.every((size) => Number.isSafeInteger(size) && size >= 0)) {
    throw malformed(source, `tensor "${name}" has a bad shape ${JSON.stringify(shape)}`);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0) || offsets[0] > offsets[1]) {
    throw malformed(source, `tensor "${name}" has bad data_offsets ${JSON.stringify(offsets)}`);
  }
  const code = dtype as SafetensorsDType;
  const expected = (shape as number[]).reduce((a, b) => a * b, 1) * bytesPerElement(TO_DTYPE[code]);
  const [begin, end] = offsets as [number, number];
  if (end - begin !== expected) {
    throw malformed(source, `tensor "${name}" of shape [${shape.join(', ')}] ${dtype} needs ${expected} bytes, data_offsets give ${end - begin}`);
  }
  return { name, dtype: code, shape: shape as number[], begin, end };
}

/** Reads every tensor of a safetensors source (one tensor's bytes in memory at a time). */
export function readSafetensorsFrom(source: ByteSource): SafetensorsContents {
  const header = readSafetensorsHeader(source);
  const tensors = new Map<string, Tensor>();
  try {
    for (const entry of header.entries) {
      const bytes = source.read(header.dataStart + entry.begin, entry.end - entry.begin);
      tensors.set(entry.name, fromTypedArray(bytes, entry.shape, { dtype: TO_DTYPE[entry.dtype] }));
    }
  } catch (error) {
    for (const tensor of tensors.values()) tensor.dispose();
    throw error;
  }
  return { tensors, metadata: header.metadata };
}

export function readSafetensors(path: string): SafetensorsContents {
  let source: ByteSource;
  try {
    source = openFileSource(path);
  } catch (error) {
    throw fsUserError(error, path);
  }
  try {
    return readSafetensorsFrom(source);
  } finally {
    source.close();
  }
}

export function parseSafetensors(bytes: Uint8Array, name = '<buffer>'): SafetensorsContents {
  return readSafetensorsFrom(bufferSource(bytes, name));
}

export type TensorDict = Map<string, Tensor> | Record<string, Tensor>;

function entriesOf(tensors: TensorDict): [string, Tensor][] {
  return tensors instanceof Map ? [...tensors.entries()] : Object.entries(tensors);
}

/** The header bytes (length prefix included) for these tensors, in the given order. */
function encodeHeader(tensors: [string, Tensor][], metadata: Record<string, string> | undefined): Buffer {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) {
    for (const [key, value] of Object.entries(metadata)) {
      if (typeof value !== 'string') throw new TypeError(`safetensors metadata "${key}" must be a string`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const [name, tensor] of tensors) {
    if (name === '__metadata__') throw new TypeError('a tensor cannot be named "__metadata__"');
    const dtype = FROM_DTYPE[tensor.dtype];
    const bytes = tensor.numel * bytesPerElement(tensor.dtype);
    header[name] = { dtype, shape: tensor.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  // Pad the JSON with spaces so the data section starts 8-byte aligned, as the reference writer does.
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const padding = (8 - (json.length % 8)) % 8;
  if (padding > 0) json = Buffer.concat([json, Buffer.alloc(padding, 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));
  return Buffer.concat([prefix, json]);
}

function tensorBytes(tensor: Tensor): Uint8Array {
  const data = tensor.toTypedArray();
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** The whole file in memory (small dicts, tests). */
export function encodeSafetensors(tensors: TensorDict, metadata?: Record<string, string>): Buffer {
  const list = entriesOf(tensors);
  return Buffer.concat([encodeHeader(list, metadata), ...list.map(([, tensor]) => tensorBytes(tensor))]);
}

/**
 * Writes tensors (in insertion order) to `path` through a temporary file in the same folder
 * renamed into place, so a crash never leaves a half-written checkpoint under the real name.
 */
export function writeSafetensors(path: string, tensors: TensorDict, metadata?: Record<string, string>): void {
  const list = entriesOf(tensors);
  const header = encodeHeader(list, metadata);
  const temporary = temporarySibling(path);
  let fd: number;
  try {
    fd = openSync(temporary, 'w');
  } catch (error) {
    throw fsUserError(error, path);
  }
  try {
    writeAll(fd, header);
    for (const [, tensor] of list) writeAll(fd, tensorBytes(tensor));
    fsyncSync(fd);
    closeSync(fd);
    renameSync(temporary, path);
  } catch (error) {
    try { closeSync(fd); } catch { /* already closed */ }
    try { unlinkSync(temporary); } catch { /* never created */ }
    throw fsUserError(error, path);
  }
}

function writeAll(fd: number, bytes: Uint8Array): void {
  let done = 0;
  while (done < bytes.length) done += writeSync(fd, bytes, done, bytes.length - done);
}
