import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../../src/data/random.js';
import { clipSpan, loopedIndices, testClipIndices, testClipStarts, trainClipIndices } from '../../src/data/samplers.js';
import {
  centerCropBox, cornerCropBox, cropResizeJs, MULTISCALE_SCALES, NORMALIZATIONS, normalizationTables, normalizeClip,
  randomMultiScaleCrop, threeCropBoxes,
} from '../../src/data/transforms.js';
import { jpeg } from '../../src/video/jpeg.js';

test('train sampler: T frames at a stride from a random start that fits', () => {
  const rng = new Rng(1);
  const starts = new Set<number>();
  for (let i = 0; i < 500; i++) {
    const idx = trainClipIndices(100, 16, 2, rng);
    assert.equal(idx.length, 16);
    for (let t = 1; t < 16; t++) assert.equal(idx[t]! - idx[t - 1]!, 2);
    assert.ok(idx[0]! >= 0 && idx[15]! <= 99);
    starts.add(idx[0]!);
  }
  assert.equal(clipSpan(16, 2), 31);
  assert.equal(Math.min(...starts), 0);
  assert.equal(Math.max(...starts), 100 - 31);
});

test('short videos loop (Hara et al.): the frames that fit repeat in order', () => {
  assert.deepEqual([...loopedIndices(5, 0, 12, 1)], [0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 0, 1]);
  assert.deepEqual([...loopedIndices(7, 0, 6, 2)], [0, 2, 4, 6, 0, 2]);
  assert.deepEqual([...trainClipIndices(3, 4, 1, new Rng(0))], [0, 1, 2, 0]);
  assert.deepEqual([...loopedIndices(1, 0, 3, 1)], [0, 0, 0]);
});

test('test sampler: K clips evenly spaced, first at 0 and last ending at the end', () => {
  assert.deepEqual(testClipStarts(100, 16, 1, 5), [0, 21, 42, 63, 84]);
  assert.deepEqual(testClipStarts(100, 16, 1, 1), [42]);
  const clips = testClipIndices(100, 16, 1, 3);
  assert.equal(clips[2]![15], 99);
  assert.deepEqual(testClipStarts(10, 16, 1, 3), [0, 0, 0]);
});

test('multi-scale corner crop: five scales of the short side at five positions', () => {
  assert.deepEqual(MULTISCALE_SCALES.map((s) => Number(s.toFixed(4))), [1, 0.8409, 0.7071, 0.5946, 0.5]);
  assert.deepEqual(cornerCropBox(171, 128, 1, 'c'), { x: 21, y: 0, w: 128, h: 128 });
  assert.deepEqual(cornerCropBox(171, 128, 0.5, 'tl'), { x: 0, y: 0, w: 64, h: 64 });
  assert.deepEqual(cornerCropBox(171, 128, 0.5, 'br'), { x: 107, y: 64, w: 64, h: 64 });
  assert.deepEqual(cornerCropBox(171, 128, 2 ** -0.5, 'tr'), { x: 171 - 91, y: 0, w: 91, h: 91 });
  const seen = new Set<string>();
  const rng = new Rng(3);
  for (let i = 0; i < 400; i++) {
    const b = randomMultiScaleCrop(171, 128, rng);
    assert.ok(b.x >= 0 && b.y >= 0 && b.x + b.w <= 171 && b.y + b.h <= 128 && b.w === b.h);
    seen.add(`${b.x},${b.y},${b.w}`);
  }
  // 25 (scale, position) pairs; at scale 1 the top and bottom corners coincide on a 128-high frame.
  assert.equal(seen.size, 23);
  assert.deepEqual(centerCropBox(128, 171), { x: 0, y: 21, w: 128, h: 128 });
  assert.deepEqual(threeCropBoxes(171, 128).map((b) => b.x), [0, 21, 43]);
});

function gradient(w: number, h: number): Uint8Array {
  const img = new Uint8Array(w * h * 3);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) {
    const o = (y * w + x) * 3;
    img[o] = x * 2;
    img[o + 1] = y * 3;
    img[o + 2] = (x * 7 + y * 13) & 255;
  }
  return img;
}

