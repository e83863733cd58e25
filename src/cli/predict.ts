import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { defineCommand, type FlagValues } from './args.js';
import { UserError } from '../util/errors.js';
import { checkFolderCreatable, ensureDir, fsUserError } from '../util/fs.js';
import { csvLine } from '../train/csv.js';
import { Progress } from '../util/progress.js';
import { isVideoFile } from '../data/dataset.js';

/**
 * `stcnet predict CHECKPOINT VIDEO...|DIR`: top-k classes per video, or per window over time with
 * --timeline. Clips are made exactly as the test-mode loader makes them (K uniform clips, centre
 * crop at the checkpoint's size, its mean/std). A video that cannot be decoded is reported and the
 * others go on; the exit status is 0 when any video succeeded, 1 when none did.
 */
/** How predict and explain find a model, its classes and its decoding in a checkpoint (a PyTorch one too). */
export const checkpointFlags = {
  labels: { type: 'string', description: 'class names: one per line, classInd.txt ("1 Name") or JSON (default: the checkpoint\'s)' },
  arch: { type: 'string', description: 'architecture of a PyTorch checkpoint (see `stcnet models`); checked against a stcnet checkpoint' },
  frames: { type: 'int', description: 'clip length an STC model of a PyTorch checkpoint is built for (default: inferred, else 16)', min: 1 },
  'short-side': { type: 'int', description: 'short side the videos are decoded at (default: the checkpoint\'s, else its run\'s frame cache\'s)', min: 8 },
} as const;

const flags = {
  top: { type: 'int', description: 'classes shown per video (or window)', default: 5, min: 1 },
  clips: { type: 'int', description: 'clips per video (or per window), evenly spaced (K)', default: 10, min: 1 },
  crops: { type: 'string', description: 'crops per clip: 1 (centre) or 3 (along the long side)', default: '1', choices: ['1', '3'] },
  ...checkpointFlags,
  'num-classes': { type: 'int', description: 'expected classifier outputs (checked)', min: 1 },
  json: { type: 'boolean', description: 'print JSON (failures included) instead of a table', default: false },
  csv: { type: 'boolean', description: 'print CSV (file,rank,class_index,class,score,error) instead of a table', default: false },
  timeline: { type: 'boolean', description: 'per-window predictions over each video, written as CSV and a chart (PNG+SVG)', default: false },
  window: { type: 'number', description: 'timeline window in seconds', default: 2, min: 0.01 },
  step: { type: 'number', description: 'timeline step between window starts in seconds', default: 1, min: 0.01 },
  out: { type: 'string', description: 'folder for the timeline files (NAME.timeline.csv/.svg/.png)', default: 'timeline' },
  workers: { type: 'int', description: 'videos (or windows) decoded in parallel', default: 2, min: 1 },
  device: { type: 'string', description: 'where the model runs (cuda needs a CUDA libtorch)', default: 'cpu', choices: ['cpu', 'cuda'] },
  dtype: { type: 'string', description: 'precision of the forward pass: bfloat16 is fast on CPUs with AVX-512 BF16 or AMX (emulated and slow elsewhere) and on GPUs', default: 'float32', choices: ['float32', 'bfloat16'] },
  quiet: { type: 'boolean', description: 'no progress (failures are still reported)', default: false },
} as const;

export const command = defineCommand({
  name: 'predict',
  summary: 'classify videos with a checkpoint: top-k classes per video, or per window over time (--timeline)',
  usage: 'stcnet predict CHECKPOINT VIDEO...|DIR [--top 5] [--clips 10] [--labels FILE] [--json|--csv] [--timeline --window 2 --step 1 --out DIR]',
  positionals: { name: 'CHECKPOINT VIDEO...|DIR', min: 2, max: Infinity },
  examples: [
    'stcnet predict runs/ucf101-stc18/best.safetensors clip1.mp4 clip2.avi',
    'stcnet predict model.safetensors videos/ --json > predictions.json',
    'stcnet predict r3d_18.pth --arch r3d_18 --labels kinetics400_label_map.txt match.mp4 --top 3',
    'stcnet predict model.safetensors long.mp4 --timeline --window 2 --step 0.5 --out timelines/',
  ],
  flags,
  run: (args) => runPredict(args.positionals[0]!, args.positionals.slice(1), args.flags, args.given),
});

type Flags = FlagValues<typeof flags>;

/** VIDEO...|DIR as a list of files: a folder gives its video files (by extension, sorted). */
/** Every video file under a folder, its subfolders included (a dataset's class folders), sorted; hidden names skipped. */
function videosUnder(dir: string): string[] {
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch (error) {
    throw fsUserError(error, dir);
  }
  return entries.filter((entry) => !entry.name.startsWith('.')).sort((a, b) => a.name.localeCompare(b.name)).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return videosUnder(full);
    return entry.isFile() && isVideoFile(entry.name) ? [full] : [];
  });
}

