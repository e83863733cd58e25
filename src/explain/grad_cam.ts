import { F, noGrad, tidy, type Tensor } from '../engine/index.js';
import { ModelInputError, shapeText } from '../models/errors.js';
import { checkStage, type ZooModel } from '../models/base.js';
import { topClasses } from '../train/metrics.js';

/** What Grad-CAM found for one clip. */
export interface GradCamResult {
  /** The explained class: the one asked for, else the clip's top class. */
  classIndex: number;
  /** Softmax over the classes for the clip. */
  scores: Float32Array;
  /** The stage (1–4, layer1..layer4) whose activations were weighed. */
  stage: number;
  /** The map, min-max normalised to [0, 1], at the clip's resolution: T×H×W, row-major. */
  cam: Float32Array;
  /** [T, H, W] of `cam`. */
  shape: [number, number, number];
  /** [T', H', W'] of the stage's activations, before upsampling. */
  stageShape: [number, number, number];
  /** The mean of the normalised map over each frame: where in the clip the evidence lies. */
  frameImportance: number[];
}

export interface GradCamOptions {
  /** Stage whose activations are weighed; default 4 (the last, as Grad-CAM and MMAction2 do). */
  stage?: number;
  /** Class to explain; default the top class. */
  classIndex?: number;
}

/**
 * Grad-CAM (Selvaraju et al. 2017) for a video model: the gradient of the class's logit with respect to
 * a stage's activations A (N=1×C×T'×H'×W'), averaged over T'×H'×W', weighs A's channels; the ReLU of
 * the weighted sum is upsampled trilinearly to the clip's T×H×W and min-max normalised (an all-zero map
 * stays zero). Only the stages after `stage` and the head are differentiated, and only for the activations
 * (the weights' `.grad` are left as they were); the model runs in eval mode (BatchNorm's running statistics,
 * no dropout) and is left as it was. At the last stage, before global average pooling and a linear
 * classifier, this is the class activation map of Zhou et al. 2016.
 */
export function gradCam(model: ZooModel, clip: Tensor, options: GradCamOptions = {}): GradCamResult {
  const stage = options.stage ?? 4;
  checkStage(stage);
  if (model.input.dims !== 3) throw new ModelInputError(`gradCam: ${model.arch} is an image model; Grad-CAM here explains video models (N×C×T×H×W clips)`);
  if (clip.shape.length !== 5 || clip.shape[0] !== 1) throw new ModelInputError(`gradCam: expected one clip, 1×C×T×H×W, got ${shapeText(clip.shape)}`);
  const classIndex = options.classIndex;
  if (classIndex !== undefined && !(Number.isInteger(classIndex) && classIndex >= 0 && classIndex < model.numClasses)) {
    throw new ModelInputError(`gradCam: class index must be an integer in [0, ${model.numClasses - 1}], got ${classIndex}`);
  }
  const [, , frames, height, width] = clip.shape as [number, number, number, number, number];
  const wasTraining = model.training;
  // Only the activations' gradient is wanted: the weights' are neither computed nor left in their .grad.
  const parameters = model.parameters();
  const wanted = parameters.map((parameter) => parameter.requiresGrad);
  for (const parameter of parameters) parameter.requiresGrad = false;
  model.eval();
  try {
    return tidy(() => {
      const activations = noGrad(() => model.forwardToStage(clip, stage));
      const leaf = activations.detach().requiresGrad_();
      const logits = model.forwardHead(model.forwardFromStage(leaf, stage));
      const scores = noGrad(() => logits.detach().float().softmax(1).toFloat32Array());
      const explained = classIndex ?? topClasses(scores, 1)[0]!;
      logits.select(1, explained).sum().backward();
      return noGrad(() => {
        const channelWeights = leaf.grad!.float().mean([2, 3, 4], true);                // 1×C×1×1×1
        const weighted = leaf.detach().float().mul(channelWeights).sum(1, true).relu();  // 1×1×T'×H'×W'
        const upsampled = F.interpolate(weighted, [frames, height, width]).flatten();
        const low = upsampled.min().item();
        const range = upsampled.max().item() - low;
        const cam = range > 0 ? upsampled.sub(low).div(range).toFloat32Array() : new Float32Array(upsampled.numel);
        const frameSize = height * width;
        const frameImportance = Array.from({ length: frames }, (_, t) => {
          let sum = 0;
          for (let i = t * frameSize; i < (t + 1) * frameSize; i++) sum += cam[i]!;
          return sum / frameSize;
        });
        const stageShape = activations.shape.slice(2) as [number, number, number];
        return { classIndex: explained, scores, stage, cam, shape: [frames, height, width] as [number, number, number], stageShape, frameImportance };
      });
    });
  } finally {
    model.train(wasTraining);
    parameters.forEach((parameter, i) => { parameter.requiresGrad = wanted[i]!; });
  }
}
