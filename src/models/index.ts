export { StcBlock, GateBranch, DEFAULT_REDUCTION, type Reduction } from './stc.js';
export {
  BasicBlock, Bottleneck, ZeroPadShortcut, VideoBasicBlock, Conv3DSimple, Conv3DNoTemporal, Conv2Plus1D, midPlanesOf,
  type ConvPolicy, type Shortcut, type Dims, type StcSpec,
} from './blocks.js';
export { ZooModel, type InputSpec } from './base.js';
export * from './resnet3d.js';
export * from './resnext3d.js';
export * from './video_resnet.js';
export * from './resnet2d.js';
export { createModel, listModels, modelInfo, modelEntry, isModelName, type ModelName, type ModelOptionsMap, type AnyModelOptions, type ModelEntry, type ModelInfo, type ModelFamily } from './registry.js';
export { trace, Tracer, type TraceRow, type Traceable } from './flops.js';
export { ModelInputError } from './errors.js';
export {
  saveModelCheckpoint, loadModelCheckpoint, readCheckpointMeta, parseCheckpointMeta, checkpointMetadata,
  type CheckpointMeta, type Preprocessing, type SaveModelCheckpointOptions, type LoadModelCheckpointOptions, type LoadedCheckpoint,
} from './checkpoint.js';
export { inferFrames, inferWidthMultiplier } from './infer.js';
export { STCNET_VERSION } from './version.js';
export { prepareForInference, prepareIfSupported, InferenceModel, UnsupportedModelError, type InferenceDType, type InferenceLayout, type PrepareForInferenceOptions, type ConvolutionKernel } from './inference.js';