test('crop/resize: identity at scale 1, a flip mirrors every row, native equals the TS reference bit for bit', () => {
  const w = 40;
  const h = 30;
  const img = gradient(w, h);
  const out = new Uint8Array(3 * w * h);
  cropResizeJs(img, w, h, { x: 0, y: 0, w, h }, false, out, 0, w, h, w * h);
  for (let y = 0; y < h; y++) for (let x = 0; x < w; x++) for (let c = 0; c < 3; c++) assert.equal(out[c * w * h + y * w + x], img[(y * w + x) * 3 + c]);
  const flipped = new Uint8Array(3 * 16 * 16);
  const plain = new Uint8Array(3 * 16 * 16);
  const box = { x: 5, y: 3, w: 20, h: 20 };
  cropResizeJs(img, w, h, box, false, plain, 0, 16, 16, 256);
  cropResizeJs(img, w, h, box, true, flipped, 0, 16, 16, 256);
  for (let c = 0; c < 3; c++) for (let y = 0; y < 16; y++) for (let x = 0; x < 16; x++) {
    assert.equal(flipped[c * 256 + y * 16 + x], plain[c * 256 + y * 16 + (15 - x)]);
  }
  // The top-left crop starts at the top-left pixel (red = 2x, green = 3y).
  const addon = jpeg();
  const rng = new Rng(9);
  const big = new Uint8Array(171 * 128 * 3).map(() => rng.int(256));
  const tables = normalizationTables(NORMALIZATIONS.kinetics);
  const lut = new Float32Array(768);
  tables.forEach((t, c) => lut.set(t, c * 256));
  for (let i = 0; i < 30; i++) {
    const b = randomMultiScaleCrop(171, 128, rng);
    const flip = rng.chance(0.5);
    const a = new Uint8Array(3 * 112 * 112);
    const n = new Uint8Array(3 * 112 * 112);
    cropResizeJs(big, 171, 128, b, flip, a, 0, 112, 112, 112 * 112);
    addon.cropResize(big, 171, 128, b.x, b.y, b.w, b.h, flip, n, 0, 112, 112, 112 * 112);
    assert.deepEqual(n, a);
    const f = new Float32Array(3 * 112 * 112);
    addon.cropResize(big, 171, 128, b.x, b.y, b.w, b.h, flip, f, 0, 112, 112, 112 * 112, lut);
    const g = new Float32Array(3 * 112 * 112);
    normalizeClip(a, 0, 112 * 112, tables, g, 0);
    assert.deepEqual(f, g);
  }
});

test('normalisation presets (ImageNet, Kinetics per Hara et al.)', () => {
  assert.deepEqual(NORMALIZATIONS.imagenet.mean, [0.485, 0.456, 0.406]);
  assert.ok(Math.abs(NORMALIZATIONS.kinetics.mean[0] * 255 - 110.63666788) < 1e-9);
  const t = normalizationTables(NORMALIZATIONS.imagenet);
  assert.ok(Math.abs(t[0]![255]! - (1 - 0.485) / 0.229) < 1e-6);
});

test('JPEG addon: encode/decode round trip is close at quality 95', () => {
  const addon = jpeg();
  const img = gradient(64, 48);
  const buf = addon.encode(img, 64, 48, 95, 444);
  assert.deepEqual(addon.header(buf), [64, 48]);
  const back = new Uint8Array(img.length);
  addon.decodeInto(buf, back, 0, 64, 48, false);
  let err = 0;
  for (let i = 0; i < img.length; i++) err += Math.abs(back[i]! - img[i]!);
  assert.ok(err / img.length < 2.5, `mean abs error ${err / img.length}`);
  assert.throws(() => addon.decodeInto(Buffer.from('not a jpeg'), back, 0, 64, 48, false), /jpeg\.decodeInto/);
  assert.throws(() => addon.decodeInto(buf, back, 0, 32, 48, false), /expected 32x48/);
});
