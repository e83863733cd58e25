import { Rng } from './random.js';

// The synthetic videos' pictures: classes, looks, trajectories and the frames they make.
// Writing datasets (planning, splits, encoding) is synth.ts's job.

/**
 * Synthetic action classes that differ only by motion. Every class draws its shapes, colours,
 * textures, sizes, positions, angles and background from the same distributions; only the
 * trajectory differs. Classes come in time-reversal pairs (`reverse`): playing a clip backwards
 * turns one class of a pair into the other. Periodic and one-shot are their own reverses.
 */
export interface SynthClass {
  name: string;
  /** The class this one becomes when the clip is played backwards. */
  reverse: string;
  description: string;
}

export const SYNTH_CLASSES: readonly SynthClass[] = [
  { name: 'MoveRight', reverse: 'MoveLeft', description: 'travels to the right (wrapping at the edge)' },
  { name: 'MoveLeft', reverse: 'MoveRight', description: 'travels to the left' },
  { name: 'MoveUp', reverse: 'MoveDown', description: 'travels upwards' },
  { name: 'MoveDown', reverse: 'MoveUp', description: 'travels downwards' },
  { name: 'RotateClockwise', reverse: 'RotateAnticlockwise', description: 'spins clockwise in place' },
  { name: 'RotateAnticlockwise', reverse: 'RotateClockwise', description: 'spins anticlockwise in place' },
  { name: 'Approach', reverse: 'Recede', description: 'grows (comes closer)' },
  { name: 'Recede', reverse: 'Approach', description: 'shrinks (moves away)' },
  { name: 'SpeedUp', reverse: 'SlowDown', description: 'travels in any direction, accelerating' },
  { name: 'SlowDown', reverse: 'SpeedUp', description: 'travels in any direction, decelerating' },
  { name: 'Oscillate', reverse: 'Oscillate', description: 'swings back and forth, periodically' },
  { name: 'SingleSwing', reverse: 'SingleSwing', description: 'rests, swings out and back once, rests' },
];

export interface SynthRenderOptions {
  width: number;
  height: number;
  fps: number;
  /** Gaussian pixel noise, standard deviation in 0–255 units. */
  noise: number;
  /** Camera shake: maximum per-frame offset in pixels. */
  shake: number;
  /**
   * 'varied' (default): textured objects and backgrounds, static distractors, any contrast.
   * 'plain': a solid bright object on a dark gradient, no distractors; the same for every class,
   * so still only motion tells classes apart, but a network learns it from far fewer videos.
   */
  scene?: 'varied' | 'plain';
}

export type SynthLabel = 'motion' | 'shape';

export const SYNTH_SHAPES = ['rectangle', 'ellipse', 'triangle', 'cross', 'ell'] as const;
export type SynthShape = (typeof SYNTH_SHAPES)[number];
const SHAPES = SYNTH_SHAPES;

/** The class name of a shape in a `--label shape` dataset (folders and classInd.txt): `Rectangle`. */
export const shapeClassName = (shape: SynthShape): string => shape[0]!.toUpperCase() + shape.slice(1);
const TEXTURES = ['solid', 'stripes', 'checker'] as const;
const BACKGROUNDS = ['gradient', 'blobs', 'stripes'] as const;

/** Appearance shared by a group (as UCF101's groups share actor and scene). */
interface Appearance {
  shape: (typeof SHAPES)[number];
  texture: (typeof TEXTURES)[number];
  colourA: [number, number, number];
  colourB: [number, number, number];
  aspect: number;
  textureFreq: number;
  background: (typeof BACKGROUNDS)[number];
  bgA: [number, number, number];
  bgB: [number, number, number];
  bgAngle: number;
  bgBlobs: { x: number; y: number; r: number; w: number }[];
  bgFreq: number;
  distractors: { shape: (typeof SHAPES)[number]; colour: [number, number, number]; x: number; y: number; size: number; angle: number; aspect: number }[];
}

function hsv(h: number, s: number, v: number): [number, number, number] {
  const i = Math.floor(h * 6);
  const f = h * 6 - i;
  const p = v * (1 - s);
  const q = v * (1 - f * s);
  const t = v * (1 - (1 - f) * s);
  const [r, g, b] = [[v, t, p], [q, v, p], [p, v, t], [p, q, v], [t, p, v], [v, p, q]][((i % 6) + 6) % 6]!;
  return [Math.round(r! * 255), Math.round(g! * 255), Math.round(b! * 255)];
}

