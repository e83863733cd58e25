import { defineCommand } from './args.js';
import { UserError } from '../util/errors.js';
import type { ModelInfo, AnyModelOptions } from '../models/index.js';

function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}

function shape(s: readonly number[]): string {
  return s.join('×');
}

/** Groups a trace's leaf rows into blocks (`layer1.0`) and top-level layers (`conv1`, `stem`). */
function layerTable(info: ModelInfo): string[] {
  const groups: { name: string; kind: string; output: number[]; params: number; macs: number }[] = [];
  for (const row of info.rows) {
    const parts = row.name.split('.');
    const key = /^layer\d$/.test(parts[0]!) && parts.length > 2 ? `${parts[0]}.${parts[1]}` : parts[0]!;
    const last = groups[groups.length - 1];
    const inner = key !== row.name;
    if (last && last.name === key) {
      last.params += row.params;
      last.macs += row.macs;
      if (!row.name.includes('.downsample') && !row.name.includes('.stc')) last.output = row.output;
    } else {
      groups.push({ name: key, kind: inner ? (key.startsWith('layer') ? 'block' : 'sequence') : row.kind, output: row.output, params: row.params, macs: row.macs });
    }
  }
  const stc = new Set(info.rows.filter((r) => r.name.includes('.stc.')).map((r) => r.name.split('.stc.')[0]));
  const header = ['layer', 'type', 'output', 'params', 'GMACs'];
  const body = groups.map((g) => [g.name, g.kind + (stc.has(g.name) ? '+STC' : ''), shape(g.output), formatCount(g.params), (g.macs / 1e9).toFixed(3)]);
  return table(header, body, [false, false, false, true, true]);
}

function table(header: string[], rows: string[][], right: boolean[]): string[] {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (right[i] ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)];
}

export const command = defineCommand({
  name: 'models',
  summary: 'list the model zoo with parameters and GFLOPs; `stcnet models info NAME` prints its layers',
  usage: 'stcnet models [--frames 16] [--size 112] [--json] | stcnet models info NAME [--frames N] [--size N] [--num-classes N]',
  positionals: { name: '[info NAME]', min: 0, max: 2 },
  examples: ['stcnet models', 'stcnet models --frames 32 --json', 'stcnet models info stc_resnext3d_101 --frames 32 --num-classes 101'],
  flags: {
    frames: { type: 'int', description: 'clip length for the costs (STC models are built for it)', default: 16, min: 1 },
    size: { type: 'int', description: 'input height and width (2-D teachers: 224 unless given)', min: 8 },
    'num-classes': { type: 'int', description: 'classifier outputs (default: 400 for video, 1000 for 2-D)', min: 1 },
    json: { type: 'boolean', description: 'print JSON', default: false },
  },
  async run(args) {
    const { frames, size, 'num-classes': numClasses } = args.flags;
    const [action, name] = args.positionals;
    if (action !== undefined && action !== 'info') throw new UserError(`stcnet models: unknown action "${action}"; expected nothing or "info NAME" (usage: ${command.usage})`);
    if (action === 'info' && !name) throw new UserError(`stcnet models info: missing NAME (usage: ${command.usage})`);
    const { listModels, modelInfo, modelEntry } = await import('../models/index.js');
    const optionsFor = (name: string): AnyModelOptions & { size?: number } => {
      const entry = modelEntry(name);
      return { ...(entry.dims === 3 ? { frames } : {}), ...(numClasses ? { numClasses } : {}), size: size ?? (entry.dims === 3 ? 112 : 224) };
    };
    if (action === 'info' && name) {
      const info = modelInfo(name, optionsFor(name));
      if (args.flags.json) {
        process.stdout.write(JSON.stringify(info, null, 2) + '\n');
        return;
      }
      const lines = [
        `${info.name}: ${info.description}`,
        `input ${shape(info.inputShape)} → logits ${shape(info.outputShape)}; ${formatCount(info.params)} parameters; ${info.gflops.toFixed(2)} GFLOPs (multiply-adds)`,
        '',
        ...layerTable(info),
      ];
      process.stdout.write(lines.join('\n') + '\n');
      return;
    }
    const infos: ModelInfo[] = [];
    const header = ['model', 'params', 'GFLOPs', 'input', 'description'];
    const right = [false, true, true, false, false];
    if (!args.flags.json) {
      process.stdout.write(`GFLOPs are multiply-adds of convolutions and linear layers (torchvision's convention), batch 1.\n`);
    }
    for (const entry of listModels()) {
      const info = modelInfo(entry.name, optionsFor(entry.name));
      infos.push(info);
    }
    if (args.flags.json) {
      process.stdout.write(JSON.stringify(infos.map(({ rows: _rows, ...rest }) => rest), null, 2) + '\n');
      return;
    }
    const rows = infos.map((i) => [i.name, formatCount(i.params), i.gflops.toFixed(2), shape(i.inputShape.slice(1)), i.description]);
    process.stdout.write(table(header, rows, right).join('\n') + '\n');
  },
});
