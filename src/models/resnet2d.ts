import { Conv2d, BatchNorm2d, MaxPool2d, AdaptiveAvgPool2d, Sequential, type Module } from '../nn/index.js';
import { BasicBlock, Bottleneck } from './blocks.js';
import { checkPositiveInt, initConvolutions, type InputSpec } from './base.js';
import { StagedResNet } from './staged.js';
import { ModelInputError } from './errors.js';

/**
 * torchvision's 2D ResNets (`torchvision/models/resnet.py`, v1.5: stride on the 3×3 of the
 * bottleneck), the teachers for 2D→3D transfer. Same names (`conv1`, `bn1`, `layer1.0.conv1`,
 * `downsample.0/1`, `fc`), so ImageNet weights load; `features(x)` gives the pooled N×512
 * (N×2048 for ResNet-50) without `fc`.
 */
export interface ResNet2dOptions {
  /** Classifier outputs (default 1000, ImageNet). */
  numClasses?: number;
  inChannels?: number;
  dropout?: number;
  /**
   * Scales every width, the stem included (default 1, torchvision's shapes). Small teachers for
   * CPU experiments, matching the width of the 3D students they are inflated into.
   */
  widthMultiplier?: number;
  init?: boolean;
}

export const RESNET2D_DEPTHS = {
  18: { block: 'basic', layers: [2, 2, 2, 2] },
  34: { block: 'basic', layers: [3, 4, 6, 3] },
  50: { block: 'bottleneck', layers: [3, 4, 6, 3] },
} as const;

export class ResNet2d extends StagedResNet {
  readonly input: InputSpec;
  readonly conv1: Conv2d;
  readonly bn1: BatchNorm2d;
  readonly maxpool: MaxPool2d;
  readonly layer1: Sequential;
  readonly layer2: Sequential;
  readonly layer3: Sequential;
  readonly layer4: Sequential;
  readonly avgpool: AdaptiveAvgPool2d;

  constructor(readonly name: string, depth: keyof typeof RESNET2D_DEPTHS, options: ResNet2dOptions = {}) {
    super();
    const { block, layers } = RESNET2D_DEPTHS[depth];
    const inChannels = options.inChannels ?? 3;
    checkPositiveInt('option inChannels', inChannels);
    const numClasses = options.numClasses ?? 1000;
    checkPositiveInt('option numClasses', numClasses);
    const dropout = options.dropout ?? 0;
    if (!(dropout >= 0 && dropout < 1)) throw new ModelInputError(`option dropout must be in [0, 1), got ${String(options.dropout)}`);
    const width = options.widthMultiplier ?? 1;
    if (!(typeof width === 'number' && Number.isFinite(width) && width > 0)) throw new ModelInputError(`option widthMultiplier must be a positive number, got ${String(options.widthMultiplier)}`);
    // The same rounding as the 3D ResNets, so a teacher and a student of one width have the same channels.
    const scaled = (channels: number) => Math.max(1, Math.round(channels * width));
    this.input = { dims: 2, channels: inChannels };
    this.recordOptions({ numClasses, inChannels, dropout, ...(width !== 1 ? { widthMultiplier: width } : {}) });
    const stem = scaled(64);
    this.conv1 = this.addModule('conv1', new Conv2d(inChannels, stem, 7, { stride: 2, padding: 3, bias: false }));
    this.bn1 = this.addModule('bn1', new BatchNorm2d(stem));
    this.maxpool = this.addModule('maxpool', new MaxPool2d(3, { stride: 2, padding: 1 }));
    const expansion = block === 'basic' ? 1 : 4;
    let inPlanes = stem;
    const stages: Sequential[] = [];
    [64, 128, 256, 512].map(scaled).forEach((planes, index) => {
      const blocks: Module[] = [];
      for (let i = 0; i < layers[index]!; i++) {
        const common = { dims: 2 as const, inPlanes, planes, stride: i === 0 && index > 0 ? 2 : 1, shortcut: 'B' as const };
        blocks.push(block === 'basic' ? new BasicBlock(common) : new Bottleneck({ ...common, expansion, midPlanes: planes, groups: 1 }));
        inPlanes = planes * expansion;
      }
      stages.push(this.addModule(`layer${index + 1}`, new Sequential(...blocks)));
    });
    [this.layer1, this.layer2, this.layer3, this.layer4] = stages as [Sequential, Sequential, Sequential, Sequential];
    this.avgpool = this.addModule('avgpool', new AdaptiveAvgPool2d(1));
    this.addHead(inPlanes, numClasses, dropout);
    if (options.init ?? true) initConvolutions(this);
  }
}

export const resnet2d_18 = (options?: ResNet2dOptions) => new ResNet2d('resnet2d_18', 18, options);
export const resnet2d_34 = (options?: ResNet2dOptions) => new ResNet2d('resnet2d_34', 34, options);
export const resnet2d_50 = (options?: ResNet2dOptions) => new ResNet2d('resnet2d_50', 50, options);
