import { join } from 'node:path';
import { readdirSync } from 'node:fs';
import { generateSynth } from '../../src/data/synth.js';
import { ClipLoader } from '../../src/data/loader.js';
import { NORMALIZATIONS } from '../../src/data/transforms.js';
import { fromTypedArray, manualSeed, noGrad, tidy } from '../../src/engine/index.js';
import { createModel } from '../../src/models/registry.js';
import { saveModelCheckpoint, type Preprocessing } from '../../src/models/checkpoint.js';
import { batchTensors } from '../../src/train/epoch.js';
import { exportOnnx } from '../../src/export/index.js';
import Fastify, { type FastifyInstance } from 'fastify';
import { registerWebPage } from '../../src/serve/web.js';
import { tempDir } from '../helpers.js';
import { launchChromium, type Browser } from './chromium.js';

/**
 * The browser tests' model and videos. One generated video per motion class (96×72, so both the
 * short-side resize and the centre crop are exercised), and a seeded STC-ResNet-18 (width ×0.125,
 * 4 frames of 32², decoded at short side 36) whose backbone stays as initialised and whose
 * classifier is fitted (softmax regression with weight decay, a few hundred full-batch steps, in
 * closed loops here: milliseconds) to the pooled features of the 10 clips `stcnet predict` makes of
 * each video. So each video has its own clear top-1 class, and the class depends on the frames: a
 * page that made clips differently (another crop, layout, normalisation or frame choice) would land
 * on other classes or scores. Exported with `stcnet export`'s own writer.
 */
export interface WebFixture {
  work: string;
  /** One video per class, in class order. */
  videos: string[];
  classes: string[];
  preprocessing: Preprocessing;
  checkpoint: string;
  onnx: string;
}

export const WEB_CLASSES = ['MoveRight', 'MoveLeft', 'MoveUp', 'MoveDown'];
const PREPROCESSING: Preprocessing = {
  frames: 4, stride: 1, size: 32, mean: [...NORMALIZATIONS.kinetics.mean], std: [...NORMALIZATIONS.kinetics.std], shortSide: 36,
};
/** Clips per video, as `stcnet predict`'s default. */
export const PREDICT_CLIPS = 10;
/** Weight decay of the classifier's fit: it keeps the weights small, so a pixel's rounding cannot swing a class. */
const WEIGHT_DECAY = 1e-2;

let made: Promise<WebFixture> | undefined;

export function webFixture(): Promise<WebFixture> {
  made ??= (async () => {
    const work = tempDir('stcnet-web-');
    const data = join(work, 'data');
    await generateSynth({
      out: data, classes: 4, videosPerClass: 1, width: 96, height: 72, fps: 8, minDuration: 1.5, maxDuration: 2,
      noise: 2, shake: 0, seed: 3, jobs: 2, scene: 'varied', quiet: true,
    });
    const videos = WEB_CLASSES.map((name) => {
      const file = readdirSync(join(data, name)).find((f) => f.endsWith('.mp4'));
      if (!file) throw new Error(`webFixture: no video was generated for ${name}`);
      return join(data, name, file);
    });
    manualSeed(0);
    const model = createModel('stc_resnet3d_18', { numClasses: WEB_CLASSES.length, frames: PREPROCESSING.frames, widthMultiplier: 0.125 });
    try {
      model.eval();
      const features = await clipFeatures(model, videos);
      const fc = fitClassifier(features, model.numFeatures);
      const dict = model.stateDict();
      dict.set('fc.weight', fromTypedArray(fc.weight, [WEB_CLASSES.length, model.numFeatures]));
      dict.set('fc.bias', fromTypedArray(fc.bias, [WEB_CLASSES.length]));
      model.loadStateDict(dict);
      const checkpoint = join(work, 'model.safetensors');
      saveModelCheckpoint(checkpoint, model, { classes: WEB_CLASSES, preprocessing: PREPROCESSING });
      const onnx = join(work, 'model.onnx');
      await exportOnnx(checkpoint, onnx);
      return { work, videos, classes: WEB_CLASSES, preprocessing: PREPROCESSING, checkpoint, onnx };
    } finally {
      model.dispose();
    }
  })();
  return made;
}

