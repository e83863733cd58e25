import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import type { VegaLiteSpec } from '../util/plot.js';
import { csvText } from './csv.js';
import type { AccuracyReport } from './metrics.js';
import { checkReplaceable, writeFolderAtomic } from './output_dir.js';

/**
 * The files of an evaluation: report.json (every figure and the settings that produced them),
 * per_class.csv, confusion.csv, confusion.svg/.png (a heat map) and videos.csv (each video's
 * prediction), written into one folder at once.
 */

/** report.json's `kind`: how a later run recognises a folder it may replace. */
export const EVAL_REPORT_KIND = 'stcnet-eval';

export interface EvalContext {
  /** The checkpoint file evaluated, and the run folder it came from (if any). */
  checkpoint: string;
  runDir?: string;
  arch: string;
  classes: string[];
  dataset: { root: string; format: string; split: string; cache?: string };
  preprocessing: { frames: number; stride: number; size: number; mean: number[]; std: number[]; shortSide?: number };
  clips: number;
  crops: number;
  /** Precision of the forward pass (`--dtype`); absent means float32. */
  dtype?: 'float32' | 'bfloat16';
  /** The evaluated samples; a video index in the report is an index into this list. */
  samples: { path: string; relPath: string }[];
  /** Videos that could not be read (left out of every figure). */
  failures: { path: string; reason: string }[];
  elapsedSeconds: number;
}

const FILES = ['report.json', 'per_class.csv', 'confusion.csv', 'confusion.svg', 'confusion.png', 'videos.csv'] as const;

export function isEvalReportFolder(dir: string): boolean {
  const file = path.join(dir, 'report.json');
  if (!existsSync(file)) return false;
  try {
    return (JSON.parse(readFileSync(file, 'utf8')) as { kind?: unknown }).kind === EVAL_REPORT_KIND;
  } catch {
    return false;
  }
}

/** Fails before any work when --out holds something that is not an earlier evaluation. */
export function checkEvalOut(outDir: string): void {
  checkReplaceable(outDir, isEvalReportFolder);
}

export function evalReportJson(report: AccuracyReport, context: EvalContext): Record<string, unknown> {
  const { classes } = context;
  return {
    kind: EVAL_REPORT_KIND,
    createdAt: new Date().toISOString(),
    checkpoint: context.checkpoint,
    ...(context.runDir !== undefined ? { runDir: context.runDir } : {}),
    arch: context.arch,
    dataset: context.dataset,
    preprocessing: context.preprocessing,
    clipsPerVideo: context.clips,
    cropsPerClip: context.crops,
    dtype: context.dtype ?? 'float32',
    videos: report.videos,
    clips: report.clips,
    clipTop1: report.clipTop1,
    clipTop5: report.clipTop5,
    clipMeanClassAccuracy: report.clipMeanClassAccuracy,
    videoTop1: report.videoTop1,
    videoTop5: report.videoTop5,
    videoMeanClassAccuracy: report.videoMeanClassAccuracy,
    classes,
    perClass: report.perClass.map((row, index) => ({ index, class: classes[index], ...row })),
    confusion: report.confusion,
    failures: context.failures,
    elapsedSeconds: context.elapsedSeconds,
  };
}

export function perClassCsv(report: AccuracyReport, classes: string[]): string {
  return csvText(
    ['index', 'class', 'videos', 'correct', 'accuracy', 'top5_correct', 'top5_accuracy', 'clips', 'clip_correct', 'clip_accuracy', 'predicted', 'precision'],
    report.perClass.map((r, i) => [i, classes[i], r.videos, r.correct, r.accuracy, r.top5Correct, r.top5Accuracy, r.clips, r.clipCorrect, r.clipAccuracy, r.predicted, r.precision]),
  );
}

/** Rows are true classes, columns predicted ones, counted over videos. */
export function confusionCsv(confusion: number[][], classes: string[]): string {
  return csvText(['true \\ predicted', ...classes], confusion.map((row, i) => [classes[i], ...row]));
}

export function videosCsv(report: AccuracyReport, context: EvalContext): string {
  const name = (c: number) => context.classes[c] ?? String(c);
  return csvText(
    ['video', 'label', 'predicted', 'score', 'correct', 'true_rank', 'top5'],
    report.videoPredictions.map((p) => [context.samples[p.video]?.relPath ?? String(p.video), name(p.label), name(p.predicted), p.score,
      p.rank === 0, p.rank + 1, p.top5.map(name).join('|')]),
  );
}

/**
 * The confusion matrix as a heat map: colour is the fraction of the true class's videos (rows sum to
 * one), the count is printed in each cell while the matrix is small enough to read.
 */
