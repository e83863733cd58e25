export { ClipLoader, type LoaderOptions, type ClipBatch, type LoaderStats } from './loader.js';
export { loadDataset, loadUcf101, loadHmdb51, loadKinetics, loadFolder, loadManifest, kineticsFileStem } from './formats/index.js';
export { DATASET_FORMATS, sampleKey, uniqueSamples, type VideoSample, type VideoDataset, type DatasetFormat, type LoadDatasetOptions, type MissingFile } from './dataset.js';
export { trainClipIndices, testClipIndices, testClipStarts, loopedIndices, clipSpan } from './samplers.js';
export {
  MULTISCALE_SCALES, CROP_POSITIONS, NORMALIZATIONS, cornerCropBox, randomMultiScaleCrop, centerCropBox, threeCropBoxes,
  cropResizeJs, type CropBox, type CropPosition, type Normalization,
} from './transforms.js';
export { generateSynth, planSynth, SYNTH_CLASSES, type SynthOptions, type SynthClass } from './synth.js';
