// @ts-check
/**
 * Clips from video frames, made as stcnet makes them for `stcnet predict`: the frame is resized so
 * its short side is the model's decode size (an area average, as ffmpeg's `flags=area` downscale),
 * the centred square of the short side is resampled to the crop size with stcnet's own bilinear
 * resampler, and the planes are normalised with the model's mean and std into an NCDHW clip. The
 * resampler, the normaliser and the frame sampler are stcnet's compiled modules themselves (served
 * beside the page), so the page cannot drift from them.
 */
import { centerCropBox, cropResizeJs, normalizationTables } from '../dist/src/data/transforms.js';
import { testClipIndices } from '../dist/src/data/samplers.js';

export { testClipIndices };

/**
 * The short side videos are decoded at for this model: the checkpoint's, else 8/7 of the crop
 * (src/train/classifier.ts, decodeShortSide).
 * @param {{ size: number, shortSide?: number }} p
 */
export function decodeShortSide(p) {
  return p.shortSide ?? Math.max(p.size, Math.round((p.size * 8) / 7));
}

/**
 * The size a frame is decoded at for a short side, the other side keeping the aspect
 * (src/video/decode.ts, scaledSize).
 * @param {number} width @param {number} height @param {number} shortSide
 */
export function scaledSize(width, height, shortSide) {
  if (width <= height) return { width: shortSide, height: Math.max(1, Math.round((height * shortSide) / width)) };
  return { width: Math.max(1, Math.round((width * shortSide) / height)), height: shortSide };
}

/**
 * Per output position, the source pixels it covers and their weights (overlap of the output pixel's
 * span with each source pixel, summing to 1): an area average when shrinking, a blend of the two
 * nearest pixels when growing.
 * @param {number} src @param {number} dst
 */
function areaWeights(src, dst) {
  const scale = src / dst;
  /** @type {{ first: number, weights: number[] }[]} */
  const out = [];
  for (let i = 0; i < dst; i++) {
    let a = i * scale;
    let b = (i + 1) * scale;
    if (scale < 1) {
      // Growing: a span one source pixel wide centred on the output pixel's centre.
      const centre = (i + 0.5) * scale;
      a = Math.min(Math.max(centre - 0.5, 0), src - 1);
      b = a + 1;
    }
    const first = Math.floor(a);
    const weights = [];
    for (let s = first; s < b && s < src; s++) weights.push(Math.min(b, s + 1) - Math.max(a, s));
    const total = weights.reduce((x, y) => x + y, 0);
    out.push({ first, weights: weights.map((w) => w / total) });
  }
  return out;
}

/**
 * Resizes an RGBA image (a canvas's ImageData) to packed RGB, separably (rows, then columns).
 * @param {Uint8ClampedArray | Uint8Array} rgba @param {number} sw @param {number} sh @param {number} dw @param {number} dh
 * @returns {Uint8Array}
 */
export function resizeRgbaToRgb(rgba, sw, sh, dw, dh) {
  const out = new Uint8Array(dw * dh * 3);
  if (sw === dw && sh === dh) {
    for (let i = 0, j = 0; i < out.length; i += 3, j += 4) {
      out[i] = rgba[j]; out[i + 1] = rgba[j + 1]; out[i + 2] = rgba[j + 2];
    }
    return out;
  }
  const xs = areaWeights(sw, dw);
  const ys = areaWeights(sh, dh);
  const rows = new Float32Array(sh * dw * 3);
  for (let y = 0; y < sh; y++) {
    for (let x = 0; x < dw; x++) {
      const { first, weights } = xs[x];
      let r = 0, g = 0, b = 0;
      for (let k = 0; k < weights.length; k++) {
        const p = (y * sw + first + k) * 4;
        const w = weights[k];
        r += rgba[p] * w; g += rgba[p + 1] * w; b += rgba[p + 2] * w;
      }
      const o = (y * dw + x) * 3;
      rows[o] = r; rows[o + 1] = g; rows[o + 2] = b;
    }
  }
  for (let y = 0; y < dh; y++) {
    const { first, weights } = ys[y];
    for (let i = 0; i < dw * 3; i++) {
      let v = 0;
      for (let k = 0; k < weights.length; k++) v += rows[(first + k) * dw * 3 + i] * weights[k];
      out[y * dw * 3 + i] = Math.min(255, Math.max(0, Math.round(v)));
    }
  }
  return out;
}

/** Turns frames into a model's clips. */
export class ClipMaker {
  /** @param {import('./onnx_meta.js').Preprocessing} preprocessing */
  constructor(preprocessing) {
    this.p = preprocessing;
    this.shortSide = decodeShortSide(preprocessing);
    // Three values each (modelInfo expands a single one).
    const three = (/** @type {number[]} */ v) => /** @type {[number, number, number]} */ ([v[0], v[1], v[2]]);
    this.tables = normalizationTables({ mean: three(preprocessing.mean), std: three(preprocessing.std) });
  }

  /** Elements of one clip (3·T·S·S). */
  get clipElements() {
    return 3 * this.p.frames * this.p.size * this.p.size;
  }

  /**
   * One frame (RGBA at the video's size) as the model sees it before normalisation: three uint8
   * planes of size×size (the decode-size resize, then the centre crop resampled by stcnet's resampler).
   * @param {Uint8ClampedArray | Uint8Array} rgba @param {number} width @param {number} height
   * @returns {Uint8Array}
   */
  frame(rgba, width, height) {
    const scaled = scaledSize(width, height, this.shortSide);
    const rgb = resizeRgbaToRgb(rgba, width, height, scaled.width, scaled.height);
    const size = this.p.size;
    const planes = new Uint8Array(3 * size * size);
    cropResizeJs(rgb, scaled.width, scaled.height, centerCropBox(scaled.width, scaled.height), false, planes, 0, size, size, size * size);
    return planes;
  }

  /**
   * T frames (from `frame`) as one normalised clip, CTHW (the model's input is 1×C×T×H×W).
   * @param {Uint8Array[]} frames
   * @returns {Float32Array}
   */
  clip(frames) {
    const T = this.p.frames;
    if (frames.length !== T) throw new Error(`a clip needs ${T} frames, got ${frames.length}`);
    const plane = this.p.size * this.p.size;
    const out = new Float32Array(3 * T * plane);
    for (let c = 0; c < 3; c++) {
      const lut = this.tables[c];
      for (let t = 0; t < T; t++) {
        const src = frames[t];
        const base = (c * T + t) * plane;
        for (let i = 0; i < plane; i++) out[base + i] = lut[src[c * plane + i]];
      }
    }
    return out;
  }
}

/**
 * Softmax of logits (numerically stable).
 * @param {ArrayLike<number>} logits
 * @returns {Float32Array}
 */
export function softmax(logits) {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  const out = new Float32Array(logits.length);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += out[i] = Math.exp(logits[i] - max);
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

/**
 * The k best classes of a score vector, best first (ties: lower index first).
 * @param {ArrayLike<number>} scores @param {string[]} classes @param {number} k
 */
export function topK(scores, classes, k) {
  const order = Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
  return order.slice(0, k).map((index) => ({ index, label: classes[index] ?? `class ${index}`, score: scores[index] }));
}
