import { existsSync, readFileSync, readdirSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { defineCommand, parseArgs, type CommandSpec, type FlagSpecs, type FlagValues } from './args.js';
import { UserError } from '../util/errors.js';
import { ensureDir } from '../util/fs.js';
import { formatDuration } from '../util/progress.js';

/**
 * The main job, end to end on generated data, through the same commands a user runs:
 * `synth` (videos whose classes differ only by motion) → `prepare` (the frame cache) → `train`
 * (an STC network from scratch, validated every epoch) → `eval` (the held-out groups, K clips per
 * video) → `predict` (a few test videos) → `explain` (Grad-CAM of one of them). Every output lands in one folder.
 */
const flagSpecs = {
  out: { type: 'string', description: 'demo folder (data, cache, run folders with checkpoints, plots and reports)', default: 'runs/demo' },
  model: { type: 'string', description: 'video model name (stcnet models lists them)', default: 'stc_resnet3d_18' },
  classes: { type: 'int', description: 'synth classes, the first N of MoveRight, MoveLeft, MoveUp, MoveDown, RotateClockwise, RotateAnticlockwise, Approach, Recede, SpeedUp, SlowDown, Oscillate, SingleSwing', default: 6, min: 2, max: 12 },
  videos: { type: 'int', description: 'videos per class', default: 60, min: 3 },
  epochs: { type: 'int', description: 'training epochs', default: 40, min: 1 },
  frames: { type: 'int', description: 'frames per clip', default: 8, min: 1 },
  size: { type: 'int', description: 'clip side in pixels', default: 48, min: 16 },
  scene: { type: 'string', description: "synth scenes: 'plain' (learnt in minutes) or 'varied' (textures and distractors; needs far more videos)", default: 'plain', choices: ['plain', 'varied'] },
  'width-multiplier': { type: 'number', description: 'channel width factor of the backbone (1 = the paper\'s widths)', default: 0.25, max: 4 },
  'batch-size': { type: 'int', description: 'clips per batch', default: 8, min: 1 },
  lr: { type: 'number', description: 'AdamW learning rate (cosine schedule)', default: 0.002 },
  'test-clips': { type: 'int', description: 'clips per test video, scores averaged per video', default: 4, min: 1 },
  seed: { type: 'int', description: 'seed for data, weights and sampling', default: 0 },
  workers: { type: 'int', description: 'loader worker threads', default: Math.max(1, os.availableParallelism() - 1), min: 0 },
  quick: { type: 'boolean', description: 'a tiny run (4 classes × 6 videos, 2 epochs, 32² clips) that checks the whole pipeline in seconds', default: false },
  quiet: { type: 'boolean', description: 'no progress bars', default: false },
} as const satisfies FlagSpecs;

export const command = defineCommand({
  name: 'demo',
  summary: 'generate motion-only videos, train a small STC network on them, evaluate, predict and explain (end to end)',
  usage: 'stcnet demo [--out runs/demo] [--model stc_resnet3d_18] [--epochs N] [--quick]',
  examples: ['stcnet demo', 'stcnet demo --quick --out /tmp/demo', 'stcnet demo --model resnet3d_18 --out runs/demo-baseline'],
  flags: flagSpecs,
  run: (args) => runDemo(args.flags),
});

type Flags = FlagValues<typeof flagSpecs>;

/** The synthetic data every demo run with the same settings shares (96×72 at 16 fps, one group per video). */
function synthArgs(flags: Flags, classes: number, videos: number, dataDir: string): string[] {
  return [dataDir, '--classes', String(classes), '--videos', String(videos), '--width', '96', '--height', '72', '--fps', '16',
    '--min-duration', '1.5', '--max-duration', '2.5', '--noise', '3', '--shake', '1', '--scene', flags.scene, '--seed', String(flags.seed),
    // A group per video: videos of a group share their look, which a small training set lets a
    // network memorise instead of learning the motion.
    '--clips-per-group', '1', '--jobs', String(os.availableParallelism()), ...(flags.quiet ? ['--quiet'] : [])];
}

const SynthMeta = z.object({ seed: z.number(), scene: z.string().optional(), videosPerClass: z.number(), classes: z.array(z.unknown()) });

/** Reuses the videos of an earlier run only when they are the ones this run asks for. */
function reusableData(dataDir: string, wanted: { classes: number; videos: number; scene: string; seed: number }): boolean {
  const metaFile = path.join(dataDir, 'synth.json');
  if (!existsSync(metaFile)) {
    if (existsSync(dataDir) && readdirSync(dataDir).length > 0) {
      throw new UserError(`stcnet demo: ${dataDir} exists but holds no synth.json (not demo data); use another --out`);
    }
    return false;
  }
  const parsed = SynthMeta.safeParse(JSON.parse(readFileSync(metaFile, 'utf8')));
  if (!parsed.success) throw new UserError(`stcnet demo: ${metaFile} is damaged (${parsed.error.issues[0]?.message}); remove ${dataDir}`);
  const meta = parsed.data;
  const found = `${meta.classes.length} classes × ${meta.videosPerClass} videos, ${meta.scene ?? 'varied'} scenes, seed ${meta.seed}`;
  const asked = `${wanted.classes} classes × ${wanted.videos} videos, ${wanted.scene} scenes, seed ${wanted.seed}`;
  if (found !== asked) throw new UserError(`stcnet demo: ${dataDir} holds ${found}, this run asks for ${asked}; use another --out or remove ${dataDir}`);
  return true;
}

/** A fresh run folder: `train`, then `train-2`, `train-3`, ... (earlier runs are kept). */
function freshRunDir(out: string): string {
  for (let index = 1; ; index++) {
    const dir = path.join(out, index === 1 ? 'train' : `train-${index}`);
    if (!existsSync(dir)) return dir;
  }
}

async function loadCommand(name: 'synth' | 'prepare' | 'train' | 'eval' | 'predict' | 'explain'): Promise<CommandSpec<FlagSpecs>> {
  return (await import(`./${name}.js`) as { command: CommandSpec<FlagSpecs> }).command;
}

/** Runs a subcommand exactly as `stcnet NAME ARGS...` would, after echoing the command line. */
async function runCommand(say: (line: string) => void, name: 'synth' | 'prepare' | 'train' | 'eval' | 'predict' | 'explain', args: string[]): Promise<void> {
  const spec = await loadCommand(name);
  say(`$ stcnet ${name} ${args.map((arg) => (/^[\w./:=,-]+$/.test(arg) ? arg : JSON.stringify(arg))).join(' ')}`);
  await spec.run(parseArgs(spec, args));
}

const percent = (value: number) => `${(100 * value).toFixed(1)}%`;

const EvalReport = z.object({
  videos: z.number(), clips: z.number(), clipTop1: z.number(), videoTop1: z.number(), videoTop5: z.number(),
  videoMeanClassAccuracy: z.number(), classes: z.array(z.string()),
});

async function runDemo(flags: Flags): Promise<void> {
  const started = Date.now();
  const say = (line: string) => process.stdout.write(line + '\n');
  const classes = flags.quick ? 4 : flags.classes;
  const videos = flags.quick ? 6 : flags.videos;
  const epochs = flags.quick ? 2 : flags.epochs;
  const size = flags.quick ? 32 : flags.size;
  if (!(flags['width-multiplier'] > 0)) throw new UserError(`stcnet demo: --width-multiplier must be positive, got ${flags['width-multiplier']}`);
  if (!(flags.lr > 0)) throw new UserError(`stcnet demo: --lr must be positive, got ${flags.lr}`);
  const dataDir = path.join(flags.out, 'data');
  const cacheDir = path.join(flags.out, 'cache');
  const runDir = freshRunDir(flags.out);
  const trainArgs = [dataDir, '--cache', cacheDir, '--out', runDir, '--model', flags.model, '--width-multiplier', String(flags['width-multiplier']),
    '--frames', String(flags.frames), '--size', String(size), '--no-flip',
    // Full-height crops only (at a random corner or the centre): smaller ones can lose the small
    // moving object, and the network underfits at this budget (docs/demo-tuning.md: 90-94% against 82-87%).
    '--crop-scales', '1', '--optimizer', 'adamw', '--lr', String(flags.lr), '--schedule', 'cosine',
    '--epochs', String(epochs), '--batch-size', String(flags['batch-size']), '--split', 'train1',
    // No validation split: the only held-out videos are the test groups, and choosing a checkpoint on
    // them would flatter the result (split 1 has no separate validation set).
    '--val-split', 'none',
    '--seed', String(flags.seed), '--workers', String(flags.workers), ...(flags.quiet ? ['--quiet'] : [])];

  // Every option is checked before any work: the train command's own validation, and the model
  // built once (no weights drawn) with the run's classes and clip length.
  const trainSpec = await loadCommand('train');
  const parsedTrain = parseArgs(trainSpec, trainArgs);
  const { validateConfig } = await import('../train/config.js');
  const { createModel, modelEntry } = await import('../models/index.js');
  validateConfig({ root: dataDir, cache: cacheDir, out: runDir, ...Object.fromEntries([...parsedTrain.given].map((key) => [key, parsedTrain.flags[key]])) }, 'stcnet demo');
  if (modelEntry(flags.model).dims !== 3) throw new UserError(`stcnet demo: --model ${flags.model} is a 2D image model; the demo trains video models (see stcnet models)`);
  createModel(flags.model, { numClasses: classes, frames: flags.frames, widthMultiplier: flags['width-multiplier'], init: false }).dispose();
  ensureDir(flags.out);
  const reuse = reusableData(dataDir, { classes, videos, scene: flags.scene, seed: flags.seed });

  say('== engine');
  const { selfCheck } = await import('./selfcheck.js');
  await selfCheck();

  say(`\n== data: ${classes} motion-only classes × ${videos} videos (${flags.scene} scenes) → ${dataDir}`);
  if (reuse) say('synth: reusing the videos already generated there');
  else await runCommand(say, 'synth', synthArgs(flags, classes, videos, dataDir));
  // The demo's own cache: rebuilt when an earlier demo made it with other settings (or an older layout).
  // Two ffmpeg runs per core: on videos this small, starting ffmpeg is most of the work, and
  // overlapping the starts halves prepare's time (measured: 360 videos in 76 s with 2 jobs, 42 s with 4).
  await runCommand(say, 'prepare', [dataDir, '--out', cacheDir, '--short-side', String(Math.max(size, 48)), '--overwrite',
    '--jobs', String(2 * os.availableParallelism()), ...(flags.quiet ? ['--quiet'] : [])]);

  say(`\n== train: ${flags.model} (width ×${flags['width-multiplier']}) from scratch on split 1, ${flags.frames}×${size}² clips, ${epochs} epochs, ` +
    'AdamW + cosine (no flip: it would turn MoveRight into MoveLeft)');
  await runCommand(say, 'train', trainArgs);
  const interrupted = process.exitCode === 130;
  if (interrupted) say('demo: training was interrupted; evaluating the last checkpoint');

  say(`\n== evaluate: the held-out groups of split 1, ${flags['test-clips']} clips per video, scores averaged per video`);
  const checkpoint = path.join(runDir, 'last.safetensors');
  const evalDir = path.join(runDir, 'eval-test1');
  await runCommand(say, 'eval', [checkpoint, '--out', evalDir, '--clips', String(flags['test-clips']), '--workers', String(Math.max(1, flags.workers)), ...(flags.quiet ? ['--quiet'] : [])]);
  const report = EvalReport.parse(JSON.parse(readFileSync(path.join(evalDir, 'report.json'), 'utf8')));

  say('\n== predict: three test videos, as a user labels new videos');
  const { loadDataset } = await import('../data/formats/index.js');
  const dataset = await loadDataset(dataDir, 'ucf101');
  const test = dataset.splits.test1 ?? [];
  const picks = [0, Math.floor(test.length / 2), test.length - 1].map((index) => test[index]!.path);
  await runCommand(say, 'predict', [checkpoint, ...new Set(picks), '--top', '3', '--clips', String(flags['test-clips']), '--quiet']);

  // Stage 2: an 8-frame model has one frame left at the last stage, two here, so the map shows time too.
  say('\n== explain: where in the first of them the network sees its class (Grad-CAM)');
  const explainDir = path.join(runDir, 'explain');
  await runCommand(say, 'explain', [checkpoint, picks[0]!, '--out', explainDir, '--stage', '2', '--top', '3', '--quiet']);

  const seconds = (Date.now() - started) / 1000;
  say(`\n== result: video top-1 ${percent(report.videoTop1)} on ${report.videos} held-out videos of ${report.classes.length} classes ` +
    `(chance ${percent(1 / report.classes.length)}), clip top-1 ${percent(report.clipTop1)}, mean class accuracy ${percent(report.videoMeanClassAccuracy)}; ` +
    `the whole demo took ${formatDuration(seconds)}${interrupted ? ' (training interrupted)' : ''}`);
  say(`run folder:  ${runDir} (config, metrics.jsonl, last/best checkpoints, summary.json)`);
  say(`plots:       ${path.join(runDir, 'plots')} (loss, accuracy, learning rate; PNG and SVG)`);
  say(`evaluation:  ${evalDir} (report.json, per_class.csv, confusion.csv and confusion.png)`);
  say(`explanation: ${explainDir} (NAME.cam.jpg, NAME.cam.mp4, NAME.explain.json)`);
  say(`next:        stcnet predict ${checkpoint} YOUR_VIDEO.mp4`);
  if (interrupted) process.exitCode = 130;
}
