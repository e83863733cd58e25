/**
 * Classification metrics: top-k accuracy over clips, and over videos after averaging the
 * softmax scores of each video's clips (the paper's video-level protocol), mean class accuracy,
 * a confusion matrix and per-class figures.
 *
 * With several spatial crops per clip (test-time three-crop), a clip's score is the mean of its
 * crops, so "clip accuracy" always counts temporal clips; a video's score is the mean of all its
 * clip × crop views (the same thing, since every clip has the same number of crops).
 */

/** Per class, over the videos (and clips) whose true label it is. */
export interface ClassReport {
  videos: number;
  /** Videos of this class whose top-1 prediction is right. */
  correct: number;
  /** correct / videos (0 when the class has no videos). */
  accuracy: number;
  /** Videos of this class with the true label among the top five. */
  top5Correct: number;
  top5Accuracy: number;
  clips: number;
  clipCorrect: number;
  clipAccuracy: number;
  /** Videos of any class predicted as this one (the confusion matrix's column sum). */
  predicted: number;
  /** correct / predicted (0 when nothing was predicted as this class). */
  precision: number;
}

/** One video's averaged prediction. */
export interface VideoPrediction {
  /** The caller's video index (e.g. an index into the loader's samples). */
  video: number;
  label: number;
  /** Top-1 class; a tie or a non-finite score never counts as the true class. */
  predicted: number;
  /** The mean score of the predicted class. */
  score: number;
  /** The five best classes, best first (fewer when there are fewer classes). */
  top5: number[];
  /** Rank of the true class (0 = top-1; ties count against it). */
  rank: number;
  /** Views (clips × crops) averaged. */
  views: number;
}

export interface AccuracyReport {
  /** Temporal clips scored (crops of a clip averaged first). */
  clips: number;
  videos: number;
  clipTop1: number;
  clipTop5: number;
  videoTop1: number;
  videoTop5: number;
  /** Mean over classes that have videos of their clip top-1 accuracy. */
  clipMeanClassAccuracy: number;
  /** Mean over classes that have videos of their video top-1 accuracy. */
  videoMeanClassAccuracy: number;
  /** confusion[true][predicted], counted over videos. */
  confusion: number[][];
  perClass: ClassReport[];
  /** Every video's prediction, in the order of their video indices. */
  videoPredictions: VideoPrediction[];
}

export interface ScoreAccumulatorOptions {
  /**
   * Spatial crops per clip (1 or 3 in practice). With more than one, `add` needs clip indices, and
   * a clip is scored once all its crops have arrived (in any order); default 1.
   */
  cropsPerClip?: number;
}

/**
 * Rank of the true class among the scores (0 = top-1). Ties count against the true class and a
 * non-finite score ranks last, so a diverged model (NaN logits) or a constant one scores zero.
 */
function rankOf(scores: ArrayLike<number>, offset: number, numClasses: number, label: number): number {
  const target = scores[offset + label]!;
  if (!Number.isFinite(target)) return numClasses;
  let rank = 0;
  for (let c = 0; c < numClasses; c++) if (c !== label && !(scores[offset + c]! < target)) rank++;
  return rank;
}

/** The top-1 class, consistent with rankOf: the true class only when it wins outright. */
function predictedClass(scores: ArrayLike<number>, numClasses: number, label: number, rank: number): number {
  if (rank === 0) return label;
  let predicted = -1;
  for (let c = 0; c < numClasses; c++) {
    if (c === label) continue;
    const s = scores[c]!;
    if (predicted < 0 || s > scores[predicted]! || (Number.isNaN(scores[predicted]!) && !Number.isNaN(s))) predicted = c;
  }
  return predicted < 0 ? label : predicted;
}

/** Class indices by descending score (NaN last; ties by index), the first `k`. */
export function topClasses(scores: ArrayLike<number>, k: number, offset = 0, numClasses = scores.length - offset): number[] {
  const order = Array.from({ length: numClasses }, (_, c) => c);
  const value = (c: number) => {
    const s = scores[offset + c]!;
    return Number.isNaN(s) ? -Infinity : s;
  };
  order.sort((a, b) => value(b) - value(a) || a - b);
  return order.slice(0, k);
}

/** Accumulates clip scores batch by batch and reports clip- and video-level accuracy. */
export class ScoreAccumulator {
  private readonly videoScores = new Map<number, { sum: Float64Array; views: number; label: number }>();
  /** Clips waiting for the rest of their crops, by "video:clip". */
  private readonly pendingClips = new Map<string, { sum: Float64Array; crops: number; label: number }>();
  private readonly cropsPerClip: number;
  private readonly clipsPerClass: Float64Array;
  private readonly clipTop1PerClass: Float64Array;
  private clips = 0;
  private clipTop1 = 0;
  private clipTop5 = 0;

  constructor(readonly numClasses: number, options: ScoreAccumulatorOptions = {}) {
    if (!Number.isInteger(numClasses) || numClasses < 1) throw new Error(`ScoreAccumulator: numClasses must be a positive integer, got ${numClasses}`);
    this.cropsPerClip = options.cropsPerClip ?? 1;
    if (!Number.isInteger(this.cropsPerClip) || this.cropsPerClip < 1) throw new Error(`ScoreAccumulator: cropsPerClip must be a positive integer, got ${this.cropsPerClip}`);
    this.clipsPerClass = new Float64Array(numClasses);
    this.clipTop1PerClass = new Float64Array(numClasses);
  }

