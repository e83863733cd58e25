import path from 'node:path';
import { fromTypedArray, memory, noGrad, setNumThreads, tidy, type Tensor } from '../engine/index.js';
import type { InferenceDType, InferenceModel, ZooModel } from '../models/index.js';
import type { Preprocessing } from '../models/checkpoint.js';
import { classNamesOf, decodeShortSide, loadClassifier, normalizationOf, preparedInDtype, resolveModelSource } from '../train/classifier.js';

/**
 * The model a service holds: loaded once from a checkpoint as `stcnet predict` loads it
 * (loadClassifier: class names, preprocessing, decode short side), then frozen for inference
 * (prepareForInference: BatchNorm folded, no autograd). `probabilities` takes any number of
 * normalised clips and gives their softmax scores; the caller averages them per video, as predict does.
 */

/** What GET /model answers: enough for a client to send frames the model expects. */
export interface ModelDescription {
  name: string;
  arch: string;
  checkpoint: string;
  classes: string[];
  numClasses: number;
  input: {
    frames: number;
    stride: number;
    size: number;
    /** The short side videos are decoded at before the centre crop; JSON frames should have it too. */
    shortSide: number;
    fps?: number;
    mean: [number, number, number];
    std: [number, number, number];
    layout: 'NCTHW';
  };
  clips: number;
  crops: 1 | 3;
  /** BatchNorm folded (prepareForInference), or the eval-mode network when the family has no frozen form. */
  runtime: 'prepared' | 'eval';
  /** Precision of the forward pass (`--dtype`). */
  dtype: InferenceDType;
}

export class ServedModel {
  private constructor(
    private readonly zoo: ZooModel,
    private readonly prepared: InferenceModel | null,
    readonly classes: string[],
    readonly preprocessing: Preprocessing & { shortSide: number },
    readonly description: ModelDescription,
  ) {}

  static async load(checkpointArg: string, settings: { clips: number; crops: 1 | 3; threads?: number; dtype?: InferenceDType }): Promise<ServedModel> {
    if (settings.threads !== undefined) setNumThreads(settings.threads);
    const source = resolveModelSource(checkpointArg);
    const classifier = await loadClassifier(source);
    const { model, preprocessing } = classifier;
    const dtype = settings.dtype ?? 'float32';
    let prepared: InferenceModel | null;
    try {
      prepared = await preparedInDtype(model, dtype);
    } catch (error) {
      model.dispose();
      throw error;
    }
    model.eval();
    const classes = classNamesOf(classifier);
    const shortSide = decodeShortSide(preprocessing);
    const norm = normalizationOf(preprocessing);
    const description: ModelDescription = {
      name: path.basename(source.checkpoint).replace(/\.safetensors$/, ''),
      arch: classifier.arch,
      checkpoint: path.resolve(source.checkpoint),
      classes,
      numClasses: model.numClasses,
      input: {
        frames: preprocessing.frames, stride: preprocessing.stride, size: preprocessing.size, shortSide,
        ...(preprocessing.fps !== undefined ? { fps: preprocessing.fps } : {}),
        mean: norm.mean, std: norm.std, layout: 'NCTHW',
      },
      clips: settings.clips,
      crops: settings.crops,
      runtime: prepared ? 'prepared' : 'eval',
      dtype,
    };
    return new ServedModel(model, prepared, classes, { ...preprocessing, shortSide }, description);
  }

  get numClasses(): number {
    return this.zoo.numClasses;
  }

  /** Elements of one clip (3 × T × size × size). */
  get clipElements(): number {
    const p = this.preprocessing;
    return 3 * p.frames * p.size * p.size;
  }

  /** Softmax scores (count × classes) of `count` normalised clips laid out NCTHW in `data`. */
  probabilities(data: Float32Array, count: number): Float32Array {
    const p = this.preprocessing;
    return noGrad(() => tidy(() => {
      const clips = fromTypedArray(data, [count, 3, p.frames, p.size, p.size]);
      const logits: Tensor = this.prepared ? this.prepared.forward(clips) : this.zoo.forward(clips);
      return logits.softmax(1).toFloat32Array();
    }));
  }

  /** Live engine tensors (the model's own weights included): flat while the service runs. */
  liveTensors(): number {
    return memory().tensors;
  }

  dispose(): void {
    this.prepared?.dispose();
    this.zoo.dispose();
  }
}
