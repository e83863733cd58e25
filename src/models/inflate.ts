import { existsSync } from 'node:fs';
import { extname } from 'node:path';
import { cat, dispose, manualSeed, noGrad, tidy, zeros, type Tensor } from '../engine/index.js';
import { loadStateDict, TORCH_EXTENSIONS } from '../nn/weights.js';
import { UserError } from '../util/errors.js';
import type { ZooModel } from './base.js';
import { loadModelCheckpoint, readCheckpointMeta, type Preprocessing } from './checkpoint.js';
import { createModel, isModelName, modelEntry, type AnyModelOptions } from './registry.js';
import { RESNET2D_DEPTHS } from './resnet2d.js';

/**
 * I3D-style inflation (Carreira & Zisserman 2017): a 2D ResNet's weights become a 3D ResNet's of
 * the same depth. A 2D kernel W (kH×kW) becomes a 3D kernel of the target's temporal length kT:
 *
 * - `repeat` (I3D): W repeated kT times and divided by kT. On a clip of identical frames every
 *   output position whose temporal window lies inside the clip equals the 2D output; positions
 *   within the window's reach of either end see the zero temporal padding and come out smaller.
 * - `center`: W in the middle time slice (index ⌊kT/2⌋, which is where the padding ⌊kT/2⌋ puts the
 *   current frame), zeros elsewhere. Each output frame then depends on its own input frame only,
 *   so on identical frames the whole network, pooling and classifier included, equals the 2D one.
 *
 * BatchNorm (weights, biases, running statistics) and 1×1 shortcuts are copied as they are; an STC
 * block's parameters (`stc.*`) have no 2D counterpart and keep their initialisation; `fc` is kept
 * when the class count is the 2D model's, else replaced by a new classifier.
 */

export const INFLATE_MODES = ['repeat', 'center'] as const;
export type InflateMode = (typeof INFLATE_MODES)[number];

/** The 2D depths and the 3D models each inflates to. */
const TARGETS: Record<keyof typeof RESNET2D_DEPTHS, string[]> = {
  18: ['resnet3d_18', 'stc_resnet3d_18'],
  34: ['resnet3d_34', 'stc_resnet3d_34'],
  50: ['resnet3d_50', 'stc_resnet3d_50'],
};

export interface InflateReport {
  /** Convolution kernels given a time axis. */
  inflated: string[];
  /** Tensors copied as they are (BatchNorm, the kept classifier). */
  copied: string[];
  /** Tensors of the 3D model with no 2D counterpart, left at their initialisation (STC blocks, a new fc). */
  initialised: string[];
  /** True when the 2D classifier was dropped for a new one (another class count). */
  headReplaced: boolean;
}

/** Thrown when the two networks do not correspond name for name (a user error: the files are wrong). */
export class InflateError extends UserError {}

/** A 2D kernel O×I×kH×kW as O×I×kT×kH×kW, by `mode`. The result is new (contiguous) memory. */
export function inflateKernel(weight: Tensor, kT: number, mode: InflateMode): Tensor {
  const [o, i, kh, kw] = weight.shape as [number, number, number, number];
  return tidy(() => {
    const slice = weight.unsqueeze(2);
    if (kT === 1) return slice.contiguous();
    if (mode === 'repeat') return slice.expand([o, i, kT, kh, kw]).div(kT).contiguous();
    const before = Math.floor(kT / 2);
    const parts = [zeros([o, i, before, kh, kw], { dtype: weight.dtype }), slice, zeros([o, i, kT - before - 1, kh, kw], { dtype: weight.dtype })];
    return cat(parts.filter((part) => part.shape[2]! > 0), 2);
  });
}

/**
 * Copies a 2D model's weights into a 3D model of the same depth and width, name by name
 * (`conv1`, `layer1.0.conv1`, `layer2.0.downsample.0`, `fc`: torchvision's 2D names are Hara et al.'s
 * 3D names). Any name or shape that does not correspond is an InflateError listing them.
 */
