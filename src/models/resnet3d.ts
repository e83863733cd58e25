import { Conv3d, BatchNorm3d, MaxPool3d, AdaptiveAvgPool3d, Sequential, type Module } from '../nn/index.js';
import { BasicBlock, Bottleneck, type Shortcut, type StcSpec } from './blocks.js';
import { checkPositiveInt, initConvolutions, type InputSpec } from './base.js';
import { StagedResNet } from './staged.js';
import { ModelInputError } from './errors.js';
import { DEFAULT_REDUCTION, reductionOf, type Reduction } from './stc.js';

/**
 * Hara et al.'s 3D ResNet and ResNeXt (3D-ResNets-PyTorch, `models/resnet.py`, `resnext.py`),
 * with the STC block of Diba et al. as an option. Parameter names are theirs: `conv1`, `bn1`,
 * `layer1.0.conv1`, ..., `layer1.0.downsample.0`, `fc`; an STC block adds `layerK.i.stc.*`.
 */

export type StcPlacement = 'block' | 'stage';

/** Options shared by every Hara-style backbone (all optional). */
export interface ResNet3dOptions {
  /** Classifier outputs (default 400, Kinetics). */
  numClasses?: number;
  /** Clip length: STC models are built for it and reject others; plain ones use it for costs (default 16). */
  frames?: number;
  /** Input channels (default 3). */
  inChannels?: number;
  /** conv1's temporal kernel (default 7) and stride (default 1); its spatial part is 7×7 stride 2. */
  conv1TemporalSize?: number;
  conv1TemporalStride?: number;
  /** Skip the stem's max-pool (default false). */
  noMaxPool?: boolean;
  /** Scales every width, the stem included (default 1; e.g. 0.25 for small CPU models). */
  widthMultiplier?: number;
  /** Dropout probability before `fc` (default 0). */
  dropout?: number;
  /** Shortcut where the shape changes: 'B' (1×1×1 conv + BN, the default) or 'A' (zero-padded identity). */
  shortcut?: Shortcut;
  /** Skip Kaiming initialisation (faster construction when weights are loaded anyway). Default true. */
  init?: boolean;
}

/** STC options (the `stc_` models). */
export interface StcOptions {
  /** Stages (1–4) with STC blocks (default [1, 2, 3]). */
  stcStages?: number[];
  /** 'block': in every residual block of those stages (default); 'stage': in each stage's last block only. */
  stcPlacement?: StcPlacement;
  /** Reduction ratio r, for both branches or per branch (default 16). */
  reduction?: Reduction;
}

export interface ResNeXtOptions {
  /** Groups of the 3×3×3 convolution (default 32). */
  cardinality?: number;
  /** conv1's output channels (default 64, as the 2018 code behind Hara's Kinetics weights; their later code used 128). */
  stemChannels?: number;
}

export type Backbone3dOptions = ResNet3dOptions & StcOptions & ResNeXtOptions;

/** The architecture of one named backbone. */
export interface Backbone3dSpec {
  name: string;
  block: 'basic' | 'bottleneck' | 'resnext';
  layers: readonly [number, number, number, number];
  stc: boolean;
}

/** Blocks per stage, by depth (Hara's `generate_model`, as a table). */
export const RESNET3D_DEPTHS = {
  10: { block: 'basic', layers: [1, 1, 1, 1] },
  18: { block: 'basic', layers: [2, 2, 2, 2] },
  34: { block: 'basic', layers: [3, 4, 6, 3] },
  50: { block: 'bottleneck', layers: [3, 4, 6, 3] },
  101: { block: 'bottleneck', layers: [3, 4, 23, 3] },
  152: { block: 'bottleneck', layers: [3, 8, 36, 3] },
  200: { block: 'bottleneck', layers: [3, 24, 36, 3] },
} as const;

export const RESNEXT3D_DEPTHS = {
  50: [3, 4, 6, 3],
  101: [3, 4, 23, 3],
  152: [3, 8, 36, 3],
} as const;

/** A dimension after a stride-2, kernel-3, padding-1 convolution or pool: ⌈n/2⌉. */
function halve(size: number): number {
  return Math.floor((size - 1) / 2) + 1;
}