  /**
   * probabilities: N×classes row-major softmax scores; videoIndices identify each row's video, and
   * clipIndices its clip within the video (needed only with several crops per clip).
   */
  add(probabilities: Float32Array, labels: ArrayLike<number>, videoIndices: ArrayLike<number>, clipIndices?: ArrayLike<number>): void {
    const n = labels.length;
    const k = this.numClasses;
    if (probabilities.length !== n * k) throw new Error(`ScoreAccumulator: ${probabilities.length} scores for ${n} rows of ${k} classes`);
    if (this.cropsPerClip > 1 && !clipIndices) throw new Error('ScoreAccumulator: clip indices are needed with several crops per clip');
    for (let i = 0; i < n; i++) {
      const label = labels[i]!;
      if (!Number.isInteger(label) || label < 0 || label >= k) throw new Error(`ScoreAccumulator: label ${label} is not a class index in [0, ${k})`);
      const row = probabilities.subarray(i * k, (i + 1) * k);
      const video = videoIndices[i]!;
      let entry = this.videoScores.get(video);
      if (!entry) {
        entry = { sum: new Float64Array(k), views: 0, label };
        this.videoScores.set(video, entry);
      } else if (entry.label !== label) {
        throw new Error(`ScoreAccumulator: video ${video} has rows with labels ${entry.label} and ${label}`);
      }
      for (let c = 0; c < k; c++) entry.sum[c]! += row[c]!;
      entry.views++;
      if (this.cropsPerClip === 1) {
        this.scoreClip(row, label);
        continue;
      }
      const key = `${video}:${clipIndices![i]!}`;
      let clip = this.pendingClips.get(key);
      if (!clip) {
        clip = { sum: new Float64Array(k), crops: 0, label };
        this.pendingClips.set(key, clip);
      }
      for (let c = 0; c < k; c++) clip.sum[c]! += row[c]!;
      if (++clip.crops === this.cropsPerClip) {
        this.pendingClips.delete(key);
        this.scoreClip(clip.sum, label);
      }
    }
  }

  private scoreClip(scores: ArrayLike<number>, label: number): void {
    const rank = rankOf(scores, 0, this.numClasses, label);
    this.clips++;
    this.clipsPerClass[label]!++;
    if (rank < 1) {
      this.clipTop1++;
      this.clipTop1PerClass[label]!++;
    }
    if (rank < 5) this.clipTop5++;
  }

  report(): AccuracyReport {
    // A clip that lost some of its crops is still scored, on the crops it has.
    for (const clip of this.pendingClips.values()) this.scoreClip(clip.sum, clip.label);
    this.pendingClips.clear();
    const k = this.numClasses;
    const confusion = Array.from({ length: k }, () => new Array<number>(k).fill(0));
    const top5PerClass = new Array<number>(k).fill(0);
    let videoTop1 = 0;
    let videoTop5 = 0;
    const videoPredictions: VideoPrediction[] = [];
    for (const [video, { sum, views, label }] of [...this.videoScores].sort((a, b) => a[0] - b[0])) {
      const mean = Float64Array.from(sum, (s) => s / views);
      const rank = rankOf(mean, 0, k, label);
      if (rank < 1) videoTop1++;
      if (rank < 5) {
        videoTop5++;
        top5PerClass[label]!++;
      }
      const predicted = predictedClass(mean, k, label, rank);
      confusion[label]![predicted]!++;
      videoPredictions.push({ video, label, predicted, score: mean[predicted]!, top5: topClasses(mean, Math.min(5, k)), rank, views });
    }
    const videos = this.videoScores.size;
    const perClass: ClassReport[] = confusion.map((row, c) => {
      const total = row.reduce((a, b) => a + b, 0);
      const predicted = confusion.reduce((a, r) => a + r[c]!, 0);
      const clips = this.clipsPerClass[c]!;
      const clipCorrect = this.clipTop1PerClass[c]!;
      return {
        videos: total, correct: row[c]!, accuracy: total > 0 ? row[c]! / total : 0,
        top5Correct: top5PerClass[c]!, top5Accuracy: total > 0 ? top5PerClass[c]! / total : 0,
        clips, clipCorrect, clipAccuracy: clips > 0 ? clipCorrect / clips : 0,
        predicted, precision: predicted > 0 ? row[c]! / predicted : 0,
      };
    });
    const present = perClass.filter((c) => c.videos > 0);
    const mean = (values: number[]) => (values.length ? values.reduce((a, b) => a + b, 0) / values.length : 0);
    return {
      clips: this.clips,
      videos,
      clipTop1: this.clips ? this.clipTop1 / this.clips : 0,
      clipTop5: this.clips ? this.clipTop5 / this.clips : 0,
      videoTop1: videos ? videoTop1 / videos : 0,
      videoTop5: videos ? videoTop5 / videos : 0,
      clipMeanClassAccuracy: mean(present.map((c) => c.clipAccuracy)),
      videoMeanClassAccuracy: mean(present.map((c) => c.accuracy)),
      confusion,
      perClass,
      videoPredictions,
    };
  }
}
