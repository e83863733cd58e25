import os from 'node:os';
import path from 'node:path';
import { Progress } from '../util/progress.js';
import { UserError } from '../util/errors.js';
import { ensureDirAsync, writeFileAtomicAsync } from '../util/fs.js';
import { runPool } from '../util/pool.js';
import { encodeVideoBatch, removeStaleEncodeTemps } from '../video/encode.js';
import { Rng } from './random.js';
import { SYNTH_CLASSES, SYNTH_SHAPES, shapeClassName, synthFrames, type SynthClass, type SynthLabel, type SynthRenderOptions, type SynthShape } from './synth_render.js';

// Writes synthetic datasets (`stcnet synth`): plans classes, groups and splits, renders each video
// (synth_render.ts) and encodes it, interruptibly. The renderer's API is re-exported from here.
export * from './synth_render.js';

export interface SynthOptions extends SynthRenderOptions {
  out: string;
  /** Number of classes (the first N of SYNTH_CLASSES). */
  classes: number;
  videosPerClass: number;
  /** Duration range in seconds. */
  minDuration: number;
  maxDuration: number;
  seed: number;
  /** Parallel ffmpeg encoders. */
  jobs?: number;
  /** Videos per group (groups share appearance; splits never divide a group). */
  clipsPerGroup?: number;
  quiet?: boolean;
  /** Stops the run: encoders are killed, their temporary folders removed, and the abort reason thrown. */
  signal?: AbortSignal;
  /**
   * What the dataset's classes are: 'motion' (default: the motion classes above, which no single
   * frame tells apart) or 'shape' (the moving object's shape, which one frame shows: the frame-level
   * task `stcnet train-2d` trains a 2D teacher on). With 'shape', `classes` motions are mixed into
   * every shape class, round-robin, so motion says nothing about the label.
   */
  label?: SynthLabel;
}


export interface SynthVideoEntry {
  /** The video's class: its motion, or its shape (`Rectangle`, ...) in a shape-labelled dataset. */
  className: string;
  /** The motion class it is rendered with (= className unless the label is the shape). */
  motion: string;
  /** The shape it must show (shape-labelled datasets only; motion datasets draw it). */
  shape?: SynthShape;
  label: number;
  group: number;
  clip: number;
  /** Path relative to the dataset root, `Class/v_Class_gGG_cCC.mp4`. */
  relPath: string;
  frames: number;
}

/** The videos a synth run makes, in a fixed order (class-major). */
export function planSynth(options: SynthOptions): { classes: SynthClass[]; videos: SynthVideoEntry[]; groups: number } {
  const label = options.label ?? 'motion';
  if (label !== 'motion' && label !== 'shape') throw new UserError(`synth: --label must be motion or shape, got "${String(options.label)}"`);
  if (!Number.isInteger(options.classes) || options.classes < 2 || options.classes > SYNTH_CLASSES.length) {
    throw new UserError(`synth: --classes must be between 2 and ${SYNTH_CLASSES.length}, got ${options.classes}`);
  }
  if (options.videosPerClass < 1) throw new UserError(`synth: --videos must be at least 1, got ${options.videosPerClass}`);
  if (options.width % 2 !== 0 || options.height % 2 !== 0 || options.width < 16 || options.height < 16) {
    throw new UserError(`synth: --width and --height must be even and at least 16, got ${options.width}x${options.height}`);
  }
  if (!(options.minDuration > 0) || options.maxDuration < options.minDuration) {
    throw new UserError(`synth: duration range must satisfy 0 < min <= max, got ${options.minDuration}..${options.maxDuration}`);
  }
  const motions = SYNTH_CLASSES.slice(0, options.classes);
  const classes: SynthClass[] = label === 'motion' ? [...motions] : SYNTH_SHAPES.map((shape) => ({
    name: shapeClassName(shape), reverse: shapeClassName(shape),
    description: `the moving object is a ${shape} (any of ${motions.length} motions)`,
  }));
  const n = options.videosPerClass;
  const perGroup = options.clipsPerGroup ?? 4;
  const groups = Math.min(n, Math.max(3, Math.ceil(n / perGroup)));
  const videos: SynthVideoEntry[] = [];
  classes.forEach((cls, index) => {
    const shape = label === 'shape' ? SYNTH_SHAPES[index]! : undefined;
    for (let i = 0; i < n; i++) {
      const group = i % groups;
      const clip = Math.floor(i / groups);
      // Shape classes cycle through the motions, each shape starting at another one.
      const motion = shape === undefined ? cls.name : motions[(i + index) % motions.length]!.name;
      const rng = new Rng('synth-length', options.seed, cls.name, group, clip);
      const frames = Math.max(2, Math.round(rng.uniform(options.minDuration, options.maxDuration) * options.fps));
      const name = `v_${cls.name}_g${String(group + 1).padStart(2, '0')}_c${String(clip + 1).padStart(2, '0')}.mp4`;
      videos.push({ className: cls.name, motion, ...(shape ? { shape } : {}), label: index, group, clip, relPath: `${cls.name}/${name}`, frames });
    }
  });
  return { classes, videos, groups };
}

/** Split s (0, 1, 2) tests the groups g with g mod 3 == s: no group is in both train and test. */
export function synthSplitIsTest(group: number, split: number): boolean {
  return group % 3 === split;
}

/**
 * Generates a synthetic dataset in the UCF101 layout: class folders of H.264 MP4s, classInd.txt and
 * three train/test split pairs (grouped), plus synth.json describing the run.
 */
