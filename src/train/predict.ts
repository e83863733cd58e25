import { ClipLoader } from '../data/loader.js';
import type { VideoSample } from '../data/dataset.js';
import { noGrad, tidy } from '../engine/index.js';
import type { Module } from '../nn/index.js';
import type { Preprocessing } from '../models/checkpoint.js';
import { probeVideo } from '../video/probe.js';
import { batchTensors } from './epoch.js';
import { decodeShortSide, normalizationOf } from './classifier.js';
import { topClasses } from './metrics.js';

/**
 * Predictions on video files. Clips are made by the test-mode ClipLoader reading the videos
 * themselves (ffmpeg, short side from the checkpoint), so they are exactly what `stcnet eval` scores:
 * K clips evenly spaced over the video (or over a window of it), the centre crop (or three crops)
 * at the checkpoint's size, normalised with its mean and std. A video's (or window's) scores are
 * the mean softmax over its clips.
 */

export interface PredictSettings {
  preprocessing: Preprocessing;
  /** Clips per video or window (K). */
  clips: number;
  /** Crops per clip: 1 (centre) or 3; default 1. */
  crops?: 1 | 3;
  /** Loader worker threads (decoding in parallel); default 1. */
  workers?: number;
}

/** A part of a video to score: the whole file, or [start, end) seconds of it. */
export interface Segment {
  path: string;
  start?: number;
  end?: number;
}

/**
 * The test-mode loader reading the videos themselves, as eval, predict and explain make clips: K clips
 * evenly spaced, `crops` crops each, at the preprocessing's short side, size, frames, stride and mean/std.
 * One batch per sample (K × crops clips), so each video is decoded once and batch b is sample b.
 */
export function viewLoader(samples: VideoSample[], p: Preprocessing, clips: number, crops: 1 | 3, workers: number): Promise<ClipLoader> {
  return ClipLoader.create({
    samples, source: { kind: 'video', shortSide: decodeShortSide(p), ...(p.fps !== undefined ? { fps: p.fps } : {}) },
    mode: 'test', batchSize: clips * crops, frames: p.frames, stride: p.stride, size: p.size,
    normalize: normalizationOf(p), testClips: clips, testCrops: crops, workers, shuffle: false, dropLast: false,
  });
}

/** A decode failure's reason without ffmpeg's per-run context tag ("[mov,mp4,... @ 0x55d0...] "), which differs on every run. */
export function failureReason(reason: string): string {
  return reason.replace(/\[[^\]\n]* @ 0x[0-9a-f]+\] ?/g, '');
}

export type SegmentScores = { ok: true; scores: Float32Array; views: number } | { ok: false; error: string };

/**
 * Mean softmax scores of each segment, in order; a segment whose video cannot be decoded gets its
 * error instead, and the others go on. `onSegment` is called as each one finishes.
 */
export async function scoreSegments(model: Module & { numClasses: number }, segments: Segment[], settings: PredictSettings,
  onSegment?: (index: number, result: SegmentScores) => void): Promise<SegmentScores[]> {
  const crops = settings.crops ?? 1;
  const p = settings.preprocessing;
  const samples: VideoSample[] = segments.map((s) => ({ path: s.path, relPath: s.path, label: 0, start: s.start, end: s.end }));
  const results: SegmentScores[] = new Array(segments.length);
  if (segments.length === 0) return results;
  const loader = await viewLoader(samples, p, settings.clips, crops, settings.workers ?? 1);
  const wasTraining = model.training;
  model.eval();
  try {
    for await (const batch of loader.epoch(0)) {
      const index = batch.index;
      let result: SegmentScores;
      if (batch.labels.length === 0) {
        result = { ok: false, error: failureReason(batch.failures[0]?.reason ?? 'no clip could be made') };
      } else {
        const k = model.numClasses;
        const probabilities = noGrad(() => tidy(() => {
          const { clips } = batchTensors(batch);
          loader.recycle(batch);  // copied: the workers make the next batch during this forward
          return model.forward(clips).softmax(1).toFloat32Array();
        }));
        const n = batch.labels.length;
        const scores = new Float32Array(k);
        for (let i = 0; i < n; i++) for (let c = 0; c < k; c++) scores[c]! += probabilities[i * k + c]! / n;
        result = { ok: true, scores, views: n };
      }
      results[index] = result;
      onSegment?.(index, result);
    }
  } finally {
    model.train(wasTraining);
    await loader.close();
  }
  return results;
}

