import path from 'node:path';
import { statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { UserError } from '../../util/errors.js';
import { isHidden, isVideoFile, listFiles, parseCsv, readClassList, readText, type LoadDatasetOptions, type MissingFile, type VideoDataset, type VideoSample } from '../dataset.js';

/** The official Kinetics file name: `<youtube_id>_<start:06>_<end:06>.mp4`. */
export function kineticsFileStem(youtubeId: string, start: number, end: number): string {
  return `${youtubeId}_${String(Math.round(start)).padStart(6, '0')}_${String(Math.round(end)).padStart(6, '0')}`;
}

function splitFromFileName(file: string): string | undefined {
  const base = path.basename(file).toLowerCase();
  if (/(^|[^a-z])train/.test(base)) return 'train';
  if (/val/.test(base)) return 'val';
  if (/test/.test(base)) return 'test';
  return undefined;
}

function normaliseSplit(split: string): string {
  const s = split.trim().toLowerCase();
  return s === 'validate' || s === 'validation' ? 'val' : s;
}

/**
 * Kinetics (400/600/700): CSVs with columns label, youtube_id, time_start, time_end, split (is_cc is
 * ignored; test CSVs may lack labels). Video files are found anywhere under the root by their official
 * name `<id>_<start:06>_<end:06>.<ext>` (the ActivityNet downloader puts them in `<split>/<label>/`).
 */
export async function loadKinetics(root: string, options: LoadDatasetOptions = {}): Promise<VideoDataset> {
  let csvFiles: string[];
  const ann = options.annotations;
  if (ann && statSync(ann, { throwIfNoEntry: false })?.isFile()) {
    csvFiles = [ann];
  } else {
    const dir = ann ?? root;
    const candidates = [dir, path.join(dir, 'annotations')];
    csvFiles = [];
    for (const d of candidates) {
      if (!statSync(d, { throwIfNoEntry: false })?.isDirectory()) continue;
      csvFiles.push(...(await readdir(d)).filter((f) => !isHidden(f) && f.toLowerCase().endsWith('.csv')).sort().map((f) => path.join(d, f)));
    }
  }
  if (csvFiles.length === 0) throw new UserError(`kinetics: no CSV files in ${ann ?? root} (use --annotations FILE_OR_DIR)`);
  const videos = options.videos ?? root;
  const byStem = new Map<string, string>();
  for (const rel of await listFiles(videos)) {
    if (!isVideoFile(rel)) continue;
    const stem = path.basename(rel, path.extname(rel));
    if (!byStem.has(stem)) byStem.set(stem, rel);
  }
  interface Row { label?: string; id: string; start: number; end: number; split: string; file: string; line: number }
  const rows: Row[] = [];
  for (const file of csvFiles) {
    const table = parseCsv(await readText(file, 'kinetics'));
    if (table.length === 0) continue;
    const header = table[0]!.map((h) => h.trim().toLowerCase());
    const col = (name: string): number => header.indexOf(name);
    const [cLabel, cId, cStart, cEnd, cSplit] = [col('label'), col('youtube_id'), col('time_start'), col('time_end'), col('split')];
    if (cId < 0 || cStart < 0 || cEnd < 0) {
      throw new UserError(`kinetics: ${file}: header must have youtube_id, time_start, time_end (and label, split); got "${table[0]!.join(',')}"`);
    }
    const fileSplit = splitFromFileName(file);
    for (let r = 1; r < table.length; r++) {
      const cells = table[r]!;
      const line = r + 1;
      const start = Number(cells[cStart]);
      const end = Number(cells[cEnd]);
      if (!Number.isFinite(start) || !Number.isFinite(end)) {
        throw new UserError(`kinetics: ${file}:${line}: time_start/time_end must be numbers, got "${cells[cStart]}", "${cells[cEnd]}"`);
      }
      const split = cSplit >= 0 && cells[cSplit]?.trim() ? normaliseSplit(cells[cSplit]!) : fileSplit;
      if (!split) throw new UserError(`kinetics: ${file}: no split column and the file name does not say train, val or test`);
      const label = cLabel >= 0 ? cells[cLabel]?.trim() : undefined;
      rows.push({ label: label || undefined, id: cells[cId]!.trim(), start, end, split, file, line });
    }
  }
  const classes = options.classList
    ? await readClassList(options.classList)
    : [...new Set(rows.map((r) => r.label).filter((l): l is string => l !== undefined))].sort();
  const classIndex = new Map(classes.map((c, i) => [c, i]));
  const splits: Record<string, VideoSample[]> = {};
  const missing: MissingFile[] = [];
  for (const row of rows) {
    const samples = (splits[row.split] ??= []);
    let label = -1;
    if (row.label !== undefined) {
      const index = classIndex.get(row.label);
      if (index === undefined) throw new UserError(`kinetics: ${row.file}:${row.line}: label "${row.label}" is not in the class list`);
      label = index;
    }
    const stem = kineticsFileStem(row.id, row.start, row.end);
    const rel = byStem.get(stem);
    if (!rel) {
      missing.push({ split: row.split, path: path.join(videos, row.label ?? '', `${stem}.mp4`), listedIn: row.file, line: row.line });
      continue;
    }
    samples.push({ path: path.join(videos, rel), relPath: rel, label, group: row.id });
  }
  return { format: 'kinetics', root: videos, classes, splits, missing };
}
