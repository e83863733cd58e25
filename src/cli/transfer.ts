import path from 'node:path';
import { defineCommand, type FlagSpec } from './args.js';
import { runInterruptible } from './interruptible.js';
import { UserError } from '../util/errors.js';
import { readConfigFile } from '../train/config.js';
import { DEVICES, NORMALIZE_PRESETS, OPTIMIZERS, SCHEDULES } from '../train/config.js';
import { resolveTransferPaths, TEACHER_ARCHS, TRANSFER_DEFAULTS, TRANSFER_FORMATS, validateTransferConfig } from '../transfer/config.js';

/**
 * `stcnet transfer ROOT --teacher WEIGHTS --out RUN_DIR`: 2D→3D knowledge transfer without labels
 * (a frozen 2D ResNet teaches a 3D student whether frames and a clip come from the same moment of
 * the same video), into a run folder like `stcnet train`'s whose student checkpoint
 * `stcnet train --init` fine-tunes. Every flag is also a config-file key; flags override the file.
 */

const d = TRANSFER_DEFAULTS;
const transferFlags = {
  config: { type: 'string', description: 'YAML or JSON file whose keys are these flag names (flags given here override it)' },
  resume: { type: 'string', description: 'continue the run in RUN_DIR from its last checkpoint (same config, pairs and schedule)' },
  out: { type: 'string', description: 'run folder to create (must be new or empty): config, metrics.jsonl, checkpoints, plots, summary' },
  format: { type: 'string', description: 'videos: every video under ROOT; or a dataset format (labels ignored)', choices: TRANSFER_FORMATS, default: d.format },
  annotations: { type: 'string', description: 'dataset formats: folder (or Kinetics CSV) with the split files, when not under ROOT' },
  videos: { type: 'string', description: 'dataset formats: folder with the videos, when not ROOT' },
  'class-list': { type: 'string', description: 'dataset formats: file with one class name per line' },
  cache: { type: 'string', description: 'frame cache made by `stcnet prepare` (else frames are decoded from the videos)' },
  'short-side': { type: 'int', description: 'short side videos are decoded at when there is no cache', default: d['short-side'] },
  teacher: { type: 'string', description: 'the 2D teacher: torchvision resnet18/34/50 state dict (.pth/.pt/.safetensors) or a stcnet resnet2d checkpoint' },
  'teacher-arch': { type: 'string', description: 'the teacher\'s architecture when its names do not tell (they do for torchvision\'s)', choices: TEACHER_ARCHS },
  'teacher-frames': { type: 'int', description: 'frames of the clip the teacher sees (its features averaged over them)', default: d['teacher-frames'] },
  'teacher-normalize': { type: 'string', description: 'mean/std of the teacher\'s input', choices: NORMALIZE_PRESETS, default: d['teacher-normalize'] },
  'cache-teacher': { type: 'boolean', description: 'compute the frozen teacher\'s features once per (video, position) and reuse them every epoch', default: d['cache-teacher'] },
  model: { type: 'string', description: 'the 3D student (any video model, see stcnet models)', default: d.model },
  'width-multiplier': { type: 'number', description: 'channel width factor of the student (3D ResNet/ResNeXt)' },
  reduction: { type: 'int', description: 'STC reduction ratio r (STC students)' },
  dropout: { type: 'number', description: 'dropout option of the student (before its classifier, unused here)' },
  shortcut: { type: 'string', description: 'residual shortcut type of Hara et al.\'s ResNets', choices: ['A', 'B'] },
  init: { type: 'string', description: 'start the student from these weights (a stcnet 3D checkpoint, e.g. from stcnet inflate; Hara et al.\'s .pth)' },
  frames: { type: 'int', description: 'frames per clip', default: d.frames },
  stride: { type: 'int', description: 'temporal stride between clip frames', default: d.stride },
  size: { type: 'int', description: 'clip and frame side in pixels (centre crop)', default: d.size },
  normalize: { type: 'string', description: 'mean/std of the student\'s input', choices: NORMALIZE_PRESETS, default: d.normalize },
  positions: { type: 'int', description: 'clip positions per video (evenly spaced): an epoch pairs each once', default: d.positions },
  negatives: { type: 'number', description: 'negative pairs per positive (1: half the pairs are negatives)', default: d.negatives },
  'val-fraction': { type: 'number', description: 'share of the videos held out for pair accuracy (0: none)', default: d['val-fraction'] },
  'batch-size': { type: 'int', description: 'pairs per batch', default: d['batch-size'] },
  epochs: { type: 'int', description: 'epochs to train', default: d.epochs },
  optimizer: { type: 'string', description: 'optimizer', choices: OPTIMIZERS, default: d.optimizer },
  lr: { type: 'number', description: 'base learning rate', default: d.lr },
  momentum: { type: 'number', description: 'SGD momentum', default: d.momentum },
  nesterov: { type: 'boolean', description: 'Nesterov momentum (SGD)', default: d.nesterov },
  'weight-decay': { type: 'number', description: 'weight decay (default 1e-3 for SGD, 1e-2 for AdamW)' },
  schedule: { type: 'string', description: 'learning-rate schedule', choices: SCHEDULES, default: d.schedule },
  'step-size': { type: 'int', description: 'schedule step: epochs between lr drops', default: d['step-size'] },
  milestones: { type: 'list', description: 'schedule multistep: epochs at which the lr drops, e.g. 30,60' },
  gamma: { type: 'number', description: 'lr factor at each drop', default: d.gamma },
  'warmup-epochs': { type: 'int', description: 'linear warm-up from 0.1×lr over this many epochs', default: d['warmup-epochs'] },
  patience: { type: 'int', description: 'schedule plateau: epochs without improvement before a drop', default: d.patience },
  'min-lr': { type: 'number', description: 'lower bound of the lr (cosine, plateau)', default: d['min-lr'] },
  device: { type: 'string', description: 'where to train', choices: DEVICES, default: d.device },
  seed: { type: 'int', description: 'seed of the weights, the held-out videos and the pairs', default: d.seed },
  workers: { type: 'int', description: 'clip loading worker threads', default: d.workers },
  'checkpoint-every': { type: 'int', description: 'also save `last` every N optimizer steps (0: at epoch ends only)', default: d['checkpoint-every'] },
  quiet: { type: 'boolean', description: 'no progress bars or log lines (errors still go to stderr)', default: d.quiet },
} as const satisfies Record<string, FlagSpec>;

