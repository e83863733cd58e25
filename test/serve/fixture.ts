import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateSynth } from '../../src/data/synth.js';
import { NORMALIZATIONS } from '../../src/data/transforms.js';
import { manualSeed } from '../../src/engine/index.js';
import { createModel } from '../../src/models/registry.js';
import { saveModelCheckpoint } from '../../src/models/checkpoint.js';
import { tempDir } from '../helpers.js';

/**
 * The service tests' inputs: 4 generated motion videos (48×36, 8 fps, 2–2.5 s), the bad inputs made
 * from them (a text file, a truncated MP4, a 1-frame MP4), and an untrained seeded STC-ResNet-18
 * (4 frames of 32², width ×0.125) saved as a self-describing checkpoint. Made once per test file.
 */
export interface ServeFixture {
  work: string;
  checkpoint: string;
  classes: string[];
  videos: string[];
  textFile: string;
  truncated: string;
  oneFrame: string;
}

export const CLASSES = ['MoveRight', 'MoveLeft', 'MoveUp', 'MoveDown'];

function videosUnder(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = join(dir, entry.name);
    if (entry.isDirectory()) return videosUnder(full);
    return entry.name.endsWith('.mp4') ? [full] : [];
  }).sort();
}

let made: Promise<ServeFixture> | undefined;

export function serveFixture(): Promise<ServeFixture> {
  made ??= (async () => {
    const work = tempDir('stcnet-serve-');
    const data = join(work, 'data');
    await generateSynth({
      out: data, classes: 4, videosPerClass: 1, width: 48, height: 36, fps: 8, minDuration: 2, maxDuration: 2.5,
      noise: 2, shake: 0, seed: 5, jobs: 2, scene: 'plain', quiet: true,
    });
    manualSeed(0);
    const model = createModel('stc_resnet3d_18', { numClasses: 4, frames: 4, widthMultiplier: 0.125 });
    const checkpoint = join(work, 'model.safetensors');
    saveModelCheckpoint(checkpoint, model, {
      classes: CLASSES,
      preprocessing: { frames: 4, stride: 1, size: 32, mean: [...NORMALIZATIONS.kinetics.mean], std: [...NORMALIZATIONS.kinetics.std], shortSide: 36 },
    });
    model.dispose();
    const videos = videosUnder(data);
    const textFile = join(work, 'notes.txt');
    writeFileSync(textFile, 'this is a text file, not a video\n'.repeat(20));
    const truncated = join(work, 'truncated.mp4');
    const whole = readFileSync(videos[0]!);
    writeFileSync(truncated, whole.subarray(0, Math.floor(whole.length / 2)));
    const oneFrame = join(work, 'one-frame.mp4');
    execFileSync('ffmpeg', ['-v', 'error', '-y', '-i', videos[0]!, '-frames:v', '1', '-c:v', 'libx264', '-pix_fmt', 'yuv420p', oneFrame]);
    return { work, checkpoint, classes: CLASSES, videos, textFile, truncated, oneFrame };
  })();
  return made;
}
