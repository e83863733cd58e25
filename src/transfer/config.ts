import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import YAML from 'yaml';
import { closest } from 'fastest-levenshtein';
import { UserError } from '../util/errors.js';
import { DATASET_FORMATS } from '../data/dataset.js';
import { DEFAULT_WEIGHT_DECAY, DEVICES, NORMALIZE_PRESETS, OPTIMIZERS, SCHEDULES, describeConfigIssues } from '../train/config.js';

/**
 * The configuration of `stcnet transfer`: one flat record whose keys are the command's flag names
 * (as `stcnet train`'s), validated whole before any work starts; the run folder keeps it resolved.
 * The defaults are the paper's: SGD, batch 32, lr 0.1 divided by 10 every 30 epochs, one negative
 * pair per positive.
 */

/** `videos`: every video file under ROOT (any layout, no labels); the others are `stcnet data`'s formats with labels ignored. */
export const TRANSFER_FORMATS = ['videos', ...DATASET_FORMATS] as const;
export const TEACHER_ARCHS = ['resnet2d_18', 'resnet2d_34', 'resnet2d_50'] as const;

export const TRANSFER_DEFAULTS = {
  format: 'videos',
  'short-side': 128,
  'teacher-frames': 4,
  'teacher-normalize': 'imagenet',
  model: 'stc_resnet3d_18',
  frames: 16,
  stride: 1,
  size: 112,
  normalize: 'kinetics',
  positions: 4,
  negatives: 1,
  'val-fraction': 0.2,
  'cache-teacher': false,
  'batch-size': 32,
  epochs: 60,
  optimizer: 'sgd',
  lr: 0.1,
  momentum: 0.9,
  nesterov: false,
  schedule: 'step',
  'step-size': 30,
  'warmup-epochs': 0,
  gamma: 0.1,
  patience: 10,
  'min-lr': 0,
  device: 'cpu',
  seed: 0,
  workers: Math.max(1, os.availableParallelism() - 1),
  'checkpoint-every': 0,
  quiet: false,
} as const;

const positiveInt = z.coerce.number().int().positive();
const nonNegativeInt = z.coerce.number().int().nonnegative();
const nonEmpty = z.string().min(1);

const shape = {
  // Unlabeled videos: a folder of videos, or a dataset of any format (its labels ignored).
  root: nonEmpty,
  format: z.enum(TRANSFER_FORMATS),
  annotations: nonEmpty.optional(),
  videos: nonEmpty.optional(),
  'class-list': nonEmpty.optional(),
  cache: nonEmpty.optional(),
  'short-side': positiveInt,
  // Teacher: a frozen 2D ResNet.
  teacher: nonEmpty,
  'teacher-arch': z.enum(TEACHER_ARCHS).optional(),
  'teacher-frames': positiveInt,
  'teacher-normalize': z.enum(NORMALIZE_PRESETS),
  // Student: any 3D model of the zoo.
  model: nonEmpty,
  'width-multiplier': z.coerce.number().positive().max(4).optional(),
  reduction: positiveInt.optional(),
  dropout: z.coerce.number().min(0).lt(1).optional(),
  shortcut: z.enum(['A', 'B']).optional(),
  init: nonEmpty.optional(),
  frames: positiveInt,
  stride: positiveInt,
  size: z.coerce.number().int().min(8),
  normalize: z.enum(NORMALIZE_PRESETS),
  // Pairs.
  positions: positiveInt,
  negatives: z.coerce.number().positive().max(100),
  'val-fraction': z.coerce.number().min(0).lt(1),
  'cache-teacher': z.boolean(),
  // Optimisation.
  'batch-size': positiveInt,
  epochs: positiveInt,
  optimizer: z.enum(OPTIMIZERS),
  lr: z.coerce.number().positive(),
  momentum: z.coerce.number().min(0).lt(1),
  nesterov: z.boolean(),
  'weight-decay': z.coerce.number().nonnegative().optional(),
  schedule: z.enum(SCHEDULES),
  'step-size': positiveInt.optional(),
  milestones: z.union([z.string().transform((text) => text.split(',').map((s) => Number(s.trim()))), z.array(z.coerce.number())])
    .pipe(z.array(z.number().int().positive()).min(1)).optional(),
  'warmup-epochs': nonNegativeInt,
  gamma: z.coerce.number().positive().max(1),
  patience: nonNegativeInt,
  'min-lr': z.coerce.number().nonnegative(),
  // Run.
  device: z.enum(DEVICES),
  seed: nonNegativeInt.max(2 ** 31 - 1),
  workers: nonNegativeInt,
  'checkpoint-every': nonNegativeInt,
  out: nonEmpty,
  quiet: z.boolean(),
};

export const TRANSFER_KEYS = Object.keys(shape) as (keyof typeof shape)[];

const schema = z.strictObject(shape).superRefine((config, context) => {
  const need = (ok: boolean, key: string, message: string) => {
    if (!ok) context.addIssue({ code: 'custom', path: [key], message });
  };
  need(config.schedule !== 'multistep' || config.milestones !== undefined, 'milestones', 'is required by schedule "multistep" (epochs at which the lr drops, e.g. 30,60)');
  need(config.schedule === 'plateau' || config['warmup-epochs'] < config.epochs, 'warmup-epochs',
    `must be less than epochs (${config.epochs}) so that the schedule has epochs left after warm-up`);
  need(config['teacher-frames'] <= config.frames, 'teacher-frames',
    `must be at most frames (${config.frames}): the teacher's frames are taken from the student's clip (same video, same time)`);
});

export type TransferConfig = z.output<typeof schema>;

/** Keys that name files or folders: relative ones are resolved against the config file's folder (or the working directory). */
export const TRANSFER_PATH_KEYS = ['root', 'annotations', 'videos', 'class-list', 'cache', 'teacher', 'init', 'out'] as const;

export function resolveTransferPaths(input: Record<string, unknown>, baseDir: string): Record<string, unknown> {
  const resolved = { ...input };
  for (const key of TRANSFER_PATH_KEYS) {
    const value = resolved[key];
    if (typeof value === 'string' && value.length > 0) resolved[key] = path.resolve(baseDir, value);
  }
  return resolved;
}

/**
 * Validates a config (defaults filled in); every problem is listed, each naming its key and what
 * was expected, and a misspelt key suggests the closest known one.
 */
export function validateTransferConfig(input: Record<string, unknown>, source = 'config'): TransferConfig {
  const withDefaults: Record<string, unknown> = { ...TRANSFER_DEFAULTS };
  for (const [key, value] of Object.entries(input)) if (value !== undefined) withDefaults[key] = value;
  const result = schema.safeParse(withDefaults);
  if (result.success) {
    const config = result.data;
    if (config['weight-decay'] === undefined) config['weight-decay'] = DEFAULT_WEIGHT_DECAY[config.optimizer];
    return config;
  }
  const suggest = (key: string) => closest(key.replace(/_/g, '-').toLowerCase(), TRANSFER_KEYS);
  throw new UserError(`${source}: ${describeConfigIssues(result.error, withDefaults, suggest)}`);
}

/** The config with its keys in schema order, unset ones left out (config.json / config.yaml of the run folder). */
export function orderedTransferConfig(config: TransferConfig): Record<string, unknown> {
  const ordered: Record<string, unknown> = {};
  for (const key of TRANSFER_KEYS) if (config[key] !== undefined) ordered[key] = config[key];
  return ordered;
}

export function transferConfigToYaml(config: TransferConfig): string {
  return YAML.stringify(orderedTransferConfig(config));
}
