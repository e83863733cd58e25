import { UserError } from '../util/errors.js';
import type { ZooModel } from '../models/base.js';
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
}

/**
 * The preprocessing of a model family's published weights, for checkpoints that do not carry
 * their own: Hara et al.'s Kinetics statistics, torchvision's video statistics; 112² centre crops
 * of 16 frames from videos decoded at a short side of 128.
 */
export function defaultPreprocessing(arch: string, frames?: number): Preprocessing {
  const entry = modelEntry(arch);
  const torchvision = { mean: [0.43216, 0.394666, 0.37645], std: [0.22803, 0.22145, 0.216989] };
  const norm = entry.family === 'video_resnet' ? torchvision : NORMALIZATIONS.kinetics;
  return { frames: frames ?? 16, stride: 1, size: 112, mean: [...norm.mean], std: [...norm.std], shortSide: 128 };
}

/** A run's own settings (config.json of stcnet train), when its checkpoint lacks preprocessing. */
function runPreprocessing(config: Record<string, unknown>): Preprocessing | undefined {
  const num = (key: string) => (typeof config[key] === 'number' ? config[key] : undefined);
  const frames = num('frames');
  const size = num('size');
  if (frames === undefined || size === undefined) return undefined;
  const preset = config.normalize;
  const norm = preset === 'none' ? { mean: [0, 0, 0], std: [1, 1, 1] } : preset === 'imagenet' ? NORMALIZATIONS.imagenet : NORMALIZATIONS.kinetics;
  const shortSide = num('short-side');
  return { frames, stride: num('stride') ?? 1, size, mean: [...norm.mean], std: [...norm.std], ...(shortSide ? { shortSide } : {}) };
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
    const preprocessing = meta.preprocessing ?? fromRun ?? defaultPreprocessing(meta.arch, frames);
    for (const key of ['mean', 'std'] as const) {
      if (preprocessing[key].length !== 3 && preprocessing[key].length !== 1) {
        throw new UserError(`${source.checkpoint}: preprocessing ${key} has ${preprocessing[key].length} values; expected 3 (RGB) or 1`);
      }
    }
    return {
      model, arch: meta.arch, classes: labels ?? meta.classes, preprocessing,
      classesFrom: labels ? 'labels' : meta.classes ? 'checkpoint' : 'none',
      preprocessingFrom: meta.preprocessing ? 'checkpoint' : fromRun ? 'run config' : 'defaults',
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
