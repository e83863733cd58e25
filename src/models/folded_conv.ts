import { F, keep, tidy, type Tensor } from '../engine/index.js';
import { Conv3d, Conv2d, BatchNorm3d, BatchNorm2d, ReLU } from '../nn/index.js';
import { ArgumentError } from '../engine/errors.js';
import { fourChannelGroups, winogradShape, oneFrameShape, planarOptions, type ConvolutionKernel } from './inference_kernels.js';

/**
 * The prepared network's convolutions (see inference.ts): each with the BatchNorm after it folded in,
 * on the kernel that runs its shape fastest.
 */

export type InferenceDType = 'float32' | 'bfloat16';

/** A model whose family or structure prepareForInference does not cover (an ArgumentError). */
export class UnsupportedModelError extends ArgumentError {}

/**
 * Where activations live between layers: 'blocked' keeps them in oneDNN's blocked layout with the
 * convolution weights reordered once (as frozen TorchScript does); 'dense' uses plain tensors.
 */
export type InferenceLayout = 'blocked' | 'dense';

/** A tensor the network owns: exempt from the caller's tidy() scopes, without autograd history. */
export function own(tensor: Tensor, dtype: InferenceDType): Tensor {
  // A copy (clone), so that later in-place changes to the model's parameters do not leak in.
  return tidy(() => keep(tensor.detach().to(dtype).contiguous().clone()));
}

/** W·γ/√(σ²+ε) and β − μ·γ/√(σ²+ε), folded in float64 so that the result is the correctly rounded product. */
function foldBatchNorm(conv: Conv3d | Conv2d, bn: BatchNorm3d | BatchNorm2d, dtype: InferenceDType): { weight: Tensor; bias: Tensor } {
  if (!bn.runningMean || !bn.runningVar) throw new UnsupportedModelError('prepareForInference: a BatchNorm without running statistics cannot be folded');
  return tidy(() => {
    const scale = bn.runningVar!.double().add(bn.eps).rsqrt().mul(bn.weight ? bn.weight.double() : 1);
    const shape = [scale.size(0), ...new Array<number>(conv.weight.rank - 1).fill(1)];
    const weight = conv.weight.double().mul(scale.view(shape));
    const convBias = conv.bias ? conv.bias.double() : 0;
    const bias = scale.mul(bn.runningMean!.double().neg().add(convBias)).add(bn.bias ? bn.bias.double() : 0);
    return { weight: own(weight, dtype), bias: own(bias, dtype) };
  });
}

/**
 * A convolution with the BatchNorm after it (if any) folded in, and an optional ReLU. The plan's
 * classes are exported for bench/infer/profile.ts (per-stage timing), not through the models index.
 */
export class FoldedConv {
  readonly weight: Tensor;
  readonly bias: Tensor | null;
  private readonly options: F.ConvOptions;
  private readonly dims: 2 | 3;
  /** A strided 1×1(×1) convolution (the shortcut's), dense layout: the input is subsampled first, see forward. */
  private readonly subsample: number[] | null = null;
  /** Layout 'blocked' where the addon calls oneDNN directly: the convolution prepared once. */
  private readonly prepared: F.MkldnnConvolution | null = null;
  /** A 3×3×3 convolution at stride 1 with `winograd` asked for: Winograd's algorithm may run it (see winogradFor). */
  private readonly winogradShaped: boolean = false;
  /** Made at the first input where Winograd pays: its transformed weights are 2.4× the weight's size. */
  private winograd: F.WinogradConvolution | null = null;
  /** Beside `prepared`, for a 3×3×3 convolution at stride 1 in groups of 4 channels (ResNeXt-101's first stage). */
  private readonly grouped: F.GroupedConvolution | null = null;
  /** A convolution that one-frame inputs reach with its middle temporal tap only (oneFrameShape). */
  private readonly planarShaped: boolean = false;
  /** That tap as a prepared 1×kh×kw convolution, made at the first one-frame input. */
  private planar: F.MkldnnConvolution | null = null;

