import { readCacheMeta } from '../video/cache_index.js';
import { existsSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { closest } from 'fastest-levenshtein';
import { cudaAvailable, F, getConvAlgorithm, manualSeed, memory, noGrad, setConvAlgorithm, tidy } from '../engine/index.js';
import { loadDataset } from '../data/formats/index.js';
import { ClipLoader, type ClipBatch } from '../data/loader.js';
import { hashKeys } from '../data/random.js';
import { NORMALIZATIONS } from '../data/transforms.js';
import type { VideoDataset, VideoSample } from '../data/dataset.js';
import { modelEntry } from '../models/registry.js';
import type { Preprocessing } from '../models/checkpoint.js';
import { saveModelCheckpoint } from '../models/checkpoint.js';
import type { ZooModel } from '../models/base.js';
import type { Optimizer } from '../optim/optimizer.js';
import { clipGradNorm_ } from '../optim/clip.js';
import { UserError } from '../util/errors.js';
import { Progress } from '../util/progress.js';
import { ensureDir, writeJsonAtomic } from '../util/fs.js';
import { acquireLock, type FolderLock } from '../video/lock.js';
import type { BatchFailure } from '../data/clip.js';
import { batchTensors, evaluate } from './epoch.js';
import { validateConfig, type TrainConfig } from './config.js';
import { buildModel, buildOptimizer, setTrainingMode } from './model_setup.js';
import { buildSchedule, type RunSchedule } from './schedule.js';
import { RunDir, type MetricsRecord } from './run_dir.js';
import { emptyTotals, loadTrainingState, saveTrainingState, type EpochTotals, type TrainingState } from './state.js';
import { writeTrainingPlots } from './plots.js';
import { OnDevice } from './on_device.js';
import { checkAutocast, cpuBf16Warning } from './autocast.js';
import type { Module } from '../nn/index.js';
import type { Shard } from '../data/samplers.js';
import { DataParallel } from '../distributed/data_parallel.js';

/**
 * `stcnet train` as a library function: validates everything, then trains epoch by epoch with
 * validation, writing the run folder (config, metrics, checkpoints, plots, summary). The CLI and
 * the demo both call it. Deterministic for a seed: model init from `seed`, data from (seed, epoch,
 * position), libtorch's generator reseeded per batch; so `resume` gives the run that was never stopped.
 */

export type StepRecord = {
  type: 'step';
  step: number;
  epoch: number;
  /** Batches of the epoch done after this step. */
  batch: number;
  loss: number;
  accuracy: number;
  lr: number;
  clipsPerSecond: number;
  /** Share of the step's wall time spent waiting for the loader. */
  dataWait: number;
  /** With `clip-grad-norm`: the gradients' joint L2 norm before clipping. */
  gradNorm?: number;
};

export type EpochRecord = {
  type: 'epoch';
  /** 1-based: the epoch just finished. */
  epoch: number;
  steps: number;
  loss: number;
  accuracy: number;
  valAccuracy: number | null;
  valTop5: number | null;
  lr: number;
  clipsPerSecond: number;
  dataWait: number;
  seconds: number;
  best: boolean;
  /** Live libtorch tensors after the epoch (weights, optimizer state): flat from epoch to epoch, or something leaks. */
  liveTensors: number;
};

export type TrainEvent =
  | { type: 'log'; message: string }
  | StepRecord
  | EpochRecord
  | { type: 'checkpoint'; name: 'last' | 'best'; path: string };

export interface RunTrainingOptions {
  /** Every log line, step, epoch and checkpoint, as it happens. */
  onEvent?: (event: TrainEvent) => void;
  /** Aborting stops after the current optimizer step, saves `last` and returns status 'interrupted'. */
  signal?: AbortSignal;
  /** Continue the run in `config.out` from its `last` state (the config must be the run's own). */
  resume?: boolean;
  /** Progress bars (stderr); default: unless config.quiet. */
  progress?: boolean;
  /**
   * This process is one rank of a data-parallel job (src/distributed): it trains on its share of
   * each epoch, gradients are averaged over the ranks, and only rank 0 writes the run folder.
   */
  dataParallel?: DataParallel;
}

export interface TrainSummary {
  status: 'completed' | 'interrupted';
  runDir: string;
  /** Epochs completed and optimizer steps taken (over all resumes). */
  epochs: number;
  steps: number;
  classes: string[];
  model: string;
  parameters: number;
  best: { epoch: number; valAccuracy: number | null; loss: number; checkpoint: string } | null;
  last: EpochRecord | null;
  checkpoints: { last: string; best: string | null };
  seconds: number;
}

/** Flags that may differ when resuming: they change neither results nor the schedule. */
export const RESUME_OVERRIDABLE = ['workers', 'quiet'] as const;

const now = () => performance.now() / 1000;

/** "1 epoch", "3 epochs". */
const count = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** What a run holds in its folder while it writes there, so a second run on it is refused. */
const LOCK_PURPOSE = 'stcnet train';

/**
 * Names each video that failed to load once per run (a video that fails fails every epoch), so
 * the log shows what the accuracies leave out, as `stcnet eval` does.
 */
class FailureLog {
  private readonly named = new Set<string>();
  constructor(private readonly log: (message: string) => void) {}

  note(stage: 'train' | 'validate', failures: readonly BatchFailure[]): void {
    for (const failure of failures) {
      const key = `${stage}\0${failure.path}`;
      if (this.named.has(key)) continue;
      this.named.add(key);
      this.log(`${stage}: left out ${failure.path}: ${failure.reason}`);
    }
  }
}

/** Passes a loader's batches on, reporting their failures and leaving out batches with no clip. */
async function* loadedBatches(batches: AsyncIterable<ClipBatch>, onFailures: (failures: BatchFailure[]) => void): AsyncGenerator<ClipBatch> {
  for await (const batch of batches) {
    if (batch.failures.length > 0) onFailures(batch.failures);
    if (batch.labels.length > 0) yield batch;
  }
}

/** Loads a run folder's saved config for --resume, with `overrides` (workers, quiet) applied. */
export function resumeConfig(runDir: string, overrides: Record<string, unknown> = {}): TrainConfig {
  const saved = RunDir.readSavedConfig(runDir);
  for (const key of Object.keys(overrides)) {
    if (!(RESUME_OVERRIDABLE as readonly string[]).includes(key)) {
      throw new UserError(`--resume continues ${runDir} with its saved config; ${key} cannot change (only ${RESUME_OVERRIDABLE.join(', ')} may)`);
    }
  }
  return validateConfig({ ...saved, ...overrides, out: runDir }, `${runDir}/config.json`);
}

function splitSamples(dataset: VideoDataset, split: string, key: string): VideoSample[] {
  const samples = dataset.splits[split];
  if (!samples) {
    const names = Object.keys(dataset.splits);
    const hint = names.length > 0 ? ` (did you mean "${closest(split, names)}"?)` : '';
    throw new UserError(`${key}: the dataset at ${dataset.root} has no split "${split}"${hint}; its splits: ${names.join(', ') || '(none)'}` +
      (key === 'val-split' ? ' (or "none" for no validation)' : ''));
  }
  const unlabeled = samples.filter((s) => s.label < 0).length;
  if (unlabeled > 0) throw new UserError(`${key}: split "${split}" has ${unlabeled} videos without a label; training and validation need labels`);
  if (samples.length === 0) throw new UserError(`${key}: split "${split}" has no videos`);
  return samples;
}

/**
 * What a clip saw, for the checkpoints: a checkpoint copied out of its run folder must still decode
 * videos at the short side (and frame rate) its frame cache had, or predictions drift.
 */
async function preprocessingOf(config: TrainConfig): Promise<Preprocessing> {
  const norm = config.normalize === 'none' ? { mean: [0, 0, 0], std: [1, 1, 1] } : NORMALIZATIONS[config.normalize];
  let decode: { shortSide: number; fps?: number } = { shortSide: config['short-side'] };
  if (config.cache !== undefined) {
    const cache = await readCacheMeta(config.cache);
    if (cache.kind === 'current') decode = { shortSide: cache.meta.shortSide, ...(cache.meta.fps != null ? { fps: cache.meta.fps } : {}) };
  }
  return { frames: config.frames, stride: config.stride, size: config.size, mean: [...norm.mean], std: [...norm.std], ...decode };
}

/** Everything a run needs, built and checked before the run folder is touched. */
interface Prepared {
  dataset: VideoDataset;
  model: ZooModel;
  runner: OnDevice;
  frozen: Module[];
  optimizer: Optimizer;
  schedule: RunSchedule;
  trainLoader: ClipLoader;
  valLoader: ClipLoader | null;
  stepsPerEpoch: number;
  notes: string[];
}

async function prepare(config: TrainConfig, resumeFrom: string | undefined, shard: Shard | undefined): Promise<Prepared> {
  if (modelEntry(config.model).dims !== 3) {
    throw new UserError(`model: ${config.model} is a 2D image model (a teacher for transfer); stcnet train trains video models (see stcnet models)`);
  }
  if (config.device === 'cuda' && !cudaAvailable()) throw new UserError('device: cuda was asked for, but this libtorch has no CUDA device (use --device cpu)');
  checkAutocast(config.amp, config.device);
  if (!existsSync(config.root)) throw new UserError(`root: ${config.root}: no such ${config.format === 'manifest' ? 'manifest file' : 'dataset folder'}`);
  if (config.cache !== undefined && !existsSync(config.cache)) throw new UserError(`cache: ${config.cache}: no such folder (make it with stcnet prepare ROOT --out ${config.cache})`);
  const dataset = await loadDataset(config.root, config.format, {
    annotations: config.annotations, videos: config.videos, classList: config['class-list'],
  });
  const train = splitSamples(dataset, config.split, 'split');
  const val = config['val-split'] === 'none' ? null : splitSamples(dataset, config['val-split'], 'val-split');
  if (resumeFrom !== undefined && !existsSync(resumeFrom)) {
    throw new UserError(`--resume ${config.out}: no ${path.basename(resumeFrom)} there; the run was stopped before its first checkpoint (start it again instead)`);
  }
  const { model, notes, frozenModules } = buildModel(config, dataset.classes.length, resumeFrom);
  if (config.amp === 'bf16' && config.device === 'cpu') {
    const warning = cpuBf16Warning();
    if (warning) notes.push(warning);
  }
  const loaders: ClipLoader[] = [];
  try {
    const runner = new OnDevice(model, config.device, config.amp);
    if (config.device !== 'cpu') model.to(config.device);
    const optimizer = buildOptimizer(config, model);
    const source = config.cache !== undefined ? { kind: 'cache' as const, dir: config.cache } : { kind: 'video' as const, shortSide: config['short-side'] };
    const common = { source, frames: config.frames, stride: config.stride, size: config.size, workers: config.workers, seed: config.seed, normalize: config.normalize,
      ...(shard ? { shard } : {}) };
    const trainLoader = await ClipLoader.create({ ...common, samples: train, mode: 'train', batchSize: config['batch-size'], flip: config.flip,
      ...(config['crop-scales'] !== undefined ? { scales: config['crop-scales'] } : {}) });
    loaders.push(trainLoader);
    if (trainLoader.batchesPerEpoch === 0) {
      throw new UserError(`batch-size: split "${config.split}" has ${trainLoader.clipsPerEpoch} usable videos, fewer than one batch of ${config['batch-size']}`);
    }
    const valLoader = val ? await ClipLoader.create({ ...common, samples: val, mode: 'test', batchSize: config['batch-size'], testClips: config['val-clips'] }) : null;
    if (valLoader) loaders.push(valLoader);
    for (const loader of loaders) {
      if (loader.skipped.length > 0) notes.push(`data: ${loader.skipped.length} videos of ${loader === trainLoader ? config.split : config['val-split']} are not in the cache and are left out (first: ${loader.skipped[0]!.path})`);
    }
    const stepsPerEpoch = Math.ceil(trainLoader.batchesPerEpoch / config.accumulate);
    const schedule = buildSchedule(config, optimizer, stepsPerEpoch, valLoader !== null);
    return { dataset, model, runner, frozen: frozenModules, optimizer, schedule, trainLoader, valLoader, stepsPerEpoch, notes };
  } catch (error) {
    await Promise.all(loaders.map((loader) => loader.close()));
    model.dispose();
    throw error;
  }
}

/** Trains as `config` says (validated with validateConfig), writing the run folder `config.out`. */
export async function runTraining(config: TrainConfig, options: RunTrainingOptions = {}): Promise<TrainSummary> {
  const started = now();
  const run = new RunDir(config.out);
  // Only rank 0 of a data-parallel job writes (and so locks) the run folder.
  if (options.dataParallel && !options.dataParallel.isWriter) return trainLocked(config, options, run, started, () => undefined);
  // One run per folder: a folder that exists is locked before any work (a second run on it, fresh
  // or --resume, is refused naming the first's pid); a new one as soon as it is created. Released
  // on every way out (acquireLock also releases it on process.exit).
  let lock: FolderLock | undefined = isFolder(config.out) ? acquireLock(config.out, LOCK_PURPOSE) : undefined;
  try {
    if (!options.resume) RunDir.checkFresh(config.out);
    return await trainLocked(config, options, run, started, () => {
      ensureDir(config.out);
      lock ??= acquireLock(config.out, LOCK_PURPOSE);
      RunDir.checkFresh(config.out);
    });
  } finally {
    lock?.release();
  }
}

function isFolder(dir: string): boolean {
  try {
    return statSync(dir).isDirectory();
  } catch {
    return false; // missing (created later), or unreadable: checkFresh/resume name the problem
  }
}

/** runTraining once the run folder is locked (`lockNew` creates and locks a new one). */
async function trainLocked(config: TrainConfig, options: RunTrainingOptions, run: RunDir, started: number, lockNew: () => void): Promise<TrainSummary> {
  // The convolution algorithm is process-wide: set for this run, the caller's restored afterwards.
  const callerAlgorithm = getConvAlgorithm();
  setConvAlgorithm(config.convolutions);
  try {
    return await trainWith(config, options, run, started, lockNew);
  } finally {
    setConvAlgorithm(callerAlgorithm);
  }
}

async function trainWith(config: TrainConfig, options: RunTrainingOptions, run: RunDir, started: number, lockNew: () => void): Promise<TrainSummary> {
  const emit = (event: TrainEvent) => options.onEvent?.(event);
  const log = (message: string) => emit({ type: 'log', message });
  const failureLog = new FailureLog(log);
  const dp = options.dataParallel;
  const writer = dp?.isWriter ?? true;
  if (options.resume) DataParallel.checkWorld(config.out, dp?.worldSize ?? 1);
  const p = await prepare(config, options.resume ? run.state('last') : undefined, dp?.shard);
  const { model, runner, optimizer, schedule, trainLoader, valLoader, dataset } = p;
  const classes = dataset.classes;
  const showProgress = options.progress ?? !config.quiet;
  const batchesPerEpoch = trainLoader.batchesPerEpoch;
  const preprocessing = await preprocessingOf(config);
  try {
    let state: Omit<TrainingState, 'scheduler' | 'format'>;
    let records: MetricsRecord[] = [];
    let nothingToDo = false;
    if (options.resume) {
      const saved = loadTrainingState(run.state('last'), model, optimizer, schedule.scheduler);
      if (saved.sampler.batchesPerEpoch !== batchesPerEpoch || saved.sampler.batchSize !== config['batch-size']) {
        throw new UserError(`--resume ${config.out}: the data changed since the run started (${saved.sampler.batchesPerEpoch} batches per epoch then, ${batchesPerEpoch} now)`);
      }
      state = saved;
      records = writer ? run.truncateMetrics(saved.globalStep, saved.epoch) : [];
      const leftovers = writer ? run.removeTemporaries() : [];
      if (leftovers.length > 0) log(`resume: removed ${leftovers.length} half-written file${leftovers.length > 1 ? 's' : ''} of the stopped run (${leftovers.join(', ')})`);
      if (saved.epoch >= config.epochs) {
        log(`resume: ${config.out} already trained its ${count(config.epochs, 'epoch')}; nothing to do`);
        nothingToDo = true;
      } else log(`resume: ${config.out} at epoch ${saved.epoch + 1}, batch ${saved.nextBatch}/${batchesPerEpoch}, step ${saved.globalStep}`);
    } else {
      state = {
        epoch: 0, nextBatch: 0, globalStep: 0, best: null, epochTotals: emptyTotals(),
        rng: { seed: config.seed, epoch: 0, batch: 0 },
        sampler: { seed: config.seed, epoch: 0, nextBatch: 0, batchSize: config['batch-size'], batchesPerEpoch },
      };
      if (writer) {
        lockNew();
        run.create(config);
        if (dp) DataParallel.recordWorld(config.out, dp.worldSize);
      }
    }
    // After a resume has loaded the weights: rank 0's state everywhere, gradient averaging hooked up.
    if (dp) p.notes.push(...await dp.setup(runner));
    const finish = async (status: 'completed' | 'interrupted'): Promise<TrainSummary> => {
      const epochs = records.filter((r): r is MetricsRecord & EpochRecord => r.type === 'epoch');
      const bestRecord = state.best ? epochs.find((r) => r.epoch === state.best!.epoch) : undefined;
      const summary: TrainSummary = {
        status, runDir: config.out, epochs: epochs.length, steps: state.globalStep, classes, model: config.model,
        parameters: model.parameterCount(),
        best: bestRecord ? { epoch: bestRecord.epoch, valAccuracy: bestRecord.valAccuracy, loss: bestRecord.loss, checkpoint: run.weights('best') } : null,
        last: epochs.at(-1) ?? null,
        checkpoints: { last: run.weights('last'), best: existsSync(run.weights('best')) ? run.weights('best') : null },
        seconds: now() - started,
      };
      // A completed run resumed again did nothing: its summary (with its real duration) stays.
      if ((nothingToDo && existsSync(run.summary)) || !writer) return summary;
      writeJsonAtomic(run.summary, summary);
      if (nothingToDo) return summary;
      log(`${status === 'completed' ? 'done' : 'interrupted'}: ${count(summary.epochs, 'epoch')}, ${count(summary.steps, 'step')}` +
        (summary.best ? `; best epoch ${summary.best.epoch}${summary.best.valAccuracy !== null ? ` (validation clip accuracy ${(100 * summary.best.valAccuracy).toFixed(1)}%)` : ''}` : '') +
        `; run folder ${config.out}`);
      return summary;
    };
    if (nothingToDo) return await finish('completed');
    for (const note of p.notes) log(note);
    log(`train: ${config.model} (${model.parameterCount().toLocaleString('en-US')} parameters), ${classes.length} classes, ` +
      `${trainLoader.clipsPerEpoch} training videos (${config.split})${valLoader ? `, ${valLoader.clipsPerEpoch} validation clips (${config['val-split']})` : ''}; ` +
      `${config.frames}×${config.size}² clips, batch ${config['batch-size']}${config.accumulate > 1 ? ` × ${config.accumulate} accumulated` : ''}, ` +
      `${config.optimizer} lr ${config.lr} ${config.schedule}${config['warmup-epochs'] ? ` (warm-up ${count(config['warmup-epochs'], 'epoch')})` : ''}` +
      `${config['clip-grad-norm'] !== undefined ? `, gradient norm clipped at ${config['clip-grad-norm']}` : ''}, ${count(config.epochs, 'epoch')} on ${config.device}` +
      `${config.amp !== 'none' ? ` (${config.amp} autocast)` : ''}`);

    const save = (name: 'last' | 'best') => {
      if (!writer) return;
      saveModelCheckpoint(run.weights(name), model, { classes, preprocessing });
      saveTrainingState(run.state(name), model, optimizer, schedule.scheduler, state, { classes, preprocessing });
      emit({ type: 'checkpoint', name, path: run.weights(name) });
    };
    const stateAt = (epoch: number, nextBatch: number, totals: EpochTotals) => {
      state = {
        ...state, epoch, nextBatch, epochTotals: { ...totals },
        rng: { seed: config.seed, epoch, batch: nextBatch },
        sampler: { seed: config.seed, epoch, nextBatch, batchSize: config['batch-size'], batchesPerEpoch },
      };
    };
    const aborted = () => options.signal?.aborted === true;
    // In a job, whether any rank is stopping: agreed at each step, so all stop after the same one.
    let stopAgreed = false;
    for (let epoch = state.epoch; epoch < config.epochs; epoch++) {
      const totals: EpochTotals = epoch === state.epoch ? { ...state.epochTotals } : emptyTotals();
      const startBatch = epoch === state.epoch ? state.nextBatch : 0;
      const epochStarted = now();
      setTrainingMode(runner, p.frozen);
      const progress = new Progress({ total: batchesPerEpoch * config['batch-size'], label: `epoch ${epoch + 1}/${config.epochs}`, unit: 'clips', quiet: !showProgress });
      if (startBatch < batchesPerEpoch) {
        // The loader is deterministic per (seed, epoch, position): starting at the first batch not yet
        // trained gives the rest of the epoch exactly as an uninterrupted run sees it.
        const iterator = trainLoader.epoch(epoch, { from: startBatch, ...(epoch + 1 < config.epochs ? { next: epoch + 1 } : {}) })[Symbol.asyncIterator]();
        try {
          if (startBatch > 0) progress.update(startBatch * config['batch-size']);
          let group = { loss: 0, correct: 0, clips: 0, wait: 0, busy: 0 };
          for (let index = startBatch; index < batchesPerEpoch; index++) {
            const waitStart = now();
            const next = await iterator.next();
            if (next.done) break;
            const busyStart = now();
            const groupStart = Math.floor(index / config.accumulate) * config.accumulate;
            const groupSize = Math.min(config.accumulate, batchesPerEpoch - groupStart);
            // Dropout and any other libtorch randomness continue identically after a resume.
            manualSeed(hashKeys('train-step', config.seed, epoch, index) & 0x7fffffff);
            const batch = next.value;
            failureLog.note('train', batch.failures);
            // A batch whose every video failed to load has nothing to learn from (its loss is NaN).
            const isStep = (index + 1) % config.accumulate === 0 || index + 1 === batchesPerEpoch;
            const beforeBackward = dp ? () => dp.beforeBackward(isStep) : undefined;
            // Once the clips are in a tensor the buffer goes back, and the loader's next task with it:
            // the worker decodes during this step's compute, not in the wait for the next batch.
            const step = () => forwardBackward(runner, batch, config, 1 / groupSize, beforeBackward, () => trainLoader.recycle(batch));
            const result = batch.labels.length === 0 ? { loss: 0, correct: 0, clips: 0 } : dp ? await dp.guardBackward(step) : step();
            // A batch without clips never reached the step; for the others this second recycle is ignored.
            trainLoader.recycle(batch);
            if (dp && batch.labels.length === 0) dp.zeroBackward(runner, isStep);
            group.loss += result.loss * result.clips;
            group.correct += result.correct;
            group.clips += result.clips;
            if (dp && isStep) {
              // Gradients averaged over the ranks; the step's metrics (and any rank's Ctrl-C) summed.
              await dp.afterBackward();
              const global = await dp.endStep(group, aborted());
              group = { ...group, loss: global.loss, correct: global.correct, clips: global.clips };
              stopAgreed = global.stop;
            }
            // The lr this step uses (a per-step schedule moves on right after it).
            const stepLr = optimizer.paramGroups[0]!.lr;
            if (isStep && group.clips === 0) {
              // No clip in the whole group: no gradient, so no optimizer step and no step record.
              log(`epoch ${epoch + 1}, batch ${index + 1}/${batchesPerEpoch}: skipped, no video of the batch could be loaded`);
              group = { loss: 0, correct: 0, clips: 0, wait: 0, busy: 0 };
              continue;
            }
            // Clipped after the ranks' gradients are averaged, so every rank clips the same gradients.
            const gradNorm = isStep && config['clip-grad-norm'] !== undefined ? clipGradNorm_(optimizer.params, config['clip-grad-norm']) : undefined;
            if (isStep) {
              optimizer.step();
              optimizer.zeroGrad();
              if (schedule.unit === 'step') schedule.scheduler.step();
              state.globalStep++;
            }
            group.wait += busyStart - waitStart;
            group.busy += now() - busyStart;
            progress.tick(result.clips, `loss ${(group.loss / Math.max(1, group.clips)).toFixed(3)}`);
            if (!isStep) continue;
            const record: StepRecord = {
              type: 'step', step: state.globalStep, epoch: epoch + 1, batch: index + 1,
              loss: group.loss / group.clips, accuracy: group.correct / group.clips, lr: stepLr,
              clipsPerSecond: group.clips / Math.max(1e-9, group.wait + group.busy), dataWait: group.wait / Math.max(1e-9, group.wait + group.busy),
              ...(gradNorm !== undefined ? { gradNorm } : {}),
            };
            totals.lossSum += group.loss;
            totals.correct += group.correct;
            totals.clips += group.clips;
            totals.batches += groupSize;
            totals.waitSeconds += group.wait;
            totals.busySeconds += group.busy;
            group = { loss: 0, correct: 0, clips: 0, wait: 0, busy: 0 };
            if (writer) run.append(record);
            records.push(record);
            emit(record);
            stateAt(epoch, index + 1, totals);
            const every = config['checkpoint-every'];
            const stop = dp ? stopAgreed : aborted();
            if (stop || (every > 0 && state.globalStep % every === 0)) save('last');
            if (stop) {
              progress.finish();
              log(`interrupted at epoch ${epoch + 1}, batch ${index + 1}/${batchesPerEpoch}: saved ${run.weights('last')} (continue with --resume ${config.out})`);
              return await finish('interrupted');
            }
          }
        } finally {
          await iterator.return?.();
        }
      }
      if (totals.clips === 0) {
        throw new UserError(`split "${config.split}": no video of epoch ${epoch + 1} could be loaded (the log names them); check the dataset${config.cache !== undefined ? ' and the cache' : ''}`);
      }
      const trainLoss = totals.lossSum / Math.max(1, totals.clips);
      const trainAccuracy = totals.correct / Math.max(1, totals.clips);
      progress.finish(`loss ${trainLoss.toFixed(3)} acc ${(100 * trainAccuracy).toFixed(1)}%`);

      let valAccuracy: number | null = null;
      let valTop5: number | null = null;
      // Every validation clip failed: no accuracy, and the epoch can be neither best nor a plateau step.
      let valFailed = false;
      let valNote = '';
      if (valLoader) {
        const valProgress = new Progress({ total: valLoader.clipsPerEpoch, label: `validate ${epoch + 1}/${config.epochs}`, unit: 'clips', quiet: !showProgress });
        let failedClips = 0;
        const batches = loadedBatches(valLoader.epoch(0), (failures) => {
          failureLog.note('validate', failures);
          failedClips += failures.length;
        });
        const report = dp ? await dp.evaluate(runner, batches, classes.length, (n) => valProgress.tick(n)) : await evaluate(runner, batches, classes.length, (n) => valProgress.tick(n));
        valProgress.finish();
        if (report.clips > 0) {
          valAccuracy = report.clipTop1;
          valTop5 = report.clipTop5;
        } else {
          valFailed = true;
        }
        if (failedClips > 0) {
          valNote = report.clips > 0
            ? ` of ${report.clips} clips (${failedClips} of ${valLoader.clipsPerEpoch} could not be loaded)`
            : `: none of the ${valLoader.clipsPerEpoch} validation clips could be loaded`;
        }
      }
      // The lr of the epoch's last step (a per-step schedule has already moved past it).
      const lastStep = records.at(-1);
      const lr = lastStep?.type === 'step' && lastStep.epoch === epoch + 1 ? (lastStep.lr as number) : optimizer.paramGroups[0]!.lr;
      if (schedule.unit === 'epoch' && !valFailed) schedule.scheduler.step(valAccuracy ?? trainLoss);
      // Best by validation clip accuracy; without a validation split, by the lowest training loss.
      const metric = valAccuracy ?? -trainLoss;
      const improved = !valFailed && (state.best === null || metric > state.best.metric);
      if (improved) state.best = { epoch: epoch + 1, metric, name: valAccuracy !== null ? 'validation clip accuracy' : 'negative training loss' };
      const seconds = now() - epochStarted;
      const record: EpochRecord = {
        // Steps taken: a group whose every video failed to load took none.
        type: 'epoch', epoch: epoch + 1, steps: records.filter((r) => r.type === 'step' && r.epoch === epoch + 1).length, loss: trainLoss, accuracy: trainAccuracy, valAccuracy, valTop5, lr,
        clipsPerSecond: totals.clips / Math.max(1e-9, totals.waitSeconds + totals.busySeconds),
        dataWait: totals.waitSeconds / Math.max(1e-9, totals.waitSeconds + totals.busySeconds), seconds, best: improved,
        liveTensors: memory().tensors,
      };
      if (writer) run.append(record);
      records.push(record);
      stateAt(epoch + 1, 0, emptyTotals());
      save('last');
      if (improved) save('best');
      if (writer) await writeTrainingPlots(run.plots, records);
      emit(record);
      log(`epoch ${epoch + 1}/${config.epochs}: loss ${trainLoss.toFixed(4)}, train accuracy ${(100 * trainAccuracy).toFixed(1)}%` +
        (valAccuracy !== null ? `, validation clip accuracy ${(100 * valAccuracy).toFixed(1)}% (top-5 ${(100 * valTop5!).toFixed(1)}%)${valNote}` : valNote ? `, validation${valNote}` : '') +
        `, lr ${lr.toPrecision(3)}, ${record.clipsPerSecond.toFixed(1)} clips/s, ${(100 * record.dataWait).toFixed(0)}% waiting for data${improved ? ', best so far' : ''}`);
      const stopAfterEpoch = dp ? await dp.anyStopping(aborted()) : aborted();
      if (stopAfterEpoch && epoch + 1 < config.epochs) {
        log(`interrupted after epoch ${epoch + 1}: saved ${run.weights('last')} (continue with --resume ${config.out})`);
        return await finish('interrupted');
      }
    }
    return await finish('completed');
  } finally {
    await Promise.all([trainLoader.close(), valLoader?.close()]);
    optimizer.dispose();
    model.dispose();
  }
}

/** Forward, loss and backward of one batch; the loss is scaled for gradient accumulation. */
function forwardBackward(runner: OnDevice, batch: ClipBatch, config: TrainConfig, scale: number, beforeBackward?: () => void,
  copied?: () => void): { loss: number; correct: number; clips: number } {
  return tidy(() => {
    const { clips, labels } = batchTensors(batch);
    copied?.();
    const target = config.device === 'cpu' ? labels : labels.to(config.device);
    const logits = runner.forward(clips);
    const loss = F.crossEntropy(logits, target, { labelSmoothing: config['label-smoothing'] });
    beforeBackward?.();
    (scale === 1 ? loss : loss.mul(scale)).backward();
    const correct = noGrad(() => logits.argmax(1).eq(target).sum().item()) as number;
    return { loss: loss.item() as number, correct, clips: batch.labels.length };
  });
}

/** Reads a run folder's summary.json (for callers that want the outcome of an earlier run). */
export function readSummary(runDir: string): TrainSummary {
  return JSON.parse(readFileSync(new RunDir(runDir).summary, 'utf8')) as TrainSummary;
}
