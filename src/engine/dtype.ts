/** Element types a tensor can hold, named as PyTorch names them (without the `torch.` prefix). */
export type DType = 'float32' | 'float64' | 'float16' | 'bfloat16' | 'int64' | 'int32' | 'int16' | 'int8' | 'uint8' | 'bool';

export const DTYPES: readonly DType[] = ['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool'];

/** c10::ScalarType codes, as operator schemas take them (`ScalarType dtype`). */
export const SCALAR_TYPE_CODE: Record<DType, number> = {
  uint8: 0, int8: 1, int16: 2, int32: 3, int64: 4, float16: 5, float32: 6, float64: 7, bool: 11, bfloat16: 15,
};

/** Half-precision types have no JS array of their own; their raw bits travel in a Uint16Array. */
export type TypedArrayFor<D extends DType> =
  D extends 'float32' ? Float32Array :
  D extends 'float64' ? Float64Array :
  D extends 'int64' ? BigInt64Array :
  D extends 'int32' ? Int32Array :
  D extends 'int16' ? Int16Array :
  D extends 'int8' ? Int8Array :
  D extends 'uint8' | 'bool' ? Uint8Array :
  Uint16Array;

export type AnyTypedArray = Float32Array | Float64Array | BigInt64Array | Int32Array | Int16Array | Int8Array | Uint8Array | Uint16Array;

export function typedArrayFromBuffer(dtype: DType, buffer: ArrayBuffer): AnyTypedArray {
  switch (dtype) {
    case 'float32': return new Float32Array(buffer);
    case 'float64': return new Float64Array(buffer);
    case 'int64': return new BigInt64Array(buffer);
    case 'int32': return new Int32Array(buffer);
    case 'int16': return new Int16Array(buffer);
    case 'int8': return new Int8Array(buffer);
    case 'uint8': case 'bool': return new Uint8Array(buffer);
    case 'float16': case 'bfloat16': return new Uint16Array(buffer);
  }
}

/** The dtype a typed array holds by default (a Uint16Array is ambiguous and must be named). */
export function dtypeOfTypedArray(array: ArrayBufferView): DType {
  if (array instanceof Float32Array) return 'float32';
  if (array instanceof Float64Array) return 'float64';
  if (array instanceof BigInt64Array) return 'int64';
  if (array instanceof Int32Array) return 'int32';
  if (array instanceof Int16Array) return 'int16';
  if (array instanceof Int8Array) return 'int8';
  if (array instanceof Uint8Array || array instanceof Uint8ClampedArray) return 'uint8';
  throw new TypeError(`cannot infer a dtype from ${array.constructor.name}; pass { dtype } explicitly`);
}

export function bytesPerElement(dtype: DType): number {
  switch (dtype) {
    case 'float64': case 'int64': return 8;
    case 'float32': case 'int32': return 4;
    case 'float16': case 'bfloat16': case 'int16': return 2;
    default: return 1;
  }
}

export function isFloatingPoint(dtype: DType): boolean {
  return dtype === 'float32' || dtype === 'float64' || dtype === 'float16' || dtype === 'bfloat16';
}

export function checkDType(value: string, what: string): DType {
  if ((DTYPES as readonly string[]).includes(value)) return value as DType;
  throw new TypeError(`${what}: unknown dtype "${value}"; expected one of ${DTYPES.join(', ')}`);
}
