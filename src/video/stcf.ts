import { closeSync, openSync, readSync } from 'node:fs';
import { z } from 'zod';
import { jpeg } from './jpeg.js';

/**
 * The .stcf file of one cached video: "STCF", u32 version (1), u32 header length, header JSON, then
 * (frames + 1) u32 byte offsets (little endian, relative to the data start), then the JPEG data.
 */

export const STCF_VERSION = 1;
const MAGIC = 0x46435453; // "STCF" read as little-endian u32

export interface CacheFileHeader {
  /** The sample key the file was made for (a reader checks it: a file never stands in for another video). */
  key: string;
  source: string;
  width: number;
  height: number;
  fps: number;
  frames: number;
}

const HeaderSchema = z.object({
  key: z.string(),
  source: z.string(),
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  fps: z.number().positive(),
  frames: z.number().int().nonnegative(),
});

/** The first problem zod found, as "field: message". */
export function firstIssue(error: z.ZodError): string {
  const issue = error.issues[0]!;
  return `${issue.path.length > 0 ? `${issue.path.join('.')}: ` : ''}${issue.message}`;
}

export function encodeCacheFile(header: CacheFileHeader, frames: Uint8Array[]): Buffer {
  const json = Buffer.from(JSON.stringify(header), 'utf8');
  const offsets = Buffer.alloc((frames.length + 1) * 4);
  let total = 0;
  frames.forEach((f, i) => {
    offsets.writeUInt32LE(total, i * 4);
    total += f.length;
  });
  if (total > 0xffffffff) throw new Error(`cache: ${header.source} has ${total} bytes of frames; the .stcf format holds at most 4 GiB`);
  offsets.writeUInt32LE(total, frames.length * 4);
  const head = Buffer.alloc(12);
  head.writeUInt32LE(MAGIC, 0);
  head.writeUInt32LE(STCF_VERSION, 4);
  head.writeUInt32LE(json.length, 8);
  return Buffer.concat([head, json, offsets, ...frames]);
}

/** A cached video opened for reading frames (the file descriptor is closed after each read). */
export interface CachedVideo {
  header: CacheFileHeader;
  /** Byte offsets of the frames within the file (frames + 1 entries). */
  offsets: Float64Array;
  file: string;
}

/**
 * Reads the header and frame offsets of a .stcf file. With `key`, a file made for another key is an
 * error (two keys sharing one file would otherwise serve one video's frames for the other).
 */
export function openCachedVideo(file: string, key?: string): CachedVideo {
  const fd = openSync(file, 'r');
  try {
    let buf = Buffer.alloc(65536);
    let got = readSync(fd, buf, 0, buf.length, 0);
    if (got < 12 || buf.readUInt32LE(0) !== MAGIC) throw new Error(`cache: ${file} is not a .stcf frame file`);
    const version = buf.readUInt32LE(4);
    if (version !== STCF_VERSION) throw new Error(`cache: ${file} has version ${version}, expected ${STCF_VERSION}`);
    const jsonLength = buf.readUInt32LE(8);
    if (12 + jsonLength > got) {
      const more = Buffer.alloc(12 + jsonLength);
      got = readSync(fd, more, 0, more.length, 0);
      buf = more;
      if (got < 12 + jsonLength) throw new Error(`cache: ${file} is truncated (in its header)`);
    }
    let parsed: unknown;
    try {
      parsed = JSON.parse(buf.subarray(12, 12 + jsonLength).toString('utf8'));
    } catch {
      throw new Error(`cache: ${file} has a damaged header (not JSON)`);
    }
    const checked = HeaderSchema.safeParse(parsed);
    if (!checked.success) throw new Error(`cache: ${file} has a damaged header (${firstIssue(checked.error)})`);
    const header: CacheFileHeader = checked.data;
    if (key !== undefined && header.key !== key) {
      throw new Error(`cache: ${file} holds the frames of "${header.key}", not of "${key}"; rebuild the cache with \`stcnet prepare --overwrite\``);
    }
    const tableStart = 12 + jsonLength;
    const tableBytes = (header.frames + 1) * 4;
    const table = Buffer.alloc(tableBytes);
    if (readSync(fd, table, 0, tableBytes, tableStart) !== tableBytes) throw new Error(`cache: ${file} is truncated`);
    const dataStart = tableStart + tableBytes;
    const offsets = new Float64Array(header.frames + 1);
    for (let i = 0; i <= header.frames; i++) {
      offsets[i] = dataStart + table.readUInt32LE(i * 4);
      if (i > 0 && offsets[i]! < offsets[i - 1]!) throw new Error(`cache: ${file} has a damaged frame table`);
    }
    return { header, offsets, file };
  } finally {
    closeSync(fd);
  }
}

/**
 * Decodes the given frame indices of a cached video into packed RGB frames (HWC). Reads one byte
 * range spanning the requested frames. Frames that repeat are decoded once.
 */
export function readCachedFrames(video: CachedVideo, indices: ArrayLike<number>, fast = false): Uint8Array[] {
  const { width, height, frames } = video.header;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < indices.length; i++) {
    const f = indices[i]!;
    if (!(f >= 0 && f < frames)) throw new Error(`cache: frame ${f} out of range 0..${frames - 1} in ${video.file}`);
    lo = Math.min(lo, f);
    hi = Math.max(hi, f);
  }
  const start = video.offsets[lo]!;
  const end = video.offsets[hi + 1]!;
  const bytes = Buffer.allocUnsafe(end - start);
  const fd = openSync(video.file, 'r');
  try {
    if (readSync(fd, bytes, 0, bytes.length, start) !== bytes.length) throw new Error(`cache: ${video.file} is truncated`);
  } finally {
    closeSync(fd);
  }
  const addon = jpeg();
  const decoded = new Map<number, Uint8Array>();
  const out: Uint8Array[] = [];
  for (let i = 0; i < indices.length; i++) {
    const f = indices[i]!;
    let frame = decoded.get(f);
    if (!frame) {
      frame = new Uint8Array(width * height * 3);
      addon.decodeInto(bytes.subarray(video.offsets[f]! - start, video.offsets[f + 1]! - start), frame, 0, width, height, fast);
      decoded.set(f, frame);
    }
    out.push(frame);
  }
  return out;
}

/** Reads a whole cache file's frames (tests and tools; the loader reads only the frames it needs). */
export function readAllCachedFrames(file: string): { header: CacheFileHeader; frames: Uint8Array[] } {
  const video = openCachedVideo(file);
  const indices = Array.from({ length: video.header.frames }, (_, i) => i);
  return { header: video.header, frames: readCachedFrames(video, indices) };
}
