export * from './engine/index.js';
export * from './nn/index.js';
export * from './optim/index.js';
export * from './models/index.js';
export * from './video/index.js';
export * from './data/index.js';
export * from './train/index.js';
export { UserError } from './util/errors.js';
export { exportOnnx, type ExportOnnxOptions, type ExportOnnxResult } from './export/index.js';
