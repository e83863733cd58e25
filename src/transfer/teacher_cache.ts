import { existsSync } from 'node:fs';
import { dispose, fromTypedArray } from '../engine/index.js';
import { readSafetensors, writeSafetensors } from '../nn/safetensors.js';
import { fsUserError } from '../util/fs.js';

/**
 * `--cache-teacher`: the frozen teacher's features of each (video, position), computed once and
 * reused in every later epoch. The teacher is in eval mode and its frames for a (video, position)
 * are always the same pixels (fixed grid position, centre crop), so a cached row is what the teacher
 * would compute again. The cache is written to the run folder with each checkpoint, so a resumed
 * run reuses the very same rows (and its losses are those of the run that was never stopped).
 */
export class TeacherCache {
  private readonly rows = new Map<string, Float32Array>();
  /** Rows served from the cache, and rows the teacher computed (and the cache took). */
  hits = 0;
  misses = 0;

  constructor(readonly features: number) {}

  get size(): number {
    return this.rows.size;
  }

  /** The cached row (counted as a hit), or undefined. */
  lookup(key: string): Float32Array | undefined {
    const row = this.rows.get(key);
    if (row) this.hits++;
    return row;
  }

  has(key: string): boolean {
    return this.rows.has(key);
  }

  set(key: string, row: Float32Array): void {
    if (row.length !== this.features) throw new Error(`TeacherCache: a row of ${row.length} features, expected ${this.features}`);
    if (!this.rows.has(key)) this.misses++;
    this.rows.set(key, row);
  }

  /**
   * Writes every row to `file` (safetensors: one N×F tensor, the keys in the metadata, and a
   * fingerprint of what produced them: teacher, frames, data). Atomic (writeSafetensors).
   */
  save(file: string, fingerprint: string): void {
    const keys = [...this.rows.keys()];
    const data = new Float32Array(keys.length * this.features);
    keys.forEach((key, i) => data.set(this.rows.get(key)!, i * this.features));
    const table = fromTypedArray(data, [keys.length, this.features]);
    try {
      writeSafetensors(file, new Map([['features', table]]), { format: 'stcnet-teacher-cache', keys: JSON.stringify(keys), fingerprint });
    } catch (error) {
      throw fsUserError(error, file);
    } finally {
      table.dispose();
    }
  }

  /**
   * The cache saved by `save`, or an empty one when there is none or it was made by another teacher,
   * other frames or other data (its fingerprint differs): a cache is only ever a shortcut.
   */
  static load(file: string, features: number, fingerprint: string): TeacherCache {
    const cache = new TeacherCache(features);
    if (!existsSync(file)) return cache;
    let contents;
    try {
      contents = readSafetensors(file);
    } catch {
      return cache; // damaged: recomputed
    }
    try {
      const table = contents.tensors.get('features');
      if (contents.metadata.fingerprint !== fingerprint || !table || table.rank !== 2 || table.shape[1] !== features) return cache;
      let keys: unknown;
      try {
        keys = JSON.parse(contents.metadata.keys ?? '');
      } catch {
        return cache;
      }
      if (!Array.isArray(keys) || keys.length !== table.shape[0] || !keys.every((k) => typeof k === 'string')) return cache;
      const data = table.toFloat32Array();
      (keys as string[]).forEach((key, i) => cache.rows.set(key, data.slice(i * features, (i + 1) * features)));
      return cache;
    } finally {
      dispose([...contents.tensors.values()]);
    }
  }
}
