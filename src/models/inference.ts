import { F, noGrad, tidy, type Tensor } from '../engine/index.js';
import {
  Module, Conv3d, Conv2d, BatchNorm3d, BatchNorm2d, ReLU, Sequential, Linear, MaxPool3d, MaxPool2d, Dropout, Identity,
  AdaptiveAvgPool3d, AdaptiveAvgPool2d,
} from '../nn/index.js';
import { ArgumentError } from '../engine/errors.js';
import { callNative } from '../engine/ops.js';
import { BasicBlock, Bottleneck, VideoBasicBlock, ZeroPadShortcut } from './blocks.js';
import type { ZooModel, InputSpec } from './base.js';
import { StagedResNet } from './staged.js';
import { VideoResNet } from './video_resnet.js';
import { StcBlock, type GateBranch } from './stc.js';
import { FoldedConv, UnsupportedModelError, own, type InferenceDType, type InferenceLayout } from './folded_conv.js';
import type { ConvolutionKernel } from './inference_kernels.js';

export type { ConvolutionKernel } from './inference_kernels.js';
export { FoldedConv, UnsupportedModelError, type InferenceDType, type InferenceLayout } from './folded_conv.js';

/**
 * Inference mode, prepared once per model (issue 9). `prepareForInference(model)` builds a
 * separate, frozen network from the model's current weights:
 * - every BatchNorm is folded into the convolution before it (W·γ/σ and a bias β − μ·γ/σ), so
 *   the eval forward makes one pass over memory per convolution instead of two;
 * - ReLU runs in place on the convolution's output; the residual addition, the STC gate and the
 *   final ReLU are one `addcmul_` and one `relu_` on a buffer the block owns (eager: mul, add, relu
 *   into fresh tensors), and without a gate one fused `_add_relu_` pass (blocked layout: `add_`, `relu_`);
 * - layout 'blocked' (the default where libtorch has oneDNN) keeps activations in oneDNN's blocked
 *   layout between layers with the convolution weights packed once; gated blocks convert around their
 *   gate (see FrozenBlock);
 * - the STC block pools H,W once and derives its temporal-branch mean from that (eager pools twice);
 * - the weights carry no autograd state and the forward runs without gradient recording;
 * - dtype 'bfloat16' stores the weights in bf16 and runs the whole network in bf16 (inputs cast on
 *   entry, logits returned in float32): with BatchNorm folded there is no normalisation left that
 *   needs float32 statistics.
 * The original model is left untouched; later changes to its weights are not seen (prepare again).
 */

export interface PrepareForInferenceOptions {
  /** Precision of weights and activations (default float32). bf16 is fast only with AVX-512 BF16 or AMX. */
  dtype?: InferenceDType;
  /**
   * Default: 'blocked' where libtorch has oneDNN (for bf16: and the CPU has AVX-512 BW/VL/DQ,
   * `F.mkldnnBf16Enabled`), else 'dense'. bf16 gains the most from it (measured at
   * batch 1 on an AVX-512 BF16 CPU, stc_resnet3d_18: 46 against 65 ms dense): weights packed once, and
   * oneDNN's pooling, which libtorch 1.13 lacks for plain bf16 tensors.
   */
  layout?: InferenceLayout;
  /**
   * Layout 'blocked': call oneDNN directly where the addon can (F.mkldnnFusionEnabled; default true):
   * convolutions prepared once, residual merges fused into them or done on dense views of the blocked
   * tensors. false runs libtorch's operators only, e.g. to measure what this gains. float32 only: bf16
   * always runs libtorch's operators (stcnet's own oneDNN calls and kernels are float32).
   */
  fusion?: boolean;
  /**
   * With `fusion`: 3×3×3 convolutions at stride 1 by Winograd's F(2³, 3³) algorithm where it is faster
   * than oneDNN's direct one (F.winogradEnabled: AVX2 and FMA; default true). Its logits differ from
   * the direct convolution's by rounding only (≈ 1e-6 of the largest); false keeps the direct one.
   */
  winograd?: boolean;
}


/** A layer the plan runs as the model does (pooling, shortcut A): it has no weights to fold. */
interface Stage {
  forward(x: Tensor): Tensor;
  dispose(): void;
}

