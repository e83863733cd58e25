import { PATH_LABELS } from './plan.js';
import type { BenchReport, TaskReport } from './run.js';

function row(cells: string[], widths: number[]): string {
  return cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
}

function taskTable(task: TaskReport): string[] {
  const title = task.task === 'infer' ? 'inference (clips/s; ratio = ÷ best peer path)' : `training step: forward, backward, SGD (clips/s at batch ${task.batches[0]})`;
  const check = task.task === 'infer' ? 'logits dev' : 'loss dev';
  const widths = [44, ...task.batches.flatMap(() => [9, 6]), 9, 10];
  const header = row([title.length > 44 ? '' : title, ...task.batches.flatMap((b) => [`batch ${b}`, 'ratio']), 'peak MiB', check], widths);
  const bestPeer = Object.fromEntries(task.batches.map((b) => [b, Math.max(0, ...Object.entries(task.results)
    .filter(([name]) => !name.startsWith('stcnet_')).map(([, r]) => r.rates[b] ?? 0))]));
  const lines = title.length > 44 ? [title, header] : [header];
  for (const [name, result] of Object.entries(task.results).sort(([a], [b]) => Number(a.startsWith('stcnet_')) - Number(b.startsWith('stcnet_')))) {
    const deviation = task.task === 'infer' ? task.logitDeviation[name] : task.lossDeviation[name];
    lines.push(row([PATH_LABELS[name] ?? name,
      ...task.batches.flatMap((b) => [result.rates[b]!.toFixed(2), bestPeer[b] ? (result.rates[b]! / bestPeer[b]!).toFixed(2) : '—']),
      result.peakRssMiB.toFixed(0), deviation === undefined ? '—' : deviation.toExponential(1)], widths));
  }
  for (const [batch, best] of Object.entries(task.bestRatio)) {
    lines.push(`  batch ${batch}: stcnet's best (${PATH_LABELS[best.stcnet]}) is ${best.ratio.toFixed(2)}× the best peer (${PATH_LABELS[best.peer]}); ` +
      `per round ${best.low.toFixed(2)}–${best.high.toFixed(2)}×`);
  }
  return lines;
}

export function formatBenchReport(report: BenchReport): string {
  const load = (values: number[]) => values.map((v) => v.toFixed(2)).join(' ');
  const lines = [
    `stcnet bench: ${report.arch}, ${report.classes} classes, ${report.frames}×${report.size}×${report.size}, ${report.threads} threads, ${report.device}, median of ${report.repeats} rounds (the paths taking turns), ${report.date} UTC`,
    `CPU: ${report.cpu.model}; flags: ${report.cpu.flags.join(' ') || 'none of avx2/avx512/amx'}${report.torchVersion ? `; PyTorch ${report.torchVersion}` : ''}`,
    `load average (1/5/15 min): before ${load(report.loadBefore)}, after ${load(report.loadAfter)}`,
  ];
  for (const task of report.tasks) lines.push('', ...taskTable(task));
  return lines.join('\n') + '\n';
}