export function confusionChartSpec(confusion: number[][], classes: string[], title = 'Confusion matrix (videos)'): VegaLiteSpec {
  const n = classes.length;
  const values: { true: string; predicted: string; count: number; fraction: number }[] = [];
  confusion.forEach((row, i) => {
    const total = row.reduce((a, b) => a + b, 0);
    row.forEach((count, j) => values.push({ true: classes[i]!, predicted: classes[j]!, count, fraction: total > 0 ? count / total : 0 }));
  });
  const step = n <= 12 ? 36 : n <= 30 ? 20 : n <= 120 ? 8 : 3;
  const showLabels = n <= 120;
  const axis = (label: string) => ({ title: label, labels: showLabels, ticks: showLabels, labelLimit: 160, labelFontSize: n <= 30 ? 11 : 6 });
  const sort = [...classes];
  const layers: object[] = [{
    mark: { type: 'rect' },
    encoding: {
      color: { field: 'fraction', type: 'quantitative', title: 'fraction of row', scale: { domain: [0, 1], range: ['#ffffff', '#08519c'], interpolate: 'rgb' } },
      tooltip: [{ field: 'true' }, { field: 'predicted' }, { field: 'count', type: 'quantitative' }],
    },
  }];
  if (n <= 30) {
    layers.push({
      mark: { type: 'text', fontSize: n <= 12 ? 12 : 8 },
      transform: [{ filter: 'datum.count > 0' }],
      encoding: {
        text: { field: 'count', type: 'quantitative' },
        color: { condition: { test: 'datum.fraction > 0.5', value: 'white' }, value: 'black' },
      },
    });
  }
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title,
    data: { values },
    width: { step },
    height: { step },
    encoding: {
      x: { field: 'predicted', type: 'nominal', sort, axis: { ...axis('predicted'), labelAngle: -45 } },
      y: { field: 'true', type: 'nominal', sort, axis: axis('true') },
    },
    layer: layers,
    config: { font: 'DejaVu Sans', view: { stroke: null } },
  } as VegaLiteSpec;
}

/** Writes the whole report folder (replacing an earlier evaluation there); returns the file paths. */
export async function writeEvalReport(outDir: string, report: AccuracyReport, context: EvalContext): Promise<string[]> {
  // vega and resvg load only when a chart is drawn (the package root stays light).
  const { writeChart } = await import('../util/plot.js');
  await writeFolderAtomic(outDir, isEvalReportFolder, async (dir) => {
    writeJsonAtomic(path.join(dir, 'report.json'), evalReportJson(report, context));
    writeFileAtomic(path.join(dir, 'per_class.csv'), perClassCsv(report, context.classes));
    writeFileAtomic(path.join(dir, 'confusion.csv'), confusionCsv(report.confusion, context.classes));
    writeFileAtomic(path.join(dir, 'videos.csv'), videosCsv(report, context));
    await writeChart(confusionChartSpec(report.confusion, context.classes), path.join(dir, 'confusion'));
  });
  return FILES.map((file) => path.join(outDir, file));
}

const percent = (value: number) => `${(100 * value).toFixed(1)}%`;

/** The report as the terminal shows it. */
export function formatEvalSummary(report: AccuracyReport, context: EvalContext, perClassRows = 30): string {
  const clips = `${context.clips} clip${context.clips === 1 ? '' : 's'}`;
  const views = context.crops > 1 ? `${clips} × ${context.crops} crops` : clips;
  const lines = [
    `clip accuracy   top-1 ${percent(report.clipTop1)}  top-5 ${percent(report.clipTop5)}  mean class ${percent(report.clipMeanClassAccuracy)}  (${report.clips} clips)`,
    `video accuracy  top-1 ${percent(report.videoTop1)}  top-5 ${percent(report.videoTop5)}  mean class ${percent(report.videoMeanClassAccuracy)}  ` +
      `(${report.videos} videos, ${views} each; chance ${percent(1 / context.classes.length)})`,
  ];
  const failed = context.failures.length;
  if (failed > 0) lines.push(`${failed} video${failed === 1 ? ' could not be read and is' : 's could not be read and are'} left out (see report.json "failures")`);
  if (context.classes.length <= perClassRows) {
    const width = Math.max(5, ...context.classes.map((c) => c.length));
    lines.push(`  ${'class'.padEnd(width)}  videos  top-1   clips`);
    context.classes.forEach((name, i) => {
      const r = report.perClass[i]!;
      lines.push(`  ${name.padEnd(width)}  ${`${r.correct}/${r.videos}`.padStart(6)}  ${(r.videos ? percent(r.accuracy) : '-').padStart(6)}  ${(r.clips ? percent(r.clipAccuracy) : '-').padStart(6)}`);
    });
  }
  return lines.join('\n');
}