/** Whether oneDNN's kernels (blocked layout, pooling) run this dtype here: bf16 needs AVX-512 BW/VL/DQ. */
function oneDnnRuns(dtype: InferenceDType): boolean {
  return dtype === 'float32' ? F.mkldnnEnabled : F.mkldnnBf16Enabled;
}

export class PassThrough implements Stage {
  /** A 3D max pool (no dilation) that oneDNN runs: see forward. */
  private readonly pooledByOneDnn: boolean;
  /** A 3D max pool that F.maxPool3d's own kernel runs in bf16 too (no dilation or ceil mode). */
  private readonly pooledInBf16: boolean;

  constructor(private readonly module: Module, private readonly layout: InferenceLayout = 'dense', dtype: InferenceDType = 'float32') {
    const undilated = module instanceof MaxPool3d && [module.options.dilation ?? 1].flat().every((d) => d === 1);
    this.pooledByOneDnn = oneDnnRuns(dtype) && undilated;
    this.pooledInBf16 = undilated && !(module as MaxPool3d).options.ceilMode;
  }

  forward(x: Tensor): Tensor {
    if (this.pooledByOneDnn && this.layout === 'blocked') return this.module.forward(x);
    if (this.pooledByOneDnn && x.dtype === 'bfloat16') {
      // A dense bf16 input: oneDNN's pool with both conversions beats F.maxPool3d's kernel (1×64×16×56²:
      // 0.9 against 3.1 ms); for float32 it is the other way round (22.7 against 3.3 ms), so that pools here.
      return tidy(() => F.mkldnnToDense(this.module.forward(F.toMkldnn(x.contiguous()))));
    }
    if (x.dtype !== 'bfloat16' || this.pooledInBf16) return this.module.forward(x);
    // libtorch 1.13 has no bf16 CPU kernels for the other poolings: pool in float32.
    return tidy(() => this.module.forward(x.to('float32')).to('bfloat16'));
  }
  dispose(): void {}
}

/** Flattens nested Sequentials into the leaf layers, in order. */
function leaves(modules: readonly Module[]): Module[] {
  return modules.flatMap((m) => (m instanceof Sequential ? leaves(m.layers) : [m]));
}

/** Compiles conv [BN] [ReLU] ... runs into folded convolutions; pooling passes through. */
function compileChain(modules: readonly Module[], dtype: InferenceDType, where: string, layout: InferenceLayout = 'dense',
  fusion = false, winograd = false): Stage[] {
  const layers = leaves(modules).filter((m) => !(m instanceof Identity) && !(m instanceof Dropout));
  const stages: Stage[] = [];
  for (let i = 0; i < layers.length; i++) {
    const layer = layers[i]!;
    if (layer instanceof Conv3d || layer instanceof Conv2d) {
      const next = layers[i + 1];
      const bn = next instanceof BatchNorm3d || next instanceof BatchNorm2d ? next : null;
      if (bn) i++;
      const relu = layers[i + 1] instanceof ReLU;
      if (relu) i++;
      stages.push(new FoldedConv(layer, bn, relu, dtype, layout, fusion, winograd));
    } else if (layer instanceof MaxPool3d || layer instanceof MaxPool2d || layer instanceof ZeroPadShortcut) {
      stages.push(new PassThrough(layer, layout, dtype));
    } else {
      throw new UnsupportedModelError(`prepareForInference: ${where}: cannot fold a ${layer.constructor.name} here (expected convolution, BatchNorm, ReLU or pooling)`);
    }
  }
  return stages;
}

/** Runs stages in order, freeing each intermediate (never `input`, which the caller owns). */
function runChain(stages: readonly Stage[], input: Tensor): Tensor {
  let current = input;
  for (const stage of stages) {
    const next = stage.forward(current);
    if (current !== input && next !== current) current.dispose();
    current = next;
  }
  return current;
}

class FrozenLinear {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  constructor(linear: Linear, dtype: InferenceDType) {
    this.weight = own(linear.weight, dtype);
    this.bias = linear.bias ? own(linear.bias, dtype) : null;
  }
  forward(x: Tensor): Tensor {
    return F.linear(x, this.weight, this.bias);
  }
  dispose(): void {
    this.weight.dispose();
    this.bias?.dispose();
  }
}