export function inflateInto(source: ZooModel, target: ZooModel, mode: InflateMode): InflateReport {
  if (source.input.dims !== 2) throw new InflateError(`inflate: the source must be a 2D model, got ${source.arch}`);
  if (target.input.dims !== 3) throw new InflateError(`inflate: the target must be a 3D model, got ${target.arch}`);
  const from = source.stateDict();
  const to = target.stateDict();
  const report: InflateReport = { inflated: [], copied: [], initialised: [], headReplaced: false };
  const keepHead = from.get('fc.weight') !== undefined && sameShape(from.get('fc.weight')!.shape, to.get('fc.weight')?.shape);
  report.headReplaced = !keepHead;
  const missing: string[] = [];
  const mismatched: string[] = [];
  const plan: [Tensor, Tensor, 'inflate' | 'copy'][] = [];
  for (const [name, dst] of to) {
    if (/(^|\.)stc\./.test(name) || (!keepHead && name.startsWith('fc.'))) {
      report.initialised.push(name);
      continue;
    }
    const src = from.get(name);
    if (!src) {
      missing.push(name);
    } else if (src.rank === 4 && dst.rank === 5 && sameShape([src.shape[0]!, src.shape[1]!, src.shape[2]!, src.shape[3]!], [dst.shape[0]!, dst.shape[1]!, dst.shape[3]!, dst.shape[4]!])) {
      plan.push([dst, src, 'inflate']);
      report.inflated.push(name);
    } else if (sameShape(src.shape, dst.shape)) {
      plan.push([dst, src, 'copy']);
      report.copied.push(name);
    } else {
      mismatched.push(`${name} (2D ${shapeText(src.shape)}, 3D ${shapeText(dst.shape)})`);
    }
  }
  const unused = [...from.keys()].filter((name) => !to.has(name) && !(name.startsWith('fc.') && !keepHead));
  if (missing.length > 0 || mismatched.length > 0 || unused.length > 0) {
    const parts = [
      missing.length > 0 ? `the 2D model has no ${list(missing)}` : '',
      unused.length > 0 ? `the 3D model has no ${list(unused)}` : '',
      mismatched.length > 0 ? `shapes differ: ${list(mismatched)}` : '',
    ].filter((part) => part.length > 0);
    throw new InflateError(`inflate: ${source.arch} (${describe(source)}) does not correspond to ${target.arch} (${describe(target)}): ${parts.join('; ')}`);
  }
  noGrad(() => {
    for (const [dst, src, how] of plan) {
      if (how === 'copy') {
        dst.copy_(src);
        continue;
      }
      const kernel = inflateKernel(src, dst.shape[2]!, mode);
      dst.copy_(kernel);
      kernel.dispose();
    }
  });
  return report;
}

function sameShape(a: readonly number[], b: readonly number[] | undefined): boolean {
  return b !== undefined && a.length === b.length && a.every((v, i) => v === b[i]);
}

const shapeText = (shape: readonly number[]) => `[${shape.join(', ')}]`;

function list(names: string[]): string {
  return names.length <= 4 ? names.join(', ') : `${names.slice(0, 4).join(', ')} and ${names.length - 4} more`;
}

function describe(model: ZooModel): string {
  const width = model.options.widthMultiplier;
  return `width ${width ?? 1}, ${model.numClasses} classes`;
}

/** The 2D ResNet a state dict is: depth from its blocks per stage, bottleneck from `conv3`. */
export function resnet2dArchOf(file: string, dict: Map<string, Tensor>): string {
  const conv1 = dict.get('conv1.weight');
  if (!conv1) {
    const hint = dict.has('stem.0.weight') ? ' (torchvision video-model names: a 3D checkpoint)' : '';
    throw new UserError(`${file}: no conv1.weight, so not a ResNet checkpoint with torchvision/Hara names${hint}`);
  }
  if (conv1.rank === 5) {
    throw new UserError(`${file}: conv1.weight is 5-D ${shapeText(conv1.shape)}, a 3D checkpoint; inflate takes a 2D ResNet (resnet2d_18, resnet2d_34, resnet2d_50)`);
  }
  if (conv1.rank !== 4) throw new UserError(`${file}: conv1.weight has shape ${shapeText(conv1.shape)}; a 2D ResNet's is 4-D (out × in × 7 × 7)`);
  const blocks = [1, 2, 3, 4].map((stage) => {
    let count = 0;
    while (dict.has(`layer${stage}.${count}.conv1.weight`)) count++;
    return count;
  });
  const bottleneck = dict.has('layer1.0.conv3.weight');
  for (const [depth, spec] of Object.entries(RESNET2D_DEPTHS)) {
    if ((spec.block === 'bottleneck') === bottleneck && spec.layers.every((n, i) => n === blocks[i])) return `resnet2d_${depth}`;
  }
  throw new UserError(`${file}: a 2D ResNet with ${blocks.join('/')} ${bottleneck ? 'bottleneck' : 'basic'} blocks per stage, which is none of resnet2d_18 (2/2/2/2 basic), resnet2d_34 (3/4/6/3 basic), resnet2d_50 (3/4/6/3 bottleneck)`);
}

