/**
 * Classification metrics: top-k accuracy over clips, and over videos after averaging the
 * softmax scores of each video's clips (the paper's video-level protocol), plus a confusion matrix.
 */
export interface AccuracyReport {
  clips: number;
  videos: number;
  clipTop1: number;
  clipTop5: number;
  videoTop1: number;
  videoTop5: number;
  /** confusion[true][predicted], counted over videos. */
  confusion: number[][];
  /** Per class: videos, correct (top-1), accuracy. */
  perClass: { videos: number; correct: number; accuracy: number }[];
}

/**
 * Rank of the true class among the scores (0 = top-1). Ties count against the true class and a
 * non-finite score ranks last, so a diverged model (NaN logits) or a constant one scores zero.
 */
function rankOf(scores: Float32Array, offset: number, numClasses: number, label: number): number {
  const target = scores[offset + label]!;
  if (!Number.isFinite(target)) return numClasses;
  let rank = 0;
  for (let c = 0; c < numClasses; c++) if (c !== label && !(scores[offset + c]! < target)) rank++;
  return rank;
}

/** Accumulates clip scores batch by batch and reports clip- and video-level accuracy. */
export class ScoreAccumulator {
  private readonly videoScores = new Map<number, { sum: Float64Array; clips: number; label: number }>();
  private clips = 0;
  private clipTop1 = 0;
  private clipTop5 = 0;

  constructor(readonly numClasses: number) {}

  /** probabilities: N×classes row-major softmax scores; videoIndices identify each clip's video. */
  add(probabilities: Float32Array, labels: ArrayLike<number>, videoIndices: ArrayLike<number>): void {
    const n = labels.length;
    for (let i = 0; i < n; i++) {
      const label = labels[i]!;
      const rank = rankOf(probabilities, i * this.numClasses, this.numClasses, label);
      this.clips++;
      if (rank < 1) this.clipTop1++;
      if (rank < 5) this.clipTop5++;
      const video = videoIndices[i]!;
      let entry = this.videoScores.get(video);
      if (!entry) {
        entry = { sum: new Float64Array(this.numClasses), clips: 0, label };
        this.videoScores.set(video, entry);
      }
      for (let c = 0; c < this.numClasses; c++) entry.sum[c]! += probabilities[i * this.numClasses + c]!;
      entry.clips++;
    }
  }

  report(): AccuracyReport {
    const k = this.numClasses;
    const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
    let videoTop1 = 0;
    let videoTop5 = 0;
    for (const { sum, label } of this.videoScores.values()) {
      const scores = Float32Array.from(sum);
      const rank = rankOf(scores, 0, k, label);
      if (rank < 1) videoTop1++;
      if (rank < 5) videoTop5++;
      // The top-1 prediction, consistent with rankOf: a correct one only when the label wins outright.
      let predicted = rank === 0 ? label : (label === 0 ? 1 : 0);
      if (rank !== 0) for (let c = 0; c < k; c++) if (c !== label && scores[c]! > scores[predicted]!) predicted = c;
      confusion[label]![predicted]!++;
    }
    const videos = this.videoScores.size;
    const perClass = confusion.map((row, c) => {
      const total = row.reduce((a, b) => a + b, 0);
      return { videos: total, correct: row[c]!, accuracy: total > 0 ? row[c]! / total : 0 };
    });
    return {
      clips: this.clips,
      videos,
      clipTop1: this.clips ? this.clipTop1 / this.clips : 0,
      clipTop5: this.clips ? this.clipTop5 / this.clips : 0,
      videoTop1: videos ? videoTop1 / videos : 0,
      videoTop5: videos ? videoTop5 / videos : 0,
      confusion,
      perClass,
    };
  }
}
