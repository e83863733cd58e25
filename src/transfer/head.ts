import { cat, tidy, type Tensor } from '../engine/index.js';
import { Linear, Module } from '../nn/index.js';

/**
 * The transfer head (DESIGN, "Transfer"): each side's pooled features projected to 1024
 * (`student_proj`: the 3D student's clip features, `teacher_proj`: the 2D teacher's features
 * averaged over the frames), concatenated student first (2048), then `fc1` 2048 → 512, `fc2`
 * 512 → 128 and `fc3` 128 → 2 (logit 1: same video at the same time), with a ReLU after the
 * concatenation and between the FC layers (a projection followed directly by fc1 would be one
 * linear map). It is only trained alongside the student and is never needed afterwards.
 */

export const PROJECTION = 1024;
export const HEAD_WIDTHS = [2 * PROJECTION, 512, 128, 2] as const;

export class TransferHead extends Module {
  readonly student_proj: Linear;
  readonly teacher_proj: Linear;
  readonly fc1: Linear;
  readonly fc2: Linear;
  readonly fc3: Linear;

  constructor(readonly studentFeatures: number, readonly teacherFeatures: number) {
    super();
    this.student_proj = this.addModule('student_proj', new Linear(studentFeatures, PROJECTION));
    this.teacher_proj = this.addModule('teacher_proj', new Linear(teacherFeatures, PROJECTION));
    this.fc1 = this.addModule('fc1', new Linear(HEAD_WIDTHS[0], HEAD_WIDTHS[1]));
    this.fc2 = this.addModule('fc2', new Linear(HEAD_WIDTHS[1], HEAD_WIDTHS[2]));
    this.fc3 = this.addModule('fc3', new Linear(HEAD_WIDTHS[2], HEAD_WIDTHS[3]));
  }

  /** Pair logits N×2 from the student's N×Fs and the teacher's N×Ft features. */
  forwardPair(student: Tensor, teacher: Tensor): Tensor {
    return tidy(() => {
      const joint = cat([this.student_proj.forward(student), this.teacher_proj.forward(teacher)], 1).relu();
      const hidden = this.fc2.forward(this.fc1.forward(joint).relu()).relu();
      return this.fc3.forward(hidden);
    });
  }

  /** The head takes two inputs: a single tensor is the two feature sets side by side (N×(Fs+Ft)). */
  forward(features: Tensor): Tensor {
    return tidy(() => this.forwardPair(features.narrow(1, 0, this.studentFeatures), features.narrow(1, this.studentFeatures, this.teacherFeatures)));
  }
}
