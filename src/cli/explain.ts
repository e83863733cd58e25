import path from 'node:path';
import { defineCommand, type FlagValues } from './args.js';
import { UserError } from '../util/errors.js';
import { checkFolderCreatable, ensureDir, writeFileAtomic, writeJsonAtomic } from '../util/fs.js';
import { Progress } from '../util/progress.js';
import type { Frames } from '../explain/render.js';
import { checkpointFlags, expandVideoArgs, uniqueBases } from './predict.js';

/**
 * `stcnet explain CHECKPOINT VIDEO...|DIR`: where in each video's centre clip the network found the
 * evidence for a class (Grad-CAM at a stage of the backbone). Per video, in --out: NAME.cam.jpg (the
 * clip's frames over the same frames with the map blended in), NAME.cam.mp4 (the blended frames as a
 * video) and NAME.explain.json (the class, the top classes, the map's size and each frame's share).
 */
const flags = {
  out: { type: 'string', description: 'folder for NAME.cam.jpg, NAME.cam.mp4 and NAME.explain.json', default: 'explain' },
  stage: { type: 'int', description: 'backbone stage whose activations are weighed: 4 (last, coarsest) … 1 (finest)', default: 4, min: 1, max: 4 },
  class: { type: 'string', description: 'class to explain, by name or index (default: each clip\'s top class)' },
  top: { type: 'int', description: 'top classes listed per video', default: 5, min: 1 },
  alpha: { type: 'number', description: 'weight of the map over the frames in the pictures', default: 0.5, min: 0, max: 1 },
  ...checkpointFlags,
  json: { type: 'boolean', description: 'print the results as JSON', default: false },
  quiet: { type: 'boolean', description: 'no progress (failures are still reported)', default: false },
} as const;

export const command = defineCommand({
  name: 'explain',
  summary: 'show where in a video the network sees a class: Grad-CAM pictures, a video and per-frame shares',
  usage: 'stcnet explain CHECKPOINT VIDEO...|DIR [--out explain] [--stage 4] [--class NAME] [--alpha 0.5]',
  positionals: { name: 'CHECKPOINT VIDEO...|DIR', min: 2, max: Infinity },
  examples: [
    'stcnet explain runs/a/best.safetensors some.mp4 --out explain/',
    'stcnet explain runs/a/best.safetensors videos/ --stage 3 --class MoveLeft',
  ],
  flags,
  run: (args) => runExplain(args.positionals[0]!, args.positionals.slice(1), args.flags),
});

type Flags = FlagValues<typeof flags>;

/** --class as an index: a class name of the checkpoint, or an integer in range. */
export function classIndexOf(value: string, classes: readonly string[]): number {
  const byName = classes.indexOf(value);
  if (byName >= 0) return byName;
  if (/^\d+$/.test(value) && Number(value) < classes.length) return Number(value);
  const shown = classes.slice(0, 8).join(', ') + (classes.length > 8 ? `, … (${classes.length} in all)` : '');
  throw new UserError(`stcnet explain: --class ${value}: not a class name or index of the checkpoint; its classes: ${shown}`);
}