/** The STC gate (s_t + s_s)/2 as N×C×1×1×1, pooling H,W once for both branches. */
export class FrozenStc {
  private readonly branches: [FrozenLinear, FrozenLinear][];
  /** F.mkldnnStcMerge computes the gate in float32: a bf16 network keeps float32 copies of its (small) FCs for it. */
  private readonly mergeBranches: [FrozenLinear, FrozenLinear][];
  constructor(private readonly stc: StcBlock, dtype: InferenceDType) {
    const branches = (type: InferenceDType): [FrozenLinear, FrozenLinear][] =>
      [stc.tcb, stc.scb].map((b: GateBranch): [FrozenLinear, FrozenLinear] => [new FrozenLinear(b.fc1, type), new FrozenLinear(b.fc2, type)]);
    this.branches = branches(dtype);
    this.mergeBranches = dtype === 'float32' ? this.branches : branches('float32');
  }

  /** [tcb.fc1.weight, tcb.fc1.bias, tcb.fc2.weight, tcb.fc2.bias, then scb's] in float32, for F.mkldnnStcMerge. */
  get weights(): (Tensor | null)[] {
    return this.mergeBranches.flatMap((pair) => pair.flatMap((linear) => [linear.weight, linear.bias]));
  }

  /** Throws the model's own error for a clip length other than the block's. */
  checkFrames(x: Tensor): void {
    if (x.shape[2] !== this.stc.temporalSize) this.stc.gate(x);
  }

  gate(x: Tensor): Tensor {
    this.checkFrames(x);
    const [n, c] = x.shape as [number, number];
    return tidy(() => {
      const pooled = x.mean([3, 4]);                   // N×C×T
      const [tcb, scb] = this.branches;
      // The mean over T of per-frame means is the mean over T,H,W (every frame has H·W values).
      const st = tcb[1].forward(tcb[0].forward(pooled.mean(2)).relu_()).sigmoid();
      const ss = scb[1].forward(scb[0].forward(pooled.flatten(1)).relu_()).sigmoid();
      return st.add_(ss).mul_(0.5).view([n, c, 1, 1, 1]);
    });
  }

  dispose(): void {
    for (const pair of new Set([...this.branches, ...this.mergeBranches])) for (const linear of pair) linear.dispose();
  }
}

/** One residual block: branch convolutions, optional STC gate, shortcut, fused merge. */
export class FrozenBlock implements Stage {
  /** Layout 'blocked': the shortcut (type A: pool and zero-pad) runs on a plain tensor. */
  private readonly plainShortcut: boolean;

  /**
   * Layout 'blocked' with `fusion` where the addon calls oneDNN directly (F.mkldnnFusionEnabled): the
   * residual sum and final ReLU of a gateless block run inside its last convolution, and a gated block's
   * gate and merge are one native call on the blocked layout, so that every block stays in it.
   */
  private readonly fused: boolean;

  /**
   * Layout 'blocked' without `fused` (bf16, whose convolutions are libtorch's): a gated block's gate and
   * merge are still the one native call on the blocked layout (F.mkldnnStcMerge takes bf16 too).
   */
  private readonly nativeGate: boolean;

  /**
   * `inputBlocked`: the block receives an MKLDNN tensor. With layout 'blocked' the convolutions and
   * a gateless merge stay in oneDNN's layout; without a native gate, the STC gate pools over H,W and its
   * merge broadcasts, which libtorch's oneDNN kernels do not, so a gated block converts there and
   * returns a plain tensor (as frozen TorchScript does): see `outputBlocked`.
   */
  constructor(private readonly branch: Stage[], private readonly stc: FrozenStc | null, private readonly shortcut: Stage[],
    private readonly layout: InferenceLayout = 'dense', private readonly inputBlocked = false, fusion = false) {
    this.plainShortcut = shortcut.some((stage) => stage instanceof PassThrough);
    const last = branch[branch.length - 1];
    // The native gated merge needs whole channel blocks (8 or 16 channels by the CPU's ISA).
    const wholeBlocks = last instanceof FoldedConv && last.weight.shape[0]! % 16 === 0;
    this.fused = fusion && layout === 'blocked' && F.mkldnnFusionEnabled && branch.length > 1 && last instanceof FoldedConv && !last.relu &&
      (stc === null || wholeBlocks);
    this.nativeGate = !this.fused && layout === 'blocked' && F.mkldnnFusionEnabled && stc !== null && wholeBlocks;
  }

  get outputBlocked(): boolean {
    return this.layout === 'blocked' && (this.stc === null || this.fused || this.nativeGate);
  }

