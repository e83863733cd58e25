export { Module, StateDictError, formatLoadReport, type LoadReport } from './module.js';
export * from './layers.js';
export * as init from './init.js';
export { loadStateDict, saveStateDict, stripKeyPrefix, DATA_PARALLEL_PREFIX, type LoadStateDictOptions } from './weights.js';
export {
  readSafetensors, writeSafetensors, encodeSafetensors, parseSafetensors, readSafetensorsHeader, readSafetensorsFrom,
  type SafetensorsContents, type SafetensorsHeader, type SafetensorsEntry, type SafetensorsDType, type TensorDict,
} from './safetensors.js';
export { readTorchCheckpoint, findStateDict, tensorsIn, isTensorDict, type TorchLoadOptions, type FindStateDictOptions } from './torchload.js';
export { openFileSource, bufferSource, type ByteSource } from './bytesource.js';
