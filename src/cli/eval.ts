import os from 'node:os';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { defineCommand, type FlagValues } from './args.js';
import { UserError } from '../util/errors.js';
import { Progress } from '../util/progress.js';
import { DATASET_FORMATS, sampleKey } from '../data/dataset.js';

/**
 * `stcnet eval RUN_DIR|CHECKPOINT`: the test protocol on a labelled split (K clips per video, ×1
 * or 3 crops, scores averaged per video), written as a report folder. Dataset settings come from
 * the run's config.json; flags override them.
 */
const flags = {
  data: { type: 'string', description: 'dataset root (default: the run\'s config.json "root")' },
  format: { type: 'string', description: 'dataset format (default: the run\'s, else ucf101)', choices: DATASET_FORMATS },
  split: { type: 'string', description: 'split to evaluate (default: the run\'s val-split, else test1/test/val/all, the first the dataset has)' },
  cache: { type: 'string', description: 'frame cache of `stcnet prepare` (default: the run\'s); "none" decodes the videos' },
  annotations: { type: 'string', description: 'folder (or Kinetics CSV) with the split files, when not under the root' },
  videos: { type: 'string', description: 'folder with the videos, when not the root' },
  'class-list': { type: 'string', description: 'file with one class name per line, fixing the dataset\'s class order' },
  clips: { type: 'int', description: 'clips per video, evenly spaced (K)', default: 10, min: 1 },
  crops: { type: 'string', description: 'crops per clip: 1 (centre) or 3 (along the long side)', default: '1', choices: ['1', '3'] },
  arch: { type: 'string', description: 'architecture of a PyTorch checkpoint (see `stcnet models`); checked against a stcnet checkpoint' },
  frames: { type: 'int', description: 'clip length an STC model of a PyTorch checkpoint is built for (default: inferred, else 16)', min: 1 },
  'num-classes': { type: 'int', description: 'expected classifier outputs (checked)', min: 1 },
  labels: { type: 'string', description: 'class names, one per line (or classInd.txt / JSON); must match the dataset\'s classes' },
  'short-side': { type: 'int', description: 'short side the videos are decoded at without a cache (default: the checkpoint\'s, else its run\'s cache\'s)', min: 8 },
  'batch-size': { type: 'int', description: 'clips per forward pass', default: 10, min: 1 },
  workers: { type: 'int', description: 'loader worker threads', default: Math.max(1, os.availableParallelism() - 1), min: 0 },
  out: { type: 'string', description: 'report folder (default: RUN_DIR/eval-SPLIT, or ./eval-SPLIT for a bare checkpoint); an earlier report there is replaced' },
  device: { type: 'string', description: 'where the model runs (cuda needs a CUDA libtorch)', default: 'cpu', choices: ['cpu', 'cuda'] },
  dtype: { type: 'string', description: 'precision of the forward pass: bfloat16 is fast on CPUs with AVX-512 BF16 or AMX (emulated and slow elsewhere) and on GPUs', default: 'float32', choices: ['float32', 'bfloat16'] },
  quiet: { type: 'boolean', description: 'no progress, only the summary', default: false },
} as const;

export const command = defineCommand({
  name: 'eval',
  summary: 'evaluate a run or checkpoint on a labelled split: clip/video top-1/top-5, mean class accuracy, confusion matrix, per-class CSV',
  usage: 'stcnet eval RUN_DIR|CHECKPOINT [--data ROOT --format F --split S --cache DIR] [--clips 10] [--crops 1|3] [--out DIR]',
  positionals: { name: 'RUN_DIR|CHECKPOINT' },
  examples: [
    'stcnet eval runs/ucf101-stc18                     # best checkpoint, the run\'s dataset and validation split',
    'stcnet eval runs/ucf101-stc18 --split test2 --clips 10 --crops 3',
    'stcnet eval runs/ucf101-stc18/last.safetensors --out reports/last',
    'stcnet eval resnext-101-kinetics-ucf101_split1.pth --arch resnext3d_101 --frames 16 --labels ucfTrainTestlist/classInd.txt \\\n' +
      '      --data data/UCF101 --format ucf101 --split test1 --cache cache/ucf101',
  ],
  flags,
  run: (args) => runEval(args.positionals[0]!, args.flags),
});

type Flags = FlagValues<typeof flags>;

interface DataSettings {
  root: string;
  format: (typeof DATASET_FORMATS)[number];
  split?: string;
  cache?: string;
  annotations?: string;
  videos?: string;
  classList?: string;
}