export function expandVideoArgs(args: string[]): string[] {
  const files: string[] = [];
  for (const arg of args) {
    if (!existsSync(arg)) throw new UserError(`stcnet predict: ${arg}: no such video file or folder`);
    let isDir: boolean;
    try {
      isDir = statSync(arg).isDirectory();
    } catch (error) {
      throw fsUserError(error, arg);
    }
    if (!isDir) {
      files.push(arg);
      continue;
    }
    const videos = videosUnder(arg);
    if (videos.length === 0) throw new UserError(`stcnet predict: ${arg}: a folder without video files (looked for .mp4, .avi, .mkv, .webm, .mov, …, in its subfolders too)`);
    files.push(...videos);
  }
  return files;
}

/**
 * Output paths in `outDir`, one per video: `name(file)` with characters other than letters, digits and
 * `.+-_` replaced, made unique (`-2`, `-3`, ...) when two videos give the same name, then `suffix`.
 */
export function uniqueBases(files: string[], outDir: string, name: (file: string) => string, suffix = ''): string[] {
  const used = new Set<string>();
  return files.map((file) => {
    const stem = name(file).replace(/[^\w.+-]+/g, '_');
    let unique = stem;
    for (let n = 2; used.has(unique); n++) unique = `${stem}-${n}`;
    used.add(unique);
    return path.join(outDir, unique + suffix);
  });
}

/** The timeline folder may exist (files are added to it) but must not be a file. */
function checkTimelineOut(dir: string): void {
  if (existsSync(dir) && !statSync(dir).isDirectory()) throw new UserError(`stcnet predict: --out ${dir}: is a file, expected a folder for the timeline files`);
  checkFolderCreatable(dir, '--out');
}

async function runPredict(checkpointArg: string, videoArgs: string[], f: Flags, given: Set<string>): Promise<void> {
  if (f.json && f.csv) throw new UserError('stcnet predict: --json and --csv are two output formats; give one');
  const timelineOnly = ['window', 'step', 'out'].filter((name) => given.has(name));
  if (!f.timeline && timelineOnly.length > 0) {
    throw new UserError(`stcnet predict: ${timelineOnly.map((name) => `--${name}`).join(', ')} ${timelineOnly.length > 1 ? 'apply' : 'applies'} only with --timeline`);
  }
  const crops = Number(f.crops) as 1 | 3;
  const { resolveModelSource } = await import('../train/model_source.js');
  const source = resolveModelSource(checkpointArg);
  const files = expandVideoArgs(videoArgs);
  if (f.labels !== undefined) (await import('../train/labels.js')).readLabels(f.labels);
  if (f.timeline) checkTimelineOut(f.out);
  const { loadClassifier, onDevice, classNamesOf } = await import('../train/classifier.js');
  const classifier = await loadClassifier(source, { arch: f.arch, frames: f.frames, numClasses: f['num-classes'], labels: f.labels, shortSide: f['short-side'] });
  const { model, preprocessing } = classifier;
  let runner: Awaited<ReturnType<typeof onDevice>> | undefined;
  try {
    const classes = classNamesOf(classifier);
    if (!classifier.classes && !f.quiet) process.stderr.write(`predict: ${source.checkpoint} names no classes; showing indices (--labels FILE gives names)\n`);
    if (classifier.shortSideFrom === 'guess' && !f.quiet) {
      process.stderr.write(`predict: ${source.checkpoint} does not record the short side its training frames had; decoding at ${preprocessing.shortSide} ` +
        '(--short-side sets it; a network sees its training resolution only at that side)\n');
    }
    const settings = { preprocessing, clips: f.clips, crops, workers: f.workers, top: f.top };
    const header = {
      checkpoint: source.checkpoint, arch: classifier.arch, clips: f.clips, crops, dtype: f.dtype,
      preprocessing, shortSideFrom: classifier.shortSideFrom,
    };
    runner = await onDevice(model, f.device, f.dtype as 'float32' | 'bfloat16');
    const succeeded = f.timeline
      ? await runTimelines(runner, files, classes, { ...settings, window: f.window, step: f.step }, f, header)
      : await runVideos(runner, files, classes, settings, f, header);
    process.exitCode = succeeded > 0 ? 0 : 1;
  } finally {
    if (runner !== model) runner?.dispose();  // the prepared copy of the weights
    model.dispose();
  }
}

type Model = Awaited<ReturnType<typeof import('../train/classifier.js').onDevice>>;
type Settings = import('../train/predict.js').PredictSettings & { top: number };

