import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fromTypedArray, noGrad, tidy } from '../engine/index.js';
import type { Module } from '../nn/index.js';
import type { ClipBatch } from '../data/loader.js';
import type { Shard } from '../data/samplers.js';
import { batchTensors } from '../train/epoch.js';
import { ScoreAccumulator, type AccuracyReport } from '../train/metrics.js';
import { UserError } from '../util/errors.js';
import { writeJsonAtomic } from '../util/fs.js';
import type { JobEnv } from './env.js';
import { ProcessGroup } from './process_group.js';
import type { Backend } from './native.js';
import { anyRankStopping, broadcastState, GradientSync, synchroniseBatchNorm, type GradientMode } from './ddp.js';

/** Sums over every rank of one optimizer step's group of batches. */
export interface StepTotals {
  loss: number;
  correct: number;
  clips: number;
}

/** What the trainer needs of a data-parallel job; one per rank, made by DataParallel.join. */
export class DataParallel {
  private gradients: GradientSync | undefined;

  private constructor(readonly group: ProcessGroup, private readonly mode: GradientMode, private readonly syncBn: boolean) {}

  /** `backend`: Gloo for CPU training; NCCL for `--device cuda` (an addon built with NCCL only). */
  static async join(job: JobEnv, options: { gradients: GradientMode; syncBn: boolean; backend?: Backend }): Promise<DataParallel> {
    return new DataParallel(await ProcessGroup.join(job, options.backend ?? 'gloo'), options.gradients, options.syncBn);
  }

  get rank(): number {
    return this.group.rank;
  }

  get worldSize(): number {
    return this.group.worldSize;
  }

  /** Only rank 0 writes the run folder (checkpoints, metrics, plots, reports). */
  get isWriter(): boolean {
    return this.group.rank === 0;
  }

  /** This rank's share of every epoch. */
  get shard(): Shard {
    return { rank: this.group.rank, world: this.group.worldSize };
  }

  /** Rank 0's weights and buffers on every rank, synchronised BatchNorm if asked, gradient averaging hooked up. */
  async setup(model: Module): Promise<string[]> {
    await broadcastState(this.group, model);
    const notes = [`distributed: rank ${this.rank} of ${this.worldSize} (${this.group.backend === 'nccl' ? 'NCCL' : 'Gloo'}), gradients averaged ${this.mode === 'overlap' ? 'in buckets during backward (c10d Reducer)' : 'by one all-reduce after backward'}; ` +
      `each process trains on 1/${this.worldSize} of every epoch with its own batch (the global batch is ${this.worldSize}× the batch size)`];
    if (this.syncBn) notes.push(`distributed: ${synchroniseBatchNorm(this.group, model)} BatchNorm layers synchronised across the ranks`);
    this.gradients = new GradientSync(this.group, model, this.mode);
    return notes;
  }

  /** Before the backward of a batch; `sync`: it ends an optimizer step, so its gradients are averaged. */
  beforeBackward(sync: boolean): void {
    if (sync) this.gradients!.beforeBackward();
  }

  /** Runs forward and backward; a failed all-reduce inside backward (the Reducer's) names the rank that broke it. */
  async guardBackward<T>(body: () => T): Promise<T> {
    try {
      return body();
    } catch (error) {
      throw await this.group.explain('backward (the gradients\' all-reduce)', error);
    }
  }

  /** After the backward of the step's last batch. */
  async afterBackward(): Promise<void> {
    await this.gradients!.afterBackward();
  }

  /**
   * A rank whose batch had no loadable clip still takes part in the step: a backward of zero
   * through every parameter gives zero gradients, so the all-reduce (and the Reducer) complete.
   */
  zeroBackward(model: Module, sync: boolean): void {
    this.beforeBackward(sync);
    const params = model.parameters().filter((p) => p.requiresGrad);
    tidy(() => params.map((p) => p.sum().mul(0)).reduce((a, b) => a.add(b)).backward());
  }