/** The video's look; `shape` (a shape-labelled video) replaces the drawn shape after every draw, so the rest is unchanged. */
function drawAppearance(rng: Rng, scene: SynthRenderOptions['scene'] = 'varied', shape?: SynthShape): Appearance {
  const drawn = drawSceneAppearance(rng, scene);
  return shape === undefined ? drawn : { ...drawn, shape };
}

function drawSceneAppearance(rng: Rng, scene: SynthRenderOptions['scene']): Appearance {
  const varied = drawVariedAppearance(rng);
  if (scene !== 'plain') return varied;
  return {
    ...varied, texture: 'solid', background: 'gradient', distractors: [],
    colourA: hsv(rng.next(), rng.uniform(0.2, 0.6), rng.uniform(0.85, 1)),
    bgA: hsv(rng.next(), rng.uniform(0, 0.3), rng.uniform(0.1, 0.3)),
    bgB: hsv(rng.next(), rng.uniform(0, 0.3), rng.uniform(0.1, 0.3)),
  };
}

function drawVariedAppearance(rng: Rng): Appearance {
  const hue = rng.next();
  const bgHue = rng.next();
  const distractors: Appearance['distractors'] = [];
  const count = rng.int(3);
  for (let i = 0; i < count; i++) {
    distractors.push({
      shape: rng.pick(SHAPES), colour: hsv(rng.next(), rng.uniform(0.3, 0.8), rng.uniform(0.3, 0.9)),
      x: rng.next(), y: rng.next(), size: rng.uniform(0.05, 0.1), angle: rng.uniform(0, 2 * Math.PI), aspect: rng.uniform(0.45, 0.8),
    });
  }
  const blobs: Appearance['bgBlobs'] = [];
  for (let i = 0; i < 4; i++) blobs.push({ x: rng.next(), y: rng.next(), r: rng.uniform(0.15, 0.45), w: rng.uniform(-1, 1) });
  return {
    shape: rng.pick(SHAPES),
    texture: rng.pick(TEXTURES),
    colourA: hsv(hue, rng.uniform(0.55, 1), rng.uniform(0.6, 1)),
    colourB: hsv((hue + rng.uniform(0.25, 0.75)) % 1, rng.uniform(0.4, 1), rng.uniform(0.35, 0.9)),
    aspect: rng.uniform(0.45, 0.75),
    textureFreq: rng.uniform(2, 4),
    background: rng.pick(BACKGROUNDS),
    bgA: hsv(bgHue, rng.uniform(0, 0.4), rng.uniform(0.15, 0.6)),
    bgB: hsv((bgHue + rng.uniform(-0.15, 0.15) + 1) % 1, rng.uniform(0, 0.4), rng.uniform(0.15, 0.6)),
    bgAngle: rng.uniform(0, 2 * Math.PI),
    bgBlobs: blobs,
    bgFreq: rng.uniform(3, 9),
    distractors,
  };
}

/** Is the point (local, unit-scaled coordinates) inside the shape? */
function inside(shape: Appearance['shape'], x: number, y: number, aspect: number): boolean {
  switch (shape) {
    case 'rectangle':
      return x >= -1 && x <= 1 && y >= -aspect && y <= aspect;
    case 'ellipse':
      return x * x + (y * y) / (aspect * aspect) <= 1;
    case 'triangle': {
      // Pointing along +x: apex at (1, 0), base at x = -1 with half-height 0.9.
      if (x < -1 || x > 1) return false;
      return Math.abs(y) <= 0.45 * (1 - x);
    }
    case 'cross':
      return (x >= -1 && x <= 1 && y >= -0.28 && y <= 0.28) || (y >= -aspect && y <= aspect && x >= -0.28 && x <= 0.28) ||
        (x >= 0.45 && x <= 1 && y >= -0.5 && y <= 0.5 && x + y > 0.9);
    case 'ell':
      return (x >= -1 && x <= 1 && y >= 0.45 && y <= 1) || (x >= -1 && x <= -0.45 && y >= -1 && y <= 1);
  }
}

/** Per-video trajectory: object centre (pixels, unwrapped), half-size (pixels) and angle per frame. */
interface Pose {
  x: number;
  y: number;
  size: number;
  angle: number;
}

/**
 * Draws the trajectory of a video of class `name`. Every class draws the same random variables
 * (centre, angle, size position u, speeds) in the same order from the same distributions; the class
 * only decides how they evolve in time.
 */
