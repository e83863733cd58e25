import { existsSync } from 'node:fs';
import { appendFile, readdir, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import { ensureDirAsync, fsUserError, TEMPORARY_SIBLING, writeFileAtomicAsync } from '../util/fs.js';
import { runPool } from '../util/pool.js';
import { Progress } from '../util/progress.js';
import {
  CACHE_VERSION, cacheFileFor, metaFor, readCacheMeta, readIndex, type CacheEntry, type CacheMeta, type CacheSettings,
} from './cache_index.js';
import { decodeFramesProbeless } from './decode.js';
import { jpeg } from './jpeg.js';
import { acquireLock } from './lock.js';
import { VideoError } from './process.js';
import { encodeCacheFile, type CacheFileHeader } from './stcf.js';

/**
 * The frame cache: every video decoded once, resized to a short side (and optionally resampled to
 * an fps), stored as one file of concatenated JPEG frames with an index of byte offsets.
 *
 *   <cache>/meta.json          settings and the stcnet marker; a resume must use the same settings
 *   <cache>/index.jsonl        one line per cached video (key, file, frames, width, height, fps)
 *   <cache>/report.csv         file,reason for every video that could not be cached (rewritten per run)
 *   <cache>/frames/<path>.<hash>.stcf   the frames of one video (see stcf.ts)
 *   <cache>/.lock              while a prepare runs: its pid, host and start time
 *
 * Every file is written to a temporary dot-file and renamed, so a file under its final name is whole.
 */

export { CACHE_VERSION, cacheFileFor, readIndex, type CacheEntry, type CacheMeta, type CacheSettings } from './cache_index.js';
export { encodeCacheFile, openCachedVideo, readAllCachedFrames, readCachedFrames, type CachedVideo, type CacheFileHeader } from './stcf.js';

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
  /** Start again instead of resuming when the settings differ (only in a folder stcnet made). */
  overwrite?: boolean;
}

export interface PrepareResult {
  cached: number;
  skipped: number;
  failed: PrepareFailure[];
  interrupted: boolean;
  seconds: number;
}

/** An opened cache folder: settings and the index of cached videos. */
export class FrameCache {
  private constructor(readonly dir: string, readonly meta: CacheMeta, readonly entries: Map<string, CacheEntry>) {}

  static async open(dir: string): Promise<FrameCache> {
    const state = await readCacheMeta(dir);
    if (state.kind === 'none') throw new UserError(`cache: ${dir} is not a frame cache (no meta.json); create it with \`stcnet prepare\``);
    const version = state.kind === 'legacy' ? state.version : state.meta.version;
    if (state.kind === 'legacy' || version !== CACHE_VERSION) {
      throw new UserError(`cache: ${dir} has cache layout ${version}, this stcnet reads layout ${CACHE_VERSION}` +
        (version < CACHE_VERSION ? ' (layout 1 could give two videos one frame file)' : '') +
        '; rebuild it with `stcnet prepare ... --overwrite`');
    }
    return new FrameCache(dir, state.meta, (await readIndex(dir)).entries);
  }

  entry(key: string): CacheEntry | undefined {
    return this.entries.get(key);
  }

  filePath(entry: CacheEntry): string {
    return path.join(this.dir, 'frames', entry.file);
  }
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
  await ensureDirAsync(path.dirname(target));
  const header: CacheFileHeader = { key: item.key, source: item.path, width: result.width, height: result.height, fps: result.fps, frames: frames.length };
  await writeFileAtomicAsync(target, encodeCacheFile(header, frames));
  return { key: item.key, file: rel, frames: frames.length, width: result.width, height: result.height, fps: result.fps };
}

/** Temporary files under frames/: util/fs's dot-file siblings, and layout 1's `<name>.tmp-<pid>`. */
async function removeTempFiles(dir: string): Promise<void> {
  let names: string[];
  try {
    names = await readdir(dir, { recursive: true });
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw fsUserError(error, dir);
  }
  for (const name of names) {
    const base = path.basename(name);
    if (TEMPORARY_SIBLING.test(base) || /\.stcf\.tmp-\d+$/.test(base)) await rm(path.join(dir, name), { force: true });
  }
}

function describeSettings(s: CacheSettings): string {
  return `short side ${s.shortSide}, fps ${s.fps ?? 'native'}, quality ${s.quality}`;
}

function checkSettings(options: PrepareOptions): void {
  const bad = (what: string, value: unknown): never => {
    throw new UserError(`prepare: ${what}, got ${String(value)}`);
  };
  if (!Number.isInteger(options.shortSide) || options.shortSide < 1) bad('the short side must be a positive integer', options.shortSide);
  if (options.fps !== undefined && !(options.fps > 0 && Number.isFinite(options.fps))) bad('fps must be a positive number', options.fps);
  if (!Number.isInteger(options.quality) || options.quality < 1 || options.quality > 100) bad('quality must be an integer 1..100', options.quality);
  if (options.jobs !== undefined && !(Number.isInteger(options.jobs) && options.jobs >= 1)) bad('jobs must be a positive integer', options.jobs);
}

