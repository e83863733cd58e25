import { Rng } from '../data/random.js';

/**
 * The pair sampler of 2D→3D transfer. A pair is a student clip, (video, position), and the teacher's
 * frames, (partner video, partner position): positive when they are the same video at the same time
 * (the teacher's frames are taken from the student's clip), negative when the partner is another
 * video. Positions are a fixed grid of clip starts per video (evenly spaced over it), so the frozen
 * teacher sees the same frames for the same (video, position) and its features can be cached.
 *
 * An epoch shows every (training video, position) once as a student clip, in a seeded order, with
 * exactly round(N / (1 + negatives)) positives; draws are keyed by (seed, epoch), so any epoch can
 * be regenerated (a resumed run sees the pairs the uninterrupted one saw).
 */

export interface Pair {
  /** Sample index of the student's clip, and its position on the grid. */
  video: number;
  position: number;
  /** Sample index and position of the teacher's frames. */
  partnerVideo: number;
  partnerPosition: number;
  /** Same video at the same time (label 1), or another video (label 0). */
  positive: boolean;
}

export interface PairSamplerOptions {
  /** Sample indices of the videos pairs are drawn from (at least 2). */
  videos: readonly number[];
  /** Clip positions per video (the grid). */
  positions: number;
  /** Negatives per positive (1: the paper's 1:1). */
  negatives: number;
  seed: number;
}

export class PairSampler {
  /** Where each video is in options.videos. */
  private readonly slot: Map<number, number>;

  constructor(readonly options: PairSamplerOptions) {
    if (options.videos.length < 2) throw new Error(`PairSampler: ${options.videos.length} videos; negatives need at least 2`);
    if (new Set(options.videos).size !== options.videos.length) throw new Error('PairSampler: a video is listed twice');
    if (!Number.isInteger(options.positions) || options.positions < 1) throw new Error(`PairSampler: positions must be a positive integer, got ${options.positions}`);
    if (!(options.negatives > 0)) throw new Error(`PairSampler: negatives must be positive, got ${options.negatives}`);
    this.slot = new Map(options.videos.map((video, i) => [video, i]));
  }

  /** Pairs per epoch: one per (video, position). */
  get pairsPerEpoch(): number {
    return this.options.videos.length * this.options.positions;
  }

  /** Positives among an epoch's pairs: the configured ratio, exactly (rounded). */
  get positivesPerEpoch(): number {
    return Math.round(this.pairsPerEpoch / (1 + this.options.negatives));
  }

  /** The training pairs of an epoch, in the order they are trained on. */
  epochPairs(epoch: number): Pair[] {
    const { videos, positions, seed } = this.options;
    const order: [number, number][] = [];
    for (const video of videos) for (let p = 0; p < positions; p++) order.push([video, p]);
    new Rng('pair-order', seed, epoch).shuffle(order);
    const labels = order.map((_, i) => i < this.positivesPerEpoch);
    new Rng('pair-labels', seed, epoch).shuffle(labels);
    const rng = new Rng('pair-partners', seed, epoch);
    return order.map(([video, position], i) => (labels[i] ? positivePair(video, position) : this.negative(video, position, rng)));
  }

  /**
   * The held-out pairs (the same every epoch): for each (video, position) one positive and one
   * negative, 1:1 whatever the training ratio, so chance is 50%.
   */
  fixedPairs(): Pair[] {
    const { videos, positions, seed } = this.options;
    const rng = new Rng('held-out-pairs', seed);
    const pairs: Pair[] = [];
    for (const video of videos) {
      for (let p = 0; p < positions; p++) pairs.push(positivePair(video, p), this.negative(video, p, rng));
    }
    return pairs;
  }

  /** A negative for (video, position): a uniformly drawn other video at a uniformly drawn position. */
  private negative(video: number, position: number, rng: Rng): Pair {
    const { videos, positions } = this.options;
    const self = this.slot.get(video)!;
    let other = rng.int(videos.length - 1);
    if (other >= self) other++;
    return { video, position, partnerVideo: videos[other]!, partnerPosition: rng.int(positions), positive: false };
  }
}

function positivePair(video: number, position: number): Pair {
  return { video, position, partnerVideo: video, partnerPosition: position, positive: true };
}

/** The key of a (video, position) in the teacher cache and in a batch's loaded clips. */
export function itemKey(video: number, position: number): string {
  return `${video}:${position}`;
}
