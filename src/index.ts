export * from './engine/index.js';
export * from './nn/index.js';
export { loadStateDict, saveStateDict, type LoadStateDictOptions } from './nn/weights.js';
export * from './models/index.js';
