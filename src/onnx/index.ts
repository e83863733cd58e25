/**
 * `stcnet/onnx`: run a model exported by `stcnet export` with ONNX Runtime (onnxruntime-node), without
 * libtorch and without the native addon: top-k classes for a clip or a video file. Nothing this entry
 * imports loads the engine.
 *
 *   import { loadOnnxModel } from 'stcnet/onnx';
 *   const model = await loadOnnxModel('model.onnx');
 *   const { top } = await model.predictVideo('clip.mp4', { clips: 10, topK: 5 });
 *   await model.close();
 */
export {
  loadOnnxModel, softmaxRows, topScores, normalizationOf, decodeShortSide,
  type OnnxModel, type ClassScore, type RgbFrames, type VideoPrediction, type PredictVideoOptions, type LoadOnnxModelOptions,
} from './model.js';
export {
  readOnnxMetadata, parseOnnxMetadata, ONNX_FORMAT,
  type OnnxMetadata, type OnnxPreprocessing, type OnnxInputSpec,
} from './metadata.js';