const NOT_CONFIG = new Set(['config', 'resume']);

export const command = defineCommand({
  name: 'transfer',
  summary: '2D→3D knowledge transfer without labels: a frozen 2D ResNet teaches a 3D student (then fine-tune with train --init)',
  usage: 'stcnet transfer ROOT --teacher WEIGHTS --out RUN_DIR [--model stc_resnet3d_18] [--cache-teacher] [flags] | stcnet transfer --config FILE | stcnet transfer --resume RUN_DIR',
  positionals: { name: 'ROOT', min: 0, max: 1 },
  examples: [
    'stcnet transfer videos/ --teacher resnet18-f37072fd.pth --out runs/transfer --cache-teacher',
    'stcnet transfer data --cache cache --teacher teacher.safetensors --out runs/t --frames 8 --size 48 --width-multiplier 0.25 --epochs 10 --step-size 5',
    'stcnet transfer UCF101 --format ucf101 --teacher resnet50.pth --model stc_resnext3d_101 --frames 32 --out runs/ucf-transfer',
    'stcnet transfer --resume runs/t                 # after Ctrl-C (exit 130) or a crash',
    'stcnet train UCF101 --out runs/ft --init runs/transfer/last.safetensors   # then fine-tune the student (same --model and --frames) with labels',
  ],
  flags: transferFlags,
  async run(args) {
    const { flags, given, positionals } = args;
    const { runTransfer, resumeTransferConfig } = await import('../transfer/transfer.js');
    let config;
    let resume = false;
    if (flags.resume !== undefined) {
      if (positionals.length > 0) throw new UserError(`stcnet transfer: --resume takes the videos from the run's config; unexpected argument "${positionals[0]}"`);
      const overrides: Record<string, unknown> = {};
      for (const key of given) if (key !== 'resume') overrides[key] = flags[key as keyof typeof flags];
      config = resumeTransferConfig(path.resolve(flags.resume), overrides);
      resume = true;
    } else {
      const fromFile = flags.config !== undefined ? resolveTransferPaths(readConfigFile(flags.config), path.dirname(path.resolve(flags.config))) : {};
      const fromFlags: Record<string, unknown> = {};
      if (positionals[0] !== undefined) fromFlags.root = positionals[0];
      for (const key of given) if (!NOT_CONFIG.has(key)) fromFlags[key] = flags[key as keyof typeof flags];
      const input = { ...fromFile, ...resolveTransferPaths(fromFlags, process.cwd()) };
      if (input.root === undefined) throw new UserError(`stcnet transfer: missing ROOT, the folder of videos (or "root:" in a --config file); usage: ${command.usage}`);
      if (input.teacher === undefined) throw new UserError('stcnet transfer: missing --teacher WEIGHTS, the 2D ResNet teacher (torchvision resnet18/34/50 weights)');
      if (input.out === undefined) throw new UserError('stcnet transfer: missing --out RUN_DIR, the run folder to create (or "out:" in a --config file)');
      config = validateTransferConfig(input, flags.config ?? 'stcnet transfer');
    }
    const quiet = config.quiet;
    await runInterruptible('transfer', (signal) => runTransfer(config, {
      resume, signal,
      onEvent: (event) => {
        if (event.type === 'log' && !quiet) process.stdout.write(event.message + '\n');
      },
    }));
  },
});