async function runVideos(model: Model, files: string[], classes: string[], settings: Settings, f: Flags, header: Record<string, unknown>): Promise<number> {
  const { predictVideos } = await import('../train/predict.js');
  const { predictionsTable, predictionsCsv, predictionsJson } = await import('../train/predict_report.js');
  const progress = new Progress({ total: files.length, label: 'predict', unit: 'videos', quiet: f.quiet });
  const results = await predictVideos(model, files, classes, settings, (result) => {
    if (!result.ok) process.stderr.write(`predict: ${result.file}: ${result.error}\n`);
    progress.tick(1);
  });
  progress.finish();
  const out = f.json ? JSON.stringify(predictionsJson(results, header), null, 2) : f.csv ? predictionsCsv(results).trimEnd() : predictionsTable(results, settings.crops);
  process.stdout.write(out + '\n');
  const failed = results.filter((r) => !r.ok).length;
  if (failed > 0 && !f.json && !f.csv) process.stderr.write(`predict: ${failed} of ${results.length} videos could not be decoded\n`);
  return results.length - failed;
}

async function runTimelines(model: Model, files: string[], classes: string[], settings: Settings & { window: number; step: number }, f: Flags,
  header: Record<string, unknown>): Promise<number> {
  const { predictTimeline, failureReason } = await import('../train/predict.js');
  const { writeTimeline } = await import('../train/predict_report.js');
  const bases = uniqueBases(files, f.out, (file) => path.basename(file), '.timeline');
  const json: Record<string, unknown>[] = [];
  const csvRows: string[] = [];
  const text: string[] = [];
  let succeeded = 0;
  for (const [i, file] of files.entries()) {
    let progress: Progress | undefined;
    try {
      const timeline = await predictTimeline(model, file, classes, settings, (done, total) => {
        progress ??= new Progress({ total, label: `timeline ${path.basename(file)}`, unit: 'windows', quiet: f.quiet });
        progress.update(done);
      });
      progress?.finish();
      const ok = timeline.windows.filter((w) => w.ok);
      if (ok.length === 0) throw new Error(timeline.windows[0]?.error ?? 'no window could be decoded');
      ensureDir(f.out);
      const written = await writeTimeline(timeline, classes, bases[i]!);
      succeeded++;
      const windows = timeline.windows.map((w) => (w.ok ? { start: w.start, end: w.end, top: w.top } : { start: w.start, end: w.end, error: w.error }));
      json.push({ file, ok: true, duration: timeline.duration, window: timeline.window, step: timeline.step, windows, files: written });
      for (const w of timeline.windows) {
        csvRows.push(csvLine([file, w.start, w.end, w.ok ? w.top![0]!.label : '', w.ok ? w.top![0]!.score : '', w.ok ? '' : w.error!]));
      }
      text.push(`${file} (${timeline.duration.toFixed(2)} s, ${timeline.windows.length} window${timeline.windows.length === 1 ? '' : 's'} of ${timeline.window} s every ${timeline.step} s)`);
      const spans = timeline.windows.map((w) => `${w.start.toFixed(2)}–${w.end.toFixed(2)} s`);
      const spanWidth = Math.max(...spans.map((span) => span.length));
      for (const [j, w] of timeline.windows.entries()) {
        const span = spans[j]!.padEnd(spanWidth);
        text.push(w.ok ? `  ${span}  ${w.top!.slice(0, 3).map((t) => `${t.label} ${(100 * t.score).toFixed(1)}%`).join(', ')}` : `  ${span}  failed: ${w.error}`);
      }
      text.push(`  wrote ${written.join(', ')}`);
      const failedWindows = timeline.windows.length - ok.length;
      if (failedWindows > 0) process.stderr.write(`predict: ${file}: ${failedWindows} of ${timeline.windows.length} windows could not be decoded\n`);
    } catch (error) {
      progress?.finish();
      if (error instanceof UserError) throw error;
      const reason = failureReason(error instanceof Error ? ((error as { reason?: string }).reason ?? error.message) : String(error));
      process.stderr.write(`predict: ${file}: ${reason}\n`);
      json.push({ file, ok: false, error: reason });
      csvRows.push(csvLine([file, '', '', '', '', reason]));
      text.push(`${file}: failed: ${reason}`);
    }
  }
  const out = f.json ? JSON.stringify({ ...header, window: settings.window, step: settings.step, videos: json, failed: files.length - succeeded }, null, 2)
    : f.csv ? (csvLine(['file', 'start', 'end', 'top1', 'top1_score', 'error']) + csvRows.join('')).trimEnd() : text.join('\n');
  process.stdout.write(out + '\n');
  return succeeded;
}
