import { createHash } from 'node:crypto';
import { readFile, truncate, appendFile } from 'node:fs/promises';
import path from 'node:path';
import { z } from 'zod';
import { UserError } from '../util/errors.js';
import { fsUserError } from '../util/fs.js';
import { firstIssue } from './stcf.js';

/**
 * What a frame cache folder says about itself: meta.json (settings, and the marker that stcnet made
 * the folder) and index.jsonl (one line per cached video). Both are validated where they are read;
 * a damaged one is a UserError naming the file (and line).
 */

/**
 * The cache layout. 2: frame file names carry a hash of the full key (layout 1 mapped keys that
 * differ only outside ASCII, or by `..` segments, to one file, and served one video for another).
 */
export const CACHE_VERSION = 2;
/** meta.json's `format` field: the marker that a folder is a stcnet frame cache (and may be cleared by --overwrite). */
export const CACHE_FORMAT = 'stcnet frame cache';

export interface CacheSettings {
  shortSide: number;
  /** Resampled frame rate, or undefined for the videos' own frames. */
  fps?: number;
  quality: number;
}

export interface CacheMeta extends CacheSettings {
  format: typeof CACHE_FORMAT;
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

const settingsShape = {
  shortSide: z.number().int().positive(),
  fps: z.number().positive().optional(),
  quality: z.number().int().min(1).max(100),
  created: z.string(),
};
const MetaSchema = z.object({ format: z.literal(CACHE_FORMAT), version: z.number().int().positive(), ...settingsShape });
/** Layout 1 had no marker; its exact shape is what identifies it. */
const LegacyMetaSchema = z.object({ version: z.literal(1), ...settingsShape });

const EntrySchema = z.object({
  key: z.string().min(1),
  file: z.string().min(1).refine((f) => !path.isAbsolute(f) && !f.split('/').includes('..'), 'must be a path inside frames/'),
  frames: z.number().int().positive(),
  width: z.number().int().positive(),
  height: z.number().int().positive(),
  fps: z.number().positive(),
});

export type MetaState =
  | { kind: 'none' }
  | { kind: 'current'; meta: CacheMeta }
  /** Made by an older stcnet: ours (so --overwrite may clear it), but not readable by this one. */
  | { kind: 'legacy'; version: number; settings: CacheSettings };

/** Reads <dir>/meta.json. Anything that is not a stcnet cache's meta.json is a UserError: nothing is ever cleared on its word. */
export async function readCacheMeta(dir: string): Promise<MetaState> {
  const file = path.join(dir, 'meta.json');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'none' };
    throw fsUserError(error, file);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new UserError(`cache: ${file} is not JSON, so ${dir} is not a stcnet frame cache (or its meta.json is damaged); ` +
      'stcnet leaves it alone: choose another folder');
  }
  const legacy = LegacyMetaSchema.safeParse(parsed);
  if (legacy.success && (parsed as { format?: unknown }).format === undefined) {
    const { shortSide, fps, quality } = legacy.data;
    return { kind: 'legacy', version: 1, settings: { shortSide, fps, quality } };
  }
  const checked = MetaSchema.safeParse(parsed);
  if (!checked.success) {
    throw new UserError(`cache: ${file} is not a stcnet frame cache's meta.json (${firstIssue(checked.error)}); ` +
      'stcnet leaves the folder alone: choose another folder');
  }
  return { kind: 'current', meta: checked.data as CacheMeta };
}

export function metaFor(settings: CacheSettings): CacheMeta {
  return { format: CACHE_FORMAT, version: CACHE_VERSION, shortSide: settings.shortSide, fps: settings.fps, quality: settings.quality, created: new Date().toISOString() };
}

/**
 * The frame file of a key, relative to <cache>/frames: the key's path made safe and readable (the
 * tree mirrors the dataset), then a hash of the whole key, so distinct keys never share a file
 * whatever their characters (`é` and `è` both become `_`; `..` segments are kept as `__`).
 */
export function cacheFileFor(key: string): string {
  const digest = createHash('sha256').update(key, 'utf8').digest('hex').slice(0, 16);
  const parts = key.split('/').filter((p) => p !== '' && p !== '.').map((p) => {
    if (p === '..') return '__';
    // No hidden names (listings skip them) and no overlong ones (255 bytes is the usual limit).
    return p.replace(/[^A-Za-z0-9._@+=,() -]/g, '_').replace(/^\./, '_').slice(0, 100);
  });
  const name = parts.pop() ?? 'video';
  return [...parts, `${name}.${digest}.stcf`].join('/');
}

export interface IndexRead {
  entries: Map<string, CacheEntry>;
  /** What a repair did to a last line cut short by a crash: nothing, terminated it, or dropped it. */
  repaired: 'none' | 'terminated' | 'dropped';
}

/**
 * Reads <dir>/index.jsonl. A last line without its newline is what a crash in the middle of an
 * append leaves: with `repair` it is terminated (when whole) or cut off (when partial), so the next
 * append starts on a line of its own; without, a partial one is ignored. Any other damaged line is a
 * UserError naming the file and line. Two keys sharing one frame file is an error too.
 */
export async function readIndex(dir: string, options: { repair?: boolean } = {}): Promise<IndexRead> {
  const file = path.join(dir, 'index.jsonl');
  const entries = new Map<string, CacheEntry>();
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return { entries, repaired: 'none' };
    throw fsUserError(error, file);
  }
  const lines = text.split('\n');
  const tail = lines.pop()!; // '' when the file ends with a newline
  const owners = new Map<string, string>();
  const add = (entry: CacheEntry, line: number): void => {
    const owner = owners.get(entry.file);
    if (owner !== undefined && owner !== entry.key) {
      throw new UserError(`cache: ${file}:${line}: "${entry.key}" and "${owner}" share the frame file ${entry.file}; ` +
        'rebuild the cache with `stcnet prepare --overwrite`');
    }
    owners.set(entry.file, entry.key);
    entries.set(entry.key, entry);
  };
  const parse = (raw: string): CacheEntry | string => {
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      return 'not JSON';
    }
    const checked = EntrySchema.safeParse(value);
    return checked.success ? checked.data : firstIssue(checked.error);
  };
  lines.forEach((raw, i) => {
    if (!raw.trim()) return;
    const entry = parse(raw);
    if (typeof entry === 'string') {
      throw new UserError(`cache: ${file}:${i + 1} is damaged (${entry}); delete that line (its video is cached again by the next ` +
        '`stcnet prepare`) or rebuild with `stcnet prepare --overwrite`');
    }
    add(entry, i + 1);
  });
  let repaired: IndexRead['repaired'] = 'none';
  if (tail.trim()) {
    const entry = parse(tail);
    if (typeof entry !== 'string') add(entry, lines.length + 1);
    if (options.repair) {
      try {
        if (typeof entry === 'string') {
          await truncate(file, Buffer.byteLength(text, 'utf8') - Buffer.byteLength(tail, 'utf8'));
          repaired = 'dropped';
        } else {
          await appendFile(file, '\n');
          repaired = 'terminated';
        }
      } catch (error) {
        throw fsUserError(error, file);
      }
    }
  }
  return { entries, repaired };
}