function trajectory(name: string, frames: number, opts: SynthRenderOptions, rng: Rng): Pose[] {
  const { width: W, height: H, fps } = opts;
  const short = Math.min(W, H);
  const cx = rng.uniform(0, W);
  const cy = rng.uniform(0, H);
  const angle0 = rng.uniform(0, 2 * Math.PI);
  const logMid = rng.uniform(Math.log(0.11), Math.log(0.2));
  const logRange = Math.log(3);
  const uStatic = rng.next();
  const speed = rng.uniform(0.25, 0.5) * W; // pixels per second
  const jitter = rng.uniform(-0.3, 0.3); // direction jitter, radians
  // Radians per second. The rim of a median object (half-size ~0.15 of the short side) then moves about
  // as fast as the translating classes (0.25–0.5 widths per second), so the rotation sense is as
  // visible as a translation; half as fast (the earlier pi/3..2pi/3) a small 3D CNN did not learn it
  // within the demo's budget. Per frame it stays well below half a symmetry angle (45° for the
  // cross, 90° for rectangle and ellipse): at most 15° at 16 fps, so the sense never aliases.
  const spin = rng.uniform((2 * Math.PI) / 3, (4 * Math.PI) / 3);
  const travelDir = rng.uniform(0, 2 * Math.PI);
  const vLow = rng.uniform(0.06, 0.1) * W;
  const vHigh = rng.uniform(0.6, 0.9) * W;
  const freq = rng.uniform(1.5, 2.5); // Hz
  const amp = rng.uniform(0.12, 0.22) * W;
  const phase = rng.uniform(0, 2 * Math.PI);
  const swingDur = rng.uniform(0.5, 0.8); // seconds
  const duration = frames / fps;
  const swingStart = rng.uniform(0, Math.max(0, duration - swingDur));

  const poses: Pose[] = [];
  const mid = (frames - 1) / 2;
  for (let t = 0; t < frames; t++) {
    const sec = (t - mid) / fps; // time from the middle of the clip
    const u = frames > 1 ? t / (frames - 1) : 0.5;
    let x = cx;
    let y = cy;
    let a = angle0;
    let uSize = uStatic;
    switch (name) {
      case 'MoveRight': x += speed * Math.cos(jitter) * sec; y += speed * Math.sin(jitter) * sec; break;
      case 'MoveLeft': x -= speed * Math.cos(jitter) * sec; y += speed * Math.sin(jitter) * sec; break;
      case 'MoveUp': y -= speed * Math.cos(jitter) * sec; x += speed * Math.sin(jitter) * sec; break;
      case 'MoveDown': y += speed * Math.cos(jitter) * sec; x += speed * Math.sin(jitter) * sec; break;
      // Image y points down, so a growing angle in image coordinates turns clockwise on screen.
      case 'RotateClockwise': a += spin * sec; break;
      case 'RotateAnticlockwise': a -= spin * sec; break;
      case 'Approach': uSize = u; break;
      case 'Recede': uSize = 1 - u; break;
      case 'SpeedUp':
      case 'SlowDown': {
        // Exponential speed ramp v(s) = vLow·r^(s/D); distance is its integral. SlowDown is the
        // exact time reverse (a travel direction drawn from the same uniform distribution).
        const r = vHigh / vLow;
        const k = Math.log(r) / duration;
        const s = name === 'SpeedUp' ? t / fps : (frames - 1 - t) / fps;
        const total = (vLow / k) * (Math.exp(k * ((frames - 1) / fps)) - 1);
        const dist = (vLow / k) * (Math.exp(k * s) - 1) - total / 2;
        x += Math.cos(travelDir) * dist;
        y += Math.sin(travelDir) * dist;
        break;
      }
      case 'Oscillate': {
        const d = amp * Math.sin(2 * Math.PI * freq * (t / fps) + phase);
        x += Math.cos(travelDir) * d;
        y += Math.sin(travelDir) * d;
        break;
      }
      case 'SingleSwing': {
        const s = (t / fps - swingStart) / swingDur;
        const d = s > 0 && s < 1 ? amp * Math.sin(2 * Math.PI * s) : 0;
        x += Math.cos(travelDir) * d;
        y += Math.sin(travelDir) * d;
        break;
      }
      default:
        throw new Error(`synth: unknown class ${name}`);
    }
    poses.push({ x, y, size: short * Math.exp(logMid + logRange * (uSize - 0.5)), angle: a });
  }
  return poses;
}

