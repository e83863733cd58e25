import os from 'node:os';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { z } from 'zod';
import YAML from 'yaml';
import { closest } from 'fastest-levenshtein';
import { UserError } from '../util/errors.js';
import { fsUserError } from '../util/fs.js';
import { DATASET_FORMATS } from '../data/dataset.js';

/**
 * The training configuration: one flat record whose keys are `stcnet train`'s flag names, so a
 * config file (YAML or JSON) and the command line say the same thing. It is validated whole before
 * any work starts, and the resolved record is what the run folder keeps (config.yaml/json).
 */

export const OPTIMIZERS = ['sgd', 'adamw'] as const;
export const SCHEDULES = ['step', 'multistep', 'cosine', 'plateau'] as const;
export const AMP_MODES = ['none', 'bf16', 'fp16'] as const;
/** How a training step computes its convolutions (setConvAlgorithm 'auto' or 'direct'). */
export const CONVOLUTIONS = ['auto', 'direct'] as const;
export const DEVICES = ['cpu', 'cuda'] as const;
export const NORMALIZE_PRESETS = ['kinetics', 'imagenet', 'none'] as const;

/** Defaults of every key that has one (the CLI shows them in --help). */
export const TRAIN_DEFAULTS = {
  format: 'ucf101',
  split: 'train1',
  'val-split': 'test1',
  'val-clips': 1,
  'short-side': 128,
  model: 'stc_resnet3d_18',
  frames: 16,
  stride: 1,
  size: 112,
  flip: true,
  normalize: 'kinetics',
  'batch-size': 8,
  epochs: 10,
  optimizer: 'sgd',
  lr: 0.01,
  momentum: 0.9,
  nesterov: false,
  schedule: 'cosine',
  'warmup-epochs': 0,
  gamma: 0.1,
  patience: 10,
  'min-lr': 0,
  accumulate: 1,
  'label-smoothing': 0,
  amp: 'none',
  convolutions: 'auto',
  device: 'cpu',
  seed: 0,
  workers: Math.max(1, os.availableParallelism() - 1),
  'checkpoint-every': 0,
  'sync-bn': false,
  'grad-sync': 'overlap',
  quiet: false,
} as const;

/** Weight decay when none is given: Hara et al.'s 1e-3 for SGD, PyTorch's 1e-2 for AdamW. */
export const DEFAULT_WEIGHT_DECAY = { sgd: 1e-3, adamw: 1e-2 } as const;

const positiveInt = z.coerce.number().int().positive();
const nonNegativeInt = z.coerce.number().int().nonnegative();
const nonEmpty = z.string().min(1);
const list = z.union([z.string().transform((text) => text.split(',').map((s) => s.trim()).filter((s) => s.length > 0)), z.array(z.string().min(1))]);

const shape = {
  // Data: the dataset (any format of `stcnet data`), frames from a cache or from the videos.
  root: nonEmpty,
  format: z.enum(DATASET_FORMATS),
  annotations: nonEmpty.optional(),
  videos: nonEmpty.optional(),
  'class-list': nonEmpty.optional(),
  cache: nonEmpty.optional(),
  'short-side': positiveInt,
  split: nonEmpty,
  'val-split': nonEmpty,
  'val-clips': positiveInt,
  // Clips.
  frames: positiveInt,
  stride: positiveInt,
  size: z.coerce.number().int().min(8),
  flip: z.boolean(),
  'crop-scales': z.union([z.string().transform((text) => text.split(',').map((s) => Number(s.trim()))), z.array(z.coerce.number())])
    .pipe(z.array(z.number().gt(0).lte(1)).min(1)).optional(),
  normalize: z.enum(NORMALIZE_PRESETS),
  // Model.
  model: nonEmpty,
  'width-multiplier': z.coerce.number().positive().max(4).optional(),
  reduction: positiveInt.optional(),
  dropout: z.coerce.number().min(0).lt(1).optional(),
  shortcut: z.enum(['A', 'B']).optional(),
  init: nonEmpty.optional(),
  freeze: list.optional(),
  'fc-lr': z.coerce.number().positive().optional(),
  // Optimisation.
  'batch-size': positiveInt,
  epochs: positiveInt,
  optimizer: z.enum(OPTIMIZERS),
  lr: z.coerce.number().positive(),
  momentum: z.coerce.number().min(0).lt(1),
  nesterov: z.boolean(),
  'weight-decay': z.coerce.number().nonnegative().optional(),
  schedule: z.enum(SCHEDULES),
  'warmup-epochs': nonNegativeInt,
  'step-size': positiveInt.optional(),
  milestones: z.union([z.string().transform((text) => text.split(',').map((s) => Number(s.trim()))), z.array(z.coerce.number())])
    .pipe(z.array(z.number().int().positive()).min(1)).optional(),
  gamma: z.coerce.number().positive().max(1),
  patience: nonNegativeInt,
  'min-lr': z.coerce.number().nonnegative(),
  accumulate: positiveInt,
  'label-smoothing': z.coerce.number().min(0).lt(1),
  // Gradients rescaled to this joint L2 norm at most before each optimizer step (absent: no clipping).
  'clip-grad-norm': z.coerce.number().positive().optional(),
  amp: z.enum(AMP_MODES),
  // auto: stcnet's training convolutions where they pay (F.conv3d's routing: Winograd, grouped, stem, one-frame); direct: libtorch's only.
  convolutions: z.enum(CONVOLUTIONS),
  // Run.
  device: z.enum(DEVICES),
  seed: nonNegativeInt.max(2 ** 31 - 1),
  workers: nonNegativeInt,
  'checkpoint-every': nonNegativeInt,
  // Data-parallel jobs (src/distributed): synchronised BatchNorm, and how gradients are averaged.
  'sync-bn': z.boolean(),
  'grad-sync': z.enum(['overlap', 'after-backward']),
  out: nonEmpty,
  quiet: z.boolean(),
};

