export { Tensor, type Device, type Shape, type Operand } from './tensor.js';
export * from './creation.js';
export * as F from './functional.js';
export { setConvAlgorithm, getConvAlgorithm, type ConvAlgorithm } from './functional.js';
export * from './runtime.js';
export { tidy, keep, dispose } from './scope.js';
export { operatorSchema } from './ops.js';
export { EngineError, TorchError, DisposedError, ArgumentError } from './errors.js';
export { DTYPES, isFloatingPoint, bytesPerElement, type DType, type AnyTypedArray } from './dtype.js';
