import path from 'node:path';
import { defineCommand, type FlagSpec } from './args.js';
import { runInterruptible } from './interruptible.js';
import { datasetFlags } from './data.js';
import { UserError } from '../util/errors.js';
import { AMP_MODES, CONVOLUTIONS, DEVICES, NORMALIZE_PRESETS, OPTIMIZERS, SCHEDULES, TRAIN_DEFAULTS, readConfigFile, resolvePaths, validateConfig } from '../train/config.js';

/**
 * `stcnet train ROOT --out RUN_DIR`: trains a model on a dataset (frame cache or video files),
 * validating every epoch, into a run folder that `--resume` continues and `stcnet eval` reads.
 * Every flag is also a config-file key (`--config FILE`, YAML or JSON); flags override the file.
 */

const d = TRAIN_DEFAULTS;
const trainFlags = {
  config: { type: 'string', description: 'YAML or JSON file whose keys are these flag names (flags given here override it)' },
  resume: { type: 'string', description: 'continue the run in RUN_DIR from its last checkpoint (same config, schedule and data order)' },
  out: { type: 'string', description: 'run folder to create (must be new or empty): config, metrics.jsonl, checkpoints, plots, summary' },
  ...datasetFlags,
  cache: { type: 'string', description: 'frame cache made by `stcnet prepare` (else frames are decoded from the videos)' },
  'short-side': { type: 'int', description: 'short side videos are decoded at when there is no cache', default: d['short-side'] },
  split: { type: 'string', description: 'training split (ucf101/hmdb51: train1..3; kinetics: train; folder: train or all)', default: d.split },
  'val-split': { type: 'string', description: 'held-out split validated every epoch (clip accuracy; chooses `best`), or "none"', default: d['val-split'] },
  'val-clips': { type: 'int', description: 'evenly spaced clips per validation video', default: d['val-clips'] },
  model: { type: 'string', description: 'model name (see stcnet models)', default: d.model },
  'width-multiplier': { type: 'number', description: 'channel width factor of the 3D ResNet/ResNeXt backbones' },
  reduction: { type: 'int', description: 'STC reduction ratio r (STC models)' },
  dropout: { type: 'number', description: 'dropout before the classifier' },
  shortcut: { type: 'string', description: 'residual shortcut type of Hara et al.\'s ResNets', choices: ['A', 'B'] },
  init: { type: 'string', description: 'initial weights: an stcnet .safetensors, Hara et al.\'s .pth or torchvision weights (classifier replaced when the class count differs)' },
  freeze: { type: 'list', description: 'modules to freeze, e.g. conv1,layer1 (their BatchNorm statistics too)' },
  'fc-lr': { type: 'number', description: 'learning rate of the classifier (default: --lr)' },
  frames: { type: 'int', description: 'frames per clip', default: d.frames },
  stride: { type: 'int', description: 'temporal stride between clip frames', default: d.stride },
  size: { type: 'int', description: 'clip side in pixels', default: d.size },
  'crop-scales': { type: 'list', description: 'multi-scale corner-crop scales of the short side, e.g. 1,0.84,0.71 (default: Hara et al.\'s 1,2^-¼,2^-½,2^-¾,½)' },
  flip: { type: 'boolean', description: 'random horizontal flips (--no-flip for classes a flip would swap, e.g. synth motions)', default: d.flip },
  normalize: { type: 'string', description: 'mean/std of the input', choices: NORMALIZE_PRESETS, default: d.normalize },
  'batch-size': { type: 'int', description: 'clips per batch', default: d['batch-size'] },
  accumulate: { type: 'int', description: 'batches whose gradients are summed per optimizer step', default: d.accumulate },
  epochs: { type: 'int', description: 'epochs to train', default: d.epochs },
  optimizer: { type: 'string', description: 'optimizer', choices: OPTIMIZERS, default: d.optimizer },
  lr: { type: 'number', description: 'base learning rate', default: d.lr },
  momentum: { type: 'number', description: 'SGD momentum', default: d.momentum },
  nesterov: { type: 'boolean', description: 'Nesterov momentum (SGD)', default: d.nesterov },
  'weight-decay': { type: 'number', description: 'weight decay (default: 1e-3 for SGD as Hara et al., 1e-2 for AdamW)' },
  schedule: { type: 'string', description: 'learning-rate schedule', choices: SCHEDULES, default: d.schedule },
  'warmup-epochs': { type: 'int', description: 'linear warm-up from 0.1×lr over this many epochs', default: d['warmup-epochs'] },
  'step-size': { type: 'int', description: 'schedule step: epochs between lr drops' },
  milestones: { type: 'list', description: 'schedule multistep: epochs at which the lr drops, e.g. 30,60' },
  gamma: { type: 'number', description: 'lr factor at each drop (step, multistep, plateau)', default: d.gamma },
  patience: { type: 'int', description: 'schedule plateau: epochs without improvement before a drop', default: d.patience },
  'min-lr': { type: 'number', description: 'lower bound of the lr (cosine, plateau)', default: d['min-lr'] },
  'label-smoothing': { type: 'number', description: 'label smoothing of the cross-entropy', default: d['label-smoothing'] },
  'clip-grad-norm': { type: 'number', description: 'rescale the gradients to this joint L2 norm at most before each optimizer step (as torch.nn.utils.clip_grad_norm_; MMAction2\'s recipes use 40); the norm before clipping goes to metrics.jsonl' },
  amp: { type: 'string', description: 'autocast: bf16 (CPU or CUDA) or fp16 (CUDA)', choices: AMP_MODES, default: d.amp },
  convolutions: { type: 'string', description: 'auto: stcnet\'s training convolutions where faster (CPU: Winograd 3×3×3, grouped, stem, one-frame); direct: libtorch\'s only, as PyTorch computes them', choices: CONVOLUTIONS, default: d.convolutions },
  device: { type: 'string', description: 'where to train', choices: DEVICES, default: d.device },
  seed: { type: 'int', description: 'seed of the weights, the data order and augmentation', default: d.seed },
  workers: { type: 'int', description: 'loader worker threads', default: d.workers },
  'checkpoint-every': { type: 'int', description: 'also save `last` every N optimizer steps (0: at epoch ends only)', default: d['checkpoint-every'] },
  quiet: { type: 'boolean', description: 'no progress bars or log lines (errors still go to stderr)', default: d.quiet },
  'nproc-per-node': { type: 'int', description: 'data-parallel: start this many worker processes on this machine (batch-size is per process; see docs/distributed.md)' },
  nnodes: { type: 'int', description: 'data-parallel: machines in the job (each runs this command with its --node-rank)', default: 1 },
  'node-rank': { type: 'int', description: 'data-parallel: this machine\'s index among --nnodes (0 hosts the rendezvous)', default: 0 },
  master: { type: 'string', description: 'data-parallel: ADDR:PORT of node 0\'s rendezvous (default 127.0.0.1:29500 on one machine)' },
  'sync-bn': { type: 'boolean', description: 'data-parallel: BatchNorm statistics over every process\'s batch (synchronised BatchNorm)', default: d['sync-bn'] },
  'grad-sync': { type: 'string', description: 'data-parallel: average gradients in buckets during backward (overlap, c10d Reducer) or by one all-reduce after it', choices: ['overlap', 'after-backward'], default: d['grad-sync'] },
} as const satisfies Record<string, FlagSpec>;

