import { noGrad, type Tensor } from '../engine/index.js';
import {
  Conv3d, BatchNorm3d, ReLU, Sequential, MaxPool3d, Dropout, Identity, AdaptiveAvgPool3d, type Linear, type Module,
} from '../nn/index.js';
import { UserError } from '../util/errors.js';
import type { ZooModel } from '../models/base.js';
import { BasicBlock, Bottleneck, VideoBasicBlock, ZeroPadShortcut } from '../models/blocks.js';
import { FoldedConv } from '../models/inference.js';
import { StagedResNet } from '../models/staged.js';
import { VideoResNet } from '../models/video_resnet.js';
import type { StcBlock } from '../models/stc.js';
import { GraphBuilder, type TensorSpec } from './onnx_graph.js';

/**
 * A zoo model's module tree as an ONNX graph, for inference: every BatchNorm folded into the
 * convolution before it (prepareForInference's FoldedConv does the folding), ReLU after it, the
 * STC gate as pooling, two small MLPs and a broadcast multiply, the residual merge as Add + Relu,
 * global average pooling and the classifier as Gemm. Values are named after the modules that make
 * them (`layer1.0.conv1`), initializers after their parameters (`layer1.0.conv1.weight`, folded).
 */

export const INPUT_NAME = 'clips';
export const OUTPUT_NAME = 'logits';

export interface GraphShape {
  frames: number;
  size: number;
  /** A fixed batch size, or 'dynamic' for a symbolic `batch` axis. */
  batch: number | 'dynamic';
}

export interface BuiltGraph {
  builder: GraphBuilder;
  input: TensorSpec;
  output: TensorSpec;
}

type Named = readonly [string, Module];

/** The models the exporter walks: Hara-style 3D ResNets/ResNeXts (with or without STC) and torchvision's video ResNets. */
export function checkExportable(model: ZooModel): void {
  if (model.input.dims !== 3) throw new UserError(`${model.arch} is a 2D image model; stcnet export writes video (3D) models`);
  if (!(model instanceof StagedResNet) && !(model instanceof VideoResNet)) {
    throw new UserError(`${model.arch}: no ONNX export for this model (expected a 3D ResNet/ResNeXt, STC or torchvision video ResNet)`);
  }
}

/** Builds the graph of `model` (its current weights, eval semantics) for inputs of batch×C×frames×size×size. */
export function buildGraph(model: ZooModel, shape: GraphShape): BuiltGraph {
  checkExportable(model);
  const { frames, size, batch } = shape;
  if (model.input.frames !== undefined && model.input.frames !== frames) {
    throw new UserError(`${model.arch} is built for ${model.input.frames}-frame clips; it cannot be exported for ${frames}`);
  }
  const batchDim = batch === 'dynamic' ? 'batch' : batch;
  const g = new GraphBuilder(model.arch);
  const input: TensorSpec = { name: INPUT_NAME, shape: [batchDim, model.input.channels, frames, size, size] };
  return noGrad(() => {
    let x = g.input(input);
    // The stem, then every block; shapes are followed so the STC reshapes know C and T.
    let dims = [model.input.channels, frames, size, size];
    const net = model as StagedResNet | VideoResNet;
    const stem: Named[] = net instanceof StagedResNet
      ? [['conv1', net.conv1], ['bn1', net.bn1], ['relu', new ReLU(true)], ...(net.maxpool ? [['maxpool', net.maxpool] as Named] : [])]
      : [['stem', net.stem]];
    ({ value: x, dims } = chain(g, stem, x, dims));
    [net.layer1, net.layer2, net.layer3, net.layer4].forEach((layer, s) => layer.layers.forEach((block, i) => {
      ({ value: x, dims } = residualBlock(g, `layer${s + 1}.${i}`, block, x, dims));
    }));
    const avgpool = net.avgpool;
    if (!(avgpool instanceof AdaptiveAvgPool3d && [avgpool.outputSize].flat().every((n) => n === 1))) {
      throw new UserError(`${model.arch}: expected a global average pool before fc`);
    }
    x = g.node('GlobalAveragePool', [x], 'avgpool');
    x = g.node('Flatten', [x], 'features', { axis: 1 });
    const logits = linear(g, 'fc', model.fc, x, OUTPUT_NAME);
    return { builder: g, input, output: { name: logits, shape: [batchDim, model.numClasses] } };
  });
}

