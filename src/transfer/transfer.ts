import { existsSync, readFileSync, statSync } from 'node:fs';
import path, { extname } from 'node:path';
import { cudaAvailable, manualSeed, memory, noGrad, tidy, zeros } from '../engine/index.js';
import { hashKeys } from '../data/random.js';
import { NORMALIZATIONS, type Normalization } from '../data/transforms.js';
import type { BatchFailure } from '../data/clip.js';
import { createModel, modelEntry } from '../models/registry.js';
import { loadModelCheckpoint, readCheckpointMeta, saveModelCheckpoint, type Preprocessing } from '../models/checkpoint.js';
import type { ZooModel } from '../models/base.js';
import { SGD } from '../optim/sgd.js';
import { AdamW } from '../optim/adamw.js';
import type { Optimizer } from '../optim/optimizer.js';
import { modelOptions } from '../train/model_setup.js';
import { buildSchedule, type RunSchedule } from '../train/schedule.js';
import { RunDir, type MetricsRecord } from '../train/run_dir.js';
import { writeTrainingPlots } from '../train/plots.js';
import type { TrainConfig } from '../train/config.js';
import { UserError } from '../util/errors.js';
import { Progress } from '../util/progress.js';
import { ensureDir, fsUserError, writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import { acquireLock, type FolderLock } from '../video/lock.js';
import { orderedTransferConfig, transferConfigToYaml, validateTransferConfig, type TransferConfig } from './config.js';
import { listTransferVideos, splitHeldOut } from './videos.js';
import { PairSampler, type Pair } from './pairs.js';
import { TransferHead } from './head.js';
import { loadTeacher, teacherFrameIndices } from './teacher.js';
import { TeacherCache } from './teacher_cache.js';
import { ClipSource } from './clip_source.js';
import { itemsToLoad, runPairs, type PairNetworks } from './pair_batch.js';
import { emptyTransferTotals, loadTransferState, saveTransferState, type TransferState, type TransferTotals } from './state.js';

/**
 * `stcnet transfer` as a library function: 2D→3D knowledge transfer without labels. A frozen 2D
 * teacher and a 3D student look at frames and a clip; a head learns whether they come from the
 * same video at the same time, and the student learns to embed clips so that it can tell. The run
 * folder is `stcnet train`'s (config, metrics.jsonl, last/best checkpoints, plots, summary), with
 * the student saved as a model checkpoint that `stcnet train --init` fine-tunes. Deterministic for
 * a seed: pairs from (seed, epoch), libtorch's generator reseeded per batch; `resume` continues the
 * run exactly.
 */

export type TransferEvent =
  | { type: 'log'; message: string }
  | TransferStepRecord
  | TransferEpochRecord
  | { type: 'checkpoint'; name: 'last' | 'best'; path: string };

export type TransferStepRecord = {
  type: 'step';
  step: number;
  epoch: number;
  batch: number;
  loss: number;
  /** Pair accuracy of the batch. */
  accuracy: number;
  lr: number;
  pairsPerSecond: number;
  dataWait: number;
};

export type TransferEpochRecord = {
  type: 'epoch';
  epoch: number;
  steps: number;
  loss: number;
  accuracy: number;
  /** Pair loss and accuracy on the held-out videos (null without them). */
  valLoss: number | null;
  valAccuracy: number | null;
  lr: number;
  pairsPerSecond: number;
  dataWait: number;
  /** Seconds in the teacher's forward pass (training and held-out pairs). */
  teacherSeconds: number;
  /** CPU seconds the process used during the epoch (all threads): steadier than `seconds` on a busy machine. */
  cpuSeconds: number;
  /** With --cache-teacher: rows cached, and this epoch's hits and misses. */
  teacherCache: { rows: number; hits: number; misses: number } | null;
  seconds: number;
  best: boolean;
  liveTensors: number;
};

export interface RunTransferOptions {
  onEvent?: (event: TransferEvent) => void;
  /** Aborting stops after the current step, saves `last` and returns status 'interrupted'. */
  signal?: AbortSignal;
  resume?: boolean;
  progress?: boolean;
}

export interface TransferSummary {
  status: 'completed' | 'interrupted';
  runDir: string;
  epochs: number;
  steps: number;
  student: string;
  teacher: string;
  parameters: { student: number; head: number; teacher: number };
  videos: { train: number; heldOut: number };
  best: { epoch: number; valAccuracy: number | null; loss: number; checkpoint: string } | null;
  last: TransferEpochRecord | null;
  checkpoints: { last: string; best: string | null };
  seconds: number;
}

/** Flags that may differ when resuming: they change neither results nor the schedule. */
export const TRANSFER_RESUME_OVERRIDABLE = ['workers', 'quiet'] as const;

const LOCK_PURPOSE = 'stcnet transfer';
/** Seconds between redraws of the run's charts. */
const PLOT_INTERVAL = 30;
const now = () => performance.now() / 1000;
const count = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;

/** The run folder's files beyond `stcnet train`'s. */
const teacherCacheFile = (dir: string) => path.join(dir, 'teacher_cache.safetensors');

/** Loads a transfer run folder's saved config for --resume, with `overrides` (workers, quiet) applied. */
export function resumeTransferConfig(runDir: string, overrides: Record<string, unknown> = {}): TransferConfig {
  const file = path.join(runDir, 'config.json');
  if (!existsSync(file)) throw new UserError(`--resume ${runDir}: no config.json there (not a stcnet transfer run folder, or one that never started)`);
  let saved: unknown;
  try {
    saved = JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    throw error instanceof SyntaxError ? new UserError(`${file}: not valid JSON (${error.message})`) : fsUserError(error, file);
  }
  if (typeof saved !== 'object' || saved === null || Array.isArray(saved)) throw new UserError(`${file}: expected an object`);
  if (!('teacher' in saved)) throw new UserError(`--resume ${runDir}: its config.json has no "teacher"; is it a stcnet train run? (continue those with stcnet train --resume)`);
  for (const key of Object.keys(overrides)) {
    if (!(TRANSFER_RESUME_OVERRIDABLE as readonly string[]).includes(key)) {
      throw new UserError(`--resume continues ${runDir} with its saved config; ${key} cannot change (only ${TRANSFER_RESUME_OVERRIDABLE.join(', ')} may)`);
    }
  }
  return validateTransferConfig({ ...(saved as Record<string, unknown>), ...overrides, out: runDir }, file);
}

const normalization = (preset: 'kinetics' | 'imagenet' | 'none'): Normalization | undefined => (preset === 'none' ? undefined : NORMALIZATIONS[preset]);

/** Everything a run needs, built and checked before the run folder is touched. */
interface Prepared {
  nets: PairNetworks;
  optimizer: Optimizer;
  schedule: RunSchedule;
  source: ClipSource;
  sampler: PairSampler;
  heldOut: PairSampler | null;
  batchesPerEpoch: number;
  trainVideos: number;
  heldOutVideos: number;
  fingerprint: string;
  notes: string[];
}

function buildStudent(config: TransferConfig): ZooModel {
  // The student's classifier is never trained here: `stcnet train --init` replaces it for its classes.
  const { numClasses: _unused, ...options } = modelOptions(config as unknown as TrainConfig, 1);
  manualSeed(config.seed);
  if (config.init === undefined) return createModel(config.model, options);
  if (!existsSync(config.init)) throw new UserError(`init: ${config.init}: no such weights file`);
  const meta = extname(config.init).toLowerCase() === '.safetensors' ? readCheckpointMeta(config.init) : null;
  if (meta) {
    const built = modelEntry(meta.arch);
    if (built.dims !== 3) throw new UserError(`init: ${config.init} is a ${meta.arch} checkpoint, a 2D model; the student must be a 3D video model (stcnet inflate makes one from a 2D ResNet)`);
    if (meta.arch !== config.model) throw new UserError(`init: ${config.init} is a ${meta.arch} checkpoint; give --model ${meta.arch} (the student is ${config.model})`);
    // An STC block's SCB is as wide as channels × frames at its layer: such a student takes one clip length only.
    if (built.stc && meta.options.frames !== undefined && meta.options.frames !== config.frames) {
      throw new UserError(`frames: the student ${config.init} (${meta.arch}) is built for ${meta.options.frames}-frame clips and cannot take ${config.frames}-frame clips ` +
        `(an STC block's width depends on the clip length); use --frames ${meta.options.frames}`);
    }
  }
  try {
    return loadModelCheckpoint(config.init, { ...options, arch: config.model }).model;
  } catch (error) {
    if (error instanceof UserError) throw new UserError(`init: ${error.message}`);
    throw error;
  }
}

/** Runs a network once on a zero input of the run's shape, so a size it cannot take fails before any work. */
function probe(model: ZooModel, shape: number[], what: string): void {
  // In eval mode: a training-mode pass would fold this one zero input into BatchNorm's running statistics.
  const wasTraining = model.training;
  model.eval();
  try {
    noGrad(() => tidy(() => {
      model.forwardFeatures(zeros(shape));
    }));
  } catch (error) {
    const message = (error as Error).message.split('\n')[0];
    throw new UserError(`${what} (${shape.join('×')} input): ${message}`);
  } finally {
    model.train(wasTraining);
  }
}

function buildOptimizer(config: TransferConfig, student: ZooModel, head: TransferHead): Optimizer {
  // The student's classifier gets no gradient from the pair loss; it is left out (no weight decay on it either).
  const classifier = new Set(student.fc.parameters());
  const params = [...student.parameters().filter((p) => !classifier.has(p) && p.requiresGrad), ...head.parameters()];
  const weightDecay = config['weight-decay']!;
  return config.optimizer === 'sgd'
    ? new SGD(params, { lr: config.lr, momentum: config.momentum, weightDecay, nesterov: config.nesterov })
    : new AdamW(params, { lr: config.lr, weightDecay });
}

function fingerprintOf(config: TransferConfig, samples: string[]): string {
  let stamp = '';
  try {
    const stat = statSync(config.teacher);
    stamp = `${stat.size}:${stat.mtimeMs}`;
  } catch {
    // a missing teacher fails elsewhere
  }
  const keys = [config.teacher, stamp, config['teacher-arch'] ?? '', config['teacher-frames'], config['teacher-normalize'], config.frames, config.stride,
    config.size, config.positions, config.cache ?? '', config['short-side'], samples.join('\n')];
  return hashKeys(...keys.map(String)).toString(16) + hashKeys('second', ...keys.map(String)).toString(16);
}

/**
 * `resumeFrom`: the run's student checkpoint; the student is rebuilt from it (its architecture and
 * every option, as the run built it), so a resume needs neither the --init file nor its options.
 */
async function prepare(config: TransferConfig, resumeFrom: string | undefined): Promise<Prepared> {
  if (config.device === 'cuda' && !cudaAvailable()) throw new UserError('device: cuda was asked for, but this libtorch has no CUDA device (use --device cpu)');
  if (config.cache !== undefined && !existsSync(config.cache)) throw new UserError(`cache: ${config.cache}: no such folder (make it with stcnet prepare ROOT --out ${config.cache})`);
  if (modelEntry(config.model).dims !== 3) throw new UserError(`model: ${config.model} is a 2D image model; the student must be a 3D video model (see stcnet models)`);
  const samples = await listTransferVideos(config);
  const notes: string[] = [];
  const source = await ClipSource.create({
    samples, source: config.cache !== undefined ? { kind: 'cache', dir: config.cache } : { kind: 'video', shortSide: config['short-side'] },
    frames: config.frames, stride: config.stride, size: config.size, positions: config.positions, workers: config.workers,
  });
  let teacher: ZooModel | undefined;
  let student: ZooModel | undefined;
  let head: TransferHead | undefined;
  try {
    if (source.skipped.length > 0) notes.push(`data: ${source.skipped.length} videos are not in the cache and are left out (first: ${source.skipped[0]!.path})`);
    const usable = samples.map((_, i) => i).filter((i) => source.usable(i));
    const split = splitHeldOut(usable.map((i) => samples[i]!), config['val-fraction'], config.seed, config.root);
    const train = split.train.map((i) => usable[i]!);
    const held = split.heldOut.map((i) => usable[i]!);
    teacher = loadTeacher(config.teacher, config['teacher-arch']);
    probe(teacher, [1, 3, config.size, config.size], `size: the teacher ${teacher.arch} cannot take ${config.size}×${config.size} frames`);
    if (resumeFrom !== undefined && !existsSync(resumeFrom)) {
      throw new UserError(`--resume ${config.out}: no ${path.basename(resumeFrom)} there; the run was stopped before its first checkpoint (start it again instead)`);
    }
    student = resumeFrom !== undefined ? loadModelCheckpoint(resumeFrom, { arch: config.model }).model : buildStudent(config);
    probe(student, [1, 3, config.frames, config.size, config.size],
      `model: the student ${config.model} cannot take ${config.frames}-frame clips of ${config.size}×${config.size} (--frames, --size)`);
    if (config.device !== 'cpu') {
      teacher.to(config.device);
      student.to(config.device);
    }
    head = new TransferHead(student.numFeatures, teacher.numFeatures);
    if (config.device !== 'cpu') head.to(config.device);
    const sampler = new PairSampler({ videos: train, positions: config.positions, negatives: config.negatives, seed: config.seed });
    const heldOut = held.length >= 2 ? new PairSampler({ videos: held, positions: config.positions, negatives: 1, seed: config.seed }) : null;
    const batchesPerEpoch = Math.floor(sampler.pairsPerEpoch / config['batch-size']);
    if (batchesPerEpoch === 0) {
      throw new UserError(`batch-size: ${train.length} training videos × ${config.positions} positions give ${sampler.pairsPerEpoch} pairs per epoch, fewer than one batch of ${config['batch-size']}`);
    }
    const optimizer = buildOptimizer(config, student, head);
    const schedule = buildSchedule(config as unknown as TrainConfig, optimizer, batchesPerEpoch, heldOut !== null);
    const fingerprint = fingerprintOf(config, samples.map((s) => s.relPath));
    const nets: PairNetworks = {
      student, head, teacher, teacherFrames: teacherFrameIndices(config.frames, config['teacher-frames']),
      studentNorm: normalization(config.normalize), teacherNorm: normalization(config['teacher-normalize']),
      cache: config['cache-teacher'] ? new TeacherCache(teacher.numFeatures) : null, device: config.device,
    };
    return { nets, optimizer, schedule, source, sampler, heldOut, batchesPerEpoch, trainVideos: train.length, heldOutVideos: held.length, fingerprint, notes };
  } catch (error) {
    teacher?.dispose();
    student?.dispose();
    head?.dispose();
    await source.close();
    throw error;
  }
}

function isFolder(dir: string): boolean {
  try {
    return statSync(dir).isDirectory();
  } catch {
    return false;
  }
}

/** Transfers as `config` says (validated with validateTransferConfig), writing the run folder `config.out`. */
export async function runTransfer(config: TransferConfig, options: RunTransferOptions = {}): Promise<TransferSummary> {
  const started = now();
  let lock: FolderLock | undefined = isFolder(config.out) ? acquireLock(config.out, LOCK_PURPOSE) : undefined;
  try {
    if (!options.resume) RunDir.checkFresh(config.out);
    return await transferLocked(config, options, started, () => {
      ensureDir(config.out);
      lock ??= acquireLock(config.out, LOCK_PURPOSE);
      RunDir.checkFresh(config.out);
    });
  } finally {
    lock?.release();
  }
}

/** Names each video that failed to load once per run. */
class FailureLog {
  private readonly named = new Set<string>();
  constructor(private readonly log: (message: string) => void) {}
  note(failures: readonly BatchFailure[]): void {
    for (const failure of failures) {
      if (this.named.has(failure.path)) continue;
      this.named.add(failure.path);
      this.log(`left out ${failure.path}: ${failure.reason}`);
    }
  }
}

async function transferLocked(config: TransferConfig, options: RunTransferOptions, started: number, lockNew: () => void): Promise<TransferSummary> {
  const emit = (event: TransferEvent) => options.onEvent?.(event);
  const log = (message: string) => emit({ type: 'log', message });
  const failures = new FailureLog(log);
  const run = new RunDir(config.out);
  const p = await prepare(config, options.resume ? run.weights('last') : undefined);
  const { nets, optimizer, schedule, source, sampler, heldOut, batchesPerEpoch } = p;
  const { student, head, teacher } = nets;
  const bs = config['batch-size'];
  const showProgress = options.progress ?? !config.quiet;
  const norm = normalization(config.normalize) ?? { mean: [0, 0, 0], std: [1, 1, 1] };
  const preprocessing: Preprocessing = {
    frames: config.frames, stride: config.stride, size: config.size, mean: [...norm.mean], std: [...norm.std],
    ...(config.cache === undefined ? { shortSide: config['short-side'] } : {}),
  };
  const provenance = JSON.stringify({ teacher: path.basename(config.teacher), teacherArch: teacher.arch });
  try {
    let state: Omit<TransferState, 'format' | 'scheduler'>;
    let records: MetricsRecord[] = [];
    if (options.resume) {
      const saved = loadTransferState(run.state('last'), { student, head }, optimizer, schedule.scheduler);
      if (saved.batchesPerEpoch !== batchesPerEpoch) {
        throw new UserError(`--resume ${config.out}: the videos changed since the run started (${saved.batchesPerEpoch} batches per epoch then, ${batchesPerEpoch} now)`);
      }
      state = saved;
      records = run.truncateMetrics(saved.globalStep, saved.epoch);
      run.removeTemporaries();
      if (nets.cache) nets.cache = TeacherCache.load(teacherCacheFile(config.out), teacher.numFeatures, p.fingerprint);
      log(saved.epoch >= config.epochs ? `resume: ${config.out} already ran its ${count(config.epochs, 'epoch')}; nothing to do`
        : `resume: ${config.out} at epoch ${saved.epoch + 1}, batch ${saved.nextBatch}/${batchesPerEpoch}, step ${saved.globalStep}`);
    } else {
      state = { epoch: 0, nextBatch: 0, globalStep: 0, batchesPerEpoch, epochTotals: emptyTransferTotals(), best: null };
      lockNew();
      ensureDir(run.plots);
      writeFileAtomic(run.configYaml, transferConfigToYaml(config));
      writeJsonAtomic(run.configJson, orderedTransferConfig(config));
    }
    const parameters = { student: student.parameterCount(), head: head.parameterCount(), teacher: teacher.parameters().reduce((n, t) => n + t.numel, 0) };
    const finish = async (status: 'completed' | 'interrupted'): Promise<TransferSummary> => {
      if (status === 'interrupted' && records.length > 0) await writeTrainingPlots(run.plots, records);
      const epochs = records.filter((r) => r.type === 'epoch') as unknown as TransferEpochRecord[];
      const bestRecord = state.best ? epochs.find((r) => r.epoch === state.best!.epoch) : undefined;
      const summary: TransferSummary = {
        status, runDir: config.out, epochs: epochs.length, steps: state.globalStep, student: config.model, teacher: teacher.arch, parameters,
        videos: { train: p.trainVideos, heldOut: p.heldOutVideos },
        best: bestRecord ? { epoch: bestRecord.epoch, valAccuracy: bestRecord.valAccuracy, loss: bestRecord.loss, checkpoint: run.weights('best') } : null,
        last: epochs.at(-1) ?? null,
        checkpoints: { last: run.weights('last'), best: existsSync(run.weights('best')) ? run.weights('best') : null },
        seconds: now() - started,
      };
      writeJsonAtomic(run.summary, summary);
      log(`${status === 'completed' ? 'done' : 'interrupted'}: ${count(summary.epochs, 'epoch')}, ${count(summary.steps, 'step')}` +
        (summary.best?.valAccuracy != null ? `; best held-out pair accuracy ${(100 * summary.best.valAccuracy).toFixed(1)}% (epoch ${summary.best.epoch})` : '') +
        `; student checkpoint ${run.weights('last')} (fine-tune it with stcnet train --init)`);
      return summary;
    };
    // A finished run resumed again did nothing: its summary (with its real duration) stays.
    if (state.epoch >= config.epochs) return existsSync(run.summary) ? readTransferSummary(config.out) : await finish('completed');
    for (const note of p.notes) log(note);
    log(`transfer: teacher ${teacher.arch} (frozen, ${config['teacher-frames']} frames) → student ${config.model} (${parameters.student.toLocaleString('en-US')} parameters), ` +
      `${p.trainVideos} videos × ${config.positions} positions (${p.heldOutVideos} held out), ${config.frames}×${config.size}² clips, ` +
      `1 positive : ${config.negatives} negative, batch ${bs}, ${config.optimizer} lr ${config.lr} ${config.schedule}, ${count(config.epochs, 'epoch')} on ${config.device}` +
      (nets.cache ? ', teacher features cached' : ''));

    const save = (name: 'last' | 'best') => {
      saveModelCheckpoint(run.weights(name), student, { preprocessing, extra: { transfer: provenance } });
      if (name === 'last') {
        saveTransferState(run.state('last'), { student, head }, optimizer, schedule.scheduler, state);
        nets.cache?.save(teacherCacheFile(config.out), p.fingerprint);
      }
      emit({ type: 'checkpoint', name, path: run.weights(name) });
    };
    const aborted = () => options.signal?.aborted === true;
    let lastPlot = -Infinity;
    for (let epoch = state.epoch; epoch < config.epochs; epoch++) {
      const totals: TransferTotals = epoch === state.epoch ? { ...state.epochTotals } : emptyTransferTotals();
      const startBatch = epoch === state.epoch ? state.nextBatch : 0;
      const epochStarted = now();
      const cpuAtStart = process.cpuUsage();
      const cacheAtStart = nets.cache ? { hits: nets.cache.hits, misses: nets.cache.misses } : null;
      student.train();
      head.train();
      const pairs = sampler.epochPairs(epoch);
      const batchPairs = (b: number) => pairs.slice(b * bs, (b + 1) * bs);
      const load = (b: number) => {
        const promise = source.load(itemsToLoad(batchPairs(b), nets.cache));
        promise.catch(() => undefined);
        return promise;
      };
      const progress = new Progress({ total: batchesPerEpoch * bs, label: `epoch ${epoch + 1}/${config.epochs}`, unit: 'pairs', quiet: !showProgress });
      if (startBatch > 0) progress.update(startBatch * bs);
      let next = startBatch < batchesPerEpoch ? load(startBatch) : undefined;
      for (let b = startBatch; b < batchesPerEpoch; b++) {
        const waitStart = now();
        const loaded = await next!;
        // The next batch loads while this one trains.
        next = b + 1 < batchesPerEpoch ? load(b + 1) : undefined;
        // One event-loop turn per batch, so Ctrl-C is seen.
        await new Promise<void>((resolve) => setImmediate(resolve));
        const busyStart = now();
        failures.note(loaded.failures);
        manualSeed(hashKeys('transfer-step', config.seed, epoch, b) & 0x7fffffff);
        const stepLr = optimizer.paramGroups[0]!.lr;
        optimizer.zeroGrad();
        const result = runPairs(nets, batchPairs(b), loaded, true);
        if (result.pairs === 0) {
          log(`epoch ${epoch + 1}, batch ${b + 1}/${batchesPerEpoch}: skipped, none of its clips could be loaded`);
          continue;
        }
        optimizer.step();
        optimizer.zeroGrad();
        if (schedule.unit === 'step') schedule.scheduler.step();
        state.globalStep++;
        const wait = busyStart - waitStart;
        const busy = now() - busyStart;
        totals.lossSum += result.loss * result.pairs;
        totals.correct += result.correct;
        totals.pairs += result.pairs;
        totals.waitSeconds += wait;
        totals.busySeconds += busy;
        totals.teacherSeconds += result.teacherSeconds;
        const record: TransferStepRecord = {
          type: 'step', step: state.globalStep, epoch: epoch + 1, batch: b + 1, loss: result.loss, accuracy: result.correct / result.pairs, lr: stepLr,
          pairsPerSecond: result.pairs / Math.max(1e-9, wait + busy), dataWait: wait / Math.max(1e-9, wait + busy),
        };
        run.append(record);
        records.push(record);
        emit(record);
        progress.tick(result.pairs, `loss ${(totals.lossSum / totals.pairs).toFixed(3)}`);
        state = { ...state, epoch, nextBatch: b + 1, epochTotals: { ...totals } };
        const every = config['checkpoint-every'];
        if (aborted() || (every > 0 && state.globalStep % every === 0)) save('last');
        if (aborted()) {
          progress.finish();
          await next?.catch(() => undefined);
          log(`interrupted at epoch ${epoch + 1}, batch ${b + 1}/${batchesPerEpoch}: saved ${run.weights('last')} (continue with --resume ${config.out})`);
          return await finish('interrupted');
        }
      }
      if (totals.pairs === 0) throw new UserError(`root: no clip of epoch ${epoch + 1} could be loaded (the log names the videos); check the videos${config.cache !== undefined ? ' and the cache' : ''}`);
      const trainLoss = totals.lossSum / totals.pairs;
      const trainAccuracy = totals.correct / totals.pairs;
      progress.finish(`loss ${trainLoss.toFixed(3)} pair accuracy ${(100 * trainAccuracy).toFixed(1)}%`);
      const val = heldOut ? await evaluatePairs(nets, source, heldOut.fixedPairs(), bs, failures, showProgress, `held-out ${epoch + 1}/${config.epochs}`) : null;
      const lastStep = records.at(-1);
      const lr = lastStep?.type === 'step' && lastStep.epoch === epoch + 1 ? (lastStep.lr as number) : optimizer.paramGroups[0]!.lr;
      if (schedule.unit === 'epoch') schedule.scheduler.step(val?.accuracy ?? trainLoss);
      const metric = val ? val.accuracy : -trainLoss;
      const improved = state.best === null || metric > state.best.metric;
      if (improved) state.best = { epoch: epoch + 1, metric, name: val ? 'held-out pair accuracy' : 'negative training loss' };
      const record: TransferEpochRecord = {
        type: 'epoch', epoch: epoch + 1, steps: records.filter((r) => r.type === 'step' && r.epoch === epoch + 1).length,
        loss: trainLoss, accuracy: trainAccuracy, valLoss: val?.loss ?? null, valAccuracy: val?.accuracy ?? null, lr,
        pairsPerSecond: totals.pairs / Math.max(1e-9, totals.waitSeconds + totals.busySeconds),
        dataWait: totals.waitSeconds / Math.max(1e-9, totals.waitSeconds + totals.busySeconds),
        teacherSeconds: totals.teacherSeconds + (val?.teacherSeconds ?? 0),
        cpuSeconds: cpuSecondsSince(cpuAtStart),
        teacherCache: nets.cache && cacheAtStart ? { rows: nets.cache.size, hits: nets.cache.hits - cacheAtStart.hits, misses: nets.cache.misses - cacheAtStart.misses } : null,
        seconds: now() - epochStarted, best: improved, liveTensors: memory().tensors,
      };
      run.append(record);
      records.push(record);
      state = { ...state, epoch: epoch + 1, nextBatch: 0, epochTotals: emptyTransferTotals() };
      save('last');
      if (improved) save('best');
      // Drawing the charts takes about 2 s: short epochs redraw them at most every PLOT_INTERVAL seconds (and at the end).
      if (epoch + 1 === config.epochs || aborted() || now() - lastPlot >= PLOT_INTERVAL) {
        await writeTrainingPlots(run.plots, records);
        lastPlot = now();
      }
      emit(record);
      log(`epoch ${epoch + 1}/${config.epochs}: pair loss ${trainLoss.toFixed(4)}, pair accuracy ${(100 * trainAccuracy).toFixed(1)}%` +
        (val ? `, held-out pair accuracy ${(100 * val.accuracy).toFixed(1)}% (loss ${val.loss.toFixed(4)})` : '') +
        `, lr ${lr.toPrecision(3)}, ${record.pairsPerSecond.toFixed(1)} pairs/s, teacher ${record.teacherSeconds.toFixed(1)} s` +
        (record.teacherCache ? ` (cache ${record.teacherCache.hits} hits, ${record.teacherCache.misses} misses)` : '') + (improved ? ', best so far' : ''));
      if (aborted() && epoch + 1 < config.epochs) {
        log(`interrupted after epoch ${epoch + 1}: saved ${run.weights('last')} (continue with --resume ${config.out})`);
        return await finish('interrupted');
      }
    }
    return await finish('completed');
  } finally {
    await source.close();
    optimizer.dispose();
    student.dispose();
    head.dispose();
    teacher.dispose();
  }
}

function cpuSecondsSince(start: NodeJS.CpuUsage): number {
  const used = process.cpuUsage(start);
  return (used.user + used.system) / 1e6;
}

/** Pair loss and accuracy over fixed pairs, in eval mode, without gradients. */
async function evaluatePairs(nets: PairNetworks, source: ClipSource, pairs: Pair[], batchSize: number, failures: FailureLog,
  showProgress: boolean, label: string): Promise<{ loss: number; accuracy: number; teacherSeconds: number } | null> {
  nets.student.eval();
  nets.head.eval();
  const progress = new Progress({ total: pairs.length, label, unit: 'pairs', quiet: !showProgress });
  let lossSum = 0;
  let correct = 0;
  let total = 0;
  let teacherSeconds = 0;
  try {
    for (let b = 0; b * batchSize < pairs.length; b++) {
      const batch = pairs.slice(b * batchSize, (b + 1) * batchSize);
      const loaded = await source.load(itemsToLoad(batch, nets.cache));
      failures.note(loaded.failures);
      const result = runPairs(nets, batch, loaded, false);
      lossSum += result.loss * result.pairs;
      correct += result.correct;
      total += result.pairs;
      teacherSeconds += result.teacherSeconds;
      progress.tick(batch.length);
    }
  } finally {
    nets.student.train();
    nets.head.train();
  }
  progress.finish();
  return total > 0 ? { loss: lossSum / total, accuracy: correct / total, teacherSeconds } : null;
}

/** Reads a transfer run folder's summary.json. */
export function readTransferSummary(runDir: string): TransferSummary {
  return JSON.parse(readFileSync(path.join(runDir, 'summary.json'), 'utf8')) as TransferSummary;
}
