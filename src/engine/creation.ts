import { native } from './native.js';
import { callNative } from './ops.js';
import { ArgumentError } from './errors.js';
import { SCALAR_TYPE_CODE, dtypeOfTypedArray, bytesPerElement, checkDType, type DType } from './dtype.js';
import { Tensor, t, type Device, type Shape } from './tensor.js';

export interface TensorOptions {
  dtype?: DType;
  device?: Device;
  requiresGrad?: boolean;
}

/** Nested arrays of numbers, as `tensor([[1, 2], [3, 4]])` takes them. */
export type NestedArray = number | boolean | NestedArray[];

function finish(tensor: Tensor, options: TensorOptions): Tensor {
  let result = tensor;
  if (options.device && options.device !== 'cpu') {
    result = tensor.to(options.device);
    tensor.dispose();
  }
  if (options.requiresGrad) result.requiresGrad = true;
  return result;
}

function factoryArgs(options: TensorOptions, defaultDtype: DType | null = 'float32'): unknown[] {
  const dtype = options.dtype ?? defaultDtype;
  return [dtype === null ? null : SCALAR_TYPE_CODE[dtype], null, options.device ?? null, null];
}

function checkShape(shape: Shape, what: string): Shape {
  if (!Array.isArray(shape) || !shape.every((size) => Number.isInteger(size) && size >= 0)) {
    throw new ArgumentError(`${what}: shape must be an array of non-negative integers, got ${JSON.stringify(shape)}`);
  }
  return shape;
}

/**
 * A tensor from a typed array (one copy) with the given shape; the dtype follows the array
 * (pass `dtype` for float16/bfloat16 bits in a Uint16Array, or for bool in a Uint8Array).
 */
export function fromTypedArray(data: ArrayBufferView, shape?: Shape, options: TensorOptions = {}): Tensor {
  const dtype = options.dtype ?? dtypeOfTypedArray(data);
  const elements = data.byteLength / bytesPerElement(dtype);
  const targetShape = checkShape(shape ?? [elements], 'fromTypedArray');
  const expected = targetShape.reduce((a, b) => a * b, 1);
  if (expected !== elements) {
    throw new ArgumentError(`fromTypedArray: shape [${targetShape.join(', ')}] needs ${expected} elements, the array holds ${elements}`);
  }
  return finish(new Tensor(native.fromBuffer(data, targetShape, dtype)), options);
}

function flattenNested(data: NestedArray, shape: number[], values: number[], depth: number): void {
  if (Array.isArray(data)) {
    if (shape.length === depth) shape.push(data.length);
    else if (shape[depth] !== data.length) throw new ArgumentError(`tensor: ragged nested array at depth ${depth}`);
    for (const item of data) flattenNested(item, shape, values, depth + 1);
  } else {
    if (shape.length !== depth) throw new ArgumentError(`tensor: ragged nested array at depth ${depth}`);
    values.push(typeof data === 'boolean' ? Number(data) : data);
  }
}

/** A tensor from (nested) numbers; float32 unless `dtype` says otherwise. */
export function tensor(data: NestedArray, options: TensorOptions = {}): Tensor {
  const shape: number[] = [];
  const values: number[] = [];
  flattenNested(data, shape, values, 0);
  const dtype = options.dtype ?? 'float32';
  let array: ArrayBufferView;
  switch (dtype) {
    case 'float64': array = Float64Array.from(values); break;
    case 'int64': array = BigInt64Array.from(values, (v) => BigInt(Math.trunc(v))); break;
    case 'int32': array = Int32Array.from(values); break;
    case 'int16': array = Int16Array.from(values); break;
    case 'int8': array = Int8Array.from(values); break;
    case 'uint8': case 'bool': array = Uint8Array.from(values, (v) => (dtype === 'bool' ? Number(v !== 0) : v)); break;
    default: array = Float32Array.from(values);
  }
  if (dtype === 'float16' || dtype === 'bfloat16') {
    const asFloat = new Tensor(native.fromBuffer(array, shape, 'float32'));
    const converted = asFloat.to(dtype);
    asFloat.dispose();
    return finish(converted, options);
  }
  return finish(new Tensor(native.fromBuffer(array, shape, dtype)), options);
}

