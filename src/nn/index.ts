export { Module, StateDictError, formatLoadReport, type LoadReport } from './module.js';
export * from './layers.js';
export * as init from './init.js';
export { loadStateDict, saveStateDict } from './weights.js';
