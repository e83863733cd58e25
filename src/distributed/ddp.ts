import { cat, noGrad, tensor, tidy, Tensor, zerosLike } from '../engine/index.js';
import { BatchNorm1d, BatchNorm2d, BatchNorm3d, type Module } from '../nn/index.js';
import { dist } from './native.js';
import type { ProcessGroup } from './process_group.js';

/**
 * Data parallelism over a ProcessGroup, as PyTorch's DistributedDataParallel does it: every rank
 * starts from rank 0's parameters and buffers, and after each backward every rank holds the mean
 * of all ranks' gradients, so the optimizers stay in step without exchanging weights again.
 */

/** PyTorch DDP's defaults: a 25 MiB bucket cap, and a 1 MiB first bucket so communication starts early. */
export const BUCKET_BYTES = 25 * 1024 * 1024;
export const FIRST_BUCKET_BYTES = 1024 * 1024;

/** How gradients are averaged: c10d's Reducer (buckets all-reduced during backward), or one all-reduce after it. */
export type GradientMode = 'overlap' | 'after-backward';

/** Copies rank 0's parameters and buffers (BN statistics, counters) into every rank's model. */
export async function broadcastState(group: ProcessGroup, model: Module): Promise<void> {
  const tensors = [...model.parameters(), ...[...model.namedBuffers()].map(([, buffer]) => buffer)];
  // In place on the live tensors, so no autograd history: the broadcast writes under no-grad semantics in C++.
  await group.broadcast(tensors, 'broadcast of the parameters and buffers from rank 0');
}

export class GradientSync {
  private readonly params: Tensor[];

  constructor(private readonly group: ProcessGroup, model: Module, readonly mode: GradientMode) {
    this.params = model.parameters().filter((p) => p.requiresGrad);
    if (mode === 'overlap') dist.distReducer(group.nativeId, this.params.map((p) => p.handle), BUCKET_BYTES, FIRST_BUCKET_BYTES);
  }

  /**
   * Call before a backward whose gradients must be averaged (the last micro-batch of a step): the
   * Reducer then all-reduces each bucket as soon as its gradients are ready, overlapping the rest
   * of backward. Backward of other micro-batches only accumulates, as DDP's no_sync().
   */
  beforeBackward(): void {
    if (this.mode !== 'overlap') return;
    this.group.arrive(); // the Reducer's all-reduces count as one collective
    dist.distReducerPrepare(this.group.nativeId);
  }

  /** Call after that backward: in 'after-backward' mode this is where all gradients are averaged. */
  async afterBackward(): Promise<void> {
    if (this.mode === 'overlap' || this.group.worldSize === 1) return;
    // One flat buffer, so the whole model's gradient is a single all-reduce.
    const flat = tidy(() => cat(this.params.map((p) => (p.grad ?? zerosLike(p)).reshape([-1]))));
    try {
      await this.group.allReduce([flat], 'all-reduce of the gradients');
      noGrad(() => tidy(() => {
        flat.div_(this.group.worldSize);
        let offset = 0;
        for (const p of this.params) {
          const part = flat.slice(0, offset, offset + p.numel).reshape(p.shape);
          offset += p.numel;
          const grad = p.grad;
          if (grad) {
            grad.copy_(part);
            grad.dispose();
          } else {
            p.grad = part.clone();
          }
        }
      }));
    } finally {
      flat.dispose();
    }
  }
}

/**
 * Whether any rank wants to stop (Ctrl-C, SIGTERM): all-reduced with max after each optimizer step,
 * so every rank stops after the same step and none waits in a collective for a rank that left.
 */
export async function anyRankStopping(group: ProcessGroup, stopping: boolean): Promise<boolean> {
  const flag = tensor([stopping ? 1 : 0], { dtype: 'float32' });
  try {
    await group.allReduce([flag], 'agreement on stopping', 'max');
    return flag.item() > 0;
  } finally {
    flag.dispose();
  }
}

/**
 * Synchronised BatchNorm: in training mode every BatchNorm of `model` takes its batch statistics
 * over all ranks' batches together (c10d all-reduces of the per-channel sums in forward and
 * backward), so the result equals BatchNorm over the whole global batch. Eval mode is unchanged.
 * Returns how many layers were converted.
 */
export function synchroniseBatchNorm(group: ProcessGroup, model: Module): number {
  let converted = 0;
  for (const [, module] of model.namedModules()) {
    if (!(module instanceof BatchNorm1d || module instanceof BatchNorm2d || module instanceof BatchNorm3d)) continue;
    const bn = module;
    if (!bn.weight || !bn.bias || !bn.runningMean || !bn.runningVar) continue; // non-affine or untracked: left local
    const local = bn.forward.bind(bn);
    bn.forward = (input: Tensor): Tensor => {
      if (!bn.training) return local(input);
      if (bn.numBatchesTracked) {
        const counter = bn.numBatchesTracked;
        noGrad(() => counter.add_(1));
      }
      return new Tensor(dist.distSyncBatchNorm(group.nativeId, input.handle, bn.weight!.handle, bn.bias!.handle,
        bn.runningMean!.handle, bn.runningVar!.handle, bn.momentum, bn.eps));
    };
    converted++;
  }
  return converted;
}
