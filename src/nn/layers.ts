import { F, empty, zeros, ones, tensor, noGrad, type Tensor } from '../engine/index.js';
import type { SizeArg, ConvOptions } from '../engine/functional.js';
import { Module } from './module.js';
import { defaultLayerInit_ } from './init.js';

function sizes(value: SizeArg, dims: number): number[] {
  return typeof value === 'number' ? new Array<number>(dims).fill(value) : [...value];
}

export interface ConvLayerOptions extends ConvOptions {
  bias?: boolean;
}

abstract class ConvNd extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  readonly options: Required<Omit<ConvLayerOptions, 'bias'>>;

  constructor(readonly inChannels: number, readonly outChannels: number, kernelSize: SizeArg, options: ConvLayerOptions, readonly dims: 2 | 3) {
    super();
    const groups = options.groups ?? 1;
    if (inChannels % groups !== 0 || outChannels % groups !== 0) {
      throw new Error(`Conv${dims}d: in (${inChannels}) and out (${outChannels}) channels must be divisible by groups (${groups})`);
    }
    const kernel = sizes(kernelSize, dims);
    this.options = { stride: options.stride ?? 1, padding: options.padding ?? 0, dilation: options.dilation ?? 1, groups };
    this.weight = this.addParameter('weight', empty([outChannels, inChannels / groups, ...kernel]));
    this.bias = options.bias === false ? null : this.addParameter('bias', empty([outChannels]));
    defaultLayerInit_(this.weight, this.bias);
  }

  get kernelSize(): number[] {
    return this.weight.shape.slice(2);
  }
}

/** 3-D convolution over (N, C, T, H, W); `bias` defaults to true, as in PyTorch. */
export class Conv3d extends ConvNd {
  constructor(inChannels: number, outChannels: number, kernelSize: SizeArg, options: ConvLayerOptions = {}) {
    super(inChannels, outChannels, kernelSize, options, 3);
  }

  forward(input: Tensor): Tensor {
    return F.conv3d(input, this.weight, this.bias, this.options);
  }
}

export class Conv2d extends ConvNd {
  constructor(inChannels: number, outChannels: number, kernelSize: SizeArg, options: ConvLayerOptions = {}) {
    super(inChannels, outChannels, kernelSize, options, 2);
  }

  forward(input: Tensor): Tensor {
    return F.conv2d(input, this.weight, this.bias, this.options);
  }
}

export interface BatchNormOptions {
  eps?: number;
  momentum?: number;
  affine?: boolean;
  trackRunningStats?: boolean;
}

const BATCH_COUNTER_DEFAULT: ReadonlyMap<string, number> = new Map([['num_batches_tracked', 0]]);

abstract class BatchNormNd extends Module {
  readonly weight: Tensor | null;
  readonly bias: Tensor | null;
  readonly runningMean: Tensor | null;
  readonly runningVar: Tensor | null;
  readonly numBatchesTracked: Tensor | null;
  readonly eps: number;
  readonly momentum: number;

  constructor(readonly numFeatures: number, options: BatchNormOptions, private readonly expectedRank: number) {
    super();
    this.eps = options.eps ?? 1e-5;
    this.momentum = options.momentum ?? 0.1;
    const affine = options.affine ?? true;
    this.weight = affine ? this.addParameter('weight', ones([numFeatures])) : null;
    this.bias = affine ? this.addParameter('bias', zeros([numFeatures])) : null;
    const track = options.trackRunningStats ?? true;
    this.runningMean = track ? this.addBuffer('running_mean', zeros([numFeatures])) : null;
    this.runningVar = track ? this.addBuffer('running_var', ones([numFeatures])) : null;
    this.numBatchesTracked = track ? this.addBuffer('num_batches_tracked', tensor(0, { dtype: 'int64' })) : null;
  }

  /** Checkpoints saved before PyTorch 0.4.1 have no batch counter; PyTorch loads them with 0. */
  protected override defaultedState(): ReadonlyMap<string, number> {
    return this.numBatchesTracked ? BATCH_COUNTER_DEFAULT : super.defaultedState();
  }

  forward(input: Tensor): Tensor {
    if (input.rank !== this.expectedRank) {
      throw new Error(`${this.constructor.name}: expected a ${this.expectedRank}-D input, got shape [${input.shape.join(', ')}]`);
    }
    const useBatchStats = this.training || this.runningMean === null;
    if (this.training && this.numBatchesTracked) {
      const counter = this.numBatchesTracked;
      noGrad(() => counter.add_(1));
    }
    return F.batchNorm(input, this.weight, this.bias, this.runningMean, this.runningVar,
      { training: useBatchStats, momentum: this.momentum, eps: this.eps });
  }
}

export class BatchNorm3d extends BatchNormNd {
  constructor(numFeatures: number, options: BatchNormOptions = {}) {
    super(numFeatures, options, 5);
  }
}