/** A 0-dimensional tensor holding one number. */
export function scalar(value: number, options: TensorOptions = {}): Tensor {
  return finish(t(callNative('aten::scalar_tensor', [value, ...factoryArgs(options)])), { requiresGrad: options.requiresGrad });
}

export function zeros(shape: Shape, options: TensorOptions = {}): Tensor {
  return finish(t(callNative('aten::zeros', [checkShape(shape, 'zeros'), ...factoryArgs(options)])), { requiresGrad: options.requiresGrad });
}

export function ones(shape: Shape, options: TensorOptions = {}): Tensor {
  return finish(t(callNative('aten::ones', [checkShape(shape, 'ones'), ...factoryArgs(options)])), { requiresGrad: options.requiresGrad });
}

export function full(shape: Shape, value: number, options: TensorOptions = {}): Tensor {
  return finish(t(callNative('aten::full', [checkShape(shape, 'full'), value, ...factoryArgs(options)])), { requiresGrad: options.requiresGrad });
}

export function empty(shape: Shape, options: TensorOptions = {}): Tensor {
  return finish(t(callNative('aten::empty.memory_format', [checkShape(shape, 'empty'), ...factoryArgs(options)])), { requiresGrad: options.requiresGrad });
}

/** Uniform samples in [0, 1). */
export function rand(shape: Shape, options: TensorOptions = {}): Tensor {
  return finish(t(callNative('aten::rand', [checkShape(shape, 'rand'), ...factoryArgs(options)])), { requiresGrad: options.requiresGrad });
}

/** Standard normal samples. */
export function randn(shape: Shape, options: TensorOptions = {}): Tensor {
  return finish(t(callNative('aten::randn', [checkShape(shape, 'randn'), ...factoryArgs(options)])), { requiresGrad: options.requiresGrad });
}

/** Integers in [low, high), int64 unless `dtype` says otherwise. */
export function randint(low: number, high: number, shape: Shape, options: TensorOptions = {}): Tensor {
  return t(callNative('aten::randint.low', [low, high, checkShape(shape, 'randint'), ...factoryArgs(options, 'int64')]));
}

export function randperm(n: number, options: TensorOptions = {}): Tensor {
  return t(callNative('aten::randperm', [n, ...factoryArgs(options, 'int64')]));
}

/** start, start+step, ... < end; int64 when all three are integers, else float32 (as PyTorch). */
export function arange(start: number, end?: number, step = 1, options: TensorOptions = {}): Tensor {
  const [from, to] = end === undefined ? [0, start] : [start, end];
  const integral = Number.isInteger(from) && Number.isInteger(to) && Number.isInteger(step);
  return t(callNative('aten::arange.start_step', [from, to, step, ...factoryArgs(options, integral ? 'int64' : 'float32')]));
}

export function linspace(start: number, end: number, steps: number, options: TensorOptions = {}): Tensor {
  return t(callNative('aten::linspace', [start, end, steps, ...factoryArgs(options)]));
}

export function eye(n: number, options: TensorOptions = {}): Tensor {
  return t(callNative('aten::eye', [n, ...factoryArgs(options)]));
}

export function zerosLike(like: Tensor, options: TensorOptions = {}): Tensor {
  return t(callNative('aten::zeros_like', [like.handle, options.dtype ? SCALAR_TYPE_CODE[checkDType(options.dtype, 'zerosLike')] : null]));
}

export function onesLike(like: Tensor, options: TensorOptions = {}): Tensor {
  return t(callNative('aten::ones_like', [like.handle, options.dtype ? SCALAR_TYPE_CODE[checkDType(options.dtype, 'onesLike')] : null]));
}

export function fullLike(like: Tensor, value: number): Tensor {
  return t(callNative('aten::full_like', [like.handle, value]));
}

/** Joins tensors along an existing dimension. */
export function cat(tensors: Tensor[], dim = 0): Tensor {
  return t(callNative('aten::cat', [tensors.map((x) => x.handle), dim]));
}

/** Joins tensors along a new dimension. */
export function stack(tensors: Tensor[], dim = 0): Tensor {
  return t(callNative('aten::stack', [tensors.map((x) => x.handle), dim]));
}

export function where(condition: Tensor, a: Tensor, b: Tensor): Tensor {
  return t(callNative('aten::where.self', [condition.handle, a.handle, b.handle]));
}