  /** Takes ownership of x (frees it), as the blocks in the plan always own their input. */
  forward(x: Tensor): Tensor {
    if (this.fused) return this.forwardFused(x);
    if (this.layout === 'blocked') return this.forwardBlocked(x);
    const residual = runChain(this.branch, x);
    let identity = x;
    if (this.shortcut.length > 0) {
      identity = runChain(this.shortcut, x);
      x.dispose();
    }
    return this.mergeInto(identity, residual);
  }

  /**
   * identity ← ReLU(identity + residual · gate), in place on the identity buffer, which the block
   * owns: addcmul_ then relu_ with a gate, one fused add-and-ReLU pass (aten::_add_relu_) without.
   */
  private mergeInto(identity: Tensor, residual: Tensor): Tensor {
    if (this.stc) {
      const gate = this.stc.gate(residual);
      identity.addcmul_(residual, gate).relu_();
      gate.dispose();
    } else if (identity.dtype === 'float32') {
      callNative('aten::_add_relu_.Tensor', [identity.handle, residual.handle, 1], true);
    } else {
      identity.add_(residual).relu_();  // libtorch 1.13's add_relu kernel takes no bf16
    }
    residual.dispose();
    return identity;
  }

  /** forward in layout 'blocked': each tensor's layout is known here, and converted only where needed. */
  private forwardBlocked(x: Tensor): Tensor {
    const out = tidy(() => {
      const xBlocked = this.inputBlocked ? x : F.toMkldnn(x);
      const residual = runChain(this.branch, xBlocked);
      const denseGate = this.stc !== null && !this.nativeGate;
      let identity: Tensor;
      let identityBlocked: boolean;
      if (this.shortcut.length === 0) {
        // The identity is the input: as it came for a merge on dense tensors (converted below if
        // blocked), the blocked copy for one on the blocked layout.
        identity = this.inputBlocked || denseGate ? x : xBlocked;
        identityBlocked = this.inputBlocked || !denseGate;
      } else if (this.plainShortcut) {
        identity = runChain(this.shortcut, this.inputBlocked ? F.mkldnnToDense(x) : x);
        identityBlocked = false;
      } else {
        identity = runChain(this.shortcut, xBlocked);
        identityBlocked = true;
      }
      if (this.nativeGate) return this.mergeGated(identityBlocked ? identity : F.toMkldnn(identity), residual);
      if (this.stc) {
        const plainResidual = F.mkldnnToDense(residual);
        const plainIdentity = identityBlocked ? F.mkldnnToDense(identity) : identity;
        return plainIdentity.addcmul_(plainResidual, this.stc.gate(plainResidual)).relu_();
      }
      // No fused add-and-ReLU for MKLDNN tensors in libtorch 1.13: two in-place passes.
      return (identityBlocked ? identity : F.toMkldnn(identity)).add_(residual).relu_();
    });
    if (out !== x) x.dispose();
    return out;
  }

  /** forward with oneDNN's fused merges: takes and returns MKLDNN tensors (see `fused`). */
  private forwardFused(x: Tensor): Tensor {
    const out = tidy(() => {
      const xBlocked = this.inputBlocked ? x : F.toMkldnn(x);
      // The identity as an MKLDNN tensor (a type-A shortcut pools and zero-pads a plain tensor).
      const identity = this.shortcut.length === 0 ? xBlocked
        : this.plainShortcut ? F.toMkldnn(runChain(this.shortcut, this.inputBlocked ? F.mkldnnToDense(x) : x))
        : runChain(this.shortcut, xBlocked);
      if (this.stc) return this.mergeGated(identity, runChain(this.branch, xBlocked));
      const last = this.branch[this.branch.length - 1] as FoldedConv;
      return last.forwardAddRelu(runChain(this.branch.slice(0, -1), xBlocked), identity);
    });
    if (out !== x) x.dispose();
    return out;
  }

  /**
   * residual ← ReLU(identity + residual · gate) in place on residual's blocked memory, the gate's
   * pooling and FCs included (F.mkldnnStcMerge): one pass to pool, one to merge, nothing converted.
   */
  private mergeGated(identity: Tensor, residual: Tensor): Tensor {
    this.stc!.checkFrames(residual);
    return F.mkldnnStcMerge(residual, identity, this.stc!.weights);
  }