/** T at the output of the stem and of layer1..layer4 for a clip of `frames`. */
export function temporalSizes(frames: number, options: Pick<ResNet3dOptions, 'conv1TemporalSize' | 'conv1TemporalStride' | 'noMaxPool'> = {}): number[] {
  const k = options.conv1TemporalSize ?? 7;
  const s = options.conv1TemporalStride ?? 1;
  let t = Math.floor((frames + 2 * Math.floor(k / 2) - k) / s) + 1;
  if (!options.noMaxPool) t = halve(t);
  const sizes = [t];
  for (let stage = 1; stage <= 4; stage++) {
    if (stage > 1) t = halve(t);
    sizes.push(t);
  }
  return sizes;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  if (!(typeof v === 'number' && Number.isFinite(v) && v > 0)) throw new ModelInputError(`option ${name} must be a positive number, got ${String(value)}`);
  return v;
}

function positiveInt(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback;
  checkPositiveInt(`option ${name}`, v);
  return v;
}

/** A reduction with its defaults filled in (a number stays a number). */
function resolvedReduction(reduction: Reduction | undefined): Reduction {
  if (reduction === undefined || typeof reduction === 'number') return reduction ?? DEFAULT_REDUCTION;
  return { tcb: reductionOf(reduction, 'tcb'), scb: reductionOf(reduction, 'scb') };
}

/** Hara et al.'s generic 3D ResNet / ResNeXt (with optional STC blocks). */
export class ResNet3d extends StagedResNet {
  readonly input: InputSpec;
  readonly conv1: Conv3d;
  readonly bn1: BatchNorm3d;
  readonly maxpool: MaxPool3d | null;
  readonly layer1: Sequential;
  readonly layer2: Sequential;
  readonly layer3: Sequential;
  readonly layer4: Sequential;
  readonly avgpool: AdaptiveAvgPool3d;
  /** T at the output of the stem and each stage, for the configured clip length. */
  readonly temporalSizes: number[];

  constructor(readonly name: string, readonly spec: Backbone3dSpec, options: Backbone3dOptions = {}) {
    super();
    const frames = positiveInt('frames', options.frames, 16);
    const inChannels = positiveInt('inChannels', options.inChannels, 3);
    const numClasses = positiveInt('numClasses', options.numClasses, 400);
    const kT = positiveInt('conv1TemporalSize', options.conv1TemporalSize, 7);
    const sT = positiveInt('conv1TemporalStride', options.conv1TemporalStride, 1);
    const width = positive('widthMultiplier', options.widthMultiplier, 1);
    const dropout = options.dropout ?? 0;
    if (!(typeof dropout === 'number' && dropout >= 0 && dropout < 1)) throw new ModelInputError(`option dropout must be in [0, 1), got ${String(options.dropout)}`);
    const shortcut = options.shortcut ?? 'B';
    if (shortcut !== 'A' && shortcut !== 'B') throw new ModelInputError(`option shortcut must be 'A' or 'B', got ${JSON.stringify(options.shortcut)}`);
    const resnext = spec.block === 'resnext';
    const cardinality = resnext ? positiveInt('cardinality', options.cardinality, 32) : 1;
    const expansion = spec.block === 'basic' ? 1 : resnext ? 2 : 4;
    const base = resnext ? [128, 256, 512, 1024] : [64, 128, 256, 512];
    const planes = base.map((p) => Math.max(1, Math.round(p * width)));
    const stem = resnext && options.stemChannels !== undefined
      ? positiveInt('stemChannels', options.stemChannels, 64)
      : Math.max(1, Math.round(64 * width));

    this.temporalSizes = temporalSizes(frames, { conv1TemporalSize: kT, conv1TemporalStride: sT, noMaxPool: options.noMaxPool });
    if (this.temporalSizes[0]! < 1) throw new ModelInputError(`${name}: ${frames} frames are too few for conv1's temporal kernel ${kT}`);

    let stcStages: number[] = [];
    const placement = options.stcPlacement ?? 'block';
    if (spec.stc) {
      stcStages = options.stcStages ?? [1, 2, 3];
      if (!Array.isArray(stcStages) || stcStages.some((s) => ![1, 2, 3, 4].includes(s))) {
        throw new ModelInputError(`option stcStages must list stages among 1, 2, 3, 4, got ${JSON.stringify(options.stcStages)}`);
      }
      if (placement !== 'block' && placement !== 'stage') throw new ModelInputError(`option stcPlacement must be 'block' or 'stage', got ${JSON.stringify(placement)}`);
    }
    this.input = { dims: 3, channels: inChannels, frames: spec.stc ? frames : undefined, defaultFrames: frames };
    this.recordOptions({
      numClasses, frames, inChannels, conv1TemporalSize: kT, conv1TemporalStride: sT, noMaxPool: options.noMaxPool ?? false,
      widthMultiplier: width, dropout, shortcut,
      ...(spec.stc ? { stcStages: [...stcStages], stcPlacement: placement, reduction: resolvedReduction(options.reduction) } : {}),
      ...(resnext ? { cardinality, stemChannels: stem } : {}),
    });

    this.conv1 = this.addModule('conv1', new Conv3d(inChannels, stem, [kT, 7, 7], { stride: [sT, 2, 2], padding: [Math.floor(kT / 2), 3, 3], bias: false }));
    this.bn1 = this.addModule('bn1', new BatchNorm3d(stem));
    this.maxpool = options.noMaxPool ? null : this.addModule('maxpool', new MaxPool3d(3, { stride: 2, padding: 1 }));

    let inPlanes = stem;
    const stages: Sequential[] = [];
    for (let stage = 1; stage <= 4; stage++) {
      const count = spec.layers[stage - 1]!;
      const stagePlanes = planes[stage - 1]!;
      const blocks: Module[] = [];
      for (let i = 0; i < count; i++) {
        const withStc = stcStages.includes(stage) && (placement === 'block' || i === count - 1);
        const stc: StcSpec | undefined = withStc ? { temporalSize: this.temporalSizes[stage]!, reduction: options.reduction, frames } : undefined;
        const common = { dims: 3 as const, inPlanes, planes: stagePlanes, stride: i === 0 && stage > 1 ? 2 : 1, shortcut, stc };
        if (spec.block === 'basic') {
          blocks.push(new BasicBlock(common));
        } else {
          const midPlanes = resnext ? cardinality * Math.floor(stagePlanes / 32) : stagePlanes;
          if (midPlanes < 1) {
            throw new ModelInputError(`${name}: stage ${stage} is ${stagePlanes} wide, under 32, so the ResNeXt bottleneck (cardinality·⌊width/32⌋) is empty; raise widthMultiplier`);
          }
          blocks.push(new Bottleneck({ ...common, expansion, midPlanes, groups: cardinality }));
        }
        inPlanes = stagePlanes * expansion;
      }
      stages.push(this.addModule(`layer${stage}`, new Sequential(...blocks)));
    }
    [this.layer1, this.layer2, this.layer3, this.layer4] = stages as [Sequential, Sequential, Sequential, Sequential];
    this.avgpool = this.addModule('avgpool', new AdaptiveAvgPool3d(1));
    this.addHead(inPlanes, numClasses, dropout);
    if (options.init ?? true) initConvolutions(this);
  }
}

