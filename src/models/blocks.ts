import { F, type Tensor } from '../engine/index.js';
import { Module, Conv3d, Conv2d, BatchNorm3d, BatchNorm2d, ReLU, Sequential } from '../nn/index.js';
import { StcBlock, type Reduction } from './stc.js';
import { Tracer, child } from './flops.js';

/**
 * Residual blocks. Two families, because their checkpoints name things differently:
 * - Hara et al.'s 3D ResNet/ResNeXt blocks, which share torchvision's 2D ResNet names
 *   (`conv1`, `bn1`, ..., `downsample.0/1`), so the same classes build 3D and 2D networks;
 * - torchvision's video blocks (`conv1.0`, `conv1.1`, ...), built from a convolution policy so
 *   R3D, MC3 and R(2+1)D share them.
 */

/** Spatial dimensions of a network: 3 for video (T, H, W), 2 for images (H, W). */
export type Dims = 2 | 3;

/** Hara's shortcut types: A = zero-padded identity (no parameters), B = 1×1×1 convolution + BN. */
export type Shortcut = 'A' | 'B';

/** Runs f on x and frees x (a finished intermediate; autograd keeps what it needs). */
export function step(x: Tensor, f: (input: Tensor) => Tensor): Tensor {
  const y = f(x);
  if (y !== x) x.dispose();
  return y;
}

/**
 * Runs a Sequential, freeing each intermediate as soon as the next layer has it (never `owned`,
 * the caller's input) and applying ReLU in place on intermediates.
 */
export function runSequential(sequence: Sequential, input: Tensor, owned: Tensor = input): Tensor {
  let current = input;
  for (const layer of sequence.layers) {
    let next: Tensor;
    if (layer instanceof Sequential) next = runSequential(layer, current, owned);
    else if (layer instanceof ReLU && current !== owned) next = current.relu_();
    else next = layer.forward(current);
    if (current !== owned && next !== current) current.dispose();
    current = next;
  }
  return current;
}

/** A k×k(×k) convolution without bias, padded to keep size at stride 1. */
export function convNd(dims: Dims, inPlanes: number, outPlanes: number, kernel: number, stride = 1, groups = 1): Conv3d | Conv2d {
  const options = { stride, padding: Math.floor(kernel / 2), groups, bias: false };
  return dims === 3 ? new Conv3d(inPlanes, outPlanes, kernel, options) : new Conv2d(inPlanes, outPlanes, kernel, options);
}

export function batchNormNd(dims: Dims, planes: number): BatchNorm3d | BatchNorm2d {
  return dims === 3 ? new BatchNorm3d(planes) : new BatchNorm2d(planes);
}

/**
 * Shortcut A: average-pool with kernel 1 at the stride (subsampling), then zero channels
 * appended up to `outPlanes`. No parameters, so no state dict entries.
 */
export class ZeroPadShortcut extends Module {
  constructor(readonly outPlanes: number, readonly stride: number, readonly dims: Dims = 3) {
    super();
  }

  forward(x: Tensor): Tensor {
    const pooled = this.stride === 1 ? x : this.dims === 3 ? F.avgPool3d(x, 1, { stride: this.stride }) : F.avgPool2d(x, 1, { stride: this.stride });
    const missing = this.outPlanes - x.size(1);
    if (missing === 0) return pooled;
    // constant_pad_nd lists (before, after) from the last dimension back to the channel dimension.
    const padding = [...new Array<number>(2 * this.dims).fill(0), 0, missing];
    const padded = F.pad(pooled, padding);
    if (pooled !== x) pooled.dispose();
    return padded;
  }

  trace(tracer: Tracer, _name: string, shape: readonly number[]): number[] {
    void tracer;
    const spatial = shape.slice(2).map((size) => Math.floor((size - 1) / this.stride) + 1);
    return [shape[0]!, this.outPlanes, ...spatial];
  }
}