export const TRAIN_KEYS = Object.keys(shape) as (keyof typeof shape)[];

const schema = z.strictObject(shape).superRefine((config, context) => {
  const need = (ok: boolean, key: string, message: string) => {
    if (!ok) context.addIssue({ code: 'custom', path: [key], message });
  };
  need(config.schedule !== 'step' || config['step-size'] !== undefined, 'step-size', 'is required by schedule "step" (epochs between lr drops)');
  need(config.schedule !== 'multistep' || config.milestones !== undefined, 'milestones', 'is required by schedule "multistep" (epochs at which the lr drops, e.g. 30,60)');
  need(config.schedule === 'plateau' || config['warmup-epochs'] < config.epochs, 'warmup-epochs',
    `must be less than epochs (${config.epochs}) so that the schedule has epochs left after warm-up`);
  need(config.amp !== 'fp16' || config.device === 'cuda', 'amp', 'fp16 autocast needs device cuda (on the CPU use bf16)');
  need(config['val-split'] !== config.split, 'val-split', `must differ from split "${config.split}" (validation needs held-out videos), or be "none"`);
});

export type TrainConfig = z.output<typeof schema>;
/** What a config file or the command line may give: any subset, values as text or typed. */
export type TrainConfigInput = Record<string, unknown>;

/** Keys that name files or folders: relative ones are resolved against the config file's folder (or the working directory). */
export const PATH_KEYS = ['root', 'annotations', 'videos', 'class-list', 'cache', 'init', 'out'] as const;

/** The same record with relative paths made absolute against `baseDir` (so a run folder's config works from anywhere). */
export function resolvePaths(input: TrainConfigInput, baseDir: string): TrainConfigInput {
  const resolved = { ...input };
  for (const key of PATH_KEYS) {
    const value = resolved[key];
    if (typeof value === 'string' && value.length > 0) resolved[key] = path.resolve(baseDir, value);
  }
  return resolved;
}

/** Reads a config file (.yaml, .yml or .json) into a plain record; the caller validates it. */
export function readConfigFile(file: string): TrainConfigInput {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw fsUserError(error, file);
  }
  const extension = path.extname(file).toLowerCase();
  let value: unknown;
  try {
    if (extension === '.json') value = JSON.parse(text);
    else if (extension === '.yaml' || extension === '.yml') value = YAML.parse(text);
    else throw new UserError(`${file}: a config file must end in .yaml, .yml or .json`);
  } catch (error) {
    if (error instanceof UserError) throw error;
    throw new UserError(`${file}: not valid ${extension === '.json' ? 'JSON' : 'YAML'}: ${(error as Error).message.split('\n')[0]}`);
  }
  if (value === null || value === undefined) return {};
  if (typeof value !== 'object' || Array.isArray(value)) throw new UserError(`${file}: expected a mapping of option names to values, got ${Array.isArray(value) ? 'a list' : typeof value}`);
  return value as TrainConfigInput;
}

/**
 * Validates a config (defaults filled in). `source` names where the values came from in errors
 * (a config file, the command line). Every problem is listed, each naming its key and what was
 * expected; a misspelt key suggests the closest known one.
 */
