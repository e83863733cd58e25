import { noGrad, type Tensor } from '../engine/index.js';

/**
 * Weight initialisers, as torch.nn.init: each fills a tensor in place (without recording
 * gradients) and returns it.
 */
let skipInitialisation = false;

/**
 * Builds modules without filling their weights (left uninitialised): for models whose weights
 * are loaded right after, or only counted. Every initialiser below is a no-op inside.
 */
export function withoutInitialisation<T>(build: () => T): T {
  const previous = skipInitialisation;
  skipInitialisation = true;
  try {
    return build();
  } finally {
    skipInitialisation = previous;
  }
}

export type FanMode = 'fan_in' | 'fan_out';
export type Nonlinearity = 'relu' | 'leaky_relu' | 'linear' | 'sigmoid' | 'tanh';

/** fan_in = input channels × receptive field, fan_out = output channels × receptive field. */
export function fans(tensor: Tensor): { fanIn: number; fanOut: number } {
  const shape = tensor.shape;
  if (shape.length < 2) throw new Error(`fans: need at least 2 dimensions, got [${shape.join(', ')}]`);
  const receptiveField = shape.slice(2).reduce((a, b) => a * b, 1);
  return { fanIn: shape[1]! * receptiveField, fanOut: shape[0]! * receptiveField };
}

export function gain(nonlinearity: Nonlinearity, negativeSlope = 0.01): number {
  switch (nonlinearity) {
    case 'relu': return Math.SQRT2;
    case 'leaky_relu': return Math.sqrt(2 / (1 + negativeSlope ** 2));
    case 'tanh': return 5 / 3;
    default: return 1;
  }
}

export function uniform_(tensor: Tensor, low: number, high: number): Tensor {
  return skipInitialisation ? tensor : noGrad(() => tensor.uniform_(low, high));
}

export function normal_(tensor: Tensor, mean = 0, std = 1): Tensor {
  return skipInitialisation ? tensor : noGrad(() => tensor.normal_(mean, std));
}

export function constant_(tensor: Tensor, value: number): Tensor {
  return skipInitialisation ? tensor : noGrad(() => tensor.fill_(value));
}

export function zeros_(tensor: Tensor): Tensor {
  return constant_(tensor, 0);
}

export function ones_(tensor: Tensor): Tensor {
  return constant_(tensor, 1);
}

export interface KaimingOptions {
  mode?: FanMode;
  nonlinearity?: Nonlinearity;
  /** The negative slope of a leaky ReLU (PyTorch's `a`). */
  a?: number;
}

/** He et al.: N(0, gain / √fan). Hara et al. use mode fan_out, ReLU, for every convolution. */
export function kaimingNormal_(tensor: Tensor, options: KaimingOptions = {}): Tensor {
  const { fanIn, fanOut } = fans(tensor);
  const fan = (options.mode ?? 'fan_in') === 'fan_in' ? fanIn : fanOut;
  const std = gain(options.nonlinearity ?? 'leaky_relu', options.a ?? 0) / Math.sqrt(fan);
  return normal_(tensor, 0, std);
}

export function kaimingUniform_(tensor: Tensor, options: KaimingOptions = {}): Tensor {
  const { fanIn, fanOut } = fans(tensor);
  const fan = (options.mode ?? 'fan_in') === 'fan_in' ? fanIn : fanOut;
  const bound = Math.sqrt(3) * gain(options.nonlinearity ?? 'leaky_relu', options.a ?? 0) / Math.sqrt(fan);
  return uniform_(tensor, -bound, bound);
}

export function xavierUniform_(tensor: Tensor, gainValue = 1): Tensor {
  const { fanIn, fanOut } = fans(tensor);
  const bound = gainValue * Math.sqrt(6 / (fanIn + fanOut));
  return uniform_(tensor, -bound, bound);
}

/**
 * PyTorch's default for Conv and Linear layers: kaiming_uniform_(a=√5) on the weight, which is
 * U(-1/√fan_in, 1/√fan_in), and the same bound for the bias.
 */
export function defaultLayerInit_(weight: Tensor, bias: Tensor | null): void {
  kaimingUniform_(weight, { a: Math.sqrt(5) });
  if (bias) {
    const bound = 1 / Math.sqrt(fans(weight).fanIn);
    uniform_(bias, -bound, bound);
  }
}
