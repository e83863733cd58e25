import type { Rng } from './random.js';

/**
 * Temporal sampling. A clip is T frame indices at a stride. When a video is shorter than the span
 * (T-1)·stride+1, the indices that fit are repeated in order until there are T (Hara et al.'s loop
 * padding), so every clip has exactly T frames.
 */

/** The span in frames of a clip of T frames at a stride. */
export function clipSpan(frames: number, stride: number): number {
  return (frames - 1) * stride + 1;
}

/** T indices from `start` at `stride`, looping over the ones that fit in [0, numFrames). */
export function loopedIndices(numFrames: number, start: number, frames: number, stride: number): Int32Array {
  if (numFrames < 1) throw new Error('sampler: a video needs at least one frame');
  const fit: number[] = [];
  for (let f = start; f < numFrames && fit.length < frames; f += stride) fit.push(f);
  if (fit.length === 0) fit.push(numFrames - 1);
  const out = new Int32Array(frames);
  for (let i = 0; i < frames; i++) out[i] = fit[i % fit.length]!;
  return out;
}

/** Training: a uniformly random start among those whose clip fits (start 0 and loop padding when none does). */
export function trainClipIndices(numFrames: number, frames: number, stride: number, rng: Rng): Int32Array {
  const span = clipSpan(frames, stride);
  const maxStart = numFrames - span;
  const start = maxStart > 0 ? rng.int(maxStart + 1) : 0;
  return loopedIndices(numFrames, start, frames, stride);
}

/** Testing: the starts of K clips evenly spaced over the video (the first at 0, the last ending at the end). */
export function testClipStarts(numFrames: number, frames: number, stride: number, clips: number): number[] {
  const maxStart = Math.max(0, numFrames - clipSpan(frames, stride));
  if (clips === 1) return [Math.floor(maxStart / 2)];
  return Array.from({ length: clips }, (_, k) => Math.round((k * maxStart) / (clips - 1)));
}

export function testClipIndices(numFrames: number, frames: number, stride: number, clips: number): Int32Array[] {
  return testClipStarts(numFrames, frames, stride, clips).map((s) => loopedIndices(numFrames, s, frames, stride));
}

/** One process's part of a data-parallel job: its rank among `world` processes. */
export interface Shard {
  rank: number;
  world: number;
}

/**
 * The batches of an epoch as positions in the epoch's (shuffled) order. Alone: consecutive runs of
 * `batchSize`. As one rank of a data-parallel job (PyTorch's DistributedSampler, strided): global
 * batch b is positions [b·B·W, (b+1)·B·W) and rank r takes every W-th of them from r, so each
 * epoch's order is split across the ranks without overlap, and the W ranks' batch b together
 * are exactly the batch b of one process with batch B·W (same clips, same augmentation, which is
 * keyed by position). `dropLast` drops the positions that do not fill a whole global batch
 * (training); without it the last batches are short, and may be empty on the higher ranks.
 */
export function batchPositions(count: number, batchSize: number, dropLast: boolean, shard: Shard = { rank: 0, world: 1 }): number[][] {
  const { rank, world } = shard;
  if (!Number.isInteger(world) || world < 1 || !Number.isInteger(rank) || rank < 0 || rank >= world) {
    throw new Error(`sampler: rank ${rank} of ${world} is not a valid shard`);
  }
  const global = batchSize * world;
  const batches = dropLast ? Math.floor(count / global) : Math.ceil(count / global);
  const out: number[][] = [];
  for (let b = 0; b < batches; b++) {
    const positions: number[] = [];
    for (let j = 0; j < batchSize; j++) {
      const position = b * global + j * world + rank;
      if (position < count) positions.push(position);
    }
    if (positions.length > 0) out.push(positions);
  }
  return out;
}
