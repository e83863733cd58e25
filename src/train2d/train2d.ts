import { existsSync } from 'node:fs';
import path from 'node:path';
import { loadModelCheckpoint, saveModelCheckpoint } from '../models/checkpoint.js';
import { runTraining, type RunTrainingOptions, type TrainSummary } from '../train/trainer.js';
import type { TrainConfig } from '../train/config.js';
import { UserError } from '../util/errors.js';
import { deflateTwin } from './deflate.js';

/**
 * `stcnet train-2d` as a library function: a 2D ResNet teacher trained on single frames of a
 * dataset's videos (the label of each frame is its video's: use a dataset whose classes one frame
 * shows, e.g. `stcnet synth --label shape`). The network is trained as its exact 3D twin on
 * one-frame clips by `runTraining` (see deflate.ts), so the run folder, resume, progress, plots and
 * checkpoints are `stcnet train`'s; at the end `teacher.safetensors` holds the 2D network (from
 * `best`, else `last`) with torchvision's names: what `stcnet transfer` and `stcnet inflate` take.
 */

/** The file train-2d writes in the run folder. */
export const TEACHER_FILE = 'teacher.safetensors';

export interface TeacherSummary extends TrainSummary {
  /** The 2D teacher checkpoint (absent when the run was interrupted). */
  teacher: string | null;
  /** The registry name of the teacher (resnet2d_18, ...). */
  teacherArch: string;
}

/** Checks that a (validated) config trains a 2D twin: one-frame clips, a resnet3d_{18,34,50} model. */
export function checkTwinConfig(config: TrainConfig): void {
  if (!/^resnet3d_(18|34|50)$/.test(config.model)) throw new UserError(`model: train-2d trains resnet2d_18, resnet2d_34 or resnet2d_50 (run folder model ${config.model})`);
  if (config.frames !== 1 || config.stride !== 1) throw new UserError(`frames: train-2d trains on single frames; the run folder's config has frames ${config.frames}, stride ${config.stride}`);
  for (const key of ['reduction', 'shortcut'] as const) {
    if (config[key] !== undefined) throw new UserError(`${key}: a 2D ResNet teacher has no such option`);
  }
}

/** Writes the 2D teacher from a one-frame 3D checkpoint of the run (keeps its class names and preprocessing). */
export function writeTeacher(checkpoint3d: string, out: string): string {
  const loaded = loadModelCheckpoint(checkpoint3d);
  try {
    const teacher = deflateTwin(loaded.model);
    try {
      const { classes, preprocessing } = loaded.meta;
      saveModelCheckpoint(out, teacher, {
        ...(classes ? { classes } : {}),
        ...(preprocessing ? { preprocessing } : {}),
        extra: { trained_as: `${loaded.model.arch} on one-frame clips (stcnet train-2d)`, source_checkpoint: path.basename(checkpoint3d) },
      });
      return teacher.arch;
    } finally {
      teacher.dispose();
    }
  } finally {
    loaded.model.dispose();
  }
}

export async function runTeacherTraining(config: TrainConfig, options: RunTrainingOptions = {}): Promise<TeacherSummary> {
  checkTwinConfig(config);
  const teacherArch = config.model.replace('resnet3d_', 'resnet2d_');
  const summary = await runTraining(config, options);
  if (summary.status !== 'completed') return { ...summary, teacher: null, teacherArch };
  const from = summary.checkpoints.best ?? summary.checkpoints.last;
  if (!existsSync(from)) throw new UserError(`train-2d: ${from} is missing; the run folder ${config.out} was changed during the run`);
  const teacher = path.join(config.out, TEACHER_FILE);
  writeTeacher(from, teacher);
  options.onEvent?.({ type: 'log', message: `train-2d: wrote the 2D teacher ${teacher} (${teacherArch}, from ${path.basename(from)}); use it with stcnet transfer or stcnet inflate` });
  return { ...summary, teacher, teacherArch };
}
