import os from 'node:os';
import { defineCommand } from './args.js';
import { UserError } from '../util/errors.js';
import { sampleKey, uniqueSamples } from '../data/dataset.js';
import { loadDataset } from '../data/formats/index.js';
import { prepareCache } from '../video/cache.js';
import { datasetFlags } from './data.js';

export const command = defineCommand({
  name: 'prepare',
  summary: 'decode every video of a dataset once into a JPEG frame cache (parallel, resumable)',
  usage: 'stcnet prepare ROOT --out CACHE_DIR [--format ucf101] [--short-side 128] [--fps N] [--quality 90] [--jobs N]',
  positionals: { name: 'ROOT' },
  examples: ['stcnet prepare data/UCF101 --out cache/ucf101 --short-side 128', 'stcnet prepare data/kinetics --format kinetics --splits val --out cache/k400-val --fps 25 --jobs 8'],
  flags: {
    ...datasetFlags,
    out: { type: 'string', description: 'cache folder (created; an existing one is resumed)' },
    'short-side': { type: 'int', description: 'resize so the shorter side has this many pixels', default: 128, min: 16 },
    fps: { type: 'number', description: 'resample to this frame rate (default: keep every frame)', min: 0.1 },
    quality: { type: 'int', description: 'JPEG quality 1-100', default: 90, min: 1, max: 100 },
    splits: { type: 'list', description: 'only these splits (comma separated; default: every split)' },
    jobs: { type: 'int', description: 'videos decoded in parallel', default: os.availableParallelism(), min: 1 },
    overwrite: { type: 'boolean', description: 'start again when the cache was made with other settings', default: false },
    quiet: { type: 'boolean', description: 'no progress bar', default: false },
  },
  async run(args) {
    const root = args.positionals[0]!;
    const f = args.flags;
    if (!f.out) throw new UserError('stcnet prepare: --out CACHE_DIR is required');
    const dataset = await loadDataset(root, f.format, { annotations: f.annotations, videos: f.videos, classList: f['class-list'] });
    const wanted = f.splits;
    if (wanted) {
      for (const s of wanted) {
        if (!dataset.splits[s]) throw new UserError(`stcnet prepare: no split "${s}"; splits: ${Object.keys(dataset.splits).join(', ')}`);
      }
      dataset.splits = Object.fromEntries(Object.entries(dataset.splits).filter(([name]) => wanted.includes(name)));
    }
    const items = uniqueSamples(dataset).map((s) => ({ key: sampleKey(s), path: s.path, start: s.start, end: s.end }));
    const controller = new AbortController();
    const onSignal = (): void => {
      if (controller.signal.aborted) process.exit(130);
      process.stderr.write('\nprepare: interrupted; finishing cleanly (run the same command again to resume)\n');
      controller.abort();
    };
    process.on('SIGINT', onSignal);
    process.on('SIGTERM', onSignal);
    try {
      const result = await prepareCache(f.out, items, {
        shortSide: f['short-side'], fps: f.fps, quality: f.quality, jobs: f.jobs, overwrite: f.overwrite, quiet: f.quiet, signal: controller.signal,
      });
      const lines = [`prepare: ${result.cached} cached, ${result.skipped} already cached, ${result.failed.length} failed ` +
        `(${dataset.missing.length} listed but missing) in ${result.seconds.toFixed(1)} s → ${f.out}`];
      for (const failure of result.failed.slice(0, 20)) lines.push(`  skipped ${failure.file}: ${failure.reason}`);
      if (result.failed.length > 20) lines.push(`  … and ${result.failed.length - 20} more`);
      if (result.failed.length > 0) lines.push(`  report: ${f.out}/report.csv`);
      process.stdout.write(lines.join('\n') + '\n');
      if (result.interrupted) process.exitCode = 130;
    } finally {
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  },
});
