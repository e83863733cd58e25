import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { spawnSync } from 'node:child_process';
import { VideoWriter } from '../../src/video/encode.js';
import { decodeVideo } from '../../src/video/decode.js';
import { centerCropBox, normalizationTables, normalizeClip, renderClipUint8 } from '../../src/data/transforms.js';
import { testClipIndices } from '../../src/data/samplers.js';
import { parseOnnxMetadata } from '../../src/onnx/metadata.js';
import { Rng } from '../../src/data/random.js';
import { repoRoot, tempDir } from '../helpers.js';
import { webFixture } from './fixture.js';

/**
 * The page's modules (web/*.js, plain ES modules) in Node: the clip maker against stcnet's loader
 * path, the MP4 frame count against ffmpeg, the resize against ffmpeg's, the ONNX metadata reader
 * against stcnet's.
 */

interface Preprocessing { frames: number; stride: number; size: number; mean: number[]; std: number[]; shortSide?: number }
interface ClipModule {
  ClipMaker: new (p: Preprocessing) => { frame(rgba: Uint8Array, w: number, h: number): Uint8Array; clip(frames: Uint8Array[]): Float32Array; shortSide: number };
  resizeRgbaToRgb(rgba: Uint8Array, sw: number, sh: number, dw: number, dh: number): Uint8Array;
  scaledSize(w: number, h: number, s: number): { width: number; height: number };
  testClipIndices: typeof testClipIndices;
  topK(scores: ArrayLike<number>, classes: string[], k: number): { index: number; label: string; score: number }[];
}
interface Mp4Module {
  mp4VideoTiming(readAt: (offset: number, length: number) => Promise<Uint8Array>, size: number): Promise<{ frames: number; duration: number } | null>;
}
interface MetaModule {
  readOnnxProps(bytes: Uint8Array): { props: Record<string, string>; producer: string; irVersion: number };
  modelInfo(props: Record<string, string>, producer?: string): { classes: string[]; preprocessing: Preprocessing; arch: string; batch: number };
}

const web = async <T>(name: string): Promise<T> => (await import(pathToFileURL(join(repoRoot, 'web', name)).href)) as T;

/** Packed RGB to RGBA, as a canvas gives it. */
function rgba(rgb: Uint8Array): Uint8Array {
  const out = new Uint8Array((rgb.length / 3) * 4);
  for (let i = 0, j = 0; i < rgb.length; i += 3, j += 4) {
    out[j] = rgb[i]!; out[j + 1] = rgb[i + 1]!; out[j + 2] = rgb[i + 2]!; out[j + 3] = 255;
  }
  return out;
}

function randomFrame(rng: Rng, width: number, height: number): Uint8Array {
  return Uint8Array.from({ length: width * height * 3 }, () => rng.int(256));
}

async function writeVideo(file: string, frames: number, width: number, height: number, fps: number): Promise<void> {
  const writer = new VideoWriter(file, { width, height, fps });
  const rng = new Rng('web-video', 1);
  for (let i = 0; i < frames; i++) await writer.write(randomFrame(rng, width, height));
  await writer.finish();
}

test('the page\'s clips are bit for bit the loader\'s: crop, resample, layout (C,T,H,W) and normalisation', async () => {
  const { ClipMaker } = await web<ClipModule>('clip.js');
  const p: Preprocessing = { frames: 3, stride: 1, size: 20, mean: [0.4, 0.5, 0.6], std: [0.2, 0.25, 0.3], shortSide: 24 };
  const maker = new ClipMaker(p);
  const rng = new Rng('web-clip', 2);
  for (const [width, height] of [[40, 24], [24, 31]] as const) {
    // Frames already at the decode size, as ffmpeg hands them to the loader.
    const frames = Array.from({ length: p.frames }, () => randomFrame(rng, width, height));
    const page = maker.clip(frames.map((f) => maker.frame(rgba(f), width, height)));
    const plane = p.size * p.size;
    const uint8 = new Uint8Array(3 * p.frames * plane);
    renderClipUint8(frames, width, height, centerCropBox(width, height), false, p.size, uint8, 0);
    const expected = new Float32Array(uint8.length);
    normalizeClip(uint8, 0, p.frames * plane, normalizationTables({ mean: [0.4, 0.5, 0.6], std: [0.2, 0.25, 0.3] }), expected, 0);
    assert.deepEqual(page, expected, `${width}×${height}`);
  }
  assert.throws(() => maker.clip([new Uint8Array(3 * plane(p))]), /a clip needs 3 frames, got 1/);
});

const plane = (p: Preprocessing) => p.size * p.size;