export class BatchNorm2d extends BatchNormNd {
  constructor(numFeatures: number, options: BatchNormOptions = {}) {
    super(numFeatures, options, 4);
  }
}

export class BatchNorm1d extends BatchNormNd {
  constructor(numFeatures: number, options: BatchNormOptions = {}) {
    super(numFeatures, options, 2);
  }
}

/** y = x·Wᵀ + b over the last dimension. */
export class Linear extends Module {
  readonly weight: Tensor;
  readonly bias: Tensor | null;

  constructor(readonly inFeatures: number, readonly outFeatures: number, options: { bias?: boolean } = {}) {
    super();
    this.weight = this.addParameter('weight', empty([outFeatures, inFeatures]));
    this.bias = options.bias === false ? null : this.addParameter('bias', empty([outFeatures]));
    defaultLayerInit_(this.weight, this.bias);
  }

  forward(input: Tensor): Tensor {
    return F.linear(input, this.weight, this.bias);
  }
}

export class ReLU extends Module {
  constructor(readonly inplace = false) {
    super();
  }

  forward(input: Tensor): Tensor {
    return input.relu();
  }
}

export class Sigmoid extends Module {
  forward(input: Tensor): Tensor {
    return input.sigmoid();
  }
}

export class Identity extends Module {
  forward(input: Tensor): Tensor {
    return input;
  }
}

export class Flatten extends Module {
  constructor(readonly startDim = 1, readonly endDim = -1) {
    super();
  }

  forward(input: Tensor): Tensor {
    return input.flatten(this.startDim, this.endDim);
  }
}

export interface PoolLayerOptions {
  stride?: SizeArg;
  padding?: SizeArg;
  dilation?: SizeArg;
  ceilMode?: boolean;
}

export class MaxPool3d extends Module {
  constructor(readonly kernelSize: SizeArg, readonly options: PoolLayerOptions = {}) {
    super();
  }

  forward(input: Tensor): Tensor {
    return F.maxPool3d(input, this.kernelSize, { ...this.options, stride: this.options.stride ?? this.kernelSize });
  }
}

export class MaxPool2d extends Module {
  constructor(readonly kernelSize: SizeArg, readonly options: PoolLayerOptions = {}) {
    super();
  }

  forward(input: Tensor): Tensor {
    return F.maxPool2d(input, this.kernelSize, { ...this.options, stride: this.options.stride ?? this.kernelSize });
  }
}

export class AvgPool3d extends Module {
  constructor(readonly kernelSize: SizeArg, readonly options: Omit<PoolLayerOptions, 'dilation'> = {}) {
    super();
  }

  forward(input: Tensor): Tensor {
    return F.avgPool3d(input, this.kernelSize, { ...this.options, stride: this.options.stride ?? this.kernelSize });
  }
}

export class AdaptiveAvgPool3d extends Module {
  constructor(readonly outputSize: SizeArg) {
    super();
  }

  forward(input: Tensor): Tensor {
    return F.adaptiveAvgPool3d(input, this.outputSize);
  }
}

export class AdaptiveAvgPool2d extends Module {
  constructor(readonly outputSize: SizeArg) {
    super();
  }

  forward(input: Tensor): Tensor {
    return F.adaptiveAvgPool2d(input, this.outputSize);
  }
}

/** Zeroes elements with probability p while training; the identity in eval mode. */
export class Dropout extends Module {
  constructor(readonly p = 0.5) {
    super();
    if (!(p >= 0 && p < 1)) throw new Error(`Dropout: p must be in [0, 1), got ${p}`);
  }

  forward(input: Tensor): Tensor {
    return this.p === 0 ? input : F.dropout(input, this.p, this.training);
  }
}

/** Runs its children in order; they are named '0', '1', ... as in torch.nn.Sequential. */
export class Sequential extends Module {
  readonly layers: Module[];

  constructor(...layers: Module[]) {
    super();
    this.layers = layers;
    layers.forEach((layer, index) => this.addModule(String(index), layer));
  }

  /** Frees each intermediate once the next layer has consumed it (autograd keeps what it needs). */
  forward(input: Tensor): Tensor {
    let output = input;
    for (const layer of this.layers) {
      const next = layer.forward(output);
      if (output !== input && next !== output) output.dispose();
      output = next;
    }
    return output;
  }

  get length(): number {
    return this.layers.length;
  }

  at(index: number): Module {
    const layer = this.layers[index < 0 ? this.layers.length + index : index];
    if (!layer) throw new RangeError(`Sequential: no layer ${index} (has ${this.layers.length})`);
    return layer;
  }
}

/** Holds modules by index ('0', '1', ...) without a forward of its own. */
export class ModuleList extends Module {
  readonly items: Module[] = [];

  constructor(modules: Module[] = []) {
    super();
    for (const module of modules) this.push(module);
  }

  push(module: Module): void {
    this.addModule(String(this.items.length), module);
    this.items.push(module);
  }

  forward(): Tensor {
    throw new Error('ModuleList has no forward; call its items');
  }
}
