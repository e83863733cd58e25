import { readFileSync } from 'node:fs';
import { UserError } from '../util/errors.js';
import { fsUserError } from '../util/fs.js';

/**
 * Class-name files, in the shapes they come in:
 * - one name per line (mmaction2's `label_map_k400.txt`, the maps in shared/videos/label_maps);
 * - `INDEX NAME` per line (UCF101's `classInd.txt`, 1-based; 0-based works too);
 * - JSON: an array of names, `{"name": index}` (Kinetics' `classids.json`) or `{"index": "name"}`;
 * - CSV with an `id,name` header (Kinetics label CSVs).
 * Blank lines and a trailing newline are ignored; CRLF is fine.
 */
export function parseLabels(text: string, file: string): string[] {
  const body = text.replace(/^\uFEFF/, '');
  const trimmed = body.trim();
  if (trimmed === '') throw new UserError(`${file}: no class names (the file is empty)`);
  if (trimmed.startsWith('[') || trimmed.startsWith('{')) return fromJson(trimmed, file);
  const lines = body.split(/\r\n|\n|\r/).map((line, i) => ({ text: line.trim(), line: i + 1 })).filter((l) => l.text !== '');
  if (/^(id|index|label_id),\s*(name|label|class)$/i.test(lines[0]!.text)) return fromCsv(lines.slice(1), file);
  if (lines.every((l) => /^\d+\s+\S/.test(l.text))) {
    return fromIndexed(lines.map((l) => {
      const match = /^(\d+)\s+(.+)$/.exec(l.text)!;
      return { index: Number(match[1]), name: match[2]!, line: l.line };
    }), file);
  }
  return checkNames(lines.map((l) => l.text), file);
}

export function readLabels(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw fsUserError(error, file);
  }
  return parseLabels(text, file);
}

function checkNames(names: string[], file: string): string[] {
  const seen = new Map<string, number>();
  names.forEach((name, i) => {
    const earlier = seen.get(name);
    if (earlier !== undefined) throw new UserError(`${file}: class "${name}" is listed twice (classes ${earlier} and ${i}, 0-based)`);
    seen.set(name, i);
  });
  return names;
}

/** Entries with explicit indices: 0- or 1-based, each index once, no gaps. */
function fromIndexed(entries: { index: number; name: string; line?: number }[], file: string): string[] {
  const base = Math.min(...entries.map((e) => e.index));
  if (base !== 0 && base !== 1) throw new UserError(`${file}: class indices must start at 0 or 1, the smallest is ${base}`);
  const names = new Array<string | undefined>(entries.length).fill(undefined);
  for (const entry of entries) {
    const at = entry.index - base;
    const where = entry.line !== undefined ? ` (line ${entry.line})` : '';
    if (at >= entries.length) throw new UserError(`${file}: class index ${entry.index}${where} leaves a gap (${entries.length} classes from ${base})`);
    if (names[at] !== undefined) throw new UserError(`${file}: class index ${entry.index}${where} is given twice`);
    names[at] = entry.name.trim();
  }
  return checkNames(names as string[], file);
}

function fromCsv(lines: { text: string; line: number }[], file: string): string[] {
  return fromIndexed(lines.map((l) => {
    const match = /^(\d+),\s*(?:"((?:[^"]|"")*)"|(.*))$/.exec(l.text);
    if (!match) throw new UserError(`${file}: line ${l.line}: expected INDEX,NAME, got "${l.text}"`);
    return { index: Number(match[1]), name: match[2] !== undefined ? match[2].replace(/""/g, '"') : match[3]!, line: l.line };
  }), file);
}

function fromJson(text: string, file: string): string[] {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (error) {
    throw new UserError(`${file}: not valid JSON (${error instanceof Error ? error.message : String(error)})`);
  }
  if (Array.isArray(value)) {
    const bad = value.findIndex((v) => typeof v !== 'string' || v.trim() === '');
    if (bad >= 0) throw new UserError(`${file}: entry ${bad} of the JSON array is not a class name`);
    if (value.length === 0) throw new UserError(`${file}: no class names (empty JSON array)`);
    return checkNames((value as string[]).map((v) => v.trim()), file);
  }
  if (value === null || typeof value !== 'object') throw new UserError(`${file}: expected a JSON array of names or an object mapping names to indices`);
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 0) throw new UserError(`${file}: no class names (empty JSON object)`);
  // {"name": 0, ...} or {"0": "name", ...}
  if (entries.every(([, v]) => typeof v === 'number' && Number.isInteger(v))) {
    return fromIndexed(entries.map(([name, index]) => ({ name, index: index as number })), file);
  }
  if (entries.every(([k, v]) => /^\d+$/.test(k) && typeof v === 'string')) {
    return fromIndexed(entries.map(([index, name]) => ({ name: name as string, index: Number(index) })), file);
  }
  throw new UserError(`${file}: expected a JSON array of names, {"name": index} or {"index": "name"}`);
}