export interface ClassScore {
  index: number;
  label: string;
  score: number;
}

/** The k best classes of a score vector, named. */
export function topScores(scores: Float32Array, classes: readonly string[], k: number): ClassScore[] {
  return topClasses(scores, Math.min(k, scores.length)).map((index) => ({ index, label: classes[index] ?? `class ${index}`, score: scores[index]! }));
}

export type VideoResult =
  | { file: string; ok: true; views: number; scores: Float32Array; top: ClassScore[] }
  | { file: string; ok: false; error: string };

/** Top-k predictions per video; undecodable videos carry their error and the rest go on. */
export async function predictVideos(model: Module & { numClasses: number }, files: string[], classes: readonly string[],
  settings: PredictSettings & { top: number }, onVideo?: (result: VideoResult, done: number) => void): Promise<VideoResult[]> {
  let done = 0;
  const results = await scoreSegments(model, files.map((path) => ({ path })), settings, (index, r) => {
    onVideo?.(toVideoResult(files[index]!, r, classes, settings.top), ++done);
  });
  return results.map((r, i) => toVideoResult(files[i]!, r, classes, settings.top));
}

function toVideoResult(file: string, r: SegmentScores, classes: readonly string[], top: number): VideoResult {
  return r.ok ? { file, ok: true, views: r.views, scores: r.scores, top: topScores(r.scores, classes, top) } : { file, ok: false, error: r.error };
}

export interface TimelineWindow {
  start: number;
  end: number;
  ok: boolean;
  /** Mean scores over the window's clips (absent when the window could not be decoded). */
  scores?: Float32Array;
  top?: ClassScore[];
  error?: string;
}

export interface Timeline {
  file: string;
  duration: number;
  window: number;
  step: number;
  windows: TimelineWindow[];
}

/**
 * Windows of `window` seconds every `step` seconds from 0, each ending within the video, plus one
 * window ending at the end when the grid leaves the tail uncovered (so the whole video is seen);
 * a video shorter than one window is one window over all of it.
 */
export function timelineWindows(duration: number, window: number, step: number): { start: number; end: number }[] {
  if (!(window > 0) || !(step > 0)) throw new Error(`timelineWindows: window and step must be positive, got ${window} and ${step}`);
  const out: { start: number; end: number }[] = [];
  // Window edges are multiples of the step rounded to microseconds, so 0.1 steps do not drift.
  for (let k = 0; ; k++) {
    const start = Math.round(k * step * 1e6) / 1e6;
    const end = Math.round((start + window) * 1e6) / 1e6;
    if (end > duration + 1e-6) break;
    out.push({ start, end });
  }
  if (out.length === 0) return [{ start: 0, end: duration }];
  const last = out[out.length - 1]!;
  if (last.end < duration - 1e-3) out.push({ start: Math.round((duration - window) * 1e6) / 1e6, end: duration });
  return out;
}

/**
 * Per-window predictions over one video: K clips spread over each window, scores averaged per
 * window. Throws the video's error when it cannot be probed; windows that fail to decode carry
 * their error.
 */
export async function predictTimeline(model: Module & { numClasses: number }, file: string, classes: readonly string[],
  settings: PredictSettings & { top: number; window: number; step: number }, onWindow?: (done: number, total: number) => void): Promise<Timeline> {
  const info = await probeVideo(file);
  if (!(info.duration > 0)) throw new Error(`${file}: the video's duration is unknown, so it cannot be cut into windows`);
  const windows = timelineWindows(info.duration, settings.window, settings.step);
  let done = 0;
  onWindow?.(0, windows.length);
  const scores = await scoreSegments(model, windows.map((w) => ({ path: file, start: w.start, end: w.end })), settings, () => onWindow?.(++done, windows.length));
  return {
    file, duration: info.duration, window: settings.window, step: settings.step,
    windows: windows.map((w, i) => {
      const r = scores[i]!;
      return r.ok ? { ...w, ok: true, scores: r.scores, top: topScores(r.scores, classes, settings.top) } : { ...w, ok: false, error: r.error };
    }),
  };
}