function makeShortcut(dims: Dims, type: Shortcut, inPlanes: number, outPlanes: number, stride: number): Module | null {
  if (stride === 1 && inPlanes === outPlanes) return null;
  if (type === 'A') {
    if (outPlanes < inPlanes) throw new Error(`shortcut A cannot reduce channels (${inPlanes} → ${outPlanes}); use shortcut B`);
    return new ZeroPadShortcut(outPlanes, stride, dims);
  }
  return new Sequential(convNd(dims, inPlanes, outPlanes, 1, stride), batchNormNd(dims, outPlanes));
}

/** Where and how an STC block sits in a residual block. */
export interface StcSpec {
  temporalSize: number;
  reduction?: Reduction;
  /** The model's clip length, for error messages. */
  frames?: number;
}

export interface BlockOptions {
  dims: Dims;
  inPlanes: number;
  /** The stage width ("planes" in Hara's and torchvision's code). */
  planes: number;
  stride: number;
  shortcut: Shortcut;
  /** An STC block on the residual branch, after its last BN and before the addition. */
  stc?: StcSpec;
}

abstract class HaraBlock extends Module {
  downsample: Module | null = null;
  stc: StcBlock | null = null;

  protected finishBlock(options: BlockOptions, outPlanes: number): void {
    if (options.stc) {
      if (options.dims !== 3) throw new Error('STC blocks need 3-D (video) inputs');
      this.stc = this.addModule('stc', new StcBlock(outPlanes, options.stc.temporalSize, options.stc.reduction, options.stc.frames));
    }
    const shortcut = makeShortcut(options.dims, options.shortcut, options.inPlanes, outPlanes, options.stride);
    if (shortcut) this.downsample = this.addModule('downsample', shortcut);
  }

  /** Gate, add the shortcut, ReLU; frees `residual`. */
  protected merge(x: Tensor, residual: Tensor): Tensor {
    let out = residual;
    if (this.stc) out = step(out, (r) => this.stc!.forward(r));
    const identity = this.downsample ? this.downsample.forward(x) : x;
    out = step(out, (r) => r.add(identity));
    if (identity !== x) identity.dispose();
    return out.relu_();
  }

  protected traceMerge(tracer: Tracer, name: string, input: readonly number[], residual: number[]): number[] {
    if (this.stc) this.stc.trace(tracer, child(name, 'stc'), residual);
    if (this.downsample) tracer.module(child(name, 'downsample'), this.downsample, input);
    return residual;
  }
}

/** Two 3×3(×3) convolutions (ResNet-10/18/34, torchvision's 2D BasicBlock). */
export class BasicBlock extends HaraBlock {
  static readonly expansion = 1;
  readonly conv1: Conv3d | Conv2d;
  readonly bn1: BatchNorm3d | BatchNorm2d;
  readonly conv2: Conv3d | Conv2d;
  readonly bn2: BatchNorm3d | BatchNorm2d;

  constructor(options: BlockOptions) {
    super();
    const { dims, inPlanes, planes, stride } = options;
    this.conv1 = this.addModule('conv1', convNd(dims, inPlanes, planes, 3, stride));
    this.bn1 = this.addModule('bn1', batchNormNd(dims, planes));
    this.conv2 = this.addModule('conv2', convNd(dims, planes, planes, 3));
    this.bn2 = this.addModule('bn2', batchNormNd(dims, planes));
    this.finishBlock(options, planes);
  }

  forward(x: Tensor): Tensor {
    let out = this.conv1.forward(x);
    out = step(out, (h) => this.bn1.forward(h)).relu_();
    out = step(out, (h) => this.conv2.forward(h));
    out = step(out, (h) => this.bn2.forward(h));
    return this.merge(x, out);
  }