// ffmpeg resizes the YUV planes (chroma at half size) and converts to RGB after; the page can only
// resize RGB, with an exact area average. Measured: 1.1–2.0 levels apart per channel on this video.
test('the page\'s resize to the decode size is within 2 levels of ffmpeg\'s (flags=area) on average', async () => {
  const { resizeRgbaToRgb, scaledSize } = await web<ClipModule>('clip.js');
  const dir = tempDir('stcnet-web-');
  const file = join(dir, 'smooth.mp4');
  // Smooth gradients with a moving edge: what real frames look like to a resampler.
  const width = 160;
  const height = 90;
  const writer = new VideoWriter(file, { width, height, fps: 10, crf: 10 });
  for (let t = 0; t < 3; t++) {
    const frame = new Uint8Array(width * height * 3);
    for (let y = 0; y < height; y++) for (let x = 0; x < width; x++) {
      const o = (y * width + x) * 3;
      frame[o] = (x * 255) / width; frame[o + 1] = (y * 255) / height; frame[o + 2] = x > 40 + 20 * t ? 200 : 30;
    }
    await writer.write(frame);
  }
  await writer.finish();
  const full = await decodeVideo(file, {});
  const size = scaledSize(width, height, 36);
  assert.deepEqual(size, { width: 64, height: 36 });
  const small = await decodeVideo(file, { shortSide: 36 });
  assert.deepEqual([small.width, small.height], [64, 36]);
  for (let i = 0; i < full.frames.length; i++) {
    const mine = resizeRgbaToRgb(rgba(full.frames[i]!), width, height, size.width, size.height);
    let sum = 0;
    for (let k = 0; k < mine.length; k++) sum += Math.abs(mine[k]! - small.frames[i]![k]!);
    assert.ok(sum / mine.length < 2, `frame ${i}: mean |page − ffmpeg| ${sum / mine.length}`);
  }
  // The same size: the pixels, alpha dropped.
  const same = resizeRgbaToRgb(rgba(full.frames[0]!), width, height, width, height);
  assert.deepEqual(same, full.frames[0]);
});

test('the MP4 reader counts the frames ffmpeg decodes; other files are not MP4 (null), never an exception', async () => {
  const { mp4VideoTiming } = await web<Mp4Module>('mp4.js');
  const dir = tempDir('stcnet-web-');
  const read = (bytes: Uint8Array) => (offset: number, length: number) => Promise.resolve(bytes.subarray(offset, offset + length));
  for (const [frames, fps] of [[13, 10], [7, 25]] as const) {
    const file = join(dir, `v${frames}.mp4`);
    await writeVideo(file, frames, 32, 24, fps);
    const bytes = readFileSync(file);
    const timing = await mp4VideoTiming(read(bytes), bytes.length);
    assert.deepEqual(timing, { frames, duration: frames / fps });
    assert.equal((await decodeVideo(file, {})).frames.length, frames);
  }
  const webm = join(dir, 'v.webm');
  const encode = spawnSync('ffmpeg', ['-v', 'error', '-y', '-i', join(dir, 'v13.mp4'), '-c:v', 'libvpx-vp9', '-threads', '1', webm], { encoding: 'utf8' });
  assert.equal(encode.status, 0, encode.stderr);
  const other = readFileSync(webm);
  assert.equal(await mp4VideoTiming(read(other), other.length), null);
  const mp4 = readFileSync(join(dir, 'v13.mp4'));
  for (const cut of [0, 7, 100, 400]) {
    assert.equal(await mp4VideoTiming(read(mp4.subarray(0, cut)), cut), null, `cut at ${cut}`);
  }
  const text = Buffer.from('just some text, long enough to look like a box header or two');
  assert.equal(await mp4VideoTiming(read(text), text.length), null);
  writeFileSync(join(dir, 'unused'), '');
});

test('the page reads an exported model\'s metadata as stcnet does, and says what is wrong with other files', async () => {
  const { readOnnxProps, modelInfo } = await web<MetaModule>('onnx_meta.js');
  const fixture = await webFixture();
  const bytes = readFileSync(fixture.onnx);
  const { props } = readOnnxProps(bytes);
  const stcnet = parseOnnxMetadata(bytes);
  assert.deepEqual(props, stcnet.raw);
  const info = modelInfo(props);
  assert.deepEqual(info.classes, stcnet.classes);
  assert.deepEqual({ ...info.preprocessing }, { ...stcnet.preprocessing });
  assert.equal(info.arch, 'stc_resnet3d_18');
  assert.equal(info.batch, 1);

  assert.throws(() => readOnnxProps(new TextEncoder().encode('not a model at all')), /^Error: not an ONNX model/);
  assert.throws(() => readOnnxProps(bytes.subarray(0, bytes.length - 10)), /^Error: not an ONNX model: a field of \d+ bytes runs past the end of the file/);
  assert.throws(() => modelInfo({}), /no class names in its metadata/);
  assert.throws(() => modelInfo({ classes: '["a"]' }), /no preprocessing in its metadata/);
  assert.throws(() => modelInfo({ classes: '["a"]', preprocessing: '{"frames":0,"size":8,"mean":[0],"std":[1]}' }), /bad frames: 0/);
  assert.throws(() => modelInfo({ classes: '["a"]', preprocessing: '{"frames":2,"size":8,"mean":[0,0],"std":[1]}' }), /bad mean/);
  assert.throws(() => modelInfo({ classes: 'a, b', preprocessing: '{}' }), /"classes" is not JSON/);
  assert.equal(modelInfo({ ...props, input: JSON.stringify({ ...JSON.parse(props.input!), batch: 4 }) }).batch, 4);
});

test('the page\'s sampler and ranking are stcnet\'s', async () => {
  const { testClipIndices: pageIndices, topK } = await web<ClipModule>('clip.js');
  assert.equal(pageIndices, testClipIndices, 'the page imports stcnet\'s compiled sampler itself');
  assert.deepEqual(topK([0.1, 0.5, 0.1, 0.3], ['a', 'b', 'c', 'd'], 3).map((c) => c.label), ['b', 'd', 'a']);
});
