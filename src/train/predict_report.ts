import { writeFileAtomic } from '../util/fs.js';
import type { VegaLiteSpec } from '../util/plot.js';
import { csvText, formatNumber } from './csv.js';
import { topClasses } from './metrics.js';
import type { Timeline, VideoResult } from './predict.js';

/** How predictions are shown: a table, CSV and JSON for videos; CSV and a chart for a timeline. */

/** The terminal table: one block per video, its top-k classes with scores. */
export function predictionsTable(results: VideoResult[], crops = 1): string {
  const lines: string[] = [];
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  for (const r of results) {
    if (!r.ok) {
      lines.push(`${r.file}: failed: ${r.error}`);
      continue;
    }
    const clips = Math.round(r.views / crops);
    lines.push(`${r.file} (${crops > 1 ? `${plural(clips, 'clip')} × ${crops} crops` : plural(clips, 'clip')})`);
    const width = Math.max(...r.top.map((t) => t.label.length));
    r.top.forEach((t, i) => lines.push(`  ${String(i + 1).padStart(2)}. ${t.label.padEnd(width)}  ${(100 * t.score).toFixed(1).padStart(5)}%`));
  }
  return lines.join('\n');
}

/** One row per video and rank: file,rank,class_index,class,score (failed videos: their error). */
export function predictionsCsv(results: VideoResult[]): string {
  const rows: (string | number)[][] = [];
  for (const r of results) {
    if (!r.ok) rows.push([r.file, '', '', '', '', r.error]);
    else r.top.forEach((t, i) => rows.push([r.file, i + 1, t.index, t.label, t.score, '']));
  }
  return csvText(['file', 'rank', 'class_index', 'class', 'score', 'error'], rows);
}

export function predictionsJson(results: VideoResult[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    ...extra,
    videos: results.map((r) => (r.ok ? { file: r.file, ok: true, clips: r.views, top: r.top } : { file: r.file, ok: false, error: r.error })),
    failed: results.filter((r) => !r.ok).length,
  };
}

/** Every window with every class's score: start,end,top1,top1_score,<class...>. */
export function timelineCsv(timeline: Timeline, classes: readonly string[]): string {
  return csvText(
    ['start', 'end', 'top1', 'top1_score', 'error', ...classes],
    timeline.windows.map((w) => (w.ok
      ? [w.start, w.end, w.top![0]!.label, w.top![0]!.score, '', ...Array.from(w.scores!, (s) => formatNumber(s))]
      : [w.start, w.end, '', '', w.error!, ...classes.map(() => '')])),
  );
}

/**
 * The classes worth drawing: each window's top class, then the best of the rest by their highest
 * score in any window, up to `max`.
 */
export function timelineClasses(timeline: Timeline, max = 8): number[] {
  const ok = timeline.windows.filter((w) => w.ok && w.scores);
  if (ok.length === 0) return [];
  const k = ok[0]!.scores!.length;
  const peak = new Float32Array(k);
  for (const w of ok) for (let c = 0; c < k; c++) peak[c] = Math.max(peak[c]!, w.scores![c]!);
  const chosen: number[] = [];
  for (const w of ok) {
    const top = w.top![0]!.index;
    if (!chosen.includes(top) && chosen.length < max) chosen.push(top);
  }
  for (const c of topClasses(peak, k)) if (chosen.length < Math.min(max, k) && !chosen.includes(c)) chosen.push(c);
  return chosen;
}

/** Class scores over time (at each window's centre), one line per class. */
export function timelineChartSpec(timeline: Timeline, classes: readonly string[], max = 8): VegaLiteSpec {
  const shown = timelineClasses(timeline, max);
  const values: { time: number; class: string; score: number }[] = [];
  for (const w of timeline.windows) {
    if (!w.ok || !w.scores) continue;
    const time = Math.round(((w.start + w.end) / 2) * 1000) / 1000;
    for (const c of shown) values.push({ time, class: classes[c] ?? `class ${c}`, score: w.scores[c]! });
  }
  const name = timeline.file.split('/').pop() ?? timeline.file;
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v6.json',
    title: { text: `${name}: class scores over time`, subtitle: `${timeline.window} s windows every ${timeline.step} s (time = window centre)` },
    width: 640,
    height: 280,
    data: { values },
    mark: { type: 'line', point: timeline.windows.length <= 60 },
    encoding: {
      x: { field: 'time', type: 'quantitative', title: 'time (s)', scale: { domain: [0, Math.round(timeline.duration * 100) / 100] } },
      y: { field: 'score', type: 'quantitative', title: 'mean softmax score', scale: { domain: [0, 1] } },
      color: { field: 'class', type: 'nominal', sort: shown.map((c) => classes[c] ?? `class ${c}`), title: 'class' },
      tooltip: [{ field: 'class' }, { field: 'time', type: 'quantitative' }, { field: 'score', type: 'quantitative', format: '.3f' }],
    },
    config: { font: 'DejaVu Sans' },
  } as VegaLiteSpec;
}

/** Writes base.csv, base.svg and base.png (each atomically); returns the paths. */
export async function writeTimeline(timeline: Timeline, classes: readonly string[], base: string): Promise<string[]> {
  const { writeChart } = await import('../util/plot.js');
  writeFileAtomic(`${base}.csv`, timelineCsv(timeline, classes));
  const charts = await writeChart(timelineChartSpec(timeline, classes), base);
  return [`${base}.csv`, ...charts];
}