/** Convolution [BatchNorm] [ReLU] runs and pooling, in order (nested Sequentials flattened, names kept). */
function chain(g: GraphBuilder, modules: readonly Named[], x: string, dims: number[]): { value: string; dims: number[] } {
  const layers = leaves(modules).filter(([, m]) => !(m instanceof Identity) && !(m instanceof Dropout));
  let value = x;
  let shape = dims;
  for (let i = 0; i < layers.length; i++) {
    const [name, layer] = layers[i]!;
    if (layer instanceof Conv3d) {
      const next = layers[i + 1]?.[1];
      const bn = next instanceof BatchNorm3d ? next : null;
      if (bn) i++;
      const relu = layers[i + 1]?.[1] instanceof ReLU;
      if (relu) i++;
      ({ value, dims: shape } = convolution(g, name, layer, bn, relu, value, shape));
    } else if (layer instanceof MaxPool3d) {
      const kernel = expand(layer.kernelSize, 3);
      const stride = expand(layer.options.stride ?? layer.kernelSize, 3);
      const padding = expand(layer.options.padding ?? 0, 3);
      const dilation = expand(layer.options.dilation ?? 1, 3);
      value = g.node('MaxPool', [value], name, {
        kernel_shape: kernel, strides: stride, pads: [...padding, ...padding], dilations: dilation, ceil_mode: layer.options.ceilMode ? 1 : 0,
      });
      shape = [shape[0]!, ...shape.slice(1).map((n, d) => pooledSize(n, kernel[d]!, stride[d]!, padding[d]!, dilation[d]!, layer.options.ceilMode ?? false))];
    } else if (layer instanceof ZeroPadShortcut) {
      ({ value, dims: shape } = zeroPadShortcut(g, name, layer, value, shape));
    } else {
      throw new UserError(`stcnet export: ${name}: cannot export a ${layer.constructor.name} here (expected convolution, BatchNorm, ReLU or pooling)`);
    }
  }
  return { value, dims: shape };
}

function leaves(modules: readonly Named[]): Named[] {
  return modules.flatMap(([name, m]) => (m instanceof Sequential ? leaves(m.layers.map((child, i) => [`${name}.${i}`, child] as const)) : [[name, m] as const]));
}

/** A convolution with its BatchNorm folded in (FoldedConv's float64 folding), and its ReLU. */
function convolution(g: GraphBuilder, name: string, conv: Conv3d, bn: BatchNorm3d | null, relu: boolean, x: string, dims: number[]): { value: string; dims: number[] } {
  const folded = new FoldedConv(conv, bn, false, 'float32');
  try {
    const kernel = conv.kernelSize;
    const stride = expand(conv.options.stride, 3);
    const padding = expand(conv.options.padding, 3);
    const dilation = expand(conv.options.dilation, 3);
    const inputs = [x, g.floats(`${name}.weight`, folded.weight.shape, data(folded.weight))];
    if (folded.bias) inputs.push(g.floats(`${name}.bias`, folded.bias.shape, data(folded.bias)));
    let value = g.node('Conv', inputs, name, { kernel_shape: kernel, strides: stride, pads: [...padding, ...padding], dilations: dilation, group: conv.options.groups });
    if (relu) value = g.node('Relu', [value], `${name}.relu`);
    const spatial = dims.slice(1).map((n, d) => pooledSize(n, kernel[d]!, stride[d]!, padding[d]!, dilation[d]!, false));
    return { value, dims: [conv.outChannels, ...spatial] };
  } finally {
    folded.dispose();
  }
}

/** Shortcut A: subsample at the stride (AveragePool of kernel 1), then zero channels appended. */
function zeroPadShortcut(g: GraphBuilder, name: string, shortcut: ZeroPadShortcut, x: string, dims: number[]): { value: string; dims: number[] } {
  let value = x;
  let spatial = dims.slice(1);
  if (shortcut.stride !== 1) {
    const s = shortcut.stride;
    value = g.node('AveragePool', [value], `${name}.subsample`, { kernel_shape: [1, 1, 1], strides: [s, s, s] });
    spatial = spatial.map((n) => Math.floor((n - 1) / s) + 1);
  }
  const missing = shortcut.outPlanes - dims[0]!;
  if (missing > 0) {
    // Pads are all the begins (N, C, T, H, W), then all the ends: channels get `missing` zeros at the end.
    value = g.node('Pad', [value, g.int64s(`${name}.pads`, [0, 0, 0, 0, 0, 0, missing, 0, 0, 0])], `${name}.pad`);
  }
  return { value, dims: [shortcut.outPlanes, ...spatial] };
}