  /** The step's loss, accuracy and clips summed over the ranks, and whether any rank is stopping. */
  async endStep(local: StepTotals, stopping: boolean): Promise<StepTotals & { stop: boolean }> {
    const values = fromTypedArray(Float64Array.from([local.loss, local.correct, local.clips, stopping ? 1 : 0]), [4]);
    try {
      await this.group.allReduce([values], 'all-reduce of the step\'s loss and accuracy');
      const [loss, correct, clips, stop] = values.toArray() as [number, number, number, number];
      return { loss, correct, clips, stop: stop > 0 };
    } finally {
      values.dispose();
    }
  }

  /** Whether any rank is stopping (at an epoch's end, where no step all-reduce tells). */
  async anyStopping(stopping: boolean): Promise<boolean> {
    return anyRankStopping(this.group, stopping);
  }

  /**
   * Validation over every rank's share of the clips: each rank scores its own, then every score
   * is gathered so the clip and video accuracies are those of the whole split, exactly.
   */
  async evaluate(model: Module, batches: AsyncIterable<ClipBatch>, numClasses: number, onBatch?: (clips: number) => void): Promise<AccuracyReport> {
    const rows: number[] = [];
    const width = numClasses + 3;
    const wasTraining = model.training;
    model.eval();
    try {
      for await (const batch of batches) {
        const probabilities = noGrad(() => tidy(() => model.forward(batchTensors(batch).clips).softmax(1).toFloat32Array()));
        for (let i = 0; i < batch.labels.length; i++) {
          rows.push(batch.videoIndices[i]!, batch.clipIndices?.[i] ?? 0, batch.labels[i]!);
          for (let c = 0; c < numClasses; c++) rows.push(probabilities[i * numClasses + c]!);
        }
        onBatch?.(batch.labels.length); // this rank's share: rank 0's bar ends near 1/W, then jumps to done
      }
    } finally {
      model.train(wasTraining);
    }
    const all = await this.gatherRows(rows, width);
    // In (video, clip) order, as one process adds them, so the averages match it bit for bit.
    all.sort((a, b) => a[0]! - b[0]! || a[1]! - b[1]!);
    const accumulator = new ScoreAccumulator(numClasses);
    for (const row of all) accumulator.add(Float32Array.from(row.subarray(3)), [row[2]!], [row[0]!]);
    return accumulator.report();
  }

  /** Every rank's rows (different counts per rank): counts first, then rows padded to the longest. */
  private async gatherRows(rows: number[], width: number): Promise<Float64Array[]> {
    const count = rows.length / width;
    const counts = await this.group.allGather(fromTypedArray(Float64Array.from([count]), [1]), 'all-gather of the validation clip counts');
    const perRank = counts.toArray();
    counts.dispose();
    const longest = Math.max(1, ...perRank);
    const padded = new Float64Array(longest * width);
    padded.set(rows);
    const local = fromTypedArray(padded, [longest, width]);
    const gathered = await this.group.allGather(local, 'all-gather of the validation scores');
    local.dispose();
    const data = gathered.toTypedArray() as Float64Array;
    gathered.dispose();
    const out: Float64Array[] = [];
    perRank.forEach((n, rank) => {
      for (let i = 0; i < n; i++) out.push(data.subarray((rank * longest + i) * width, (rank * longest + i + 1) * width));
    });
    return out;
  }

  /**
   * A run is resumed by as many processes as trained it: the split of each epoch (and so the
   * batches still to come) depends on the world size. Rank 0 records it in the run folder.
   */
  static recordWorld(runDir: string, worldSize: number): void {
    writeJsonAtomic(path.join(runDir, WORLD_FILE), { worldSize });
  }

  static checkWorld(runDir: string, worldSize: number): void {
    const file = path.join(runDir, WORLD_FILE);
    const was = existsSync(file) ? (JSON.parse(readFileSync(file, 'utf8')) as { worldSize: number }).worldSize : 1;
    if (was !== worldSize) {
      throw new UserError(`--resume ${runDir}: the run was trained by ${was} process${was === 1 ? '' : 'es'}, not ${worldSize}; resume it with the same world size (${was === 1 ? 'without --nproc-per-node' : `WORLD_SIZE=${was}, e.g. --nproc-per-node ${was}`})`);
    }
  }

  close(): void {
    this.group.destroy();
  }
}

/** In a run folder trained by more than one process: its world size. */
export const WORLD_FILE = 'distributed.json';
