import { appendFileSync, existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import { ensureDir, fsUserError, TEMPORARY_SIBLING, writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import { configToYaml, orderedConfig, type TrainConfig } from './config.js';

/**
 * The run folder of `stcnet train`:
 *
 *     config.yaml, config.json        the resolved, validated configuration
 *     metrics.jsonl                   one JSON line per optimizer step and per epoch
 *     last.safetensors                the latest weights (model checkpoint with metadata)
 *     last.state.safetensors          everything resume needs (weights, optimizer, schedule, position)
 *     best.safetensors, best.state.safetensors   the same at the best validation accuracy
 *     plots/{loss,accuracy,lr}.{svg,png}
 *     summary.json                    written when the run ends (completed or interrupted)
 *
 * Every file but metrics.jsonl is replaced atomically (temporary sibling, then rename). metrics.jsonl
 * grows by one whole line per write; a line cut short by a crash is dropped when the run resumes.
 */

export type CheckpointName = 'last' | 'best';

/** A line of metrics.jsonl. */
export type MetricsRecord = ({ type: 'step'; step: number } | { type: 'epoch'; epoch: number }) & Record<string, unknown>;

export class RunDir {
  constructor(readonly dir: string) {}

  get configYaml(): string { return path.join(this.dir, 'config.yaml'); }
  get configJson(): string { return path.join(this.dir, 'config.json'); }
  get metrics(): string { return path.join(this.dir, 'metrics.jsonl'); }
  get summary(): string { return path.join(this.dir, 'summary.json'); }
  get plots(): string { return path.join(this.dir, 'plots'); }
  weights(name: CheckpointName): string { return path.join(this.dir, `${name}.safetensors`); }
  state(name: CheckpointName): string { return path.join(this.dir, `${name}.state.safetensors`); }

  /**
   * Refuses a folder that already holds files (another run's, or anything else): a new run never
   * mixes its files with others. Checked before any work, created only once everything is valid.
   */
  static checkFresh(dir: string): void {
    if (!existsSync(dir)) return;
    let entries: string[];
    try {
      if (!statSync(dir).isDirectory()) throw new UserError(`--out ${dir}: is a file, expected a run folder`);
      entries = readdirSync(dir);
    } catch (error) {
      throw fsUserError(error, dir);
    }
    if (entries.length === 0) return;
    const hint = entries.includes('config.json') ? `to continue that run, use --resume ${dir}; ` : '';
    throw new UserError(`--out ${dir}: the folder is not empty (${entries.slice(0, 3).join(', ')}${entries.length > 3 ? ', …' : ''}); ${hint}choose a new folder`);
  }

  /** Checks that `dir` holds a run that can be resumed; returns its saved config (unvalidated). */
  static readSavedConfig(dir: string): Record<string, unknown> {
    const run = new RunDir(dir);
    if (!existsSync(run.configJson)) {
      throw new UserError(`--resume ${dir}: no config.json there (not a stcnet train run folder, or one that never started)`);
    }
    let config: unknown;
    try {
      config = JSON.parse(readFileSync(run.configJson, 'utf8'));
    } catch (error) {
      throw new UserError(`${run.configJson}: not valid JSON (${(fsUserError(error) as Error).message})`);
    }
    if (typeof config !== 'object' || config === null || Array.isArray(config)) throw new UserError(`${run.configJson}: expected an object`);
    return config as Record<string, unknown>;
  }

  create(config: TrainConfig): void {
    ensureDir(this.dir);
    ensureDir(this.plots);
    writeFileAtomic(this.configYaml, configToYaml(config));
    writeJsonAtomic(this.configJson, orderedConfig(config));
  }

  /** Deletes temporary files a killed run left (only names stcnet's atomic writes make); returns their names. */
  removeTemporaries(): string[] {
    const removed: string[] = [];
    for (const folder of [this.dir, this.plots]) {
      if (!existsSync(folder)) continue;
      for (const name of readdirSync(folder)) {
        if (!TEMPORARY_SIBLING.test(name)) continue;
        rmSync(path.join(folder, name), { force: true });
        removed.push(name);
      }
    }
    return removed;
  }

  append(record: MetricsRecord): void {
    try {
      // One write per line: a crash leaves whole lines plus at most one partial last line.
      appendFileSync(this.metrics, JSON.stringify(record) + '\n');
    } catch (error) {
      throw fsUserError(error, this.metrics);
    }
  }

  /** The records of metrics.jsonl (a partial last line, from a crash, is skipped). */
  readMetrics(): MetricsRecord[] {
    if (!existsSync(this.metrics)) return [];
    const records: MetricsRecord[] = [];
    for (const line of readFileSync(this.metrics, 'utf8').split('\n')) {
      if (line.trim() === '') continue;
      try {
        records.push(JSON.parse(line) as MetricsRecord);
      } catch {
        // The last line of a killed run may be cut short; whole lines are all that count.
      }
    }
    return records;
  }

  /**
   * Keeps the records up to a checkpoint (steps ≤ `steps`, epochs ≤ `epochs`), so a resumed run
   * does not repeat lines written after the checkpoint it continues from. Rewritten atomically.
   */
  truncateMetrics(steps: number, epochs: number): MetricsRecord[] {
    const kept = this.readMetrics().filter((record) => (record.type === 'step' ? record.step <= steps : record.epoch <= epochs));
    writeFileAtomic(this.metrics, kept.map((record) => JSON.stringify(record) + '\n').join(''));
    return kept;
  }
}
