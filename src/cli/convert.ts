import { defineCommand } from './args.js';

export const command = defineCommand({
  name: 'convert',
  summary: 'convert a PyTorch checkpoint (.pt/.pth) to safetensors, verified; with --arch, loaded strictly and self-describing',
  usage: 'stcnet convert IN.pth OUT.safetensors [--arch NAME] [--frames N] [--width-multiplier X] [--num-classes N] [...model options]',
  positionals: { name: 'IN.pth OUT.safetensors', min: 2, max: 2 },
  examples: [
    'stcnet convert resnet-18-kinetics.pth resnet18.safetensors --arch resnet3d_18',
    'stcnet convert stc.pth stc.safetensors --arch stc_resnet3d_18 --frames 8 --width-multiplier 0.25',
    'stcnet convert r3d_18.pth r3d_18.safetensors',
  ],
  flags: {
    arch: { type: 'string', description: 'architecture to load strictly into (see `stcnet models`); the output then records it and every option, so eval/predict need nothing else' },
    frames: { type: 'int', description: 'clip length (STC: inferred from the SCB width when omitted)', min: 1 },
    'num-classes': { type: 'int', description: 'classifier outputs (default: the checkpoint\'s fc)', min: 1 },
    'width-multiplier': { type: 'number', description: 'width multiplier of a 3D ResNet/ResNeXt (default: inferred from the stem)', min: 0 },
    'in-channels': { type: 'int', description: 'input channels (default 3)', min: 1 },
    'conv1-temporal-size': { type: 'int', description: 'conv1\'s temporal kernel (3D ResNet/ResNeXt; default 7)', min: 1 },
    'conv1-temporal-stride': { type: 'int', description: 'conv1\'s temporal stride (default 1)', min: 1 },
    'no-max-pool': { type: 'boolean', description: 'the stem has no max-pool (3D ResNet/ResNeXt)' },
    shortcut: { type: 'string', description: 'shortcut type where shapes change (3D ResNet/ResNeXt; default B)', choices: ['A', 'B'] },
    'stc-stages': { type: 'list', description: 'stages with STC blocks (default 1,2,3)', choices: ['1', '2', '3', '4'] },
    'stc-placement': { type: 'string', description: 'STC in every block of a stage, or in its last block only (default block)', choices: ['block', 'stage'] },
    reduction: { type: 'int', description: 'STC reduction ratio r (default 16)', min: 1 },
    cardinality: { type: 'int', description: 'ResNeXt groups (default 32)', min: 1 },
    'stem-channels': { type: 'int', description: 'ResNeXt conv1 width (default 64 × width multiplier)', min: 1 },
    'strip-prefix': { type: 'string', description: 'prefix removed from every key (default: module. when every key has it)' },
    key: { type: 'string', description: 'dotted path of the state dict inside the checkpoint (found automatically when omitted)' },
  },
  async run(args) {
    const [input, output] = args.positionals as [string, string];
    const f = args.flags;
    const { UserError } = await import('../util/errors.js');
    // Only the options given reach the model: the rest are its defaults or inferred from the weights.
    const given = MODEL_FLAGS.filter(([flag]) => f[flag] !== undefined);
    if (f['width-multiplier'] !== undefined && !(f['width-multiplier'] > 0)) {
      throw new UserError('stcnet convert: flag --width-multiplier must be above 0');
    }
    if (!f.arch && given.length > 0) {
      throw new UserError(`stcnet convert: ${given.map(([flag]) => `--${flag}`).join(', ')} describe${given.length > 1 ? '' : 's'} a model: give --arch too`);
    }
    const { modelEntry } = await import('../models/registry.js');
    if (f.arch) {
      const entry = modelEntry(f.arch);
      const refused = given.filter(([, option]) => !entry.options.includes(option));
      if (refused.length > 0) {
        const accepted = MODEL_FLAGS.filter(([, option]) => entry.options.includes(option)).map(([flag]) => `--${flag}`);
        throw new UserError(`stcnet convert: ${f.arch} does not take ${refused.map(([flag]) => `--${flag}`).join(', ')}; it takes ${accepted.join(', ')}`);
      }
    }
    const modelOptions = Object.fromEntries(given.map(([flag, option]) => [option, flag === 'stc-stages' ? f['stc-stages']!.map(Number) : f[flag]]));
    const { convertCheckpoint } = await import('../models/convert.js');
    const result = convertCheckpoint(input, output, { ...modelOptions, arch: f.arch, key: f.key, stripPrefix: f['strip-prefix'] });
    if (result.nonFinite.length > 0) {
      const names = result.nonFinite.length > 8 ? `${result.nonFinite.slice(0, 8).join(', ')}, ... (${result.nonFinite.length} in all)` : result.nonFinite.join(', ');
      process.stderr.write(`convert: warning: ${result.nonFinite.length} tensor${result.nonFinite.length > 1 ? 's hold' : ' holds'} NaN or Inf (copied as they are): ${names}\n`);
    }
    process.stdout.write(`convert: ${input} → ${output}: ${result.tensors} tensors, ${result.elements.toLocaleString('en-US')} ${f.arch ? 'parameters' : 'elements'}` +
      `${f.arch ? `; strict load into ${f.arch} ok` : ''}; re-read and verified\n`);
  },
});

/** Flags that describe the model, and the createModel option each sets. */
const MODEL_FLAGS = [
  ['frames', 'frames'], ['num-classes', 'numClasses'], ['width-multiplier', 'widthMultiplier'], ['in-channels', 'inChannels'],
  ['conv1-temporal-size', 'conv1TemporalSize'], ['conv1-temporal-stride', 'conv1TemporalStride'], ['no-max-pool', 'noMaxPool'],
  ['shortcut', 'shortcut'], ['stc-stages', 'stcStages'], ['stc-placement', 'stcPlacement'], ['reduction', 'reduction'],
  ['cardinality', 'cardinality'], ['stem-channels', 'stemChannels'],
] as const;