export function validateConfig(input: TrainConfigInput, source = 'config'): TrainConfig {
  const withDefaults: Record<string, unknown> = { ...TRAIN_DEFAULTS };
  for (const [key, value] of Object.entries(input)) if (value !== undefined) withDefaults[key] = value;
  const result = schema.safeParse(withDefaults);
  if (result.success) {
    const config = result.data;
    if (config['weight-decay'] === undefined) config['weight-decay'] = DEFAULT_WEIGHT_DECAY[config.optimizer];
    return config;
  }
  throw new UserError(`${source}: ${describeConfigIssues(result.error, withDefaults, suggestKey)}`);
}

/**
 * A config's validation errors as one message: each problem names its key and what was expected, a
 * misspelt key gets `suggest(key)`. Shared by every command's config (train, transfer).
 */
export function describeConfigIssues(error: z.ZodError, values: Record<string, unknown>, suggest: (key: string) => string): string {
  // Cross-key checks only speak once every value has the right type (else they read nonsense).
  const typed = error.issues.filter((issue) => issue.code !== 'custom');
  return (typed.length > 0 ? typed : error.issues).map((issue) => describeIssue(issue, values, suggest)).join('; ');
}

function describeIssue(issue: z.core.$ZodIssue, values: Record<string, unknown>, suggest: (key: string) => string): string {
  if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => `unknown key "${key}" (did you mean "${suggest(key)}"?)`).join('; ');
  const key = String(issue.path[0] ?? '');
  const given = values[key];
  if (issue.code === 'custom') return `${key} ${issue.message}`;
  if (given === undefined) return `${key} is required (${expectation(issue)})`;
  return `${key}: expected ${expectation(issue)}, got ${JSON.stringify(given)}`;
}

/** Other names people give these keys (PyTorch's, Hara et al.'s options), for suggestions. */
const KEY_ALIASES: Record<string, string> = {
  'learning-rate': 'lr', 'base-lr': 'lr', 'n-epochs': 'epochs', 'num-epochs': 'epochs', 'max-epochs': 'epochs',
  'wd': 'weight-decay', 'decay': 'weight-decay', 'arch': 'model', 'model-name': 'model', 'sample-duration': 'frames',
  'clip-length': 'frames', 'sample-size': 'size', 'crop-size': 'size', 'n-threads': 'workers', 'num-workers': 'workers',
  'pretrain-path': 'init', 'pretrained': 'init', 'resume-path': 'init', 'ft-begin-module': 'freeze', 'output': 'out',
  'result-path': 'out', 'dataset': 'format', 'video-path': 'root', 'data': 'root', 'lr-scheduler': 'schedule',
  'scheduler': 'schedule', 'warmup': 'warmup-epochs', 'smoothing': 'label-smoothing', 'accumulation': 'accumulate',
  'gradient-accumulation': 'accumulate', 'val': 'val-split', 'validation-split': 'val-split', 'mixed-precision': 'amp',
};

/** The known key a misspelt one most likely means: same words in another case or separator, a known alias, else the nearest name. */
export function suggestKey(key: string): string {
  const normal = key.replace(/([a-z0-9])([A-Z])/g, '$1-$2').replace(/_/g, '-').toLowerCase();
  if ((TRAIN_KEYS as string[]).includes(normal)) return normal;
  if (KEY_ALIASES[normal]) return KEY_ALIASES[normal];
  const candidates = [...TRAIN_KEYS, ...Object.keys(KEY_ALIASES)];
  const nearest = closest(normal, candidates);
  return KEY_ALIASES[nearest] ?? nearest;
}

function expectation(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'invalid_value':
      return `one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
    case 'too_small':
      return issue.origin === 'array' || issue.origin === 'string' ? 'a non-empty value' : `a number ${issue.inclusive ? '>=' : '>'} ${String(issue.minimum)}`;
    case 'too_big':
      return `a number ${issue.inclusive ? '<=' : '<'} ${String(issue.maximum)}`;
    case 'invalid_type':
      return issue.expected === 'int' ? 'an integer' : `${issue.expected === 'array' ? 'a list' : `a ${issue.expected}`}`;
    default:
      return issue.message;
  }
}

/** The config as YAML (the run folder's config.yaml): keys in schema order, unset ones left out. */
export function configToYaml(config: TrainConfig): string {
  return YAML.stringify(orderedConfig(config));
}

export function orderedConfig(config: TrainConfig): Record<string, unknown> {
  const ordered: Record<string, unknown> = {};
  for (const key of TRAIN_KEYS) if (config[key] !== undefined) ordered[key] = config[key];
  return ordered;
}