/** `resnet3d_{depth}` or `stc_resnet3d_{depth}`. */
export function resnet3d(depth: keyof typeof RESNET3D_DEPTHS, options: ResNet3dOptions & StcOptions = {}, stc = false): ResNet3d {
  const entry = RESNET3D_DEPTHS[depth];
  const name = `${stc ? 'stc_' : ''}resnet3d_${depth}`;
  return new ResNet3d(name, { name, block: entry.block, layers: entry.layers, stc }, options);
}

export const resnet3d_10 = (options?: ResNet3dOptions) => resnet3d(10, options);
export const resnet3d_18 = (options?: ResNet3dOptions) => resnet3d(18, options);
export const resnet3d_34 = (options?: ResNet3dOptions) => resnet3d(34, options);
export const resnet3d_50 = (options?: ResNet3dOptions) => resnet3d(50, options);
export const resnet3d_101 = (options?: ResNet3dOptions) => resnet3d(101, options);
export const resnet3d_152 = (options?: ResNet3dOptions) => resnet3d(152, options);
export const resnet3d_200 = (options?: ResNet3dOptions) => resnet3d(200, options);
export const stc_resnet3d_10 = (options?: ResNet3dOptions & StcOptions) => resnet3d(10, options, true);
export const stc_resnet3d_18 = (options?: ResNet3dOptions & StcOptions) => resnet3d(18, options, true);
export const stc_resnet3d_34 = (options?: ResNet3dOptions & StcOptions) => resnet3d(34, options, true);
export const stc_resnet3d_50 = (options?: ResNet3dOptions & StcOptions) => resnet3d(50, options, true);
export const stc_resnet3d_101 = (options?: ResNet3dOptions & StcOptions) => resnet3d(101, options, true);
export const stc_resnet3d_152 = (options?: ResNet3dOptions & StcOptions) => resnet3d(152, options, true);
export const stc_resnet3d_200 = (options?: ResNet3dOptions & StcOptions) => resnet3d(200, options, true);