/**
 * Makes `dir` ready for this run's settings: a new or empty folder becomes a cache; a cache with the
 * same settings is resumed; one with other settings (or an older layout) is cleared with
 * `overwrite` and refused without. A folder that is not a stcnet cache is never touched.
 */
async function claimFolder(dir: string, settings: CacheSettings, overwrite: boolean): Promise<void> {
  const state = await readCacheMeta(dir);
  if (state.kind === 'none') {
    // Hidden names (our .lock, a .DS_Store) are not content; anything else means the folder is someone's.
    const names = (await readdir(dir)).filter((name) => !name.startsWith('.'));
    if (names.length > 0) {
      throw new UserError(`prepare: ${dir} is not empty and is not a frame cache (no meta.json: ${names.slice(0, 3).join(', ')}` +
        `${names.length > 3 ? ', …' : ''}); give --out a new or empty folder`);
    }
  } else {
    const old = state.kind === 'legacy' ? state.settings : state.meta;
    const version = state.kind === 'legacy' ? state.version : state.meta.version;
    const same = version === CACHE_VERSION && old.shortSide === settings.shortSide && (old.fps ?? null) === (settings.fps ?? null) &&
      old.quality === settings.quality;
    if (same) return;
    if (!overwrite) {
      throw new UserError(version !== CACHE_VERSION
        ? `cache: ${dir} has cache layout ${version}, this stcnet writes layout ${CACHE_VERSION}; rebuild it with --overwrite`
        : `cache: ${dir} was made with ${describeSettings(old)}; this run asks for ${describeSettings(settings)}. ` +
          'Use the same settings to resume, or --overwrite');
    }
    // Only the names a cache has: anything else in the folder stays.
    for (const name of ['frames', 'index.jsonl', 'report.csv']) await rm(path.join(dir, name), { recursive: true, force: true });
  }
  await writeFileAtomicAsync(path.join(dir, 'meta.json'), JSON.stringify(metaFor(settings), null, 2) + '\n');
}

/**
 * Decodes every item once, in parallel, into the cache at `dir`. Resumes: videos already in the
 * index are skipped. Unreadable, truncated or empty videos go to report.csv and never stop the run.
 * One run at a time per folder: a second one is refused with the first one's pid (see lock.ts).
 */
export async function prepareCache(dir: string, items: PrepareItem[], options: PrepareOptions): Promise<PrepareResult> {
  checkSettings(options);
  const settings: CacheSettings = { shortSide: options.shortSide, fps: options.fps, quality: options.quality };
  await ensureDirAsync(dir);
  const lock = acquireLock(dir, 'stcnet prepare');
  try {
    try {
      await claimFolder(dir, settings, options.overwrite ?? false);
    } catch (error) {
      throw fsUserError(error, dir);
    }
    const framesDir = path.join(dir, 'frames');
    await ensureDirAsync(framesDir);
    await removeTempFiles(framesDir);
    const { entries: done } = await readIndex(dir, { repair: true });

    const seen = new Set<string>();
    const owners = new Map([...done.values()].map((entry) => [entry.file, entry.key]));
    const todo = items.filter((item) => {
      if (seen.has(item.key)) return false;
      seen.add(item.key);
      const file = cacheFileFor(item.key);
      const owner = owners.get(file);
      // File names carry a hash of the key; should two keys still meet, refuse rather than mix them.
      if (owner !== undefined && owner !== item.key) throw new Error(`cache: "${item.key}" and "${owner}" map to one frame file ${file}`);
      owners.set(file, item.key);
      const entry = done.get(item.key);
      return !(entry && entry.file === file && existsSync(path.join(framesDir, entry.file)));
    });
    const skipped = seen.size - todo.length;
    const progress = new Progress({ total: todo.length, label: 'prepare', unit: 'videos', quiet: options.quiet });
    const failed: PrepareFailure[] = [];
    const indexFile = path.join(dir, 'index.jsonl');
    let cached = 0;
    try {
      await runPool(todo, options.jobs ?? os.availableParallelism(), async (item) => {
        try {
          const entry = await cacheOne(dir, item, settings, options.signal);
          try {
            await appendFile(indexFile, JSON.stringify(entry) + '\n');
          } catch (error) {
            throw fsUserError(error, indexFile);
          }
          cached++;
        } catch (error) {
          if (options.signal?.aborted) return;
          if (!(error instanceof VideoError)) throw error;
          failed.push({ file: item.path, key: item.key, reason: error.reason });
        }
        progress.tick(1, failed.length > 0 ? `failed ${failed.length}` : undefined);
      }, { signal: options.signal });
    } finally {
      if (options.signal?.aborted) await removeTempFiles(framesDir);
    }
    progress.finish(failed.length > 0 ? `failed ${failed.length}` : undefined);
    const report = ['file,reason', ...failed.map((f) => `${csvField(f.file)},${csvField(f.reason)}`)].join('\n') + '\n';
    await writeFileAtomicAsync(path.join(dir, 'report.csv'), report);
    return { cached, skipped, failed, interrupted: Boolean(options.signal?.aborted), seconds: progress.elapsedSeconds };
  } finally {
    lock.release();
  }
}
