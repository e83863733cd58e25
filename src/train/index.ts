export { ScoreAccumulator, type AccuracyReport } from './metrics.js';
export { batchTensors, trainStep, evaluate, type TrainStepResult } from './epoch.js';