async function runExplain(checkpointArg: string, videoArgs: string[], f: Flags): Promise<void> {
  const { resolveModelSource } = await import('../train/model_source.js');
  const source = resolveModelSource(checkpointArg);
  const files = expandVideoArgs(videoArgs);
  if (f.labels !== undefined) (await import('../train/labels.js')).readLabels(f.labels);
  checkFolderCreatable(f.out, '--out');
  const { loadClassifier, classNamesOf } = await import('../train/classifier.js');
  const classifier = await loadClassifier(source, { arch: f.arch, frames: f.frames, labels: f.labels, shortSide: f['short-side'] });
  const { model, preprocessing } = classifier;
  try {
    if (model.input.dims !== 3) throw new UserError(`stcnet explain: ${source.checkpoint} is a 2D image model (${classifier.arch}); explain takes video models`);
    const classes = classNamesOf(classifier);
    const classIndex = f.class === undefined ? undefined : classIndexOf(f.class, classes);
    const { explainVideos } = await import('../explain/explain.js');
    const { overlay, contactSheet, upscale } = await import('../explain/render.js');
    const { topScores } = await import('../train/predict.js');
    const { jpeg } = await import('../video/jpeg.js');
    const bases = uniqueBases(files, f.out, (file) => path.basename(file, path.extname(file)));
    const progress = new Progress({ total: files.length, label: 'explain', unit: 'videos', quiet: f.quiet });
    const summaries: Record<string, unknown>[] = [];
    const lines: string[] = [];
    let succeeded = 0;
    ensureDir(f.out);
    // A run killed mid-video (kill -9) leaves its encoder's temporary file: the next run removes it.
    await (await import('../video/encode.js')).removeStaleEncodeTemps(f.out);
    for await (const result of explainVideos(model, files, preprocessing, { stage: f.stage, classIndex })) {
      progress.tick(1);
      if (!result.ok) {
        process.stderr.write(`explain: ${result.file}: ${result.error}\n`);
        summaries.push({ file: result.file, ok: false, error: result.error });
        lines.push(`${result.file}: failed: ${result.error}`);
        continue;
      }
      const base = bases[result.index]!;
      const { gradCam: cam, frames } = result;
      // Clips are small (112² or less): the pictures repeat pixels up to at least 112 rows.
      const factor = Math.max(1, Math.ceil(112 / frames.height));
      const blended = upscale(overlay(frames, cam.cam, f.alpha), factor);
      const sheet = contactSheet([upscale(frames, factor), blended]);
      writeFileAtomic(`${base}.cam.jpg`, jpeg().encode(sheet.rgb, sheet.width, sheet.height, 92, 444));
      await writeVideo(`${base}.cam.mp4`, blended, preprocessing.fps ?? 8);
      const explained = { index: cam.classIndex, label: classes[cam.classIndex] ?? `class ${cam.classIndex}`, score: cam.scores[cam.classIndex]! };
      const summary = {
        file: result.file, ok: true, class: explained, top: topScores(cam.scores, classes, f.top), stage: cam.stage, stageShape: cam.stageShape,
        clipShape: cam.shape, frameImportance: cam.frameImportance.map((v) => Number(v.toFixed(4))),
        files: [`${base}.cam.jpg`, `${base}.cam.mp4`, `${base}.explain.json`],
      };
      writeJsonAtomic(`${base}.explain.json`, { checkpoint: source.checkpoint, arch: classifier.arch, preprocessing, ...summary });
      summaries.push(summary);
      const peak = cam.frameImportance.indexOf(Math.max(...cam.frameImportance));
      // With one frame left at the stage, the map is the same in every frame: no frame is strongest.
      const when = cam.stageShape[0] === 1 ? 'one frame at this stage, the same map in every frame' : `strongest in frame ${peak + 1} of ${cam.shape[0]}`;
      lines.push(`${result.file}: ${explained.label} ${(100 * explained.score).toFixed(1)}% (stage ${cam.stage}, map ${cam.stageShape.join('×')}; ` +
        `${when})\n  wrote ${summary.files.join(', ')}`);
      succeeded++;
    }
    progress.finish();
    process.stdout.write((f.json ? JSON.stringify({ checkpoint: source.checkpoint, arch: classifier.arch, videos: summaries }, null, 2) : lines.join('\n')) + '\n');
    if (succeeded < files.length && !f.json) process.stderr.write(`explain: ${files.length - succeeded} of ${files.length} videos could not be decoded\n`);
    process.exitCode = succeeded > 0 ? 0 : 1;
  } finally {
    model.dispose();
  }
}

/** The frames as an H.264 video; yuv420p needs even sizes, so an odd last row or column is dropped. */
async function writeVideo(file: string, frames: Frames, fps: number): Promise<void> {
  const { VideoWriter } = await import('../video/encode.js');
  const width = frames.width - (frames.width % 2), height = frames.height - (frames.height % 2);
  const writer = new VideoWriter(file, { width, height, fps });
  try {
    for (const image of frames.images) {
      if (width === frames.width && height === frames.height) {
        await writer.write(image);
        continue;
      }
      const cropped = new Uint8Array(width * height * 3);
      for (let y = 0; y < height; y++) cropped.set(image.subarray(y * frames.width * 3, (y * frames.width + width) * 3), y * width * 3);
      await writer.write(cropped);
    }
    await writer.finish();
  } catch (error) {
    await writer.abort();
    throw error;
  }
}