  /**
   * With layout 'blocked' the convolution takes and returns MKLDNN tensors and `weight` holds the
   * folded weight in oneDNN's packed format.
   */
  constructor(conv: Conv3d | Conv2d, bn: BatchNorm3d | BatchNorm2d | null, readonly relu: boolean, dtype: InferenceDType,
    readonly layout: InferenceLayout = 'dense', fusion = false, winograd = false) {
    this.dims = conv.dims;
    this.options = { ...conv.options };
    const stride = [conv.options.stride].flat();
    const pointwise = conv.weight.shape.slice(2).every((k) => k === 1) && [conv.options.padding].flat().every((p) => p === 0);
    if (layout === 'dense' && pointwise && stride.some((s) => s > 1)) {
      this.subsample = stride.length === 1 ? new Array<number>(conv.dims).fill(stride[0]!) : stride;
      this.options = { ...conv.options, stride: 1 };
    }
    const folded = bn ? foldBatchNorm(conv, bn, dtype) : { weight: own(conv.weight, dtype), bias: conv.bias ? own(conv.bias, dtype) : null };
    this.bias = folded.bias;
    if (layout === 'dense') {
      this.weight = folded.weight;
      return;
    }
    this.weight = keep(F.mkldnnPackConvWeight(folded.weight, this.options, this.dims));
    if (fusion && F.mkldnnFusionEnabled) {
      this.prepared = new F.MkldnnConvolution(this.weight, this.bias, this.options, this.dims);
      this.winogradShaped = winograd && F.winogradEnabled && winogradShape(conv);
      if (F.groupedConvolutionEnabled && fourChannelGroups(conv)) this.grouped = new F.GroupedConvolution(folded.weight, this.bias);
      this.planarShaped = oneFrameShape(conv);
    }
    folded.weight.dispose();
  }

  forward(x: Tensor): Tensor {
    if (this.grouped) return this.grouped.forward(x, { relu: this.relu });
    const winograd = this.winogradFor(x);
    if (winograd) return winograd.forward(x, { relu: this.relu });
    const planar = this.planarFor(x);
    const y = planar ? planar.forward(x) : this.subsample ? tidy(() => this.convolve(this.strided(x))) : this.convolve(x);
    return this.relu ? y.relu_() : y;
  }

  /**
   * ReLU(conv(x) + identity) in the convolution's own pass (oneDNN sum and ReLU post-ops), into
   * identity's buffer: layout 'blocked' with F.mkldnnFusionEnabled, identity an MKLDNN tensor the
   * caller gives up.
   */
  forwardAddRelu(x: Tensor, identity: Tensor): Tensor {
    if (!this.prepared) throw new ArgumentError('FoldedConv.forwardAddRelu: needs layout \'blocked\' and F.mkldnnFusionEnabled');
    const winograd = this.winogradFor(x);
    if (winograd) return winograd.forward(x, { residual: identity, relu: true });
    return (this.planarFor(x) ?? this.prepared).forwardAddRelu(x, identity);
  }

  /**
   * Which kernel computes this convolution: 'grouped' (F.GroupedConvolution), 'winograd' (F.WinogradConvolution),
   * 'planar' (the middle temporal tap, for one-frame inputs), the last two once an input has used them; else
   * 'direct' (oneDNN's or libtorch's).
   */
  get kernel(): ConvolutionKernel {
    return this.grouped ? 'grouped' : this.winograd ? 'winograd' : this.planar ? 'planar' : 'direct';
  }

  /** The middle temporal tap's convolution for a one-frame x, made on first use; else null. */
  private planarFor(x: Tensor): F.MkldnnConvolution | null {
    if (!this.planarShaped || x.shape[2] !== 1) return null;
    this.planar ??= tidy(() => {
      const middle = F.mkldnnToDense(this.weight).narrow(2, (this.weight.shape[2]! - 1) / 2, 1).contiguous();
      const options = planarOptions(this.options);
      return new F.MkldnnConvolution(F.mkldnnPackConvWeight(middle, options, 3), this.bias, options, 3);
    });
    return this.planar;
  }

  /** The Winograd convolution where it is faster than the direct one for x, made on first use; else null. */
  private winogradFor(x: Tensor): F.WinogradConvolution | null {
    if (!this.winogradShaped || !F.winogradPays(x.shape, this.weight.shape[0]!)) return null;
    this.winograd ??= tidy(() => new F.WinogradConvolution(F.mkldnnToDense(this.weight), this.bias));
    return this.winograd;
  }

  private convolve(x: Tensor): Tensor {
    if (this.prepared) return this.prepared.forward(x);
    if (this.layout === 'blocked') return F.mkldnnConv(x, this.weight, this.bias, this.options, this.dims);
    return this.dims === 3 ? F.conv3d(x, this.weight, this.bias, this.options) : F.conv2d(x, this.weight, this.bias, this.options);
  }

  /**
   * A 1×1×1 convolution at stride s reads every s-th position only: picking those first (one
   * contiguous copy of 1/8 of the input) and convolving at stride 1 gave best-of-N times 0.5–0.9× the
   * strided convolution's for the three shortcut shapes (batch 1 and 8) on the shared 2-core machine,
   * whose medians were too noisy to compare; recheck on a quiet machine.
   */
  private strided(x: Tensor): Tensor {
    let out = x;
    this.subsample!.forEach((step, i) => { if (step > 1) out = out.slice(i + 2, 0, undefined, step); });
    return out.contiguous();
  }

  dispose(): void {
    this.prepared?.dispose();
    this.winograd?.dispose();
    this.grouped?.dispose();
    this.planar?.dispose();
    this.weight.dispose();
    this.bias?.dispose();
  }
}
