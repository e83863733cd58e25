import { inflateRawSync } from 'node:zlib';
import { UserError } from '../util/errors.js';
import type { ByteSource } from './bytesource.js';

/**
 * A minimal zip reader for PyTorch's `torch.save` archives: the central directory (zip64 too),
 * stored and deflated entries. Entries are read on demand, so a large checkpoint is never held
 * whole in memory.
 */
export interface ZipEntry {
  readonly name: string;
  readonly method: number;
  readonly compressedSize: number;
  readonly size: number;
  readonly localHeaderOffset: number;
}

export class ZipArchive {
  readonly entries: Map<string, ZipEntry>;

  constructor(private readonly source: ByteSource) {
    this.entries = readCentralDirectory(source);
  }

  has(name: string): boolean {
    return this.entries.has(name);
  }

  /** The uncompressed bytes of one entry. */
  read(name: string): Buffer {
    const entry = this.entries.get(name);
    if (!entry) throw new UserError(`${this.source.name}: the zip archive has no entry "${name}"`);
    const fail = (what: string): never => { throw new UserError(`${this.source.name}: zip entry "${name}": ${what}`); };
    const local = readAt(this.source, entry.localHeaderOffset, 30, 'local header of ' + name);
    if (local.readUInt32LE(0) !== LOCAL_HEADER) fail('bad local header signature');
    const dataStart = entry.localHeaderOffset + 30 + local.readUInt16LE(26) + local.readUInt16LE(28);
    const raw = readAt(this.source, dataStart, entry.compressedSize, `data of ${name}`);
    if (entry.method === 0) {
      if (entry.size !== entry.compressedSize) fail('stored entry sizes disagree');
      return raw;
    }
    if (entry.method === 8) {
      let inflated: Buffer;
      try {
        inflated = inflateRawSync(raw);
      } catch (error) {
        return fail(`deflate data is corrupt (${(error as Error).message})`);
      }
      if (inflated.length !== entry.size) fail(`inflated to ${inflated.length} bytes, the directory says ${entry.size}`);
      return inflated;
    }
    return fail(`compression method ${entry.method} is not supported (only stored and deflate)`);
  }
}

const LOCAL_HEADER = 0x04034b50;
const CENTRAL_HEADER = 0x02014b50;
const END_OF_DIRECTORY = 0x06054b50;
const ZIP64_LOCATOR = 0x07064b50;
const ZIP64_END = 0x06064b50;

function readAt(source: ByteSource, offset: number, length: number, what: string): Buffer {
  try {
    return source.read(offset, length);
  } catch (error) {
    if (error instanceof RangeError) throw new UserError(`${source.name}: truncated zip archive (${what} lies beyond the end of the file)`);
    throw error;
  }
}

function readCentralDirectory(source: ByteSource): Map<string, ZipEntry> {
  const fail = (what: string): never => { throw new UserError(`${source.name}: not a readable zip archive: ${what}`); };
  // The end record sits in the last 22 bytes plus up to 64 KiB of comment.
  const tailLength = Math.min(source.size, 22 + 0xffff);
  const tail = source.read(source.size - tailLength, tailLength);
  let end = -1;
  for (let i = tail.length - 22; i >= 0; i--) {
    if (tail.readUInt32LE(i) === END_OF_DIRECTORY) { end = i; break; }
  }
  if (end < 0) fail('no end-of-central-directory record (truncated or not a zip file)');
  let count = tail.readUInt16LE(end + 10);
  let directorySize = tail.readUInt32LE(end + 12);
  let directoryOffset = tail.readUInt32LE(end + 16);
  const endOffset = source.size - tailLength + end;
  if (count === 0xffff || directorySize === 0xffffffff || directoryOffset === 0xffffffff) {
    // zip64: a locator just before the end record points at the zip64 end record.
    if (endOffset < 20) fail('zip64 locator missing');
    const locator = source.read(endOffset - 20, 20);
    if (locator.readUInt32LE(0) !== ZIP64_LOCATOR) fail('zip64 locator missing');
    const zip64End = readAt(source, safeNumber(locator.readBigUInt64LE(8), source), 56, 'zip64 end record');
    if (zip64End.readUInt32LE(0) !== ZIP64_END) fail('bad zip64 end record signature');
    count = safeNumber(zip64End.readBigUInt64LE(32), source);
    directorySize = safeNumber(zip64End.readBigUInt64LE(40), source);
    directoryOffset = safeNumber(zip64End.readBigUInt64LE(48), source);
  }
  const directory = readAt(source, directoryOffset, directorySize, 'central directory');
  const entries = new Map<string, ZipEntry>();
  let at = 0;
  for (let i = 0; i < count; i++) {
    if (at + 46 > directory.length || directory.readUInt32LE(at) !== CENTRAL_HEADER) fail(`central directory entry ${i} is corrupt`);
    const method = directory.readUInt16LE(at + 10);
    let compressedSize = directory.readUInt32LE(at + 20);
    let size = directory.readUInt32LE(at + 24);
    const nameLength = directory.readUInt16LE(at + 28);
    const extraLength = directory.readUInt16LE(at + 30);
    const commentLength = directory.readUInt16LE(at + 32);
    let localHeaderOffset = directory.readUInt32LE(at + 42);
    const name = directory.toString('utf8', at + 46, at + 46 + nameLength);
    // zip64 extra field (id 1): 8-byte values for whichever of the three fields overflowed, in order.
    let extra = at + 46 + nameLength;
    const extraEnd = extra + extraLength;
    while (extra + 4 <= extraEnd) {
      const id = directory.readUInt16LE(extra);
      const length = directory.readUInt16LE(extra + 2);
      if (id === 1) {
        let field = extra + 4;
        const next = (): number => { const value = safeNumber(directory.readBigUInt64LE(field), source); field += 8; return value; };
        if (size === 0xffffffff) size = next();
        if (compressedSize === 0xffffffff) compressedSize = next();
        if (localHeaderOffset === 0xffffffff) localHeaderOffset = next();
      }
      extra += 4 + length;
    }
    entries.set(name, { name, method, compressedSize, size, localHeaderOffset });
    at = extraEnd + commentLength;
  }
  return entries;
}

function safeNumber(value: bigint, source: ByteSource): number {
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new UserError(`${source.name}: zip64 field too large`);
  return Number(value);
}
