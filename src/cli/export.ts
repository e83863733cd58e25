import { defineCommand, type FlagValues } from './args.js';
import { UserError } from '../util/errors.js';

/**
 * `stcnet export CHECKPOINT --onnx OUT.onnx`: the model as an ONNX graph (BatchNorm folded into the
 * convolutions, a dynamic batch axis, class names and preprocessing in its metadata), checked against
 * ONNX Runtime on a random clip before the file is written (atomically).
 */
const flags = {
  onnx: { type: 'string', description: 'the ONNX file to write (.onnx)' },
  arch: { type: 'string', description: 'architecture of a PyTorch checkpoint or plain state dict (see `stcnet models`); checked against a stcnet checkpoint' },
  frames: { type: 'int', description: 'clip length, where the checkpoint does not record it (default: the model\'s, else 16)', min: 1 },
  size: { type: 'int', description: 'crop size, where the checkpoint does not record it (default 112)', min: 8 },
  'short-side': { type: 'int', description: 'short side videos are decoded at, recorded for prediction (default: the checkpoint\'s)', min: 8 },
  labels: { type: 'string', description: 'class names: one per line, classInd.txt ("1 Name") or JSON (default: the checkpoint\'s)' },
  opset: { type: 'int', description: 'ONNX opset version (17–21)', default: 17, min: 17, max: 21 },
  batch: { type: 'string', description: 'batch axis: "dynamic" or a fixed size', default: 'dynamic' },
  verify: { type: 'boolean', description: 'check ONNX Runtime against stcnet on a random clip before writing (--no-verify skips it)', default: true },
  seed: { type: 'int', description: 'seed of the random check clip', default: 0, min: 0 },
  quiet: { type: 'boolean', description: 'print only the result line', default: false },
} as const;

export const command = defineCommand({
  name: 'export',
  summary: 'write a checkpoint as an ONNX model (BatchNorm folded, classes and preprocessing inside), checked with ONNX Runtime',
  usage: 'stcnet export CHECKPOINT|RUN_DIR --onnx OUT.onnx [--arch NAME] [--frames T] [--size S] [--labels FILE] [--opset 17] [--batch dynamic|N] [--no-verify]',
  positionals: { name: 'CHECKPOINT|RUN_DIR', min: 1, max: 1 },
  examples: [
    'stcnet export runs/ucf101-stc18/best.safetensors --onnx stc18-ucf101.onnx',
    'stcnet export runs/ucf101-stc18 --onnx model.onnx --batch 8',
    'stcnet export r3d_18-b3b3357e.pth --arch r3d_18 --labels kinetics400.txt --onnx r3d_18.onnx',
    'stcnet export resnet-18-kinetics.pth --arch resnet3d_18 --frames 16 --size 112 --onnx resnet3d_18.onnx --no-verify',
  ],
  flags,
  run: (args) => runExport(args.positionals[0]!, args.flags),
});

type Flags = FlagValues<typeof flags>;

function parseBatch(value: string): number | 'dynamic' {
  if (value === 'dynamic') return value;
  const n = Number(value);
  if (!(Number.isInteger(n) && n >= 1)) throw new UserError(`stcnet export: flag --batch expects "dynamic" or a positive integer, got "${value}"`);
  return n;
}

async function runExport(checkpoint: string, f: Flags): Promise<void> {
  if (f.onnx === undefined) throw new UserError('stcnet export: missing --onnx OUT.onnx (the file to write)');
  const batch = parseBatch(f.batch);
  const { checkOnnxOut, exportOnnx } = await import('../export/export_onnx.js');
  checkOnnxOut(f.onnx, checkpoint);
  if (f.labels !== undefined) (await import('../train/labels.js')).readLabels(f.labels);
  const log = (line: string) => { if (!f.quiet) process.stderr.write(`export: ${line}\n`); };
  const result = await exportOnnx(checkpoint, f.onnx, {
    arch: f.arch, frames: f.frames, size: f.size, labels: f.labels, shortSide: f['short-side'],
    opset: f.opset, batch, verify: f.verify, seed: f.seed, log,
  });
  const { metadata: m } = result;
  if (result.classesFrom === 'none') log(`${checkpoint} names no classes; wrote "class 0".."class ${m.classes.length - 1}" (--labels FILE gives names)`);
  const lines: string[] = [];
  if (!f.quiet) {
    lines.push(`${m.arch}: ${m.classes.length} classes, input ${m.input.name} ${m.input.batch ?? 'N'}×${m.input.channels}×${m.input.frames}×${m.input.size}×${m.input.size}, ` +
      `opset ${result.opset}, ${result.nodes} nodes, BatchNorm folded`);
    lines.push(`preprocessing: ${m.preprocessing.frames} frames at stride ${m.preprocessing.stride}, decode short side ${m.preprocessing.shortSide ?? '-'}, ` +
      `centre crop ${m.preprocessing.size}, mean ${m.preprocessing.mean.map((v) => v.toFixed(4)).join('/')}, std ${m.preprocessing.std.map((v) => v.toFixed(4)).join('/')}`);
  }
  const v = result.verified;
  lines.push(v
    ? `verified: ONNX Runtime equals stcnet on a random batch of ${v.batch} (seed ${v.seed}): max |diff| ${v.maxAbsDiff.toExponential(2)}, ` +
      `max |logit| ${v.maxLogit.toPrecision(4)} (${(v.maxAbsDiff / (v.maxLogit || 1)).toExponential(1)} of it; limit 1e-4)`
    : 'not verified (--no-verify)');
  lines.push(`wrote ${result.file} (${(result.bytes / 1e6).toFixed(1)} MB)`);
  process.stdout.write(lines.join('\n') + '\n');
}