  /** The block's convolutions (branch, then shortcut). */
  get convolutions(): FoldedConv[] {
    return [...this.branch, ...this.shortcut].filter((stage): stage is FoldedConv => stage instanceof FoldedConv);
  }

  dispose(): void {
    for (const stage of [...this.branch, ...this.shortcut]) stage.dispose();
    this.stc?.dispose();
  }
}

function compileBlock(block: Module, dtype: InferenceDType, where: string, layout: InferenceLayout, inputBlocked: boolean,
  fusion: boolean, winograd: boolean): FrozenBlock {
  const chain = (modules: Module[], at: string): Stage[] => compileChain(modules, dtype, at, layout, fusion, winograd);
  if (block instanceof BasicBlock || block instanceof Bottleneck) {
    const relu = new ReLU(true);
    const branch = block instanceof BasicBlock
      ? [block.conv1, block.bn1, relu, block.conv2, block.bn2]
      : [block.conv1, block.bn1, relu, block.conv2, block.bn2, relu, block.conv3, block.bn3];
    return new FrozenBlock(chain(branch, where), block.stc ? new FrozenStc(block.stc, dtype) : null,
      block.downsample ? chain([block.downsample], `${where}.downsample`) : [], layout, inputBlocked, fusion);
  }
  if (block instanceof VideoBasicBlock) {
    return new FrozenBlock(chain([block.conv1, block.conv2], where), null,
      block.downsample ? chain([block.downsample], `${where}.downsample`) : [], layout, inputBlocked, fusion);
  }
  throw new UnsupportedModelError(`prepareForInference: ${where}: unsupported block ${block.constructor.name}`);
}

/** A model prepared for inference: `forward(x)` gives float32 logits N×classes, no gradients. */
export class InferenceModel {
  readonly arch: string;
  readonly input: InputSpec;
  readonly numClasses: number;
  #disposed = false;

  /** The last block's output is an MKLDNN tensor (layout 'blocked'). */
  private readonly outputBlocked: boolean;

  constructor(private readonly model: ZooModel, readonly dtype: InferenceDType, readonly layout: InferenceLayout,
    private readonly stem: Stage[], private readonly blocks: FrozenBlock[], private readonly fc: FrozenLinear) {
    this.outputBlocked = blocks.length > 0 ? blocks[blocks.length - 1]!.outputBlocked : layout === 'blocked';
    this.arch = model.arch;
    this.input = model.input;
    this.numClasses = model.numClasses;
  }