/** The pooled features of the clips `stcnet predict` makes of each video (PREDICT_CLIPS × width per video). */
async function clipFeatures(model: ReturnType<typeof createModel>, videos: string[]): Promise<Float32Array[]> {
  const p = PREPROCESSING;
  const loader = await ClipLoader.create({
    samples: videos.map((path) => ({ path, relPath: path, label: 0 })), source: { kind: 'video', shortSide: p.shortSide! },
    mode: 'test', batchSize: PREDICT_CLIPS, frames: p.frames, stride: p.stride, size: p.size,
    normalize: { mean: [p.mean[0]!, p.mean[1]!, p.mean[2]!], std: [p.std[0]!, p.std[1]!, p.std[2]!] },
    testClips: PREDICT_CLIPS, testCrops: 1, workers: 1, shuffle: false, dropLast: false,
  });
  const out: Float32Array[] = new Array(videos.length);
  try {
    for await (const batch of loader.epoch(0)) {
      if (batch.labels.length === 0) throw new Error(`webFixture: ${videos[batch.index]} could not be decoded`);
      out[batch.index] = noGrad(() => tidy(() => model.forwardFeatures(batchTensors(batch).clips).toFloat32Array()));
    }
  } finally {
    await loader.close();
  }
  return out;
}

/**
 * Softmax regression of class v on the clips of video v, by full-batch gradient descent on
 * standardised features (per-feature mean, one overall scale), then folded back into fc's weight
 * and bias for the raw features.
 */
function fitClassifier(features: Float32Array[], width: number): { weight: Float32Array; bias: Float32Array } {
  const k = features.length;
  const rows: { x: Float64Array; label: number }[] = [];
  features.forEach((f, label) => {
    for (let r = 0; r < f.length / width; r++) rows.push({ x: Float64Array.from(f.subarray(r * width, (r + 1) * width)), label });
  });
  const mu = new Float64Array(width);
  for (const { x } of rows) for (let i = 0; i < width; i++) mu[i]! += x[i]! / rows.length;
  let variance = 0;
  for (const { x } of rows) for (let i = 0; i < width; i++) variance += (x[i]! - mu[i]!) ** 2 / (rows.length * width);
  const sigma = Math.sqrt(variance) || 1;
  const z = rows.map(({ x, label }) => ({ x: Float64Array.from(x, (v, i) => (v - mu[i]!) / sigma), label }));
  const W = new Float64Array(k * width);
  const b = new Float64Array(k);
  for (let step = 0; step < 500; step++) {
    const gW = new Float64Array(k * width);
    const gb = new Float64Array(k);
    for (const { x, label } of z) {
      const logits = Array.from({ length: k }, (_, c) => b[c]! + x.reduce((sum, v, i) => sum + v * W[c * width + i]!, 0));
      const max = Math.max(...logits);
      const e = logits.map((l) => Math.exp(l - max));
      const total = e.reduce((a, v) => a + v, 0);
      for (let c = 0; c < k; c++) {
        const g = (e[c]! / total - (c === label ? 1 : 0)) / z.length;
        gb[c]! += g;
        for (let i = 0; i < width; i++) gW[c * width + i]! += g * x[i]!;
      }
    }
    for (let j = 0; j < W.length; j++) W[j]! -= 0.5 * (gW[j]! + WEIGHT_DECAY * W[j]!);
    for (let c = 0; c < k; c++) b[c]! -= 0.5 * gb[c]!;
  }
  return {
    weight: Float32Array.from(W, (w) => w / sigma),
    bias: Float32Array.from(b, (bias, c) => bias - W.subarray(c * width, (c + 1) * width).reduce((sum, w, i) => sum + (w * mu[i]!) / sigma, 0)),
  };
}

/** The fixture's page served by registerWebPage (fastify on a free port) and a Chromium to open it. */
export interface ServedPage {
  fixture: WebFixture;
  app: FastifyInstance;
  url: string;
  browser: Browser;
}

export async function servePage(launch: { softwareWebGpu?: boolean } = {}): Promise<ServedPage> {
  const fixture = await webFixture();
  const app = Fastify();
  await registerWebPage(app, { onnxFile: fixture.onnx });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  try {
    return { fixture, app, url, browser: await launchChromium([], launch) };
  } catch (error) {
    await app.close();
    throw error;
  }
}
