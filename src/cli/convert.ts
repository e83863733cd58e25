import { basename } from 'node:path';
import type { CommandSpec } from './args.js';
import { UserError } from '../util/errors.js';
import { dispose, noGrad, type Tensor } from '../engine/index.js';
import { StateDictError } from '../nn/index.js';
import { loadStateDict, saveStateDict } from '../nn/weights.js';
import { createModel, modelEntry, temporalSizes, type ZooModel } from '../models/index.js';

function tensorsEqual(a: Tensor, b: Tensor): boolean {
  if (a.shape.join() !== b.shape.join() || a.dtype !== b.dtype) return false;
  return noGrad(() => {
    const equal = a.eq(b);
    const all = equal.all();
    const result = all.item() !== 0;
    dispose([equal, all]);
    return result;
  });
}

/** The STC clip length a checkpoint was made for, from layer1's SCB width (C·T), if it has one. */
function framesHint(dict: Map<string, Tensor>): number | undefined {
  const scb = [...dict.keys()].find((k) => /^layer\d\.\d+\.stc\.scb\.fc1\.weight$/.test(k));
  const tcb = scb && dict.get(scb.replace('.scb.', '.tcb.'));
  if (!scb || !tcb) return undefined;
  const t = dict.get(scb)!.shape[1]! / tcb.shape[1]!;
  const stage = Number(scb[5]);
  let found: number | undefined;
  for (let frames = 1; frames <= 1024; frames++) if (temporalSizes(frames)[stage] === t) found = frames;
  return found;
}

export const command: CommandSpec = {
  name: 'convert',
  summary: 'convert a PyTorch checkpoint (.pt/.pth) to safetensors, verified by a strict load into --arch',
  usage: 'stcnet convert IN.pth OUT.safetensors [--arch NAME] [--frames N] [--num-classes N] [--strip-prefix module.]',
  flags: {
    arch: { type: 'string', description: 'architecture to load strictly into (see `stcnet models`); names and shapes must match exactly' },
    frames: { type: 'int', description: 'clip length an STC architecture is built for (default: inferred from the checkpoint, else 16)', min: 1 },
    'num-classes': { type: 'int', description: 'classifier outputs (default: the checkpoint\'s fc)', min: 1 },
    'strip-prefix': { type: 'string', description: 'prefix removed from every key', default: 'module.' },
    key: { type: 'string', description: 'dotted path of the state dict inside the checkpoint (found automatically when omitted)' },
  },
  async run(args) {
    const [input, output] = args.positionals;
    if (!input || !output) throw new UserError(`stcnet convert: expected IN and OUT (usage: ${command.usage})`);
    if (!output.endsWith('.safetensors')) throw new UserError(`stcnet convert: OUT must end in .safetensors, got ${basename(output)}`);
    const f = args.flags;
    const dict = loadStateDict(input, { stripPrefix: (f['strip-prefix'] as string) || undefined, key: f.key as string | undefined });
    let toSave: Map<string, Tensor> = dict;
    let model: ZooModel | undefined;
    const arch = f.arch as string | undefined;
    try {
      if (arch) {
        const entry = modelEntry(arch);
        const fc = dict.get('fc.weight');
        const numClasses = (f['num-classes'] as number | undefined) ?? fc?.shape[0];
        const frames = (f.frames as number | undefined) ?? (entry.stc ? framesHint(dict) : undefined);
        model = createModel(arch, { init: false, ...(numClasses ? { numClasses } : {}), ...(frames && entry.dims === 3 ? { frames } : {}) });
        try {
          model.loadStateDict(dict, { strict: true });
        } catch (error) {
          if (error instanceof StateDictError) {
            throw new UserError(`stcnet convert: ${input} does not fit ${arch}${frames ? ` (${frames} frames)` : ''}:\n${error.message.split('\n').slice(1).join('\n')}`);
          }
          throw error;
        }
        toSave = model.stateDict();
      }
      saveStateDict(output, toSave, { format: 'pt', source: basename(input), ...(arch ? { arch } : {}) });
      const back = loadStateDict(output);
      try {
        const bad = [...toSave].filter(([name, t]) => !back.has(name) || !tensorsEqual(t, back.get(name)!)).map(([name]) => name);
        if (bad.length || back.size !== toSave.size) throw new Error(`stcnet convert: verification failed for ${bad.slice(0, 5).join(', ') || 'the key set'}`);
      } finally {
        dispose(back);
      }
      const params = model ? model.parameterCount() : [...toSave.values()].reduce((n, t) => n + t.numel, 0);
      process.stdout.write(`convert: ${input} → ${output}: ${toSave.size} tensors, ${params.toLocaleString('en-US')} ${model ? 'parameters' : 'elements'}` +
        `${arch ? `; strict load into ${arch} ok` : ''}; re-read and verified\n`);
    } finally {
      dispose(dict);
      model?.dispose();
    }
  },
};
