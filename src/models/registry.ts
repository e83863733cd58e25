import { withoutInitialisation } from '../nn/init.js';
import { ModelInputError } from './errors.js';
import type { ZooModel } from './base.js';
import type { TraceRow } from './flops.js';
import { resnet3d, RESNET3D_DEPTHS, RESNEXT3D_DEPTHS, type ResNet3dOptions, type StcOptions, type ResNeXtOptions } from './resnet3d.js';
import { resnext3d } from './resnext3d.js';
import { r3d_18, mc3_18, r2plus1d_18, type VideoResNetOptions } from './video_resnet.js';
import { ResNet2d, type ResNet2dOptions } from './resnet2d.js';

/** The model zoo by name, with typed options per model. */
type ResNetDepth = 10 | 18 | 34 | 50 | 101 | 152 | 200;
type ResNeXtDepth = 50 | 101 | 152;

export type ModelOptionsMap =
  & { [K in `resnet3d_${ResNetDepth}`]: ResNet3dOptions }
  & { [K in `stc_resnet3d_${ResNetDepth}`]: ResNet3dOptions & StcOptions }
  & { [K in `resnext3d_${ResNeXtDepth}`]: ResNet3dOptions & ResNeXtOptions }
  & { [K in `stc_resnext3d_${ResNeXtDepth}`]: ResNet3dOptions & StcOptions & ResNeXtOptions }
  & { r3d_18: VideoResNetOptions; mc3_18: VideoResNetOptions; r2plus1d_18: VideoResNetOptions }
  & { resnet2d_18: ResNet2dOptions; resnet2d_34: ResNet2dOptions; resnet2d_50: ResNet2dOptions };

export type ModelName = keyof ModelOptionsMap;

/** Every option any model takes (what `createModel(name: string, ...)` accepts). */
export type AnyModelOptions = ResNet3dOptions & StcOptions & ResNeXtOptions & VideoResNetOptions & ResNet2dOptions;

export type ModelFamily = 'resnet3d' | 'resnext3d' | 'video_resnet' | 'resnet2d';

export interface ModelEntry {
  name: ModelName;
  family: ModelFamily;
  stc: boolean;
  description: string;
  /** The option names this model accepts. */
  options: readonly string[];
  /** Input layout: video clips or images. */
  dims: 2 | 3;
  build(options: AnyModelOptions): ZooModel;
}

const HARA_OPTIONS = ['numClasses', 'frames', 'inChannels', 'conv1TemporalSize', 'conv1TemporalStride', 'noMaxPool', 'widthMultiplier', 'dropout', 'shortcut', 'init'] as const;
const STC_OPTIONS = ['stcStages', 'stcPlacement', 'reduction'] as const;
const RESNEXT_OPTIONS = ['cardinality', 'stemChannels'] as const;
const VIDEO_OPTIONS = ['numClasses', 'inChannels', 'frames', 'dropout', 'init'] as const;
const RESNET2D_OPTIONS = ['numClasses', 'inChannels', 'dropout', 'widthMultiplier', 'init'] as const;

const entries: ModelEntry[] = [];
for (const stc of [false, true]) {
  const prefix = stc ? 'stc_' : '';
  for (const depth of Object.keys(RESNET3D_DEPTHS).map(Number) as ResNetDepth[]) {
    entries.push({
      name: `${prefix}resnet3d_${depth}` as ModelName, family: 'resnet3d', stc, dims: 3,
      description: `${stc ? 'STC-' : ''}3D ResNet-${depth} (Hara et al.${stc ? ' + STC in layer1–3' : ''})`,
      options: stc ? [...HARA_OPTIONS, ...STC_OPTIONS] : HARA_OPTIONS,
      build: (options) => resnet3d(depth, options, stc),
    });
  }
  for (const depth of Object.keys(RESNEXT3D_DEPTHS).map(Number) as ResNeXtDepth[]) {
    entries.push({
      name: `${prefix}resnext3d_${depth}` as ModelName, family: 'resnext3d', stc, dims: 3,
      description: `${stc ? 'STC-' : ''}3D ResNeXt-${depth} 32×4d (Hara et al.${stc ? ' + STC in layer1–3' : ''})`,
      options: stc ? [...HARA_OPTIONS, ...STC_OPTIONS, ...RESNEXT_OPTIONS] : [...HARA_OPTIONS, ...RESNEXT_OPTIONS],
      build: (options) => resnext3d(depth, options, stc),
    });
  }
}
entries.push(
  { name: 'r3d_18', family: 'video_resnet', stc: false, dims: 3, description: 'R3D-18 (torchvision)', options: VIDEO_OPTIONS, build: (o) => r3d_18(o) },
  { name: 'mc3_18', family: 'video_resnet', stc: false, dims: 3, description: 'MC3-18 (torchvision)', options: VIDEO_OPTIONS, build: (o) => mc3_18(o) },
  { name: 'r2plus1d_18', family: 'video_resnet', stc: false, dims: 3, description: 'R(2+1)D-18 (torchvision)', options: VIDEO_OPTIONS, build: (o) => r2plus1d_18(o) },
);
for (const depth of [18, 34, 50] as const) {
  entries.push({
    name: `resnet2d_${depth}`, family: 'resnet2d', stc: false, dims: 2, description: `2D ResNet-${depth} teacher (torchvision)`,
    options: RESNET2D_OPTIONS, build: (o) => new ResNet2d(`resnet2d_${depth}`, depth, o),
  });
}