/** The 2D architecture of a checkpoint file (stcnet metadata, else the tensors' names and shapes). */
function sourceArch(file: string): string {
  if (!existsSync(file)) throw new UserError(`${file}: no such checkpoint file`);
  const extension = extname(file).toLowerCase();
  if (extension !== '.safetensors' && !TORCH_EXTENSIONS.has(extension)) {
    throw new UserError(`${file}: unknown checkpoint format "${extension}"; expected a torchvision .pth/.pt or a stcnet .safetensors`);
  }
  if (extension === '.safetensors') {
    const meta = readCheckpointMeta(file);
    if (meta) {
      if (modelEntry(meta.arch).family !== 'resnet2d') {
        throw new UserError(`${file}: the checkpoint is a ${meta.arch}${modelEntry(meta.arch).dims === 3 ? ' (3D)' : ''}; inflate takes a 2D ResNet (resnet2d_18, resnet2d_34, resnet2d_50)`);
      }
      return meta.arch;
    }
  }
  const dict = loadStateDict(file);
  try {
    return resnet2dArchOf(file, dict);
  } finally {
    dispose([...dict.values()]);
  }
}

export interface InflateCheckpointOptions {
  /** The 3D model (default: resnet3d_D for a resnet2d_D). */
  arch?: string;
  mode?: InflateMode;
  /** Clip length the 3D model is built for (STC models take only this one; default 16). */
  frames?: number;
  /** Classes of the 3D model (default: the 2D classifier's, which is then kept). */
  numClasses?: number;
  /** Seeds the parameters without a 2D counterpart (STC blocks, a new classifier). Default 0. */
  seed?: number;
  /** More options of the 3D model (conv1TemporalSize, reduction, stcStages, ...). */
  modelOptions?: AnyModelOptions;
}

export interface InflatedCheckpoint {
  model: ZooModel;
  /** The 2D model's architecture, as the file described or its tensors told. */
  sourceArch: string;
  report: InflateReport;
  /** Class names carried over when the classifier was kept and the 2D checkpoint named them. */
  classes?: string[];
  /** The 2D checkpoint's preprocessing with the clip length of the 3D model, when it had one. */
  preprocessing?: Preprocessing;
}

/** Reads a 2D ResNet checkpoint (torchvision .pth or stcnet safetensors) and inflates it into a new 3D model. */
export function inflateCheckpoint(file: string, options: InflateCheckpointOptions = {}): InflatedCheckpoint {
  const mode = options.mode ?? 'repeat';
  if (!(INFLATE_MODES as readonly string[]).includes(mode)) throw new UserError(`inflate: mode must be ${INFLATE_MODES.join(' or ')}, got "${String(mode)}"`);
  const from = sourceArch(file);
  const depth = Number(from.replace('resnet2d_', '')) as keyof typeof TARGETS;
  const arch = options.arch ?? TARGETS[depth][0]!;
  if (!isModelName(arch)) modelEntry(arch); // throws "unknown model ... did you mean"
  if (!TARGETS[depth].includes(arch)) {
    const family = modelEntry(arch).dims === 2 ? ' (a 2D model)' : '';
    throw new UserError(`inflate: ${file} is a ${from}; it inflates to ${TARGETS[depth].join(' or ')} (same depth and blocks), not ${arch}${family}`);
  }
  const loaded = loadModelCheckpoint(file, { arch: from });
  const source = loaded.model;
  try {
    source.eval();
    const width = source.options.widthMultiplier;
    const numClasses = options.numClasses ?? source.numClasses;
    manualSeed(options.seed ?? 0);
    const built: AnyModelOptions = {
      ...options.modelOptions, numClasses, frames: options.frames ?? 16, inChannels: source.input.channels,
      ...(width !== undefined ? { widthMultiplier: width } : {}),
    };
    const target = createModel(arch, built);
    try {
      const report = inflateInto(source, target, mode);
      const result: InflatedCheckpoint = { model: target, sourceArch: from, report };
      if (!report.headReplaced && loaded.meta.classes) result.classes = loaded.meta.classes;
      const pre = loaded.meta.preprocessing;
      if (pre) result.preprocessing = { ...pre, frames: built.frames!, stride: 1 };
      return result;
    } catch (error) {
      target.dispose();
      throw error;
    }
  } finally {
    source.dispose();
  }
}
