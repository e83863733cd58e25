import path from 'node:path';
import { existsSync } from 'node:fs';
import { UserError } from '../../util/errors.js';
import { lines, parseCsv, readClassList, readText, type LoadDatasetOptions, type MissingFile, type VideoDataset, type VideoSample } from '../dataset.js';

interface Entry { path: string; label: string; start?: number; end?: number; split: string; group?: string; line: number }

function optionalNumber(value: unknown, file: string, line: number, field: string): number | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const num = Number(value);
  if (!Number.isFinite(num) || num < 0) throw new UserError(`manifest: ${file}:${line}: ${field} must be a number of seconds >= 0, got "${String(value)}"`);
  return num;
}

/**
 * A manifest: CSV with a header (path,label[,start,end,split,group]) or JSONL with the same keys.
 * Paths are relative to the manifest's folder (or absolute). Labels are class names, or integer
 * indices when every label is an integer. Without a split column everything is split `all`.
 */
export async function loadManifest(file: string, options: LoadDatasetOptions = {}): Promise<VideoDataset> {
  const text = await readText(file, 'manifest');
  const entries: Entry[] = [];
  const isJson = /\.jsonl?$/i.test(file) || text.trimStart().startsWith('{');
  if (isJson) {
    for (const { text: lineText, line } of lines(text)) {
      let obj: Record<string, unknown>;
      try {
        obj = JSON.parse(lineText) as Record<string, unknown>;
      } catch {
        throw new UserError(`manifest: ${file}:${line}: not a JSON object`);
      }
      if (typeof obj.path !== 'string' || obj.path === '') throw new UserError(`manifest: ${file}:${line}: "path" must be a non-empty string`);
      if (obj.label === undefined || obj.label === null) throw new UserError(`manifest: ${file}:${line}: "label" is missing`);
      entries.push({
        path: obj.path, label: String(obj.label), start: optionalNumber(obj.start, file, line, 'start'), end: optionalNumber(obj.end, file, line, 'end'),
        split: typeof obj.split === 'string' && obj.split ? obj.split : 'all', group: typeof obj.group === 'string' ? obj.group : undefined, line,
      });
    }
  } else {
    const table = parseCsv(text);
    if (table.length === 0) throw new UserError(`manifest: ${file} is empty`);
    const header = table[0]!.map((h) => h.trim().toLowerCase());
    const col = (name: string): number => header.indexOf(name);
    const [cPath, cLabel, cStart, cEnd, cSplit, cGroup] = ['path', 'label', 'start', 'end', 'split', 'group'].map(col) as [number, number, number, number, number, number];
    if (cPath < 0 || cLabel < 0) throw new UserError(`manifest: ${file}: the header must name path and label columns, got "${table[0]!.join(',')}"`);
    for (let r = 1; r < table.length; r++) {
      const cells = table[r]!;
      const line = r + 1;
      const p = cells[cPath]?.trim();
      const label = cells[cLabel]?.trim();
      if (!p) throw new UserError(`manifest: ${file}:${line}: empty path`);
      if (!label) throw new UserError(`manifest: ${file}:${line}: empty label`);
      entries.push({
        path: p, label,
        start: cStart >= 0 ? optionalNumber(cells[cStart]?.trim(), file, line, 'start') : undefined,
        end: cEnd >= 0 ? optionalNumber(cells[cEnd]?.trim(), file, line, 'end') : undefined,
        split: cSplit >= 0 && cells[cSplit]?.trim() ? cells[cSplit]!.trim() : 'all',
        group: cGroup >= 0 && cells[cGroup]?.trim() ? cells[cGroup]!.trim() : undefined,
        line,
      });
    }
  }
  for (const e of entries) {
    if (e.start !== undefined && e.end !== undefined && e.end <= e.start) {
      throw new UserError(`manifest: ${file}:${e.line}: end (${e.end}) must be after start (${e.start})`);
    }
  }
  const root = options.videos ?? path.dirname(path.resolve(file));
  let classes: string[];
  let labelOf: (label: string, line: number) => number;
  if (options.classList) {
    classes = await readClassList(options.classList);
    const index = new Map(classes.map((c, i) => [c, i]));
    labelOf = (label, line) => {
      const i = index.get(label);
      if (i === undefined) throw new UserError(`manifest: ${file}:${line}: label "${label}" is not in ${options.classList}`);
      return i;
    };
  } else if (entries.length > 0 && entries.every((e) => /^\d+$/.test(e.label))) {
    const max = Math.max(...entries.map((e) => Number(e.label)));
    classes = Array.from({ length: max + 1 }, (_, i) => String(i));
    labelOf = (label) => Number(label);
  } else {
    classes = [...new Set(entries.map((e) => e.label))].sort();
    const index = new Map(classes.map((c, i) => [c, i]));
    labelOf = (label) => index.get(label)!;
  }
  const splits: Record<string, VideoSample[]> = {};
  const missing: MissingFile[] = [];
  for (const e of entries) {
    const samples = (splits[e.split] ??= []);
    const abs = path.isAbsolute(e.path) ? e.path : path.join(root, e.path);
    const label = labelOf(e.label, e.line);
    if (!existsSync(abs)) {
      missing.push({ split: e.split, path: abs, listedIn: file, line: e.line });
      continue;
    }
    const rel = path.relative(root, abs).split(path.sep).join('/');
    samples.push({ path: abs, relPath: rel, label, start: e.start, end: e.end, group: e.group ?? rel });
  }
  return { format: 'manifest', root, classes, splits, missing };
}