/** Flags over the run's config.json over defaults. */
function dataSettings(f: Flags, runConfig: Record<string, unknown> | undefined, runDir: string | undefined): DataSettings {
  const fromRun = (key: string): string | undefined => {
    const value = runConfig?.[key];
    return typeof value === 'string' && value !== '' ? value : undefined;
  };
  const root = f.data ?? fromRun('root');
  if (root === undefined) {
    throw new UserError(`stcnet eval: --data ROOT is required${runDir ? ` (${runDir}/config.json names no dataset root)` : ' for a checkpoint outside a run folder'}`);
  }
  const format = f.format ?? fromRun('format') ?? 'ucf101';
  if (!(DATASET_FORMATS as readonly string[]).includes(format)) {
    throw new UserError(`${runDir}/config.json: format "${format}" is not one of ${DATASET_FORMATS.join(', ')}`);
  }
  const valSplit = fromRun('val-split');
  const cache = f.cache ?? fromRun('cache');
  const settings: DataSettings = {
    root, format: format as DataSettings['format'],
    split: f.split ?? (valSplit !== 'none' ? valSplit : undefined),
    cache: cache === 'none' ? undefined : cache,
    annotations: f.annotations ?? (f.data === undefined ? fromRun('annotations') : undefined),
    videos: f.videos ?? (f.data === undefined ? fromRun('videos') : undefined),
    classList: f['class-list'] ?? (f.data === undefined ? fromRun('class-list') : undefined),
  };
  const origin = (flag: string, value: string | undefined) => (value !== undefined && f[flag as keyof Flags] === undefined && runDir ? ` (from ${runDir}/config.json; override with --${flag})` : '');
  if (!existsSync(settings.root)) throw new UserError(`stcnet eval: dataset root ${settings.root} does not exist${origin('data', root)}`);
  if (settings.cache !== undefined && !existsSync(settings.cache)) {
    throw new UserError(`stcnet eval: frame cache ${settings.cache} does not exist${origin('cache', settings.cache)}; --cache none decodes the videos instead`);
  }
  return settings;
}

/** How the decode short side was chosen, for the log line. */
export const SHORT_SIDE_FROM = {
  flag: '--short-side', checkpoint: 'the checkpoint\'s', run: 'the run\'s frame cache', defaults: 'the family\'s published test transform',
  guess: 'a guess: the checkpoint does not record it; --short-side sets it',
} as const;

const PREFERRED_SPLITS = ['test1', 'test', 'val', 'all'];

