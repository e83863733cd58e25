import type { Tensor } from '../engine/index.js';
import { Conv3d, BatchNorm3d, ReLU, AdaptiveAvgPool3d, Sequential, Linear, type Module, init } from '../nn/index.js';
import {
  VideoBasicBlock, Conv3DSimple, Conv3DNoTemporal, Conv2Plus1D, runSequential, step, type ConvPolicy,
} from './blocks.js';
import { ZooModel, checkPositiveInt, initConvolutions, type InputSpec } from './base.js';
import { ModelInputError } from './errors.js';
import { child, type Tracer } from './flops.js';

/**
 * torchvision's video ResNets (`torchvision/models/video/resnet.py`): `stem`, `layer1..4`,
 * `avgpool`, `fc`, with torchvision's parameter names, so its Kinetics-400 weights load.
 */
export interface VideoResNetOptions {
  /** Classifier outputs (default 400). */
  numClasses?: number;
  /** Input channels (default 3). */
  inChannels?: number;
  /** The clip length used for costs (any length is accepted; default 16). */
  frames?: number;
  /** Dropout probability before `fc` (default 0). */
  dropout?: number;
  /** Kaiming initialisation (default true). */
  init?: boolean;
}

export type VideoStem = 'basic' | 'r2plus1d';

/** torchvision's BasicStem: 3×7×7 stride (1,2,2) to 64; R2Plus1dStem: 1×7×7 to 45, then 3×1×1 to 64. */
function makeStem(kind: VideoStem, inChannels: number): Sequential {
  if (kind === 'basic') {
    return new Sequential(
      new Conv3d(inChannels, 64, [3, 7, 7], { stride: [1, 2, 2], padding: [1, 3, 3], bias: false }),
      new BatchNorm3d(64), new ReLU(true));
  }
  return new Sequential(
    new Conv3d(inChannels, 45, [1, 7, 7], { stride: [1, 2, 2], padding: [0, 3, 3], bias: false }),
    new BatchNorm3d(45), new ReLU(true),
    new Conv3d(45, 64, [3, 1, 1], { stride: [1, 1, 1], padding: [1, 0, 0], bias: false }),
    new BatchNorm3d(64), new ReLU(true));
}

export interface VideoResNetSpec {
  convs: readonly [ConvPolicy, ConvPolicy, ConvPolicy, ConvPolicy];
  layers: readonly [number, number, number, number];
  stem: VideoStem;
}

export class VideoResNet extends ZooModel {
  readonly input: InputSpec;
  readonly stem: Sequential;
  readonly layer1: Sequential;
  readonly layer2: Sequential;
  readonly layer3: Sequential;
  readonly layer4: Sequential;
  readonly avgpool: AdaptiveAvgPool3d;

  constructor(readonly name: string, spec: VideoResNetSpec, options: VideoResNetOptions = {}) {
    super();
    const inChannels = options.inChannels ?? 3;
    checkPositiveInt('option inChannels', inChannels);
    const numClasses = options.numClasses ?? 400;
    checkPositiveInt('option numClasses', numClasses);
    const frames = options.frames ?? 16;
    checkPositiveInt('option frames', frames);
    const dropout = options.dropout ?? 0;
    if (!(dropout >= 0 && dropout < 1)) throw new ModelInputError(`option dropout must be in [0, 1), got ${String(options.dropout)}`);
    this.input = { dims: 3, channels: inChannels, defaultFrames: frames };
    this.recordOptions({ numClasses, inChannels, frames, dropout });
    this.stem = this.addModule('stem', makeStem(spec.stem, inChannels));
    let inPlanes = 64;
    const stages: Sequential[] = [];
    [64, 128, 256, 512].forEach((planes, index) => {
      const blocks: Module[] = [];
      for (let i = 0; i < spec.layers[index]!; i++) {
        const blockOptions = { inPlanes, planes, stride: i === 0 && index > 0 ? 2 : 1, conv: spec.convs[index]! };
        blocks.push(new VideoBasicBlock(blockOptions));
        inPlanes = planes * VideoBasicBlock.expansion;
      }
      stages.push(this.addModule(`layer${index + 1}`, new Sequential(...blocks)));
    });
    [this.layer1, this.layer2, this.layer3, this.layer4] = stages as [Sequential, Sequential, Sequential, Sequential];
    this.avgpool = this.addModule('avgpool', new AdaptiveAvgPool3d(1));
    this.addHead(inPlanes, numClasses, dropout);
    if (options.init ?? true) initConvolutions(this);
  }

  /** torchvision initialises its video classifier with N(0, 0.01) weights and zero bias. */
  protected override makeClassifier(features: number, classes: number): Linear {
    const fc = new Linear(features, classes);
    init.normal_(fc.weight, 0, 0.01);
    init.zeros_(fc.bias!);
    return fc;
  }

  protected forwardStem(x: Tensor): Tensor {
    return runSequential(this.stem, x);
  }

  trace(tracer: Tracer, name: string, shape: readonly number[]): number[] {
    let s = tracer.module(child(name, 'stem'), this.stem, shape);
    for (const key of ['layer1', 'layer2', 'layer3', 'layer4'] as const) s = tracer.module(child(name, key), this[key], s);
    s = tracer.leaf(child(name, 'avgpool'), this.avgpool, s);
    return this.traceHead(tracer, [s[0]!, s[1]!]);
  }
}

/** R3D-18: 3×3×3 convolutions throughout (Tran et al. 2018). */
export function r3d_18(options?: VideoResNetOptions): VideoResNet {
  return new VideoResNet('r3d_18', { convs: [Conv3DSimple, Conv3DSimple, Conv3DSimple, Conv3DSimple], layers: [2, 2, 2, 2], stem: 'basic' }, options);
}

/** MC3-18: 3×3×3 in layer1, 1×3×3 (no temporal) in layer2–4. */
export function mc3_18(options?: VideoResNetOptions): VideoResNet {
  return new VideoResNet('mc3_18', { convs: [Conv3DSimple, Conv3DNoTemporal, Conv3DNoTemporal, Conv3DNoTemporal], layers: [2, 2, 2, 2], stem: 'basic' }, options);
}

/** R(2+1)D-18: every 3×3×3 factorised into 1×3×3 then 3×1×1, with the (2+1)D stem. */
export function r2plus1d_18(options?: VideoResNetOptions): VideoResNet {
  return new VideoResNet('r2plus1d_18', { convs: [Conv2Plus1D, Conv2Plus1D, Conv2Plus1D, Conv2Plus1D], layers: [2, 2, 2, 2], stem: 'r2plus1d' }, options);
}
