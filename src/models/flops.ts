import {
  Module, Conv3d, Conv2d, BatchNorm3d, BatchNorm2d, BatchNorm1d, Linear, ReLU, Identity, Dropout, Flatten,
  MaxPool3d, MaxPool2d, AvgPool3d, AdaptiveAvgPool3d, AdaptiveAvgPool2d, Sequential,
} from '../nn/index.js';
import { shapeText } from './errors.js';

/**
 * Cost by shape tracing, without running the network. The convention is torchvision's for its
 * "GFLOPS" column: one multiply-add (MAC) of a convolution or linear layer counts once; batch
 * norm, activations, pooling and the STC gate's element-wise product are not counted. By this
 * count r3d_18 at 1×3×16×112×112 is 40.70 G, as torchvision lists it.
 */
export interface TraceRow {
  /** Dotted module name, as in the state dict. */
  name: string;
  /** The layer's class name. */
  kind: string;
  output: number[];
  /** Trainable elements of this layer alone. */
  params: number;
  macs: number;
}

/** A module that knows how shapes flow through it (the composite modules of the model zoo). */
export interface Traceable {
  trace(tracer: Tracer, name: string, shape: readonly number[]): number[];
}

function isTraceable(module: unknown): module is Traceable {
  return typeof (module as Partial<Traceable>).trace === 'function';
}

function list(value: number | readonly number[], dims: number): number[] {
  return typeof value === 'number' ? new Array<number>(dims).fill(value) : [...value];
}

function convOutput(size: number, kernel: number, stride: number, padding: number, dilation: number, ceil = false): number {
  const span = size + 2 * padding - dilation * (kernel - 1) - 1;
  let out = (ceil ? Math.ceil(span / stride) : Math.floor(span / stride)) + 1;
  if (ceil && (out - 1) * stride >= size + padding) out -= 1;
  return out;
}

function ownParams(module: Module): number {
  let total = 0;
  for (const [name, parameter] of module.namedParameters()) if (!name.includes('.')) total += parameter.numel;
  return total;
}

export class Tracer {
  readonly rows: TraceRow[] = [];

  get macs(): number {
    return this.rows.reduce((total, row) => total + row.macs, 0);
  }

  /** Traces any module: a Traceable composite, a Sequential, or a known leaf layer. */
  module(name: string, module: Module, shape: readonly number[]): number[] {
    if (isTraceable(module)) return module.trace(this, name, shape);
    if (module instanceof Sequential) {
      let current = [...shape];
      module.layers.forEach((layer, index) => { current = this.module(`${name}.${index}`, layer, current); });
      return current;
    }
    return this.leaf(name, module, shape);
  }

  /** Records one layer's output shape and cost. */
  leaf(name: string, module: Module, shape: readonly number[]): number[] {
    const { output, macs } = leafCost(module, shape, name);
    this.rows.push({ name, kind: module.constructor.name, output, params: ownParams(module), macs });
    return output;
  }
}

function leafCost(module: Module, shape: readonly number[], name: string): { output: number[]; macs: number } {
  const fail = (what: string): never => { throw new Error(`trace ${name} (${module.constructor.name}): ${what}, input ${shapeText(shape)}`); };
  if (module instanceof Conv3d || module instanceof Conv2d) {
    const dims = module.dims;
    if (shape.length !== dims + 2 || shape[1] !== module.inChannels) fail(`expected ${dims + 2}-D input with ${module.inChannels} channels`);
    const kernel = module.kernelSize;
    const stride = list(module.options.stride, dims);
    const padding = list(module.options.padding, dims);
    const dilation = list(module.options.dilation, dims);
    const spatial = shape.slice(2).map((size, i) => convOutput(size, kernel[i]!, stride[i]!, padding[i]!, dilation[i]!));
    if (spatial.some((size) => size < 1)) fail('output would be empty');
    const output = [shape[0]!, module.outChannels, ...spatial];
    const perOutput = (module.inChannels / module.options.groups) * kernel.reduce((a, b) => a * b, 1);
    return { output, macs: output.reduce((a, b) => a * b, 1) * perOutput };
  }
  if (module instanceof Linear) {
    if (shape[shape.length - 1] !== module.inFeatures) fail(`expected ${module.inFeatures} features`);
    const output = [...shape.slice(0, -1), module.outFeatures];
    return { output, macs: shape.slice(0, -1).reduce((a, b) => a * b, 1) * module.inFeatures * module.outFeatures };
  }
  if (module instanceof BatchNorm3d || module instanceof BatchNorm2d || module instanceof BatchNorm1d) {
    if (shape[1] !== module.numFeatures) fail(`expected ${module.numFeatures} channels`);
    return { output: [...shape], macs: 0 };
  }
  if (module instanceof ReLU || module instanceof Identity || module instanceof Dropout) return { output: [...shape], macs: 0 };
  if (module instanceof Flatten) {
    const end = module.endDim < 0 ? shape.length + module.endDim : module.endDim;
    const merged = shape.slice(module.startDim, end + 1).reduce((a, b) => a * b, 1);
    return { output: [...shape.slice(0, module.startDim), merged, ...shape.slice(end + 1)], macs: 0 };
  }
  if (module instanceof MaxPool3d || module instanceof MaxPool2d || module instanceof AvgPool3d) {
    const dims = module instanceof MaxPool2d ? 2 : 3;
    const kernel = list(module.kernelSize, dims);
    const stride = list(module.options.stride ?? module.kernelSize, dims);
    const padding = list(module.options.padding ?? 0, dims);
    const dilation = 'dilation' in module.options && module.options.dilation !== undefined ? list(module.options.dilation, dims) : new Array<number>(dims).fill(1);
    const ceil = module.options.ceilMode ?? false;
    const spatial = shape.slice(2).map((size, i) => convOutput(size, kernel[i]!, stride[i]!, padding[i]!, dilation[i]!, ceil));
    if (spatial.some((size) => size < 1)) fail('output would be empty');
    return { output: [shape[0]!, shape[1]!, ...spatial], macs: 0 };
  }
  if (module instanceof AdaptiveAvgPool3d || module instanceof AdaptiveAvgPool2d) {
    const dims = module instanceof AdaptiveAvgPool2d ? 2 : 3;
    return { output: [shape[0]!, shape[1]!, ...list(module.outputSize, dims)], macs: 0 };
  }
  return fail('no shape rule for this layer');
}

/** Traces a whole model from an input shape (N, C, [T,] H, W). */
export function trace(model: Module, inputShape: readonly number[]): { rows: TraceRow[]; output: number[]; macs: number } {
  const tracer = new Tracer();
  const output = tracer.module('', model, inputShape);
  return { rows: tracer.rows, output, macs: tracer.macs };
}

/** Joins a prefix and a member name ('' prefix for the root). */
export function child(prefix: string, name: string): string {
  return prefix ? `${prefix}.${name}` : name;
}
