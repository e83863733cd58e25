import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { defineCommand } from './args.js';
import { UserError } from '../util/errors.js';

/**
 * `stcnet inflate IN_2D --out OUT.safetensors [--arch resnet3d_18] [--mode repeat|center]`: a 2D
 * ResNet checkpoint (torchvision .pth or a stcnet resnet2d .safetensors, e.g. from `stcnet
 * train-2d`) becomes a self-describing 3D checkpoint of the same depth that `stcnet train --init` takes.
 */

export const command = defineCommand({
  name: 'inflate',
  summary: 'turn a 2D ResNet checkpoint into a 3D one of the same depth (I3D inflation), for `stcnet train --init`',
  usage: 'stcnet inflate IN_2D_CHECKPOINT --out OUT.safetensors [--arch resnet3d_18] [--mode repeat|center] [--frames 16] [--num-classes N]',
  positionals: { name: 'IN_2D_CHECKPOINT' },
  examples: [
    'stcnet inflate resnet18-imagenet.pth --arch resnet3d_18 --out r3d18-inflated.safetensors',
    'stcnet inflate runs/teacher/best.safetensors --arch stc_resnet3d_18 --frames 8 --mode center --out stc18-inflated.safetensors',
    'stcnet train data --init stc18-inflated.safetensors --model stc_resnet3d_18 --frames 8 --out runs/ft',
  ],
  flags: {
    out: { type: 'string', description: 'the 3D checkpoint to write (.safetensors; must not exist unless --force)' },
    arch: { type: 'string', description: '3D model of the same depth: resnet3d_{18,34,50} or stc_resnet3d_{18,34,50} (default: resnet3d_D for a resnet2d_D)' },
    mode: { type: 'string', description: "'repeat': each 2D kernel repeated over the temporal kernel and divided by its length (I3D); 'center': the kernel in the middle time slice, zeros elsewhere", choices: ['repeat', 'center'], default: 'repeat' },
    frames: { type: 'int', description: 'clip length the 3D model is built for (an STC model takes only this one)', default: 16, min: 1 },
    'num-classes': { type: 'int', description: 'classes of the 3D model; when it differs from the 2D classifier, fc is dropped for a new one (default: keep the 2D classifier)', min: 1 },
    'conv1-temporal-size': { type: 'int', description: "temporal kernel of the 3D stem (default 7, Hara et al.'s)", min: 1 },
    reduction: { type: 'int', description: 'STC reduction ratio r (stc_ models; default 16)', min: 1 },
    seed: { type: 'int', description: 'seed of the parameters without a 2D counterpart (STC blocks, a new classifier)', default: 0, min: 0 },
    force: { type: 'boolean', description: 'replace --out if it exists', default: false },
  },
  async run(args) {
    const input = args.positionals[0]!;
    const f = args.flags;
    if (f.out === undefined) throw new UserError('stcnet inflate: missing --out OUT.safetensors, the 3D checkpoint to write');
    if (path.extname(f.out).toLowerCase() !== '.safetensors') throw new UserError(`--out ${f.out}: the 3D checkpoint is written as .safetensors`);
    if (existsSync(f.out)) {
      if (statSync(f.out).isDirectory()) throw new UserError(`--out ${f.out}: is a folder, expected a file name`);
      if (!f.force) throw new UserError(`--out ${f.out}: exists already (use --force to replace it)`);
    }
    if (!existsSync(path.dirname(path.resolve(f.out)))) throw new UserError(`--out ${f.out}: no such folder ${path.dirname(path.resolve(f.out))}`);
    if (f.reduction !== undefined && f.arch !== undefined && !f.arch.startsWith('stc_')) throw new UserError(`--reduction: ${f.arch} has no STC blocks`);
    const { inflateCheckpoint } = await import('../models/inflate.js');
    const { saveModelCheckpoint } = await import('../models/checkpoint.js');
    const inflated = inflateCheckpoint(input, {
      arch: f.arch, mode: f.mode, frames: f.frames, numClasses: f['num-classes'], seed: f.seed,
      modelOptions: {
        ...(f['conv1-temporal-size'] !== undefined ? { conv1TemporalSize: f['conv1-temporal-size'] } : {}),
        ...(f.reduction !== undefined ? { reduction: f.reduction } : {}),
      },
    });
    const { model, report } = inflated;
    try {
      saveModelCheckpoint(f.out, model, {
        ...(inflated.classes ? { classes: inflated.classes } : {}),
        ...(inflated.preprocessing ? { preprocessing: inflated.preprocessing } : {}),
        extra: { inflated_from: path.basename(input), inflated_arch: inflated.sourceArch, inflate_mode: f.mode },
      });
      const lines = [
        `inflate: ${input} (${inflated.sourceArch}) → ${model.arch}, ${f.frames} frames, mode ${f.mode}: ` +
          `${report.inflated.length} kernels inflated, ${report.copied.length} tensors copied` +
          (report.initialised.length > 0 ? `, ${report.initialised.length} initialised (${summarise(report.initialised)})` : ''),
      ];
      if (report.headReplaced) lines.push(`inflate: the 2D classifier was dropped (${model.numClasses} classes asked for); fc is new, to be trained when fine-tuning`);
      lines.push(`inflate: wrote ${f.out} (${model.parameterCount().toLocaleString('en-US')} parameters); use it with stcnet train --init ${f.out} --model ${model.arch}`);
      process.stdout.write(lines.join('\n') + '\n');
    } finally {
      model.dispose();
    }
  },
});

/** "stc (36), fc (2)": initialised tensors by kind. */
function summarise(names: string[]): string {
  const stc = names.filter((n) => n.includes('.stc.')).length;
  const fc = names.filter((n) => n.startsWith('fc.')).length;
  return [stc > 0 ? `STC blocks: ${stc} tensors` : '', fc > 0 ? `new fc: ${fc} tensors` : ''].filter(Boolean).join(', ');
}
