import { readFileSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import type { ZooModel } from '../models/base.js';
import type { InferenceModel } from '../models/inference.js';
import type { Module } from '../nn/index.js';
import type { Preprocessing } from '../models/checkpoint.js';
import { modelEntry } from '../models/registry.js';
import { NORMALIZATIONS } from '../data/transforms.js';
import { readLabels } from './labels.js';
import type { ModelSource } from './model_source.js';

export { resolveModelSource, type ModelSource } from './model_source.js';

/**
 * What eval and predict classify with: a model from a checkpoint (a `stcnet train` run folder, a
 * stcnet checkpoint, or a PyTorch file of Hara et al.'s or torchvision's given --arch), its class
 * names, and the preprocessing its clips must have.
 */

export interface ClassifierOptions {
  /** The architecture, required for PyTorch files; checked against a stcnet checkpoint's. */
  arch?: string;
  /** Clip length the model is built for (STC models), when the file does not say. */
  frames?: number;
  /** Expected class count: checked against the checkpoint's classifier. */
  numClasses?: number;
  /** A class-name file; replaces the checkpoint's names. */
  labels?: string;
  /** The short side videos are decoded at (overrides everything else). */
  shortSide?: number;
}

export interface Classifier {
  model: ZooModel;
  arch: string;
  /** Class names (from --labels, else the checkpoint); undefined when neither gives them. */
  classes: string[] | undefined;
  preprocessing: Preprocessing;
  /** Where each part came from, for reports. */
  classesFrom: 'labels' | 'checkpoint' | 'none';
  preprocessingFrom: 'checkpoint' | 'run config' | 'defaults';
  /**
   * Where the decode short side came from: --short-side, the checkpoint, the run (its cache's side),
   * the family defaults, or a guess (8/7 of the crop) when nothing says.
   */
  shortSideFrom: 'flag' | 'checkpoint' | 'run' | 'defaults' | 'guess';
}

/** The classifier's class names, else `class 0`, `class 1`, ... for a checkpoint that names none. */
export function classNamesOf(classifier: Classifier): string[] {
  return classifier.classes ?? Array.from({ length: classifier.model.numClasses }, (_, i) => `class ${i}`);
}

/**
 * The preprocessing of a model family's published weights, for checkpoints that do not carry
 * their own, as each project's test transform has it: Hara et al. scale the short side to the crop
 * size (112) and take the centre crop, with their Kinetics mean/std; torchvision resizes to 128×171
 * and crops 112, with its video mean/std. Both: 16 frames at stride 1.
 */
export function defaultPreprocessing(arch: string, frames?: number): Preprocessing {
  const entry = modelEntry(arch);
  const torchvision = entry.family === 'video_resnet';
  const norm = torchvision ? { mean: [0.43216, 0.394666, 0.37645], std: [0.22803, 0.22145, 0.216989] } : NORMALIZATIONS.kinetics;
  return { frames: frames ?? 16, stride: 1, size: 112, mean: [...norm.mean], std: [...norm.std], shortSide: torchvision ? 128 : 112 };
}

/**
 * The short side a run's frames had: its frame cache's (meta.json), else its `short-side` (frames
 * decoded from the videos). A network sees its training resolution again only at this side:
 * measured on a small synth run, decoding at 55 instead of the cache's 48 took video accuracy
 * from 44% to 25%.
 */
function runShortSide(config: Record<string, unknown>): number | undefined {
  if (typeof config.cache === 'string' && config.cache !== '') {
    try {
      const meta = JSON.parse(readFileSync(path.join(config.cache, 'meta.json'), 'utf8')) as { shortSide?: unknown };
      return typeof meta.shortSide === 'number' && meta.shortSide > 0 ? meta.shortSide : undefined;
    } catch {
      return undefined;
    }
  }
  return typeof config['short-side'] === 'number' ? config['short-side'] : undefined;
}

/** A run's own settings (config.json of stcnet train), when its checkpoint lacks preprocessing. */
function runPreprocessing(config: Record<string, unknown>): Preprocessing | undefined {
  const num = (key: string) => (typeof config[key] === 'number' ? config[key] : undefined);
  const frames = num('frames');
  const size = num('size');
  if (frames === undefined || size === undefined) return undefined;
  const preset = config.normalize;
  const norm = preset === 'none' ? { mean: [0, 0, 0], std: [1, 1, 1] } : preset === 'imagenet' ? NORMALIZATIONS.imagenet : NORMALIZATIONS.kinetics;
  return { frames, stride: num('stride') ?? 1, size, mean: [...norm.mean], std: [...norm.std] };
}

/** Loads the model and settles its class names and preprocessing; every mismatch is a UserError. */
export async function loadClassifier(source: ModelSource, options: ClassifierOptions = {}): Promise<Classifier> {
  // The labels file is read first: a bad one fails before the (slow) model load.
  const labels = options.labels !== undefined ? readLabels(options.labels) : undefined;
  const { loadModelCheckpoint } = await import('../models/checkpoint.js');
  const { model, meta } = loadModelCheckpoint(source.checkpoint, {
    ...(options.arch !== undefined ? { arch: options.arch } : {}),
    ...(options.frames !== undefined ? { frames: options.frames } : {}),
  });
  try {
    if (model.input.dims !== 3) throw new UserError(`${source.checkpoint}: ${meta.arch} is a 2D image model; eval and predict need a video model`);
    if (options.numClasses !== undefined && options.numClasses !== model.numClasses) {
      throw new UserError(`${source.checkpoint}: the checkpoint's classifier has ${model.numClasses} outputs, --num-classes says ${options.numClasses}`);
    }
    if (options.frames !== undefined && meta.preprocessing && meta.preprocessing.frames !== options.frames) {
      throw new UserError(`${source.checkpoint}: the checkpoint was made for ${meta.preprocessing.frames}-frame clips, --frames says ${options.frames}`);
    }
    if (labels && labels.length !== model.numClasses) {
      throw new UserError(`--labels ${options.labels}: names ${labels.length} classes, but the model has ${model.numClasses} outputs`);
    }
    if (!labels && meta.classes && meta.classes.length !== model.numClasses) {
      throw new UserError(`${source.checkpoint}: its metadata names ${meta.classes.length} classes, but the model has ${model.numClasses} outputs`);
    }
    const fromRun = source.runConfig ? runPreprocessing(source.runConfig) : undefined;
    const frames = typeof model.options.frames === 'number' ? model.options.frames : options.frames;
    const preprocessing = { ...(meta.preprocessing ?? fromRun ?? defaultPreprocessing(meta.arch, frames)) };
    // The decode side: --short-side, the checkpoint's, the run's (its cache's), else 8/7 of the crop.
    let shortSideFrom: Classifier['shortSideFrom'] = 'checkpoint';
    const runSide = source.runConfig ? runShortSide(source.runConfig) : undefined;
    if (options.shortSide !== undefined) {
      preprocessing.shortSide = options.shortSide;
      shortSideFrom = 'flag';
    } else if (preprocessing.shortSide === undefined && runSide !== undefined) {
      preprocessing.shortSide = runSide;
      shortSideFrom = 'run';
    } else if (preprocessing.shortSide === undefined) {
      preprocessing.shortSide = decodeShortSide(preprocessing);
      shortSideFrom = 'guess';
    } else if (!meta.preprocessing) {
      shortSideFrom = 'defaults';
    }
    for (const key of ['mean', 'std'] as const) {
      if (preprocessing[key].length !== 3 && preprocessing[key].length !== 1) {
        throw new UserError(`${source.checkpoint}: preprocessing ${key} has ${preprocessing[key].length} values; expected 3 (RGB) or 1`);
      }
    }
    return {
      model, arch: meta.arch, classes: labels ?? meta.classes, preprocessing,
      classesFrom: labels ? 'labels' : meta.classes ? 'checkpoint' : 'none',
      preprocessingFrom: meta.preprocessing ? 'checkpoint' : fromRun ? 'run config' : 'defaults',
      shortSideFrom,
    };
  } catch (error) {
    model.dispose();
    throw error;
  }
}

/** Mean and std as the loader's three-channel normalisation. */
export function normalizationOf(preprocessing: Preprocessing): { mean: [number, number, number]; std: [number, number, number] } {
  const three = (values: number[]) => (values.length === 1 ? [values[0]!, values[0]!, values[0]!] : values.slice(0, 3)) as [number, number, number];
  return { mean: three(preprocessing.mean), std: three(preprocessing.std) };
}

/** The short side videos are decoded at: the checkpoint's, else 8/7 of the crop (128 for 112). */
export function decodeShortSide(preprocessing: Preprocessing): number {
  return preprocessing.shortSide ?? Math.max(preprocessing.size, Math.round((preprocessing.size * 8) / 7));
}

/**
 * The prepared inference network in `dtype` (prepareForInference), or null for a family it does not
 * cover, which runs as the eval-mode model in float32; bf16 has no such fallback and is refused.
 */
export async function preparedInDtype(model: ZooModel, dtype: 'float32' | 'bfloat16'): Promise<InferenceModel | null> {
  const { prepareIfSupported } = await import('../models/inference.js');
  const prepared = prepareIfSupported(model, { dtype });
  if (!prepared && dtype === 'bfloat16') {
    throw new UserError(`--dtype bfloat16: ${model.arch} has no prepared inference form (prepareForInference covers the ResNets, ResNeXts, STC and torchvision video ResNets); use --dtype float32`);
  }
  return prepared;
}

/**
 * The model as eval and predict run it on a device: batches arrive on the CPU from the loader and
 * are moved there (the trainer's OnDevice wrapper), scores come back as float32. On the CPU it is
 * the prepared network (BatchNorm folded, oneDNN's blocked layout: 1.4–1.6× the eval forward at
 * batch 1) where the family supports it; `dtype` bfloat16 runs it in bf16 (fast only on CPUs with
 * AVX-512 BF16 or AMX), or on a GPU under bf16 autocast.
 */
export async function onDevice(model: ZooModel, device: 'cpu' | 'cuda', dtype: 'float32' | 'bfloat16' = 'float32'): Promise<Module & { numClasses: number }> {
  if (device === 'cpu') {
    const prepared = await preparedInDtype(model, dtype);
    if (!prepared) return model;
    const { PreparedModule } = await import('./on_device.js');
    return new PreparedModule(prepared);
  }
  const { cudaAvailable } = await import('../engine/runtime.js');
  if (!cudaAvailable()) throw new UserError('--device cuda: this libtorch has no CUDA device (use --device cpu, or build against a CUDA libtorch: scripts/gpu_check.sh)');
  const { OnDevice } = await import('./on_device.js');
  model.to(device);
  // On the GPU bf16 is autocast over the eval-mode model (weights stay float32).
  return Object.assign(new OnDevice(model, device, dtype === 'bfloat16' ? 'bf16' : 'none'), { numClasses: model.numClasses });
}
