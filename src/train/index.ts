export { ScoreAccumulator, type AccuracyReport } from './metrics.js';
export { batchTensors, trainStep, evaluate, type TrainStepResult } from './epoch.js';
export { topClasses, type ClassReport, type VideoPrediction, type ScoreAccumulatorOptions } from './metrics.js';
export { loadClassifier, resolveModelSource, defaultPreprocessing, type Classifier, type ClassifierOptions, type ModelSource } from './classifier.js';
export { readLabels, parseLabels } from './labels.js';
export { evaluateSamples, type EvaluationSettings, type EvaluationResult } from './eval_run.js';
export { writeEvalReport, formatEvalSummary, confusionChartSpec, type EvalContext } from './report.js';
export {
  predictVideos, predictTimeline, scoreSegments, timelineWindows, topScores,
  type PredictSettings, type Segment, type SegmentScores, type VideoResult, type Timeline, type TimelineWindow, type ClassScore,
} from './predict.js';
export { writeTimeline, timelineCsv, timelineChartSpec } from './predict_report.js';
export { runTraining, resumeConfig, readSummary, type TrainEvent, type StepRecord, type EpochRecord, type TrainSummary, type RunTrainingOptions } from './trainer.js';
export { validateConfig, readConfigFile, resolvePaths, configToYaml, TRAIN_DEFAULTS, TRAIN_KEYS, type TrainConfig } from './config.js';
export { RunDir, type MetricsRecord, type CheckpointName } from './run_dir.js';
export { withAutocast, type AmpMode } from './autocast.js';
