export { Optimizer, type OptimizerStateDict, type ParamGroup, type ParamGroupInput, type ParamState, type Hyperparameters, type HyperValue } from './optimizer.js';
export { SGD, type SGDOptions } from './sgd.js';
export { AdamW, type AdamWOptions } from './adamw.js';
export {
  LRScheduler, StepLR, MultiStepLR, CosineAnnealingLR, LinearWarmup, ReduceLROnPlateau,
  type SchedulerState, type WarmupOptions, type PlateauOptions,
} from './schedules.js';
export { saveOptimizerState, loadOptimizerState, packOptimizerState, unpackOptimizerState, type PackedOptimizerState } from './state.js';
export { clipGradNorm_ } from './clip.js';