function renderBackground(app: Appearance, W: number, H: number): Uint8Array {
  const bg = new Uint8Array(W * H * 3);
  const ca = Math.cos(app.bgAngle);
  const sa = Math.sin(app.bgAngle);
  const diag = Math.hypot(W, H);
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      let w: number;
      const px = x / diag;
      const py = y / diag;
      if (app.background === 'gradient') {
        w = 0.5 + (px - 0.5 * W / diag) * ca + (py - 0.5 * H / diag) * sa;
      } else if (app.background === 'blobs') {
        w = 0.5;
        for (const b of app.bgBlobs) {
          const dx = x / W - b.x;
          const dy = y / H - b.y;
          w += 0.5 * b.w * Math.exp(-(dx * dx + dy * dy) / (b.r * b.r));
        }
      } else {
        w = 0.5 + 0.25 * Math.sin(2 * Math.PI * app.bgFreq * (px * ca + py * sa));
      }
      w = Math.min(1, Math.max(0, w));
      const o = (y * W + x) * 3;
      bg[o] = app.bgA[0] + (app.bgB[0] - app.bgA[0]) * w;
      bg[o + 1] = app.bgA[1] + (app.bgB[1] - app.bgA[1]) * w;
      bg[o + 2] = app.bgA[2] + (app.bgB[2] - app.bgA[2]) * w;
    }
  }
  return bg;
}

/** Paints a shape (wrapping around the frame edges) into an RGB frame. */
function paintShape(frame: Uint8Array, W: number, H: number, cxRaw: number, cyRaw: number, size: number, angle: number,
  shape: Appearance['shape'], aspect: number, colour: (lx: number, ly: number) => [number, number, number]): void {
  const cos = Math.cos(angle);
  const sin = Math.sin(angle);
  const reach = Math.ceil(size * 1.45) + 1;
  const cx0 = ((cxRaw % W) + W) % W;
  const cy0 = ((cyRaw % H) + H) % H;
  const inv = 1 / size;
  for (const ox of [-W, 0, W]) {
    for (const oy of [-H, 0, H]) {
      const cx = cx0 + ox;
      const cy = cy0 + oy;
      const x0 = Math.max(0, Math.floor(cx - reach));
      const x1 = Math.min(W - 1, Math.ceil(cx + reach));
      const y0 = Math.max(0, Math.floor(cy - reach));
      const y1 = Math.min(H - 1, Math.ceil(cy + reach));
      if (x0 > x1 || y0 > y1) continue;
      for (let y = y0; y <= y1; y++) {
        const dy = y + 0.5 - cy;
        for (let x = x0; x <= x1; x++) {
          const dx = x + 0.5 - cx;
          const lx = (dx * cos + dy * sin) * inv;
          const ly = (-dx * sin + dy * cos) * inv;
          if (!inside(shape, lx, ly, aspect)) continue;
          const c = colour(lx, ly);
          const o = (y * W + x) * 3;
          frame[o] = c[0];
          frame[o + 1] = c[1];
          frame[o + 2] = c[2];
        }
      }
    }
  }
}

/**
 * What makes one video: the seed, its group and index in the group, and for a shape-labelled
 * dataset the shape it must show (its random draws are keyed by the shape too, so two shape classes
 * sharing a motion and a group still look different otherwise).
 */
export interface SynthVideoKeys {
  seed: number;
  group: number;
  index: number;
  shape?: SynthShape;
}

function videoRngs(className: string, keys: SynthVideoKeys): { groupRng: Rng; videoRng: Rng } {
  const extra = keys.shape === undefined ? [] : [keys.shape];
  return {
    groupRng: new Rng('synth-group', keys.seed, className, keys.group, ...extra),
    videoRng: new Rng('synth-video', keys.seed, className, keys.group, keys.index, ...extra),
  };
}

/**
 * Yields the frames of one synthetic video. Deterministic: the same (seed, class, group, index)
 * gives byte-identical frames. Each yielded buffer is reused for the next frame: copy to keep it.
 */
