import { defineCommand, type FlagSpecs } from './args.js';
import { UserError } from '../util/errors.js';
import { countSplits, DATASET_FORMATS } from '../data/dataset.js';
import { loadDataset } from '../data/formats/index.js';

export const datasetFlags = {
  format: { type: 'string', description: 'dataset format', choices: DATASET_FORMATS, default: 'ucf101' },
  annotations: { type: 'string', description: 'folder (or Kinetics CSV) with the split files, when not under ROOT' },
  videos: { type: 'string', description: 'folder with the videos, when not ROOT' },
  'class-list': { type: 'string', description: 'file with one class name per line, fixing the class order' },
} as const satisfies FlagSpecs;

export const command = defineCommand({
  name: 'data',
  summary: 'inspect a video dataset: `stcnet data info ROOT --format ucf101|hmdb51|kinetics|folder|manifest`',
  usage: 'stcnet data info ROOT [--format ucf101] [--annotations DIR] [--videos DIR] [--json]',
  positionals: { name: 'info ROOT', min: 2, max: 2 },
  examples: ['stcnet data info data/UCF101', 'stcnet data info data/hmdb51 --format hmdb51 --json', 'stcnet data info data/kinetics --format kinetics --annotations data/kinetics/annotations'],
  flags: {
    ...datasetFlags,
    json: { type: 'boolean', description: 'print JSON instead of a table', default: false },
    'max-missing': { type: 'int', description: 'missing files to list (all are counted)', default: 20, min: 0 },
  },
  async run(args) {
    const [action, root] = args.positionals;
    if (action !== 'info') throw new UserError(`stcnet data: expected the action "info", got "${action ?? ''}" (usage: ${command.usage})`);
    if (!root) throw new UserError(`stcnet data info: missing ROOT (usage: ${command.usage})`);
    const f = args.flags;
    const dataset = await loadDataset(root, f.format, { annotations: f.annotations, videos: f.videos, classList: f['class-list'] });
    const counts = countSplits(dataset);
    if (f.json) {
      process.stdout.write(JSON.stringify({
        format: dataset.format, root: dataset.root, classes: dataset.classes,
        splits: Object.fromEntries(counts.map((c) => [c.split, { samples: c.samples, perClass: c.perClass }])),
        missing: dataset.missing,
      }, null, 2) + '\n');
      return;
    }
    const out: string[] = [];
    out.push(`format: ${dataset.format}`, `root: ${dataset.root}`, `classes: ${dataset.classes.length}`);
    const splitNames = counts.map((c) => c.split);
    const width = Math.max(5, ...dataset.classes.map((c) => c.length));
    out.push('', `${'class'.padEnd(width)}  ${splitNames.map((s) => s.padStart(7)).join(' ')}`);
    dataset.classes.forEach((name, i) => {
      out.push(`${name.padEnd(width)}  ${counts.map((c) => String(c.perClass[i]).padStart(7)).join(' ')}`);
    });
    out.push(`${'total'.padEnd(width)}  ${counts.map((c) => String(c.samples).padStart(7)).join(' ')}`);
    const unlabeled = counts.map((c) => c.samples - c.perClass.reduce((a, b) => a + b, 0));
    if (unlabeled.some((n) => n > 0)) out.push(`${'(no label)'.padEnd(width)}  ${unlabeled.map((n) => String(n).padStart(7)).join(' ')}`);
    out.push('', `missing: ${dataset.missing.length} listed file${dataset.missing.length === 1 ? '' : 's'} not found`);
    for (const m of dataset.missing.slice(0, f['max-missing'] as number)) out.push(`  ${m.path} (split ${m.split}, ${m.listedIn}:${m.line})`);
    if (dataset.missing.length > f['max-missing']) out.push(`  … and ${dataset.missing.length - f['max-missing']} more (--max-missing N)`);
    process.stdout.write(out.join('\n') + '\n');
  },
});