  trace(tracer: Tracer, name: string, shape: readonly number[]): number[] {
    let s = tracer.leaf(child(name, 'conv1'), this.conv1, shape);
    s = tracer.leaf(child(name, 'bn1'), this.bn1, s);
    s = tracer.leaf(child(name, 'conv2'), this.conv2, s);
    s = tracer.leaf(child(name, 'bn2'), this.bn2, s);
    return this.traceMerge(tracer, name, shape, s);
  }
}

export interface BottleneckOptions extends BlockOptions {
  /** Output width = planes · expansion (4 for ResNet, 2 for ResNeXt). */
  expansion: number;
  /** Width of conv1/conv2 (planes for ResNet; cardinality·⌊planes/32⌋ for ResNeXt). */
  midPlanes: number;
  /** Groups of conv2 (the ResNeXt cardinality; 1 for ResNet). */
  groups: number;
}

/** 1×1 → 3×3 (stride, groups) → 1×1 (ResNet-50+, ResNeXt). */
export class Bottleneck extends HaraBlock {
  readonly conv1: Conv3d | Conv2d;
  readonly bn1: BatchNorm3d | BatchNorm2d;
  readonly conv2: Conv3d | Conv2d;
  readonly bn2: BatchNorm3d | BatchNorm2d;
  readonly conv3: Conv3d | Conv2d;
  readonly bn3: BatchNorm3d | BatchNorm2d;

  constructor(options: BottleneckOptions) {
    super();
    const { dims, inPlanes, planes, stride, midPlanes, groups, expansion } = options;
    if (midPlanes < 1 || midPlanes % groups !== 0) throw new Error(`bottleneck: width ${midPlanes} must be a positive multiple of the ${groups} groups`);
    this.conv1 = this.addModule('conv1', convNd(dims, inPlanes, midPlanes, 1));
    this.bn1 = this.addModule('bn1', batchNormNd(dims, midPlanes));
    this.conv2 = this.addModule('conv2', convNd(dims, midPlanes, midPlanes, 3, stride, groups));
    this.bn2 = this.addModule('bn2', batchNormNd(dims, midPlanes));
    this.conv3 = this.addModule('conv3', convNd(dims, midPlanes, planes * expansion, 1));
    this.bn3 = this.addModule('bn3', batchNormNd(dims, planes * expansion));
    this.finishBlock(options, planes * expansion);
  }

  forward(x: Tensor): Tensor {
    let out = this.conv1.forward(x);
    out = step(out, (h) => this.bn1.forward(h)).relu_();
    out = step(out, (h) => this.conv2.forward(h));
    out = step(out, (h) => this.bn2.forward(h)).relu_();
    out = step(out, (h) => this.conv3.forward(h));
    out = step(out, (h) => this.bn3.forward(h));
    return this.merge(x, out);
  }

  trace(tracer: Tracer, name: string, shape: readonly number[]): number[] {
    let s = shape as number[];
    for (const [key, layer] of [['conv1', this.conv1], ['bn1', this.bn1], ['conv2', this.conv2], ['bn2', this.bn2], ['conv3', this.conv3], ['bn3', this.bn3]] as const) {
      s = tracer.leaf(child(name, key), layer, s);
    }
    return this.traceMerge(tracer, name, shape, s);
  }
}

// ---- torchvision's video blocks ----

/**
 * How a torchvision video block builds its 3×3×3-like convolution: R3D uses a full 3×3×3
 * (Conv3DSimple), MC3 a 1×3×3 (Conv3DNoTemporal) in later stages, R(2+1)D a 1×3×3 spatial
 * convolution to `midPlanes` channels, BN, ReLU and a 3×1×1 temporal one (Conv2Plus1D).
 */
export interface ConvPolicy {
  readonly name: string;
  build(inPlanes: number, outPlanes: number, midPlanes: number, stride: number): Module;
  /** The stride of the 1×1×1 shortcut convolution for a block of this stride. */
  downsampleStride(stride: number): [number, number, number];
}