  /** Pooled features N×numFeatures (in the network's dtype). */
  forwardFeatures(x: Tensor): Tensor {
    if (this.#disposed) throw new ArgumentError(`${this.arch} (inference): used after dispose()`);
    (this.model as unknown as { checkInput(x: Tensor): void }).checkInput(x);
    return noGrad(() => tidy(() => {
      const converted = x.dtype === this.dtype ? x : x.to(this.dtype);
      const input = this.layout === 'blocked' ? F.toMkldnn(converted) : converted;
      let out = runChain(this.stem, input);
      if (out === input && input === x) out = x.clone();  // blocks write into their input; never into the caller's
      for (const block of this.blocks) out = block.forward(out);
      if (this.outputBlocked) out = F.mkldnnToDense(out);
      const spatial = Array.from({ length: out.rank - 2 }, (_, i) => i + 2);
      return out.mean(spatial);
    }));
  }

  /** Logits N×classes in float32. */
  forward(x: Tensor): Tensor {
    return noGrad(() => tidy(() => {
      const logits = this.fc.forward(this.forwardFeatures(x));
      return logits.dtype === 'float32' ? logits : logits.to('float32');
    }));
  }

  /**
   * How many convolutions each kernel computes: { direct, winograd, grouped }. Winograd is counted once an
   * input has used it (it is chosen per input size, docs/performance.md).
   */
  convolutionKernels(): Record<ConvolutionKernel, number> {
    const counts: Record<ConvolutionKernel, number> = { direct: 0, winograd: 0, grouped: 0, planar: 0 };
    const stemConvolutions = this.stem.filter((stage): stage is FoldedConv => stage instanceof FoldedConv);
    for (const conv of [...stemConvolutions, ...this.blocks.flatMap((block) => block.convolutions)]) counts[conv.kernel]++;
    return counts;
  }

  /** Frees the prepared weights (the original model keeps its own). */
  dispose(): void {
    if (this.#disposed) return;
    this.#disposed = true;
    for (const stage of [...this.stem, ...this.blocks]) stage.dispose();
    this.fc.dispose();
  }
}

/**
 * A frozen inference network from `model`'s current weights: BatchNorm folded into the convolutions,
 * fused merges, no autograd; float32 or bfloat16. Supports the Hara-style 3D/2D ResNets and ResNeXts
 * (with or without STC) and torchvision's video ResNets (R3D, MC3, R(2+1)D).
 */
export function prepareForInference(model: ZooModel, options: PrepareForInferenceOptions = {}): InferenceModel {
  const dtype = options.dtype ?? 'float32';
  if (dtype !== 'float32' && dtype !== 'bfloat16') throw new ArgumentError(`prepareForInference: dtype must be 'float32' or 'bfloat16', got ${JSON.stringify(dtype)}`);
  const blockedSupported = oneDnnRuns(dtype);
  const layout = options.layout ?? (blockedSupported ? 'blocked' : 'dense');
  for (const name of ['fusion', 'winograd'] as const) {
    if (options[name] !== undefined && typeof options[name] !== 'boolean') throw new ArgumentError(`prepareForInference: ${name} must be true or false, got ${JSON.stringify(options[name])}`);
  }
  if (layout !== 'blocked' && layout !== 'dense') throw new ArgumentError(`prepareForInference: layout must be 'blocked' or 'dense', got ${JSON.stringify(layout)}`);
  if (layout === 'blocked' && !blockedSupported) {
    throw new ArgumentError(F.mkldnnEnabled
      ? `prepareForInference: layout 'blocked' in bf16 needs a CPU with AVX-512 BW, VL and DQ (oneDNN's bf16 kernels); use layout 'dense'`
      : `prepareForInference: layout 'blocked' needs a libtorch built with oneDNN (this one is not)`);
  }
  for (const [, parameter] of model.namedParameters()) {
    if (parameter.device !== 'cpu') throw new ArgumentError(`prepareForInference: the model is on ${parameter.device}; inference mode is prepared on the CPU (move the model with .to('cpu') first)`);
    break;
  }
  // stcnet's prepared oneDNN convolutions, merges and kernels are float32: bf16 runs libtorch's operators.
  const fusion = dtype === 'float32' && (options.fusion ?? true);
  const winograd = options.winograd ?? true;
  return noGrad(() => {
    let stem: Stage[];
    let layers: Sequential[];
    let avgpool: Module;
    if (model instanceof StagedResNet) {
      stem = compileChain([model.conv1, model.bn1, new ReLU(true), ...(model.maxpool ? [model.maxpool] : [])], dtype, 'stem', layout, fusion, winograd);
      layers = [model.layer1, model.layer2, model.layer3, model.layer4];
      avgpool = model.avgpool;
    } else if (model instanceof VideoResNet) {
      stem = compileChain([model.stem], dtype, 'stem', layout, fusion, winograd);
      layers = [model.layer1, model.layer2, model.layer3, model.layer4];
      avgpool = model.avgpool;
    } else {
      throw new UnsupportedModelError(`prepareForInference: unsupported model ${model.arch} (expected a ResNet/ResNeXt, STC or torchvision video ResNet)`);
    }
    const global = (avgpool instanceof AdaptiveAvgPool3d || avgpool instanceof AdaptiveAvgPool2d) && [avgpool.outputSize].flat().every((size) => size === 1);
    if (!global) {
      throw new UnsupportedModelError(`prepareForInference: ${model.arch}: expected a global average pool before fc`);
    }
    let blocked = layout === 'blocked';
    const blocks = layers.flatMap((layer, s) => layer.layers.map((block, i) => {
      const frozen = compileBlock(block, dtype, `layer${s + 1}.${i}`, layout, blocked, fusion, winograd);
      blocked = frozen.outputBlocked;
      return frozen;
    }));
    return new InferenceModel(model, dtype, layout, stem, blocks, new FrozenLinear(model.fc, dtype));
  });
}

/**
 * `prepareForInference(model)` where the model's family supports it, else null (the caller runs the
 * eval-mode model); any other failure (bad options, a libtorch error) is thrown.
 */
export function prepareIfSupported(model: ZooModel, options: PrepareForInferenceOptions = {}): InferenceModel | null {
  try {
    return prepareForInference(model, options);
  } catch (error) {
    if (error instanceof UnsupportedModelError) return null;
    throw error;
  }
}
