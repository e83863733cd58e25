import path from 'node:path';
import { defineCommand, type FlagSpec } from './args.js';
import { runInterruptible } from './interruptible.js';
import { command as trainCommand } from './train.js';
import { UserError } from '../util/errors.js';
import { readConfigFile, resolvePaths, validateConfig } from '../train/config.js';

/**
 * `stcnet train-2d ROOT --out RUN_DIR`: trains a 2D ResNet teacher on single frames of a dataset's
 * videos (frame label = video label; for generated data use `stcnet synth --label shape`), with
 * `stcnet train`'s run folder, resume, plots and checkpoints, and writes RUN_DIR/teacher.safetensors,
 * a resnet2d checkpoint with torchvision's names (for `stcnet transfer` and `stcnet inflate`).
 */

const TEACHERS = ['resnet2d_18', 'resnet2d_34', 'resnet2d_50'] as const;

/** train's flags that mean the same for a frame classifier (clip-only and video-model ones left out). */
const SHARED = [
  'config', 'resume', 'out', 'format', 'annotations', 'videos', 'class-list', 'cache', 'short-side', 'split', 'val-split',
  'width-multiplier', 'dropout', 'size', 'crop-scales', 'flip', 'accumulate', 'epochs', 'optimizer', 'lr', 'momentum', 'nesterov',
  'weight-decay', 'schedule', 'warmup-epochs', 'step-size', 'milestones', 'gamma', 'patience', 'min-lr', 'label-smoothing', 'clip-grad-norm', 'amp',
  'device', 'seed', 'workers', 'checkpoint-every', 'quiet',
] as const;

const trainFlags = trainCommand.flags as Record<string, FlagSpec>;
const flags = {
  ...Object.fromEntries(SHARED.map((key) => [key, trainFlags[key]!])),
  model: { type: 'string', description: '2D ResNet teacher (torchvision names)', choices: TEACHERS, default: 'resnet2d_18' },
  'val-clips': { type: 'int', description: 'evenly spaced frames scored per validation video (video accuracy averages them)', default: 4, min: 1 },
  'batch-size': { type: 'int', description: 'frames per batch', default: 32, min: 1 },
  normalize: { ...trainFlags.normalize!, default: 'imagenet', description: 'mean/std of the input (torchvision teachers use imagenet)' },
} as Record<string, FlagSpec>;

/** Flags that are not config keys. */
const NOT_CONFIG = new Set(['config', 'resume']);

export const command = defineCommand({
  name: 'train-2d',
  summary: 'train a 2D ResNet teacher on single frames of a dataset (frame-level labels) into a run folder; writes teacher.safetensors',
  usage: 'stcnet train-2d ROOT --out RUN_DIR [--model resnet2d_18] [--width-multiplier 0.25] [--size 64] [--epochs 10] [flags] | stcnet train-2d --resume RUN_DIR',
  positionals: { name: 'ROOT', min: 0, max: 1 },
  examples: [
    'stcnet synth data/shapes --label shape --classes 6 --videos 24 --scene varied --width 80 --height 64',
    'stcnet train-2d data/shapes --out runs/teacher --width-multiplier 0.25 --size 64 --short-side 64 --epochs 8 --optimizer adamw --lr 0.002',
    'stcnet inflate runs/teacher/teacher.safetensors --arch stc_resnet3d_18 --frames 8 --num-classes 6 --out stc18-inflated.safetensors',
    'stcnet train-2d --resume runs/teacher                    # after Ctrl-C',
  ],
  flags,
  async run(args) {
    const { given, positionals } = args;
    const values = args.flags as Record<string, unknown>;
    const { resumeConfig } = await import('../train/trainer.js');
    const { runTeacherTraining, checkTwinConfig } = await import('../train2d/train2d.js');
    const { twin3dArch } = await import('../train2d/deflate.js');
    let config;
    let resume = false;
    if (values.resume !== undefined) {
      if (positionals.length > 0) throw new UserError(`stcnet train-2d: --resume takes the dataset from the run's config; unexpected argument "${positionals[0]}"`);
      const overrides: Record<string, unknown> = {};
      for (const key of given) if (key !== 'resume') overrides[key] = values[key];
      config = resumeConfig(path.resolve(values.resume as string), overrides);
      checkTwinConfig(config);
      resume = true;
    } else {
      const fromFile = values.config !== undefined ? resolvePaths(readConfigFile(values.config as string), path.dirname(path.resolve(values.config as string))) : {};
      for (const key of ['frames', 'stride', 'reduction', 'shortcut', 'init', 'freeze']) {
        if (fromFile[key] !== undefined) throw new UserError(`${values.config as string}: "${key}" is not a train-2d key (a teacher is trained on single frames, from scratch)`);
      }
      const fromFlags: Record<string, unknown> = {};
      if (positionals[0] !== undefined) fromFlags.root = positionals[0];
      for (const key of given) if (!NOT_CONFIG.has(key)) fromFlags[key] = values[key];
      const input: Record<string, unknown> = {
        normalize: values.normalize, 'batch-size': values['batch-size'], 'val-clips': values['val-clips'],
        ...fromFile, ...resolvePaths(fromFlags, process.cwd()),
      };
      if (input.root === undefined) throw new UserError(`stcnet train-2d: missing ROOT, the dataset (or "root:" in a --config file); usage: ${command.usage}`);
      if (input.out === undefined) throw new UserError('stcnet train-2d: missing --out RUN_DIR, the run folder to create (or "out:" in a --config file)');
      const teacher = String(input.model ?? 'resnet2d_18');
      // The teacher trains as its 3D twin on one-frame clips (src/train2d/deflate.ts explains why that is the 2D network).
      config = validateConfig({ ...input, model: twin3dArch(teacher), frames: 1, stride: 1 }, (values.config as string | undefined) ?? 'stcnet train-2d');
    }
    const quiet = config.quiet;
    await runInterruptible('train-2d', (signal) => runTeacherTraining(config, {
      resume, signal,
      onEvent: (event) => {
        if (event.type === 'log' && !quiet) process.stdout.write(event.message.replace(/^train: resnet3d_(\d+)/, 'train-2d: resnet2d_$1 (as its 3D twin on one-frame clips)') + '\n');
      },
    }));
  },
});
