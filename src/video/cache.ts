import { closeSync, existsSync, openSync, readSync } from 'node:fs';
import { appendFile, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import { Progress } from '../util/progress.js';
import { decodeFramesProbeless } from './decode.js';
import { jpeg } from './jpeg.js';
import { VideoError } from './process.js';

/**
 * The frame cache: every video decoded once, resized to a short side (and optionally resampled to
 * an fps), stored as one file of concatenated JPEG frames with an index of byte offsets.
 *
 *   <cache>/meta.json          settings (short side, fps, quality); a resume must use the same ones
 *   <cache>/index.jsonl        one line per cached video (key, file, frames, width, height, fps)
 *   <cache>/report.csv         file,reason for every video that could not be cached (rewritten per run)
 *   <cache>/frames/<key>.stcf  the frames of one video
 *
 * A .stcf file: "STCF", u32 version (1), u32 header length, header JSON, then (frames + 1) u32 byte
 * offsets (little endian, relative to the data start), then the JPEG data. Written to a temporary
 * name and renamed, so a file under its final name is always complete.
 */

export const CACHE_VERSION = 1;
const MAGIC = 0x46435453; // "STCF" read as little-endian u32

export interface CacheSettings {
  shortSide: number;
  /** Resampled frame rate, or undefined for the videos' own frames. */
  fps?: number;
  quality: number;
}

export interface CacheMeta extends CacheSettings {
  version: number;
  created: string;
}

export interface CacheEntry {
  key: string;
  /** Relative to <cache>/frames. */
  file: string;
  frames: number;
  width: number;
  height: number;
  fps: number;
}

export interface CacheFileHeader {
  key: string;
  source: string;
  width: number;
  height: number;
  fps: number;
  frames: number;
}

export interface PrepareItem {
  /** Identity in the cache (e.g. the path relative to the dataset root, plus a trim). */
  key: string;
  path: string;
  start?: number;
  end?: number;
}

export interface PrepareFailure {
  file: string;
  key: string;
  reason: string;
}

export interface PrepareOptions extends CacheSettings {
  jobs?: number;
  quiet?: boolean;
  /** Stops the run cleanly (Ctrl-C); finished videos stay in the cache. */
  signal?: AbortSignal;
  /** Start again instead of resuming when the settings differ. */
  overwrite?: boolean;
}

export interface PrepareResult {
  cached: number;
  skipped: number;
  failed: PrepareFailure[];
  interrupted: boolean;
  seconds: number;
}

/** The cache file for a key: keys are relative paths, so the tree mirrors the dataset. */
export function cacheFileFor(key: string): string {
  const safe = key.split('/').filter((p) => p !== '' && p !== '.' && p !== '..').map((p) => p.replace(/[^A-Za-z0-9._@+=,() -]/g, '_')).join('/');
  return `${safe}.stcf`;
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
  head.writeUInt32LE(CACHE_VERSION, 4);
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

/** Reads the header and frame offsets of a .stcf file. */
export function openCachedVideo(file: string): CachedVideo {
  const fd = openSync(file, 'r');
  try {
    let buf = Buffer.alloc(65536);
    let got = readSync(fd, buf, 0, buf.length, 0);
    if (got < 12 || buf.readUInt32LE(0) !== MAGIC) throw new Error(`cache: ${file} is not a .stcf frame file`);
    const version = buf.readUInt32LE(4);
    if (version !== CACHE_VERSION) throw new Error(`cache: ${file} has version ${version}, expected ${CACHE_VERSION}`);
    const jsonLength = buf.readUInt32LE(8);
    const header = (() => {
      if (12 + jsonLength > got) {
        const more = Buffer.alloc(12 + jsonLength);
        got = readSync(fd, more, 0, more.length, 0);
        buf = more;
      }
      return JSON.parse(buf.subarray(12, 12 + jsonLength).toString('utf8')) as CacheFileHeader;
    })();
    const tableStart = 12 + jsonLength;
    const tableBytes = (header.frames + 1) * 4;
    const table = Buffer.alloc(tableBytes);
    if (readSync(fd, table, 0, tableBytes, tableStart) !== tableBytes) throw new Error(`cache: ${file} is truncated`);
    const dataStart = tableStart + tableBytes;
    const offsets = new Float64Array(header.frames + 1);
    for (let i = 0; i <= header.frames; i++) offsets[i] = dataStart + table.readUInt32LE(i * 4);
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

/** An opened cache folder: settings and the index of cached videos. */
export class FrameCache {
  private constructor(readonly dir: string, readonly meta: CacheMeta, readonly entries: Map<string, CacheEntry>) {}

  static async open(dir: string): Promise<FrameCache> {
    const metaFile = path.join(dir, 'meta.json');
    if (!existsSync(metaFile)) throw new UserError(`cache: ${dir} is not a frame cache (no meta.json); create it with \`stcnet prepare\``);
    const meta = JSON.parse(await readFile(metaFile, 'utf8')) as CacheMeta;
    if (meta.version !== CACHE_VERSION) throw new UserError(`cache: ${dir} has version ${meta.version}, expected ${CACHE_VERSION}; run \`stcnet prepare --overwrite\``);
    return new FrameCache(dir, meta, await readIndex(dir));
  }

  entry(key: string): CacheEntry | undefined {
    return this.entries.get(key);
  }

  filePath(entry: CacheEntry): string {
    return path.join(this.dir, 'frames', entry.file);
  }
}

async function readIndex(dir: string): Promise<Map<string, CacheEntry>> {
  const entries = new Map<string, CacheEntry>();
  const file = path.join(dir, 'index.jsonl');
  if (!existsSync(file)) return entries;
  for (const line of (await readFile(file, 'utf8')).split('\n')) {
    if (!line.trim()) continue;
    try {
      const entry = JSON.parse(line) as CacheEntry;
      if (typeof entry.key === 'string' && typeof entry.file === 'string') entries.set(entry.key, entry);
    } catch {
      // A line cut short by an interruption: that video is simply done again.
    }
  }
  return entries;
}

function csvField(value: string): string {
  return /[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** Decodes one video into a cache file; returns its index entry. */
async function cacheOne(dir: string, item: PrepareItem, settings: CacheSettings, signal?: AbortSignal): Promise<CacheEntry> {
  const addon = jpeg();
  const frames: Uint8Array[] = [];
  // One ffmpeg run per video: its log gives the facts a separate ffprobe run would (see decodeFramesProbeless).
  const result = await decodeFramesProbeless(item.path, { shortSide: settings.shortSide, fps: settings.fps, start: item.start, end: item.end, signal },
    (frame, _index, size) => frames.push(addon.encode(frame, size.width, size.height, settings.quality, 420)));
  const rel = cacheFileFor(item.key);
  const target = path.join(dir, 'frames', rel);
  await mkdir(path.dirname(target), { recursive: true });
  const tmp = `${target}.tmp-${process.pid}`;
  const header: CacheFileHeader = { key: item.key, source: item.path, width: result.width, height: result.height, fps: result.fps, frames: frames.length };
  await writeFile(tmp, encodeCacheFile(header, frames));
  await rename(tmp, target);
  return { key: item.key, file: rel, frames: frames.length, width: result.width, height: result.height, fps: result.fps };
}

async function removeTempFiles(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  for (const entry of await readdir(dir, { recursive: true })) {
    if (/\.tmp-\d+$/.test(String(entry))) await rm(path.join(dir, String(entry)), { force: true });
  }
}

/**
 * Decodes every item once, in parallel, into the cache at `dir`. Resumes: videos already in the
 * index are skipped. Unreadable, truncated or empty videos go to report.csv and never stop the run.
 */
export async function prepareCache(dir: string, items: PrepareItem[], options: PrepareOptions): Promise<PrepareResult> {
  const settings: CacheSettings = { shortSide: options.shortSide, fps: options.fps, quality: options.quality };
  await mkdir(path.join(dir, 'frames'), { recursive: true });
  const metaFile = path.join(dir, 'meta.json');
  if (existsSync(metaFile)) {
    const meta = JSON.parse(await readFile(metaFile, 'utf8')) as CacheMeta;
    const same = meta.version === CACHE_VERSION && meta.shortSide === settings.shortSide && (meta.fps ?? null) === (settings.fps ?? null) && meta.quality === settings.quality;
    if (!same) {
      if (!options.overwrite) {
        throw new UserError(`cache: ${dir} was made with short side ${meta.shortSide}, fps ${meta.fps ?? 'native'}, quality ${meta.quality}; ` +
          `this run asks for ${settings.shortSide}, ${settings.fps ?? 'native'}, ${settings.quality}. Use the same settings to resume, or --overwrite`);
      }
      await rm(path.join(dir, 'frames'), { recursive: true, force: true });
      await rm(path.join(dir, 'index.jsonl'), { force: true });
      await mkdir(path.join(dir, 'frames'), { recursive: true });
    }
  }
  const meta: CacheMeta = { version: CACHE_VERSION, ...settings, created: new Date().toISOString() };
  await writeFile(`${metaFile}.tmp-${process.pid}`, JSON.stringify(meta, null, 2) + '\n');
  await rename(`${metaFile}.tmp-${process.pid}`, metaFile);
  await removeTempFiles(path.join(dir, 'frames'));

  const done = await readIndex(dir);
  const seen = new Set<string>();
  const todo = items.filter((item) => {
    if (seen.has(item.key)) return false;
    seen.add(item.key);
    const entry = done.get(item.key);
    return !(entry && existsSync(path.join(dir, 'frames', entry.file)));
  });
  const skipped = seen.size - todo.length;
  const progress = new Progress({ total: todo.length, label: 'prepare', unit: 'videos', quiet: options.quiet });
  const failed: PrepareFailure[] = [];
  const indexFile = path.join(dir, 'index.jsonl');
  let next = 0;
  let cached = 0;
  let fatal: unknown;
  const jobs = Math.max(1, options.jobs ?? os.availableParallelism());
  const worker = async (): Promise<void> => {
    while (fatal === undefined && next < todo.length && !options.signal?.aborted) {
      const item = todo[next++]!;
      try {
        const entry = await cacheOne(dir, item, settings, options.signal);
        await appendFile(indexFile, JSON.stringify(entry) + '\n');
        cached++;
      } catch (error) {
        if (options.signal?.aborted) break;
        if (error instanceof VideoError) failed.push({ file: item.path, key: item.key, reason: error.reason });
        else fatal = error;
      }
      progress.tick(1, failed.length > 0 ? `failed ${failed.length}` : undefined);
    }
  };
  await Promise.all(Array.from({ length: Math.min(jobs, Math.max(1, todo.length)) }, () => worker()));
  if (options.signal?.aborted) await removeTempFiles(path.join(dir, 'frames'));
  if (fatal !== undefined) throw fatal;
  progress.finish(failed.length > 0 ? `failed ${failed.length}` : undefined);
  const report = ['file,reason', ...failed.map((f) => `${csvField(f.file)},${csvField(f.reason)}`)].join('\n') + '\n';
  await writeFile(path.join(dir, 'report.csv'), report);
  return { cached, skipped, failed, interrupted: Boolean(options.signal?.aborted), seconds: progress.elapsedSeconds };
}

/** Reads a whole cache file's frames (tests and tools; the loader reads only the frames it needs). */
export function readAllCachedFrames(file: string): { header: CacheFileHeader; frames: Uint8Array[] } {
  const video = openCachedVideo(file);
  const indices = Array.from({ length: video.header.frames }, (_, i) => i);
  return { header: video.header, frames: readCachedFrames(video, indices) };
}