export async function generateSynth(options: SynthOptions): Promise<{ videos: number; seconds: number }> {
  const { classes, videos, groups } = planSynth(options);
  await ensureDirAsync(options.out);
  for (const dir of [options.out, ...classes.map((cls) => path.join(options.out, cls.name))]) {
    await ensureDirAsync(dir);
    // Partial videos of an interrupted run (a dot-folder per encoder) go before anything lists the folder.
    await removeStaleEncodeTemps(dir);
  }
  const jobs = Math.max(1, options.jobs ?? os.availableParallelism());
  const progress = new Progress({ total: videos.length, label: 'synth', unit: 'videos', quiet: options.quiet });
  // One ffmpeg process per chunk of videos: starting ffmpeg costs more than encoding a 3 s clip.
  // The chunks depend only on the plan (never on --jobs), so the files are the same for any job count.
  const chunkSize = Math.max(1, Math.min(24, Math.ceil(videos.length / 8)));
  const chunks: SynthVideoEntry[][] = [];
  for (let i = 0; i < videos.length; i += chunkSize) chunks.push(videos.slice(i, i + chunkSize));
  await withInterruption(options.signal, async (signal) => {
    await runPool(chunks, jobs, async (chunk) => {
      const frames = function* (): Generator<Uint8Array> {
        for (const video of chunk) {
          yield* synthFrames(video.motion, video.frames, options, { seed: options.seed, group: video.group, index: video.clip, ...(video.shape ? { shape: video.shape } : {}) });
        }
      };
      await encodeVideoBatch(chunk.map((v) => path.join(options.out, v.relPath)), chunk.map((v) => v.frames),
        { width: options.width, height: options.height, fps: options.fps, signal }, frames());
      progress.tick(chunk.length);
    }, { signal });
    signal.throwIfAborted();
  });
  progress.finish();

  const root = options.out;
  await writeFileAtomicAsync(path.join(root, 'classInd.txt'), classes.map((c, i) => `${i + 1} ${c.name}\r\n`).join(''));
  for (let s = 0; s < 3; s++) {
    const train = videos.filter((v) => !synthSplitIsTest(v.group, s)).map((v) => `${v.relPath} ${v.label + 1}\r\n`);
    const test = videos.filter((v) => synthSplitIsTest(v.group, s)).map((v) => `${v.relPath}\r\n`);
    await writeFileAtomicAsync(path.join(root, `trainlist0${s + 1}.txt`), train.join(''));
    await writeFileAtomicAsync(path.join(root, `testlist0${s + 1}.txt`), test.join(''));
  }
  const meta = {
    generator: 'stcnet synth', seed: options.seed, width: options.width, height: options.height, fps: options.fps,
    duration: [options.minDuration, options.maxDuration], noise: options.noise, shake: options.shake, scene: options.scene ?? 'varied',
    videosPerClass: options.videosPerClass, groupsPerClass: groups,
    classes: classes.map((c) => ({ name: c.name, reverse: c.reverse, description: c.description })),
    // A shape-labelled dataset says which motions it mixed in and which motion each video has.
    ...(options.label === 'shape' ? { label: 'shape', motions: SYNTH_CLASSES.slice(0, options.classes).map((c) => c.name), videos: videos.map((v) => ({ path: v.relPath, shape: v.shape, motion: v.motion })) } : {}),
  };
  await writeFileAtomicAsync(path.join(root, 'synth.json'), JSON.stringify(meta, null, 2) + '\n');
  return { videos: videos.length, seconds: progress.elapsedSeconds };
}

const INTERRUPTIONS = ['SIGINT', 'SIGTERM'] as const;

/**
 * The runs in progress in this process and one SIGINT/SIGTERM handler for all of them (installed
 * while any runs), so a signal stops every run, and is raised again only after the last one cleaned up.
 */
const interruption = {
  runs: new Set<AbortController>(),
  caught: undefined as { signal: NodeJS.Signals; alone: boolean } | undefined,
  handlers: new Map<NodeJS.Signals, () => void>(),
};

/**
 * Runs `work` with an abort signal that fires on the caller's signal, on SIGINT and on SIGTERM, so an
 * interruption kills the encoders and removes their temporary folders before the process ends. When
 * nothing else listens for the signal that came, it is raised again once the cleanup is done (the
 * process ends as it would have without us); otherwise the caller's handler decides, and this throws.
 */
async function withInterruption(outer: AbortSignal | undefined, work: (signal: AbortSignal) => Promise<void>): Promise<void> {
  const controller = new AbortController();
  if (interruption.runs.size === 0) {
    interruption.caught = undefined;
    for (const name of INTERRUPTIONS) {
      const handler = (): void => {
        if (interruption.caught) return;
        interruption.caught = { signal: name, alone: process.listenerCount(name) === 1 };
        const reason = new UserError(`synth: interrupted by ${name}; the partial videos were removed, run the command again`);
        for (const run of interruption.runs) run.abort(reason);
      };
      interruption.handlers.set(name, handler);
      process.on(name, handler);
    }
  }
  interruption.runs.add(controller);
  const onOuter = (): void => controller.abort(outer!.reason);
  if (outer?.aborted) onOuter();
  outer?.addEventListener('abort', onOuter, { once: true });
  try {
    await work(controller.signal);
  } finally {
    outer?.removeEventListener('abort', onOuter);
    interruption.runs.delete(controller);
    if (interruption.runs.size === 0) {
      for (const [name, handler] of interruption.handlers) process.off(name, handler);
      interruption.handlers.clear();
      const caught = interruption.caught;
      if (caught?.alone) {
        process.kill(process.pid, caught.signal);
        // The signal is delivered asynchronously; until then nothing else may run.
        await new Promise((resolve) => setTimeout(resolve, 1000));
      }
    }
  }
}