export function* synthFrames(
  className: string,
  frames: number,
  opts: SynthRenderOptions,
  keys: SynthVideoKeys,
): Generator<Uint8Array> {
  const { width: W, height: H } = opts;
  const { groupRng, videoRng } = videoRngs(className, keys);
  const app = drawAppearance(groupRng, opts.scene, keys.shape);
  const poses = trajectory(className, frames, opts, videoRng);
  const margin = Math.ceil(opts.shake);
  const BW = W + 2 * margin;
  const BH = H + 2 * margin;
  const bg = renderBackground(app, BW, BH);
  // Distractors are part of the scene (they shake with it), painted once into the background.
  for (const d of app.distractors) {
    paintShape(bg, BW, BH, d.x * BW, d.y * BH, d.size * Math.min(W, H), d.angle, d.shape, d.aspect, () => d.colour);
  }
  const noiseTable = new Int16Array(1 << 16);
  for (let i = 0; i < noiseTable.length; i++) noiseTable[i] = Math.round(videoRng.normal() * opts.noise);
  const frame = new Uint8Array(W * H * 3);
  const stripes = (lx: number): boolean => (Math.floor((lx + 1) * app.textureFreq) & 1) === 0;
  const colour = (lx: number, ly: number): [number, number, number] => {
    if (app.texture === 'solid') return app.colourA;
    if (app.texture === 'stripes') return stripes(lx) ? app.colourA : app.colourB;
    return ((Math.floor((lx + 1) * app.textureFreq) + Math.floor((ly + 1) * app.textureFreq)) & 1) === 0 ? app.colourA : app.colourB;
  };
  for (let t = 0; t < frames; t++) {
    const sx = margin > 0 ? Math.round(videoRng.uniform(-opts.shake, opts.shake)) : 0;
    const sy = margin > 0 ? Math.round(videoRng.uniform(-opts.shake, opts.shake)) : 0;
    for (let y = 0; y < H; y++) {
      const src = ((y + margin + sy) * BW + margin + sx) * 3;
      frame.set(bg.subarray(src, src + W * 3), y * W * 3);
    }
    const pose = poses[t]!;
    paintShape(frame, W, H, pose.x - sx, pose.y - sy, pose.size, pose.angle, app.shape, app.aspect, colour);
    if (opts.noise > 0) {
      let k = videoRng.u32() & 0xffff;
      const step = (videoRng.u32() & 0xfff) * 2 + 1;
      for (let i = 0; i < frame.length; i++) {
        const v = frame[i]! + noiseTable[k]!;
        frame[i] = v < 0 ? 0 : v > 255 ? 255 : v;
        k = (k + step) & 0xffff;
      }
    }
    yield frame;
  }
}

/** Calls `onFrame` with each frame of a synthetic video (see synthFrames). */
export function renderSynthVideo(className: string, frames: number, opts: SynthRenderOptions,
  keys: SynthVideoKeys, onFrame: (frame: Uint8Array, t: number) => void): void {
  let t = 0;
  for (const frame of synthFrames(className, frames, opts, keys)) onFrame(frame, t++);
}

/**
 * The moving object's area in pixels, frame by frame (ground truth for checks: the object painted
 * alone, without background, distractors, shake or noise).
 */
export function synthObjectAreas(className: string, frames: number, opts: SynthRenderOptions, keys: SynthVideoKeys): number[] {
  const { shape, aspect, poses } = synthObjectTruth(className, frames, opts, keys);
  return poses.map((pose) => {
    const mask = synthShapeMask(shape, aspect, pose, opts.width, opts.height);
    let area = 0;
    for (const inside of mask) area += inside;
    return area;
  });
}

/** The moving object's pose per frame (centre and half-size in pixels, angle) and how it is drawn. */
export interface SynthObjectTruth {
  shape: SynthShape;
  texture: (typeof TEXTURES)[number];
  aspect: number;
  poses: { x: number; y: number; size: number; angle: number }[];
}

/** Ground truth of a video's moving object (the same draws as synthFrames), for checks. */
export function synthObjectTruth(className: string, frames: number, opts: SynthRenderOptions, keys: SynthVideoKeys): SynthObjectTruth {
  const { groupRng, videoRng } = videoRngs(className, keys);
  const app = drawAppearance(groupRng, opts.scene, keys.shape);
  return { shape: app.shape, texture: app.texture, aspect: app.aspect, poses: trajectory(className, frames, opts, videoRng) };
}

/** A W×H mask (1 inside) of a shape drawn at a pose, without shake: the object alone, as synthFrames paints it. */
export function synthShapeMask(shape: SynthShape, aspect: number, pose: SynthObjectTruth['poses'][number], width: number, height: number): Uint8Array {
  const rgb = new Uint8Array(width * height * 3);
  paintShape(rgb, width, height, pose.x, pose.y, pose.size, pose.angle, shape, aspect, () => [1, 1, 1]);
  const mask = new Uint8Array(width * height);
  for (let i = 0; i < mask.length; i++) mask[i] = rgb[i * 3]!;
  return mask;
}
