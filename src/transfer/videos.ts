import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { isVideoFile, listFiles, uniqueSamples, type VideoSample } from '../data/dataset.js';
import { loadDataset } from '../data/formats/index.js';
import { hashKeys } from '../data/random.js';
import { UserError } from '../util/errors.js';
import type { TransferConfig } from './config.js';

/**
 * The unlabeled videos of a transfer run: every video file under a folder (format `videos`), or
 * every video of a dataset in one of `stcnet data`'s formats, all splits together and labels
 * ignored. A fixed share of them is held out (chosen by a hash of the seed and the video's path,
 * so the same videos whatever their order) to measure pair accuracy on videos never trained on.
 */

export interface TransferVideos {
  /** Every usable video; sample indices below index this list. */
  samples: VideoSample[];
  /** Indices into `samples`. */
  train: number[];
  heldOut: number[];
}

export async function listTransferVideos(config: Pick<TransferConfig, 'root' | 'format' | 'annotations' | 'videos' | 'class-list'>): Promise<VideoSample[]> {
  const { root, format } = config;
  if (!existsSync(root)) throw new UserError(`root: ${root}: no such ${format === 'manifest' ? 'manifest file' : 'folder'}`);
  if (format !== 'videos') {
    const dataset = await loadDataset(root, format, { annotations: config.annotations, videos: config.videos, classList: config['class-list'] });
    // Labels are not used: every video is as good as another for pairs.
    return uniqueSamples(dataset).map((sample) => ({ ...sample, label: -1 }));
  }
  for (const key of ['annotations', 'videos', 'class-list'] as const) {
    if (config[key] !== undefined) throw new UserError(`${key}: format "videos" (a plain folder of videos) does not use it; give --format for a dataset layout`);
  }
  if (!statSync(root).isDirectory()) throw new UserError(`root: ${root}: is a file, expected a folder of videos (or give --format manifest)`);
  const files = (await listFiles(root)).filter(isVideoFile);
  return files.map((relPath) => ({ path: path.join(root, relPath), relPath, label: -1 }));
}

/** Splits the videos into training and held-out ones; at least 2 of each (a negative pair needs another video). */
export function splitHeldOut(samples: VideoSample[], fraction: number, seed: number, root: string): TransferVideos {
  if (samples.length < 2) {
    throw new UserError(`root: ${root} has ${samples.length} video${samples.length === 1 ? '' : 's'}; transfer needs at least 2 (a negative pair is frames of another video)`);
  }
  const all = samples.map((_, i) => i);
  if (fraction === 0) return { samples, train: all, heldOut: [] };
  const wanted = Math.max(2, Math.round(samples.length * fraction));
  if (samples.length - wanted < 2) {
    throw new UserError(`val-fraction: ${root} has ${samples.length} videos, too few to hold out ${wanted} and train on at least 2; ` +
      'use more videos, or --val-fraction 0 for no held-out pair accuracy');
  }
  const ranked = [...all].sort((a, b) => hashKeys('held-out', seed, samples[a]!.relPath) - hashKeys('held-out', seed, samples[b]!.relPath) || a - b);
  const held = new Set(ranked.slice(0, wanted));
  return { samples, train: all.filter((i) => !held.has(i)), heldOut: all.filter((i) => held.has(i)) };
}