export const Conv3DSimple: ConvPolicy = {
  name: 'Conv3DSimple',
  build: (inPlanes, outPlanes, _mid, stride) => new Conv3d(inPlanes, outPlanes, 3, { stride, padding: 1, bias: false }),
  downsampleStride: (stride) => [stride, stride, stride],
};

export const Conv3DNoTemporal: ConvPolicy = {
  name: 'Conv3DNoTemporal',
  build: (inPlanes, outPlanes, _mid, stride) => new Conv3d(inPlanes, outPlanes, [1, 3, 3], { stride: [1, stride, stride], padding: [0, 1, 1], bias: false }),
  downsampleStride: (stride) => [1, stride, stride],
};

export const Conv2Plus1D: ConvPolicy = {
  name: 'Conv2Plus1D',
  build: (inPlanes, outPlanes, midPlanes, stride) => new Sequential(
    new Conv3d(inPlanes, midPlanes, [1, 3, 3], { stride: [1, stride, stride], padding: [0, 1, 1], bias: false }),
    new BatchNorm3d(midPlanes),
    new ReLU(true),
    new Conv3d(midPlanes, outPlanes, [3, 1, 1], { stride: [stride, 1, 1], padding: [1, 0, 0], bias: false }),
  ),
  downsampleStride: (stride) => [stride, stride, stride],
};

/** R(2+1)D's width: the (2+1)D factorisation keeps the 3×3×3 convolution's parameter count. */
export function midPlanesOf(inPlanes: number, planes: number): number {
  return Math.floor((inPlanes * planes * 27) / (inPlanes * 9 + 3 * planes));
}

export interface VideoBlockOptions {
  inPlanes: number;
  planes: number;
  stride: number;
  conv: ConvPolicy;
}

function videoShortcut(options: VideoBlockOptions, outPlanes: number): Sequential | null {
  const { inPlanes, stride, conv } = options;
  if (stride === 1 && inPlanes === outPlanes) return null;
  return new Sequential(
    new Conv3d(inPlanes, outPlanes, 1, { stride: conv.downsampleStride(stride), bias: false }),
    new BatchNorm3d(outPlanes),
  );
}

abstract class VideoBlock extends Module {
  downsample: Sequential | null = null;
  protected abstract readonly branches: Sequential[];

  forward(x: Tensor): Tensor {
    let out = x;
    for (const branch of this.branches) out = runSequential(branch, out, x);
    return this.merge(x, out);
  }

  protected merge(x: Tensor, residual: Tensor): Tensor {
    const identity = this.downsample ? this.downsample.forward(x) : x;
    const out = step(residual, (r) => r.add(identity));
    if (identity !== x) identity.dispose();
    return out.relu_();
  }

  trace(tracer: Tracer, name: string, shape: readonly number[]): number[] {
    let s = [...shape];
    this.branches.forEach((branch, i) => { s = tracer.module(child(name, `conv${i + 1}`), branch, s); });
    if (this.downsample) tracer.module(child(name, 'downsample'), this.downsample, shape);
    return s;
  }
}

/** torchvision's video BasicBlock: conv1 = (conv, BN, ReLU), conv2 = (conv, BN). */
export class VideoBasicBlock extends VideoBlock {
  static readonly expansion = 1;
  readonly conv1: Sequential;
  readonly conv2: Sequential;
  protected readonly branches: Sequential[];

  constructor(options: VideoBlockOptions) {
    super();
    const { inPlanes, planes, stride, conv } = options;
    const mid = midPlanesOf(inPlanes, planes);
    this.conv1 = this.addModule('conv1', new Sequential(conv.build(inPlanes, planes, mid, stride), new BatchNorm3d(planes), new ReLU(true)));
    this.conv2 = this.addModule('conv2', new Sequential(conv.build(planes, planes, mid, 1), new BatchNorm3d(planes)));
    this.branches = [this.conv1, this.conv2];
    const shortcut = videoShortcut(options, planes);
    if (shortcut) this.downsample = this.addModule('downsample', shortcut);
  }
}
