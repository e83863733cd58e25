import { native, type Handle } from './native.js';
import { callNative } from './ops.js';
import { DisposedError, translateNativeError } from './errors.js';
import { SCALAR_TYPE_CODE, typedArrayFromBuffer, checkDType, type AnyTypedArray, type DType } from './dtype.js';
import { TENSOR_BRAND, track } from './scope.js';

export type Device = 'cpu' | 'cuda' | `cuda:${number}`;
export type Shape = readonly number[];
/** A tensor or a number, for binary operations that take either. */
export type Operand = Tensor | number;

/**
 * A libtorch tensor. Operations return new tensors (free them with dispose() or inside tidy());
 * methods ending in `_` update in place and return `this`, as in PyTorch.
 */
export class Tensor {
  readonly [TENSOR_BRAND] = true;
  #handle: Handle | null;
  #shape: number[] | undefined;
  #dtype: DType | undefined;

  #registered = false;

  constructor(handle: Handle) {
    this.#handle = handle;
    if (!track(this)) this.escape();
  }

  /** @internal Registers the safety-net finalizer for a tensor no scope will free. */
  escape(): void {
    if (!this.#registered && this.#handle !== null) {
      finalizers.register(this, this.#handle, this);
      this.#registered = true;
    }
  }

  /** @internal Detaches the handle so that a scope can free it in bulk. */
  releaseHandle(): Handle | null {
    const handle = this.#handle;
    this.#handle = null;
    if (this.#registered) {
      finalizers.unregister(this);
      this.#registered = false;
    }
    return handle;
  }

  /** The native handle; throws DisposedError once the tensor is freed. */
  get handle(): Handle {
    const handle = this.#handle;
    if (handle === null) throw new DisposedError('tensor used after dispose()');
    return handle;
  }

  get isDisposed(): boolean {
    return this.#handle === null;
  }

  /** Frees the tensor's memory now (the storage lives on while views or autograd still need it). */
  dispose(): void {
    const handle = this.releaseHandle();
    if (handle !== null) native.dispose(handle);
  }

  get shape(): number[] {
    return (this.#shape ??= native.shape(this.handle)).slice();
  }

  get rank(): number {
    return (this.#shape ??= native.shape(this.handle)).length;
  }

  get numel(): number {
    return (this.#shape ??= native.shape(this.handle)).reduce((a, b) => a * b, 1);
  }

  size(dim: number): number {
    const shape = (this.#shape ??= native.shape(this.handle));
    const index = dim < 0 ? shape.length + dim : dim;
    if (index < 0 || index >= shape.length) throw new RangeError(`size(${dim}): tensor has ${shape.length} dimensions`);
    return shape[index]!;
  }

  get dtype(): DType {
    return (this.#dtype ??= native.dtype(this.handle) as DType);
  }

  get device(): string {
    return native.device(this.handle);
  }

  get strides(): number[] {
    return native.strides(this.handle);
  }

  toString(): string {
    return this.#handle === null ? 'Tensor(disposed)' : `Tensor(${native.describe(this.#handle)})`;
  }

  // ---- data out ----

  /** A copy of the elements in row-major order (half types as raw Uint16 bits). */
  toTypedArray(): AnyTypedArray {
    return typedArrayFromBuffer(this.dtype, native.toBuffer(this.handle));
  }

  /** Elements as float32 (converted where needed). */
  toFloat32Array(): Float32Array {
    if (this.dtype === 'float32') return new Float32Array(native.toBuffer(this.handle));
    const converted = this.to('float32');
    try {
      return new Float32Array(native.toBuffer(converted.handle));
    } finally {
      converted.dispose();
    }
  }

  /** Elements as plain numbers, flat. */
  toArray(): number[] {
    const data = this.dtype === 'int64' || this.dtype === 'float16' || this.dtype === 'bfloat16'
      ? this.toFloat64Data() : this.toTypedArray();
    return Array.from(data as ArrayLike<number>);
  }

  private toFloat64Data(): Float64Array {
    const converted = this.to('float64');
    try {
      return new Float64Array(native.toBuffer(converted.handle));
    } finally {
      converted.dispose();
    }
  }

  /** The single element of a one-element tensor. */
  item(): number {
    try {
      return Number(native.item(this.handle));
    } catch (error) {
      throw translateNativeError(error);
    }
  }

  // ---- autograd ----

  get requiresGrad(): boolean {
    return native.requiresGrad(this.handle);
  }

  set requiresGrad(value: boolean) {
    native.setRequiresGrad(this.handle, value);
  }

  requiresGrad_(value = true): this {
    native.setRequiresGrad(this.handle, value);
    return this;
  }

  /** The accumulated gradient (a new handle on it), or null. */
  get grad(): Tensor | null {
    const handle = native.grad(this.handle);
    return handle === null ? null : new Tensor(handle);
  }

  set grad(value: Tensor | null) {
    try {
      native.setGrad(this.handle, value === null ? null : value.handle);
    } catch (error) {
      throw translateNativeError(error);
    }
  }

  get isLeaf(): boolean {
    return native.isLeaf(this.handle);
  }

  backward(gradient?: Tensor, options: { retainGraph?: boolean } = {}): void {
    try {
      native.backward(this.handle, gradient?.handle ?? null, options.retainGraph ?? false);
    } catch (error) {
      throw translateNativeError(error);
    }
  }

  detach(): Tensor { return t(callNative('aten::detach', [this.handle])); }

  // ---- conversion ----

  to(target: DType | Device): Tensor {
    if (target === 'cpu' || target === 'cuda' || target.startsWith('cuda:')) {
      return t(callNative('aten::to.device', [this.handle, target, SCALAR_TYPE_CODE[this.dtype]]));
    }
    return t(callNative('aten::to.dtype', [this.handle, SCALAR_TYPE_CODE[checkDType(target, 'to')]]));
  }

  float(): Tensor { return this.to('float32'); }
  double(): Tensor { return this.to('float64'); }
  long(): Tensor { return this.to('int64'); }
  int(): Tensor { return this.to('int32'); }
  cpu(): Tensor { return this.to('cpu'); }
  cuda(index = 0): Tensor { return this.to(`cuda:${index}`); }
  contiguous(): Tensor { return t(callNative('aten::contiguous', [this.handle])); }
  clone(): Tensor { return t(callNative('aten::clone', [this.handle])); }
  isContiguous(): boolean { return native.isContiguous(this.handle); }
  /** True when the two tensors share storage (one is a view of the other). */
  sharesStorageWith(other: Tensor): boolean { return native.sameStorage(this.handle, other.handle); }

  // ---- element-wise arithmetic ----

  add(other: Operand, alpha = 1): Tensor { return binary('add', this, other, alpha); }
  sub(other: Operand, alpha = 1): Tensor { return binary('sub', this, other, alpha); }
  mul(other: Operand): Tensor { return binary('mul', this, other); }
  div(other: Operand): Tensor { return binary('div', this, other); }
  pow(exponent: Operand): Tensor {
    return typeof exponent === 'number'
      ? t(callNative('aten::pow.Tensor_Scalar', [this.handle, exponent]))
      : t(callNative('aten::pow.Tensor_Tensor', [this.handle, exponent.handle]));
  }
  neg(): Tensor { return unary('neg', this); }
  abs(): Tensor { return unary('abs', this); }
  exp(): Tensor { return unary('exp', this); }
  log(): Tensor { return unary('log', this); }
  log1p(): Tensor { return unary('log1p', this); }
  sqrt(): Tensor { return unary('sqrt', this); }
  rsqrt(): Tensor { return unary('rsqrt', this); }
  square(): Tensor { return unary('square', this); }
  reciprocal(): Tensor { return unary('reciprocal', this); }
  sin(): Tensor { return unary('sin', this); }
  cos(): Tensor { return unary('cos', this); }
  tanh(): Tensor { return unary('tanh', this); }
  sigmoid(): Tensor { return unary('sigmoid', this); }
  relu(): Tensor { return unary('relu', this); }
  sign(): Tensor { return unary('sign', this); }
  floor(): Tensor { return unary('floor', this); }
  ceil(): Tensor { return unary('ceil', this); }
  round(): Tensor { return unary('round', this); }
  clamp(min?: number | null, max?: number | null): Tensor {
    return t(callNative('aten::clamp', [this.handle, min ?? null, max ?? null]));
  }
  maximum(other: Tensor): Tensor { return t(callNative('aten::maximum', [this.handle, other.handle])); }
  minimum(other: Tensor): Tensor { return t(callNative('aten::minimum', [this.handle, other.handle])); }
  /** Elements of this where `condition`, else of `other`. */
  where(condition: Tensor, other: Operand): Tensor {
    return typeof other === 'number'
      ? t(callNative('aten::where.ScalarOther', [condition.handle, this.handle, other]))
      : t(callNative('aten::where.self', [condition.handle, this.handle, other.handle]));
  }

  // ---- comparisons and logic (bool results) ----

  eq(other: Operand): Tensor { return binary('eq', this, other); }
  ne(other: Operand): Tensor { return binary('ne', this, other); }
  lt(other: Operand): Tensor { return binary('lt', this, other); }
  le(other: Operand): Tensor { return binary('le', this, other); }
  gt(other: Operand): Tensor { return binary('gt', this, other); }
  ge(other: Operand): Tensor { return binary('ge', this, other); }
  logicalNot(): Tensor { return unary('logical_not', this); }
  logicalAnd(other: Tensor): Tensor { return t(callNative('aten::logical_and', [this.handle, other.handle])); }
  logicalOr(other: Tensor): Tensor { return t(callNative('aten::logical_or', [this.handle, other.handle])); }
  isfinite(): Tensor { return unary('isfinite', this); }

  // ---- reductions ----

  sum(dim?: number | number[], keepDim = false): Tensor {
    return dim === undefined ? t(callNative('aten::sum', [this.handle]))
      : t(callNative('aten::sum.dim_IntList', [this.handle, dims(dim), keepDim]));
  }
  mean(dim?: number | number[], keepDim = false): Tensor {
    return dim === undefined ? t(callNative('aten::mean', [this.handle]))
      : t(callNative('aten::mean.dim', [this.handle, dims(dim), keepDim]));
  }
  /** Population (unbiased = false) or sample (unbiased = true) standard deviation. */
  std(dim?: number | number[], options: { unbiased?: boolean; keepDim?: boolean } = {}): Tensor {
    return t(callNative('aten::std.dim', [this.handle, dim === undefined ? null : dims(dim), options.unbiased ?? true, options.keepDim ?? false]));
  }
  var(dim?: number | number[], options: { unbiased?: boolean; keepDim?: boolean } = {}): Tensor {
    return t(callNative('aten::var.dim', [this.handle, dim === undefined ? null : dims(dim), options.unbiased ?? true, options.keepDim ?? false]));
  }
  prod(): Tensor { return t(callNative('aten::prod', [this.handle])); }
  /** The largest element (no dim), or {values, indices} along `dim`. */
  max(): Tensor;
  max(dim: number, keepDim?: boolean): { values: Tensor; indices: Tensor };
  max(dim?: number, keepDim = false): Tensor | { values: Tensor; indices: Tensor } {
    if (dim === undefined) return t(callNative('aten::max', [this.handle]));
    const [values, indices] = callNative('aten::max.dim', [this.handle, dim, keepDim]) as [Handle, Handle];
    return { values: new Tensor(values), indices: new Tensor(indices) };
  }
  min(): Tensor;
  min(dim: number, keepDim?: boolean): { values: Tensor; indices: Tensor };
  min(dim?: number, keepDim = false): Tensor | { values: Tensor; indices: Tensor } {
    if (dim === undefined) return t(callNative('aten::min', [this.handle]));
    const [values, indices] = callNative('aten::min.dim', [this.handle, dim, keepDim]) as [Handle, Handle];
    return { values: new Tensor(values), indices: new Tensor(indices) };
  }
  argmax(dim?: number, keepDim = false): Tensor { return t(callNative('aten::argmax', [this.handle, dim ?? null, keepDim])); }
  argmin(dim?: number, keepDim = false): Tensor { return t(callNative('aten::argmin', [this.handle, dim ?? null, keepDim])); }
  logsumexp(dim: number | number[], keepDim = false): Tensor {
    return t(callNative('aten::logsumexp', [this.handle, dims(dim), keepDim]));
  }
  norm(p = 2): Tensor { return t(callNative('aten::norm.Scalar', [this.handle, p])); }
  all(): Tensor { return unary('all', this); }
  any(): Tensor { return unary('any', this); }
  softmax(dim: number): Tensor { return t(callNative('aten::softmax.int', [this.handle, dim])); }
  logSoftmax(dim: number): Tensor { return t(callNative('aten::log_softmax.int', [this.handle, dim])); }
  /** The k largest (or smallest) elements along dim, with their indices. */
  topk(k: number, dim = -1, largest = true, sorted = true): { values: Tensor; indices: Tensor } {
    const [values, indices] = callNative('aten::topk', [this.handle, k, dim, largest, sorted]) as [Handle, Handle];
    return { values: new Tensor(values), indices: new Tensor(indices) };
  }
  sort(dim = -1, descending = false): { values: Tensor; indices: Tensor } {
    const [values, indices] = callNative('aten::sort', [this.handle, dim, descending]) as [Handle, Handle];
    return { values: new Tensor(values), indices: new Tensor(indices) };
  }
  argsort(dim = -1, descending = false): Tensor { return t(callNative('aten::argsort', [this.handle, dim, descending])); }

  // ---- linear algebra ----

  matmul(other: Tensor): Tensor { return t(callNative('aten::matmul', [this.handle, other.handle])); }
  mm(other: Tensor): Tensor { return t(callNative('aten::mm', [this.handle, other.handle])); }
  bmm(other: Tensor): Tensor { return t(callNative('aten::bmm', [this.handle, other.handle])); }
  /** Transpose of a 2-D tensor. */
  T(): Tensor { return t(callNative('aten::t', [this.handle])); }

  // ---- shape ----

  reshape(shape: Shape): Tensor { return t(callNative('aten::reshape', [this.handle, shape])); }
  view(shape: Shape): Tensor { return t(callNative('aten::view', [this.handle, shape])); }
  flatten(startDim = 0, endDim = -1): Tensor { return t(callNative('aten::flatten.using_ints', [this.handle, startDim, endDim])); }
  squeeze(dim?: number): Tensor {
    return dim === undefined ? unary('squeeze', this) : t(callNative('aten::squeeze.dim', [this.handle, dim]));
  }
  unsqueeze(dim: number): Tensor { return t(callNative('aten::unsqueeze', [this.handle, dim])); }
  permute(order: Shape): Tensor { return t(callNative('aten::permute', [this.handle, order])); }
  transpose(dim0: number, dim1: number): Tensor { return t(callNative('aten::transpose.int', [this.handle, dim0, dim1])); }
  expand(shape: Shape): Tensor { return t(callNative('aten::expand', [this.handle, shape])); }
  expandAs(other: Tensor): Tensor { return this.expand(other.shape); }
  repeat(repeats: Shape): Tensor { return t(callNative('aten::repeat', [this.handle, repeats])); }
  flip(dimsToFlip: number[]): Tensor { return t(callNative('aten::flip', [this.handle, dimsToFlip])); }
  narrow(dim: number, start: number, length: number): Tensor { return t(callNative('aten::narrow', [this.handle, dim, start, length])); }
  /** Elements start ≤ i < end (step apart) along dim, as a view; negative indices count from the end. */
  slice(dim: number, start?: number, end?: number, step = 1): Tensor {
    return t(callNative('aten::slice.Tensor', [this.handle, dim, start ?? null, end ?? null, step]));
  }
  /** The sub-tensor at `index` along dim, which is removed. */
  select(dim: number, index: number): Tensor { return t(callNative('aten::select.int', [this.handle, dim, index])); }
  indexSelect(dim: number, index: Tensor): Tensor { return t(callNative('aten::index_select', [this.handle, dim, index.handle])); }
  gather(dim: number, index: Tensor): Tensor { return t(callNative('aten::gather', [this.handle, dim, index.handle])); }
  /** Advanced indexing, as `x[i0, i1, ...]` with index tensors (null keeps a dimension whole). */
  index(indices: (Tensor | null)[]): Tensor {
    return t(callNative('aten::index.Tensor', [this.handle, indices.map((index) => index?.handle ?? null)]));
  }
  maskedFill(mask: Tensor, value: number): Tensor { return t(callNative('aten::masked_fill.Scalar', [this.handle, mask.handle, value])); }
  split(splitSize: number, dim = 0): Tensor[] {
    return (callNative('aten::split.Tensor', [this.handle, splitSize, dim]) as Handle[]).map((h) => new Tensor(h));
  }
  chunk(chunks: number, dim = 0): Tensor[] {
    return (callNative('aten::chunk', [this.handle, chunks, dim]) as Handle[]).map((h) => new Tensor(h));
  }

  // ---- in place (optimizers, initialisation); each returns this ----

  add_(other: Operand, alpha = 1): this { return inplace(this, 'aten::add_.Tensor', [operand(other), alpha]); }
  sub_(other: Operand, alpha = 1): this { return inplace(this, 'aten::sub_.Tensor', [operand(other), alpha]); }
  mul_(other: Operand): this { return inplace(this, 'aten::mul_.Tensor', [operand(other)]); }
  div_(other: Operand): this { return inplace(this, 'aten::div_.Tensor', [operand(other)]); }
  /** this += value · a · b */
  addcmul_(a: Tensor, b: Tensor, value = 1): this { return inplace(this, 'aten::addcmul_', [a.handle, b.handle, value]); }
  /** this += value · a / b */
  addcdiv_(a: Tensor, b: Tensor, value = 1): this { return inplace(this, 'aten::addcdiv_', [a.handle, b.handle, value]); }
  lerp_(end: Tensor, weight: number): this { return inplace(this, 'aten::lerp_.Scalar', [end.handle, weight]); }
  sqrt_(): this { return inplace(this, 'aten::sqrt_', []); }
  relu_(): this { return inplace(this, 'aten::relu_', []); }
  clamp_(min?: number | null, max?: number | null): this { return inplace(this, 'aten::clamp_', [min ?? null, max ?? null]); }
  copy_(source: Tensor): this { return inplace(this, 'aten::copy_', [source.handle]); }
  zero_(): this { return inplace(this, 'aten::zero_', []); }
  fill_(value: number): this { return inplace(this, 'aten::fill_.Scalar', [value]); }
  uniform_(from = 0, to = 1): this { return inplace(this, 'aten::uniform_', [from, to]); }
  normal_(mean = 0, std = 1): this { return inplace(this, 'aten::normal_', [mean, std]); }
  /**
   * Points this tensor at `source`'s data (any shape, dtype or device), as PyTorch's
   * `param.data = source`; autograd identity and references to this object stay.
   */
  setData_(source: Tensor): this {
    callNative('aten::set_data', [this.handle, source.handle], true);
    native.recount(this.handle);
    this.invalidateMetadata();
    return this;
  }

  /** @internal Forgets the cached shape and dtype (after an in-place operator that may change them). */
  invalidateMetadata(): void {
    this.#shape = undefined;
    this.#dtype = undefined;
  }
}

// ---- helpers shared by the wrappers ----

/**
 * The safety net for tensors that leave every tidy() scope and are never disposed: when such a
 * Tensor is collected, its native handle is freed. Tensors inside scopes skip it (no cost).
 */
const finalizers = new FinalizationRegistry<Handle>((handle) => native.dispose(handle));

/** Wraps an operator result (a handle) as a Tensor. */
export function t(result: unknown): Tensor {
  return new Tensor(result as Handle);
}

function unary(name: string, self: Tensor): Tensor {
  return t(callNative(`aten::${name}`, [self.handle]));
}

/** A number goes where a tensor is expected as [number]: the addon wraps it as PyTorch's Python layer does. */
function operand(value: Operand): unknown {
  return typeof value === 'number' ? [value] : value.handle;
}

function binary(name: string, self: Tensor, other: Operand, alpha?: number): Tensor {
  const args = alpha === undefined ? [self.handle, operand(other)] : [self.handle, operand(other), alpha];
  return t(callNative(`aten::${name}.Tensor`, args));
}

function inplace<T extends Tensor>(self: T, qualified: string, rest: unknown[]): T {
  callNative(qualified, [self.handle, ...rest], true);
  return self;
}

function dims(dim: number | number[]): number[] {
  return typeof dim === 'number' ? [dim] : dim;
}
