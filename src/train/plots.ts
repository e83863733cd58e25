import path from 'node:path';
import { writeChart, type VegaLiteSpec } from '../util/plot.js';
import type { MetricsRecord } from './run_dir.js';

/**
 * The run's charts, redrawn from metrics.jsonl every epoch: loss (per step and per epoch),
 * accuracy (train and validation per epoch) and learning rate (per step), as SVG and PNG.
 */

/** At most this many points per step series; longer runs are thinned evenly (the last point kept). */
const MAX_POINTS = 1500;

function thin<T>(items: T[]): T[] {
  if (items.length <= MAX_POINTS) return items;
  const every = Math.ceil(items.length / MAX_POINTS);
  return items.filter((_, i) => i % every === 0 || i === items.length - 1);
}

const num = (value: unknown): number | null => (typeof value === 'number' && Number.isFinite(value) ? value : null);

function lineChart(title: string, values: Record<string, unknown>[], x: string, y: string, yTitle: string, legend = true): VegaLiteSpec {
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title, width: 480, height: 260, background: 'white',
    data: { values },
    mark: { type: 'line', point: values.length <= 60 },
    encoding: {
      x: { field: x, type: 'quantitative', title: x === 'step' ? 'optimizer step' : 'epoch' },
      y: { field: y, type: 'quantitative', title: yTitle, scale: { zero: false } },
      color: { field: 'series', type: 'nominal', title: null, ...(legend ? {} : { legend: null }) },
    },
  } as VegaLiteSpec;
}

/** Writes plots/loss, plots/accuracy and plots/lr (.svg and .png) for the records so far. */
export async function writeTrainingPlots(dir: string, records: MetricsRecord[]): Promise<string[]> {
  const steps = records.filter((r) => r.type === 'step');
  const epochs = records.filter((r) => r.type === 'epoch');
  const stepsPerEpoch = epochs.length > 0 && num(epochs[0]!.steps) ? (epochs[0]!.steps as number) : 1;
  const loss = [
    ...thin(steps).map((r) => ({ series: 'train (step)', epoch: r.step / stepsPerEpoch, value: num(r.loss) })),
    ...epochs.map((r) => ({ series: 'train (epoch mean)', epoch: r.epoch, value: num(r.loss) })),
  ].filter((p) => p.value !== null);
  const accuracy = [
    ...epochs.map((r) => ({ series: 'train', epoch: r.epoch, value: num(r.accuracy) })),
    ...epochs.map((r) => ({ series: 'validation (clips)', epoch: r.epoch, value: num(r.valAccuracy) })),
  ].filter((p) => p.value !== null);
  const lr = thin(steps).map((r) => ({ series: 'lr', step: r.step, value: num(r.lr) })).filter((p) => p.value !== null);
  const written: string[] = [];
  written.push(...await writeChart(lineChart('Loss', loss, 'epoch', 'value', 'cross-entropy'), path.join(dir, 'loss')));
  written.push(...await writeChart(lineChart('Accuracy', accuracy, 'epoch', 'value', 'top-1 accuracy'), path.join(dir, 'accuracy')));
  written.push(...await writeChart(lineChart('Learning rate', lr, 'step', 'value', 'learning rate (group 0)', false), path.join(dir, 'lr')));
  return written;
}