/** Flags of the launcher (`--nproc-per-node N`), not of the training itself. */
const LAUNCH_FLAGS = ['nproc-per-node', 'nnodes', 'node-rank', 'master'] as const;

/** Flags that are not config keys. */
const NOT_CONFIG = new Set(['config', 'resume', ...LAUNCH_FLAGS]);

export const command = defineCommand({
  name: 'train',
  summary: 'train a model on a video dataset into a run folder (checkpoints, metrics, plots; --resume, --init to fine-tune)',
  usage: 'stcnet train ROOT --out RUN_DIR [--cache CACHE] [--format ucf101] [--model stc_resnet3d_18] [--epochs 10] [flags] | stcnet train --config FILE | stcnet train --resume RUN_DIR',
  positionals: { name: 'ROOT', min: 0, max: 1 },
  examples: [
    'stcnet synth data --classes 4 --videos 12 --scene plain && stcnet prepare data --out cache',
    'stcnet train data --cache cache --out runs/a --frames 8 --size 48 --width-multiplier 0.25 --optimizer adamw --lr 0.002 --no-flip --epochs 20',
    'stcnet train UCF101 --cache ucf-cache --out runs/ucf-ft --init resnet-18-kinetics.pth --model resnet3d_18 --shortcut A --freeze conv1,layer1 --fc-lr 0.01 --lr 0.001',
    'stcnet train --config runs/recipe.yaml --epochs 30      # flags override the file',
    'stcnet train --resume runs/a                            # after Ctrl-C (exit 130) or a crash',
    'stcnet train data --cache cache --out runs/ddp --nproc-per-node 2 --batch-size 4   # 2 processes, global batch 8',
    'torchrun --nproc-per-node 2 $(which stcnet) train data --out runs/ddp   # or any launcher that sets MASTER_ADDR, RANK, ...',
  ],
  flags: trainFlags,
  async run(args) {
    const { flags, given, positionals } = args;
    const { runTraining, resumeConfig } = await import('../train/trainer.js');
    let config;
    let resume = false;
    if (flags.resume !== undefined) {
      if (positionals.length > 0) throw new UserError(`stcnet train: --resume takes the dataset from the run's config; unexpected argument "${positionals[0]}"`);
      const overrides: Record<string, unknown> = {};
      for (const key of given) if (key !== 'resume' && !(LAUNCH_FLAGS as readonly string[]).includes(key)) overrides[key] = flags[key as keyof typeof flags];
      config = resumeConfig(path.resolve(flags.resume), overrides);
      resume = true;
    } else {
      // Paths in a config file are relative to the file; on the command line, to the working directory.
      const fromFile = flags.config !== undefined ? resolvePaths(readConfigFile(flags.config), path.dirname(path.resolve(flags.config))) : {};
      const fromFlags: Record<string, unknown> = {};
      if (positionals[0] !== undefined) fromFlags.root = positionals[0];
      for (const key of given) if (!NOT_CONFIG.has(key)) fromFlags[key] = flags[key as keyof typeof flags];
      const input = { ...fromFile, ...resolvePaths(fromFlags, process.cwd()) };
      if (input.root === undefined) throw new UserError(`stcnet train: missing ROOT, the dataset (or "root:" in a --config file); usage: ${command.usage}`);
      if (input.out === undefined) throw new UserError('stcnet train: missing --out RUN_DIR, the run folder to create (or "out:" in a --config file)');
      config = validateConfig(input, flags.config ?? 'stcnet train');
    }
    const launching = flags['nproc-per-node'] !== undefined;
    const { jobFromEnv } = await import('../distributed/env.js');
    const job = jobFromEnv();
    const launchedWorker = job !== null && process.env.STCNET_LAUNCHER_PID !== undefined;
    if (!launching && !launchedWorker) {
      const stray = LAUNCH_FLAGS.filter((flag) => given.has(flag));
      if (stray.length > 0) throw new UserError(`--${stray[0]}: only with --nproc-per-node N (the processes to start on this machine)`);
    }
    if (launching && !launchedWorker) {
      if (job) throw new UserError(`--nproc-per-node: this process already belongs to a job (WORLD_SIZE=${job.worldSize} is set, as torchrun sets it); run plain \`stcnet train\` there, or unset the variables`);
      const { launchWorkers } = await import('../distributed/launch.js');
      // Each worker is this very command; it sees torchrun's variables and joins the job.
      process.exitCode = await launchWorkers({
        nprocPerNode: flags['nproc-per-node']!, nnodes: flags.nnodes, nodeRank: flags['node-rank'], master: flags.master,
        argv: [process.execPath, ...process.execArgv, process.argv[1]!, ...process.argv.slice(2)],
      }, (line) => process.stderr.write(line + '\n'));
      return;
    }
    let dataParallel: import('../distributed/data_parallel.js').DataParallel | undefined;
    if (job) {
      const { DataParallel } = await import('../distributed/data_parallel.js');
      const { exitWithLauncher } = await import('../distributed/launch.js');
      if (launchedWorker) exitWithLauncher();
      dataParallel = await DataParallel.join(job, { gradients: config['grad-sync'], syncBn: config['sync-bn'], backend: config.device === 'cuda' ? 'nccl' : 'gloo' });
    }
    // Rank 0 speaks for the job; the others print errors only.
    const speaks = !dataParallel || dataParallel.isWriter;
    const quiet = config.quiet || !speaks;
    try {
      const joined = dataParallel;
      await runInterruptible('train', (signal) => runTraining(config, {
        resume, signal, progress: !quiet, ...(joined ? { dataParallel: joined } : {}),
        onEvent: (event) => {
          if (event.type === 'log' && !quiet) process.stdout.write(event.message + '\n');
        },
      }), { announce: speaks });
    } finally {
      dataParallel?.close();
    }
  },
});