/** One residual block: branch, optional STC gate, shortcut, then ReLU(identity + branch·gate). */
function residualBlock(g: GraphBuilder, name: string, block: Module, x: string, dims: number[]): { value: string; dims: number[] } {
  let branch: Named[];
  let stc: StcBlock | null = null;
  let downsample: Module | null;
  if (block instanceof BasicBlock || block instanceof Bottleneck) {
    const relu = new ReLU(true);
    branch = block instanceof BasicBlock
      ? [[`${name}.conv1`, block.conv1], [`${name}.bn1`, block.bn1], ['', relu], [`${name}.conv2`, block.conv2], [`${name}.bn2`, block.bn2]]
      : [[`${name}.conv1`, block.conv1], [`${name}.bn1`, block.bn1], ['', relu], [`${name}.conv2`, block.conv2], [`${name}.bn2`, block.bn2], ['', relu],
        [`${name}.conv3`, block.conv3], [`${name}.bn3`, block.bn3]];
    stc = block.stc;
    downsample = block.downsample;
  } else if (block instanceof VideoBasicBlock) {
    branch = [[`${name}.conv1`, block.conv1], [`${name}.conv2`, block.conv2]];
    downsample = block.downsample;
  } else {
    throw new UserError(`stcnet export: ${name}: unsupported block ${block.constructor.name}`);
  }
  const residual = chain(g, branch, x, dims);
  const identity = downsample ? chain(g, [[`${name}.downsample`, downsample]], x, dims).value : x;
  let merged: string;
  if (stc) {
    const gate = stcGate(g, `${name}.stc`, stc, residual.value, residual.dims);
    const gated = g.node('Mul', [residual.value, gate], `${name}.stc.out`);
    merged = g.node('Add', [identity, gated], `${name}.add`);
  } else {
    merged = g.node('Add', [identity, residual.value], `${name}.add`);
  }
  return { value: g.node('Relu', [merged], name), dims: residual.dims };
}

/**
 * The STC gate (s_t + s_s)/2 as N×C×1×1×1 for X of N×C×T×H×W. H,W are pooled once (X seen as
 * N×(C·T)×(H·W), so the SCB input comes out flattened channel-major, index c·T + t, as the model's);
 * the TCB input is the mean over T of those per-frame means, which is the mean over T,H,W.
 */
function stcGate(g: GraphBuilder, name: string, stc: StcBlock, x: string, dims: number[]): string {
  const c = stc.channels;
  const t = stc.temporalSize;
  if (dims[0] !== c || dims[1] !== t) {
    throw new UserError(`stcnet export: ${name} is built for ${c} channels at temporal size ${t}, but the clip gives ${dims[0]}×${dims[1]} there`);
  }
  const frames = g.node('Reshape', [x, g.int64s(`${name}.frames_shape`, [0, c * t, -1])], `${name}.frames`);
  const pooled = g.node('GlobalAveragePool', [frames], `${name}.pool_hw`);
  const scbIn = g.node('Flatten', [pooled], `${name}.scb.in`, { axis: 1 });
  const perChannel = g.node('Reshape', [pooled, g.int64s(`${name}.channels_shape`, [0, c, t])], `${name}.per_channel`);
  const tcbIn = g.node('Flatten', [g.node('GlobalAveragePool', [perChannel], `${name}.pool_t`)], `${name}.tcb.in`, { axis: 1 });
  const branch = (key: 'tcb' | 'scb', input: string) => {
    const hidden = g.node('Relu', [linear(g, `${name}.${key}.fc1`, stc[key].fc1, input)], `${name}.${key}.fc1.relu`);
    return g.node('Sigmoid', [linear(g, `${name}.${key}.fc2`, stc[key].fc2, hidden)], `${name}.${key}.gate`);
  };
  const sum = g.node('Add', [branch('tcb', tcbIn), branch('scb', scbIn)], `${name}.gate_sum`);
  const half = g.floats(`${name}.half`, [], new Float32Array([0.5]));
  const gate = g.node('Mul', [sum, half], `${name}.gate`);
  return g.node('Reshape', [gate, g.int64s(`${name}.gate_shape`, [0, c, 1, 1, 1])], `${name}.gate_5d`);
}

/** y = x·Wᵀ + b as Gemm (transB). */
function linear(g: GraphBuilder, name: string, layer: Linear, x: string, output = name): string {
  const inputs = [x, g.floats(`${name}.weight`, layer.weight.shape, data(layer.weight))];
  if (layer.bias) inputs.push(g.floats(`${name}.bias`, layer.bias.shape, data(layer.bias)));
  return g.node('Gemm', inputs, output, { transB: 1 });
}

/** A weight's values (a contiguous copy: toBuffer reads the tensor in row-major order). */
function data(tensor: Tensor): Float32Array {
  return tensor.toFloat32Array();
}

function expand(value: number | readonly number[], n: number): number[] {
  return typeof value === 'number' ? new Array<number>(n).fill(value) : [...value];
}

function pooledSize(n: number, kernel: number, stride: number, padding: number, dilation: number, ceil: boolean): number {
  const span = n + 2 * padding - dilation * (kernel - 1) - 1;
  return (ceil ? Math.ceil(span / stride) : Math.floor(span / stride)) + 1;
}
