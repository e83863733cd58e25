import { extname } from 'node:path';
import { existsSync, statSync } from 'node:fs';
import { dispose, fromTypedArray, noGrad, tidy, type Tensor } from '../engine/index.js';
import { StateDictError } from '../nn/index.js';
import { loadStateDict, TORCH_EXTENSIONS } from '../nn/weights.js';
import { loadModelCheckpoint, readCheckpointMeta } from '../models/checkpoint.js';
import { createModel, modelEntry } from '../models/registry.js';
import type { ZooModel } from '../models/base.js';
import { UserError } from '../util/errors.js';
import { fsUserError } from '../util/fs.js';
import { TEACHER_ARCHS } from './config.js';

/**
 * The frozen 2D teacher: a torchvision ResNet (`resnet2d_18/34/50`) loaded by name from a
 * torchvision state dict (.pth/.pt, or a plain .safetensors) or from a stcnet resnet2d checkpoint.
 * Its parameters never require gradients, it stays in eval mode (BatchNorm uses its running
 * statistics, which therefore never change) and it only ever runs under no-grad.
 */

type TeacherArch = (typeof TEACHER_ARCHS)[number];

const ARCH_LIST = TEACHER_ARCHS.join(', ');

/** The depth a torchvision ResNet state dict has, from its names: blocks in layer3, and conv3 for bottlenecks. */
function inferArch(dict: Map<string, Tensor>): TeacherArch | undefined {
  let blocks = 0;
  while (dict.has(`layer3.${blocks}.conv1.weight`)) blocks++;
  const bottleneck = dict.has('layer1.0.conv3.weight');
  if (blocks === 2 && !bottleneck) return 'resnet2d_18';
  if (blocks === 6 && !bottleneck) return 'resnet2d_34';
  if (blocks === 6 && bottleneck) return 'resnet2d_50';
  return undefined;
}

function notATeacher(file: string, why: string): UserError {
  return new UserError(`teacher: ${file} is not a 2D ResNet teacher (${why}); expected torchvision's ${ARCH_LIST} weights ` +
    '(names conv1, bn1, layer1.0.conv1, ..., fc) or a stcnet checkpoint of one of them');
}

/** Loads the teacher and freezes it. `arch` is needed only when the names do not tell the depth. */
export function loadTeacher(file: string, arch?: TeacherArch): ZooModel {
  if (!existsSync(file)) throw new UserError(`teacher: ${file}: no such file`);
  if (statSync(file).isDirectory()) throw new UserError(`teacher: ${file}: is a folder, expected a weights file (.pth, .pt or .safetensors)`);
  const extension = extname(file).toLowerCase();
  if (extension !== '.safetensors' && !TORCH_EXTENSIONS.has(extension)) {
    throw new UserError(`teacher: ${file}: unknown weights format "${extension}"; expected .pth, .pt (torchvision) or .safetensors`);
  }
  let model: ZooModel;
  const meta = extension === '.safetensors' ? readCheckpointMeta(file) : null;
  if (meta) {
    if (!(TEACHER_ARCHS as readonly string[]).includes(meta.arch)) {
      const dims = modelEntry(meta.arch).dims;
      throw notATeacher(file, `it is a stcnet checkpoint of ${meta.arch}${dims === 3 ? ', a 3D video model' : ''}`);
    }
    if (arch !== undefined && arch !== meta.arch) throw new UserError(`teacher-arch: ${file} is a ${meta.arch} checkpoint, not ${arch}`);
    model = loadModelCheckpoint(file).model;
  } else {
    model = loadTorchvision(file, arch);
  }
  freezeTeacher(model);
  return model;
}

function loadTorchvision(file: string, arch: TeacherArch | undefined): ZooModel {
  let dict: Map<string, Tensor>;
  try {
    dict = loadStateDict(file);
  } catch (error) {
    if (error instanceof UserError) throw new UserError(`teacher: ${error.message}`);
    throw fsUserError(error, file);
  }
  try {
    const conv1 = dict.get('conv1.weight');
    if (!conv1) {
      const names = [...dict.keys()].slice(0, 4).join(', ');
      throw notATeacher(file, dict.size === 0 ? 'it holds no tensors' : `it has no conv1.weight; its names begin ${names}${dict.size > 4 ? ', …' : ''}`);
    }
    if (conv1.rank !== 4) throw notATeacher(file, `its conv1.weight is ${conv1.rank}-D${conv1.rank === 5 ? ' (a 3D video model)' : ''}; a 2D ResNet's is 4-D`);
    const inferred = inferArch(dict);
    const chosen = arch ?? inferred;
    if (chosen === undefined) throw notATeacher(file, 'its layers match none of ResNet-18, -34 or -50; give --teacher-arch if it is one of them');
    const fc = dict.get('fc.weight');
    const options: Record<string, unknown> = { init: false };
    if (fc && fc.rank === 2) options.numClasses = fc.shape[0];
    const stem = conv1.shape[0]!;
    if (stem !== 64 && modelEntry(chosen).options.includes('widthMultiplier')) options.widthMultiplier = stem / 64;
    const model = createModel(chosen, options);
    try {
      model.loadStateDict(dict, { strict: true });
    } catch (error) {
      model.dispose();
      if (error instanceof StateDictError) {
        throw new UserError(`teacher: ${file} does not fit ${chosen}:\n${error.message.split('\n').slice(1).join('\n')}`);
      }
      throw error;
    }
    return model;
  } finally {
    dispose([...dict.values()]);
  }
}

/** No gradient, ever, and eval mode (running statistics fixed). */
export function freezeTeacher(model: ZooModel): void {
  for (const parameter of model.parameters()) parameter.requiresGrad = false;
  model.eval();
}

/** X frame indices spread evenly over a clip of T frames (the middle of X equal parts). */
export function teacherFrameIndices(clipFrames: number, teacherFrames: number): number[] {
  return Array.from({ length: teacherFrames }, (_, i) => Math.floor(((2 * i + 1) * clipFrames) / (2 * teacherFrames)));
}

/**
 * The teacher's features for clips N×3×T×H×W (normalised for the teacher): its pooled pre-fc
 * features of each of the frames at `frames`, averaged over them (N×F). Runs in eval mode and
 * under no-grad whatever the caller's mode.
 */
export function teacherFeatures(teacher: ZooModel, clips: Tensor, frames: readonly number[]): Tensor {
  if (teacher.training) teacher.eval();
  return noGrad(() => tidy(() => {
    const [n, c, , h, w] = clips.shape as [number, number, number, number, number];
    const index = fromTypedArray(BigInt64Array.from(frames, (f) => BigInt(f)), [frames.length]);
    const picked = clips.indexSelect(2, clips.device === 'cpu' ? index : index.to(clips.device as 'cuda'));
    const images = picked.permute([0, 2, 1, 3, 4]).reshape([n * frames.length, c, h, w]);
    const features = teacher.forwardFeatures(images);
    return features.reshape([n, frames.length, features.shape[1]!]).mean(1);
  }));
}