const byName = new Map<string, ModelEntry>(entries.map((entry) => [entry.name, entry]));

/** Every registered model, in a stable order (plain 3D ResNets, ResNeXts, their STC variants, torchvision video, 2D). */
export function listModels(): ModelEntry[] {
  return [...entries];
}

export function isModelName(name: string): name is ModelName {
  return byName.has(name);
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let previous = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const current = row[j]!;
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, previous + (a[i - 1] === b[j - 1] ? 0 : 1));
      previous = current;
    }
  }
  return row[b.length]!;
}

/** The registry entry for a name; an unknown name is a ModelInputError that suggests the nearest. */
export function modelEntry(name: string): ModelEntry {
  const entry = byName.get(name);
  if (entry) return entry;
  const nearest = [...byName.keys()].sort((a, b) => editDistance(name, a) - editDistance(name, b))[0]!;
  throw new ModelInputError(`unknown model "${name}" (did you mean "${nearest}"?); models: ${[...byName.keys()].join(', ')}`);
}

/**
 * Builds a model by name. Options are checked: a name the model does not take, or a bad value,
 * is a ModelInputError that says which and lists the accepted ones.
 */
export function createModel<N extends ModelName>(name: N, options?: ModelOptionsMap[N]): ZooModel;
export function createModel(name: string, options?: AnyModelOptions): ZooModel;
export function createModel(name: string, options: AnyModelOptions = {}): ZooModel {
  const entry = modelEntry(name);
  if (options === null || typeof options !== 'object') throw new ModelInputError(`createModel(${name}): options must be an object`);
  const unknown = Object.keys(options).filter((key) => !entry.options.includes(key) && (options as Record<string, unknown>)[key] !== undefined);
  if (unknown.length > 0) {
    throw new ModelInputError(`createModel(${name}): unknown option${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}; ${name} takes ${entry.options.join(', ')}`);
  }
  // Weights about to be overwritten need no random fill (a third of the build time of a large model).
  return options.init === false ? withoutInitialisation(() => entry.build(options)) : entry.build(options);
}

export interface ModelInfo {
  name: ModelName;
  family: ModelFamily;
  description: string;
  stc: boolean;
  /** Trainable parameters. */
  params: number;
  inputShape: number[];
  outputShape: number[];
  /** Multiply-adds of convolutions and linear layers for one input of `inputShape` (torchvision's "GFLOPS" convention). */
  macs: number;
  /** macs / 1e9. */
  gflops: number;
  rows: TraceRow[];
}

/**
 * Parameters, MACs and per-layer output shapes of a model for an input of `frames`×`size`²
 * (default 16×112², 224² for 2-D models; batch 1). Builds the model without initialisation.
 */
export function modelInfo(name: string, options: AnyModelOptions & { size?: number } = {}): ModelInfo {
  const { size, ...modelOptions } = options;
  const entry = modelEntry(name);
  const model = createModel(name, { ...modelOptions, init: false });
  try {
    const inputShape = model.defaultInputShape({ frames: modelOptions.frames, size });
    const { rows, output, macs } = model.costs(inputShape);
    return {
      name: entry.name, family: entry.family, description: entry.description, stc: entry.stc,
      params: model.parameterCount(), inputShape, outputShape: output, macs, gflops: macs / 1e9, rows,
    };
  } finally {
    model.dispose();
  }
}