async function runEval(target: string, f: Flags): Promise<void> {
  const crops = Number(f.crops) as 1 | 3;
  const say = (line: string) => process.stdout.write(line + '\n');
  const { resolveModelSource } = await import('../train/model_source.js');
  const { loadDataset } = await import('../data/formats/index.js');
  const { checkEvalOut, writeEvalReport, formatEvalSummary } = await import('../train/report.js');
  const { readLabels } = await import('../train/labels.js');

  // Everything is checked before the first clip is scored: the checkpoint, the dataset and its
  // split, the labels, the output folder.
  const source = resolveModelSource(target);
  const data = dataSettings(f, source.runConfig, source.runDir);
  if (f.out !== undefined) checkEvalOut(f.out);
  if (f.labels !== undefined) readLabels(f.labels);
  const dataset = await loadDataset(data.root, data.format, { annotations: data.annotations, videos: data.videos, classList: data.classList });
  const split = data.split ?? PREFERRED_SPLITS.find((s) => dataset.splits[s]) ?? Object.keys(dataset.splits)[0];
  const samples = split !== undefined ? dataset.splits[split] : undefined;
  if (split === undefined || !samples) {
    throw new UserError(`stcnet eval: the dataset at ${data.root} has no split "${split ?? ''}"; its splits: ${Object.keys(dataset.splits).join(', ') || '(none)'}`);
  }
  if (samples.length === 0) throw new UserError(`stcnet eval: split "${split}" of ${data.root} has no videos`);
  const unlabeled = samples.filter((s) => s.label < 0).length;
  if (unlabeled > 0) throw new UserError(`stcnet eval: split "${split}" has ${unlabeled} videos without a label; evaluation needs labels (use stcnet predict for unlabeled videos)`);
  const outDir = f.out ?? (source.runDir ? path.join(source.runDir, `eval-${split}`) : `eval-${split}`);
  checkEvalOut(outDir);
  if (data.cache !== undefined) {
    // A folder that is not a frame cache (or an old layout) fails here, before the model loads.
    const { FrameCache } = await import('../video/cache.js');
    const cache = await FrameCache.open(data.cache);
    const cached = samples.filter((sample) => cache.entry(sampleKey(sample))).length;
    if (cached === 0) {
      throw new UserError(`stcnet eval: none of the ${samples.length} videos of split "${split}" is in the frame cache ${data.cache}; ` +
        `prepare them (stcnet prepare ${data.root} --out ${data.cache}) or pass --cache none to decode the videos`);
    }
  }

  const { loadClassifier, onDevice } = await import('../train/classifier.js');
  const classifier = await loadClassifier(source, { arch: f.arch, frames: f.frames, numClasses: f['num-classes'], labels: f.labels, shortSide: f['short-side'] });
  const { model, preprocessing } = classifier;
  let runner: Awaited<ReturnType<typeof onDevice>> | undefined;
  try {
    if (model.numClasses !== dataset.classes.length) {
      throw new UserError(`stcnet eval: the model has ${model.numClasses} outputs but the dataset at ${data.root} has ${dataset.classes.length} classes`);
    }
    if (classifier.classes) {
      const differ = classifier.classes.findIndex((name, i) => name !== dataset.classes[i]);
      if (differ >= 0) {
        const from = classifier.classesFrom === 'labels' ? `--labels ${f.labels}` : `the checkpoint's class names`;
        throw new UserError(`stcnet eval: ${from} and the dataset's classes differ at class ${differ}: "${classifier.classes[differ]}" vs "${dataset.classes[differ]}" ` +
          '(the model\'s outputs would be scored against the wrong labels; --class-list fixes the dataset\'s order)');
      }
    }
    runner = await onDevice(model, f.device, f.dtype as 'float32' | 'bfloat16');
    const clips = `${f.clips} clip${f.clips === 1 ? '' : 's'}`;
    const views = crops > 1 ? `${clips} × ${crops} crops` : clips;
    if (!f.quiet) {
      process.stderr.write(`eval: ${classifier.arch} from ${source.checkpoint} on ${data.format} ${data.root} split ${split}: ${samples.length} videos, ${views} per video, ` +
        `${preprocessing.frames}×${preprocessing.size}² (stride ${preprocessing.stride}; preprocessing from the ${classifier.preprocessingFrom}), ` +
        `frames from ${data.cache ? `the cache ${data.cache}` : `the videos at short side ${preprocessing.shortSide} (${SHORT_SIDE_FROM[classifier.shortSideFrom]})`}\n`);
    }
    const { evaluateSamples } = await import('../train/eval_run.js');
    const progress = new Progress({ total: samples.length * f.clips * crops, label: 'eval', unit: 'clips', quiet: f.quiet });
    const started = Date.now();
    const result = await evaluateSamples(runner, samples, {
      preprocessing, clips: f.clips, crops, batchSize: f['batch-size'], workers: f.workers, cache: data.cache,
      onBatch: (n) => progress.tick(n),
    });
    progress.finish();
    if (result.report.videos === 0) {
      throw new UserError(`stcnet eval: none of the ${samples.length} videos of split "${split}" could be read (first: ${result.failures[0]?.path}: ${result.failures[0]?.reason})`);
    }
    const missing = dataset.missing.filter((m) => m.split === split).map((m) => ({ path: m.path, reason: `listed in ${m.listedIn} line ${m.line} but not on disk` }));
    const context = {
      checkpoint: source.checkpoint, ...(source.runDir ? { runDir: source.runDir } : {}), arch: classifier.arch, classes: dataset.classes,
      dataset: { root: data.root, format: data.format, split, ...(data.cache ? { cache: data.cache } : {}) },
      preprocessing, clips: f.clips, crops, dtype: f.dtype as 'float32' | 'bfloat16', samples, failures: [...missing, ...result.failures],
      elapsedSeconds: (Date.now() - started) / 1000,
    };
    const files = await writeEvalReport(outDir, result.report, context);
    for (const failure of context.failures.slice(0, 10)) process.stderr.write(`eval: left out ${failure.path}: ${failure.reason}\n`);
    if (context.failures.length > 10) process.stderr.write(`eval: … and ${context.failures.length - 10} more (report.json "failures")\n`);
    say(formatEvalSummary(result.report, context));
    say(`wrote ${files.map((file) => path.basename(file)).join(', ')} to ${outDir}`);
  } finally {
    if (runner !== model) runner?.dispose();  // the prepared copy of the weights
    model.dispose();
  }
}
