import { appendFileSync, existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
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

/** The fields resume relies on; the others (loss, lr, ...) are carried through as they are. */
const MetricsLineSchema = z.discriminatedUnion('type', [
  z.looseObject({ type: z.literal('step'), step: z.number().int().positive(), epoch: z.number().int().positive() }),
  z.looseObject({ type: z.literal('epoch'), epoch: z.number().int().positive() }),
]);

/** The name of the lock file a running `stcnet train` holds in its run folder (see src/video/lock.ts). */
export const RUN_LOCK = '.lock';

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
      // A lock file alone (a run that is starting, or a stale one) is not content; acquireLock judges it.
      entries = readdirSync(dir).filter((name) => name !== RUN_LOCK);
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

  /**
   * The records of metrics.jsonl, each line validated. A damaged last line is what a crash in the
   * middle of an append leaves, so it is dropped; a damaged line before it is not something stcnet
   * writes, so it is an error naming the file and line rather than a silent gap in the history.
   */
  readMetrics(): MetricsRecord[] {
    if (!existsSync(this.metrics)) return [];
    let text: string;
    try {
      text = readFileSync(this.metrics, 'utf8');
    } catch (error) {
      throw fsUserError(error, this.metrics);
    }
    const lines = text.split('\n');
    let last = lines.length - 1;
    while (last >= 0 && lines[last]!.trim() === '') last--;
    const records: MetricsRecord[] = [];
    for (let i = 0; i <= last; i++) {
      const line = lines[i]!;
      if (line.trim() === '') throw new UserError(`${this.metrics}: line ${i + 1}: empty line (expected a JSON record; the file is damaged)`);
      const problem = metricsLineProblem(line);
      if (problem === undefined) {
        records.push(JSON.parse(line) as MetricsRecord);
        continue;
      }
      if (i === last) break; // cut short by a crash while it was appended
      throw new UserError(`${this.metrics}: line ${i + 1}: ${problem} (the file is damaged; only its last line may be cut short)`);
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

/** Why a metrics.jsonl line is not a record, or undefined when it is one. */
function metricsLineProblem(line: string): string | undefined {
  let value: unknown;
  try {
    value = JSON.parse(line);
  } catch {
    return 'not valid JSON';
  }
  const parsed = MetricsLineSchema.safeParse(value);
  if (parsed.success) return undefined;
  const issue = parsed.error.issues[0]!;
  return `expected a step or epoch record${issue.path.length > 0 ? `, ${issue.path.join('.')}: ${issue.message}` : `: ${issue.message}`}`;
}
