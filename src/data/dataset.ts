import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import { fsUserError } from '../util/fs.js';

/** One labeled video (or a trimmed part of one). */
export interface VideoSample {
  /** Absolute path of the video file. */
  path: string;
  /** Path relative to the dataset root (with `/` separators): the sample's identity in a cache. */
  relPath: string;
  /** Class index into `VideoDataset.classes`; -1 when the split has no labels (e.g. Kinetics test). */
  label: number;
  /** Trim in seconds (manifests); Kinetics files are already trimmed. */
  start?: number;
  end?: number;
  /** Samples of one group (UCF101 gNN, a YouTube id, a source video) never straddle train and test. */
  group?: string;
}

/** A file a split lists that is not on disk. */
export interface MissingFile {
  split: string;
  path: string;
  /** The list that names it, and the line (1-based). */
  listedIn: string;
  line: number;
}

export const DATASET_FORMATS = ['ucf101', 'hmdb51', 'kinetics', 'folder', 'manifest'] as const;
export type DatasetFormat = (typeof DATASET_FORMATS)[number];

export interface VideoDataset {
  format: DatasetFormat;
  /** The folder paths are relative to. */
  root: string;
  classes: string[];
  /** Samples per split name (`train1`/`test1`… for UCF101 and HMDB51; `train`/`val`/`test`; `all`). */
  splits: Record<string, VideoSample[]>;
  missing: MissingFile[];
}

export interface LoadDatasetOptions {
  /** Split files (UCF101/HMDB51 folder, Kinetics CSV file or folder); found under the root when omitted. */
  annotations?: string;
  /** Folder holding the videos when it is not the root (e.g. UCF101's `UCF-101/`). */
  videos?: string;
  /** A class list (one name per line) fixing the class order. */
  classList?: string;
}

/** The key a sample has in a frame cache: its relative path, plus the trim when there is one. */
export function sampleKey(sample: Pick<VideoSample, 'relPath' | 'start' | 'end'>): string {
  if (sample.start === undefined && sample.end === undefined) return sample.relPath;
  return `${sample.relPath}@${sample.start ?? 0}-${sample.end ?? 'end'}`;
}

export const VIDEO_EXTENSIONS = new Set(['.mp4', '.avi', '.mkv', '.webm', '.mov', '.m4v', '.mpg', '.mpeg', '.flv', '.wmv', '.3gp', '.ogv']);

export function isVideoFile(name: string): boolean {
  return VIDEO_EXTENSIONS.has(path.extname(name).toLowerCase());
}

/**
 * Hidden names (a leading dot) are never data: temporary files and folders (an interrupted synth's
 * `.encode-tmp-*`, atomic writes' `.name.tmp-*`), `.git`, macOS's `._*` and `.DS_Store`.
 */
export function isHidden(name: string): boolean {
  return name.startsWith('.');
}

/** Every file under `dir` (recursively) outside hidden folders, as paths relative to `dir` with `/` separators. */
export async function listFiles(dir: string): Promise<string[]> {
  let entries;
  try {
    entries = await readdir(dir, { recursive: true, withFileTypes: true });
  } catch (error) {
    throw fsUserError(error, dir);
  }
  const out: string[] = [];
  for (const entry of entries) {
    if (!entry.isFile() && !entry.isSymbolicLink()) continue;
    const parent = (entry as unknown as { parentPath?: string; path?: string }).parentPath ?? (entry as unknown as { path: string }).path;
    const rel = path.relative(dir, path.join(parent, entry.name)).split(path.sep).join('/');
    if (rel.split('/').some(isHidden)) continue;
    out.push(rel);
  }
  return out.sort();
}

export async function readText(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch {
    throw new UserError(`${what}: cannot read ${file}`);
  }
}

/** Non-empty lines with their 1-based numbers; handles CRLF (the official UCF101 lists use it) and a BOM. */
export function lines(text: string): { text: string; line: number }[] {
  return text.replace(/^\uFEFF/, '').split(/\r?\n/).map((t, i) => ({ text: t.trim(), line: i + 1 })).filter((l) => l.text.length > 0);
}

/** Minimal RFC 4180 CSV: quoted fields, doubled quotes, commas and newlines inside quotes. */
export function parseCsv(text: string): string[][] {
  const rows: string[][] = [];
  let row: string[] = [];
  let field = '';
  let quoted = false;
  text = text.replace(/^\uFEFF/, '');
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      if (ch === '"') {
        if (text[i + 1] === '"') {
          field += '"';
          i++;
        } else {
          quoted = false;
        }
      } else {
        field += ch;
      }
    } else if (ch === '"') {
      quoted = true;
    } else if (ch === ',') {
      row.push(field);
      field = '';
    } else if (ch === '\n' || ch === '\r') {
      if (ch === '\r' && text[i + 1] === '\n') i++;
      row.push(field);
      field = '';
      if (row.length > 1 || row[0]!.trim() !== '') rows.push(row);
      row = [];
    } else {
      field += ch;
    }
  }
  if (field !== '' || row.length > 0) {
    row.push(field);
    if (row.length > 1 || row[0]!.trim() !== '') rows.push(row);
  }
  return rows;
}

/** Reads a class list file (one name per line). */
export async function readClassList(file: string): Promise<string[]> {
  const names = lines(await readText(file, 'class list')).map((l) => l.text);
  if (names.length === 0) throw new UserError(`class list ${file} is empty`);
  return names;
}

/** The UCF101-style group in a file name (`v_Class_g08_c03.avi` → `Class_g08`), if any. */
export function ucfGroup(file: string): string | undefined {
  const m = /v_(.+)_g(\d+)_c\d+\.[^.]+$/.exec(path.basename(file));
  return m ? `${m[1]}_g${m[2]}` : undefined;
}

export function firstExisting(candidates: string[]): string | undefined {
  return candidates.find((c) => existsSync(c));
}

/** Summary counts: samples per split and per class. */
export function countSplits(dataset: VideoDataset): { split: string; samples: number; perClass: number[] }[] {
  return Object.entries(dataset.splits).map(([split, samples]) => {
    const perClass = new Array<number>(dataset.classes.length).fill(0);
    for (const s of samples) if (s.label >= 0) perClass[s.label]!++;
    return { split, samples: samples.length, perClass };
  });
}

/** Unique samples over all splits (by cache key), in first-seen order. */
export function uniqueSamples(dataset: VideoDataset): VideoSample[] {
  const seen = new Map<string, VideoSample>();
  for (const samples of Object.values(dataset.splits)) {
    for (const s of samples) if (!seen.has(sampleKey(s))) seen.set(sampleKey(s), s);
  }
  return [...seen.values()];
}

/** Returns one split, with a UserError that lists the splits there are. */
export function getSplit(dataset: VideoDataset, split: string): VideoSample[] {
  const samples = dataset.splits[split];
  if (!samples) {
    throw new UserError(`${dataset.format} dataset at ${dataset.root} has no split "${split}"; splits: ${Object.keys(dataset.splits).join(', ') || '(none)'}`);
  }
  return samples;
}
