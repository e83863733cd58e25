/**
 * Image measurements for the synth check (tests only): single-frame statistics, and motion read
 * from frame differences, so that a clip and its time reverse can be compared.
 */

/** Mean R, G, B and edge density (share of pixels with a luma gradient above 24) of one frame. */
export function frameStats(frame: Uint8Array, w: number, h: number): { r: number; g: number; b: number; edges: number } {
  let r = 0;
  let g = 0;
  let b = 0;
  let edges = 0;
  const luma = (x: number, y: number): number => {
    const o = (y * w + x) * 3;
    return 0.299 * frame[o]! + 0.587 * frame[o + 1]! + 0.114 * frame[o + 2]!;
  };
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const o = (y * w + x) * 3;
      r += frame[o]!;
      g += frame[o + 1]!;
      b += frame[o + 2]!;
      if (x + 1 < w && y + 1 < h && Math.hypot(luma(x + 1, y) - luma(x, y), luma(x, y + 1) - luma(x, y)) > 24) edges++;
    }
  }
  const n = w * h;
  return { r: r / n, g: g / n, b: b / n, edges: edges / n };
}

function diffMap(a: Uint8Array, b: Uint8Array, w: number, h: number): Float32Array {
  const d = new Float32Array(w * h);
  for (let i = 0; i < w * h; i++) {
    const s = Math.abs(a[i * 3]! - b[i * 3]!) + Math.abs(a[i * 3 + 1]! - b[i * 3 + 1]!) + Math.abs(a[i * 3 + 2]! - b[i * 3 + 2]!);
    d[i] = s > 60 ? s : 0;
  }
  return d;
}

/** Circular (wrap-around) centroid of a weight map. */
function circularCentroid(d: Float32Array, w: number, h: number): { x: number; y: number; mass: number; count: number } {
  let cx = 0;
  let sx = 0;
  let cy = 0;
  let sy = 0;
  let mass = 0;
  let count = 0;
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const v = d[y * w + x]!;
      if (v === 0) continue;
      cx += v * Math.cos((2 * Math.PI * x) / w);
      sx += v * Math.sin((2 * Math.PI * x) / w);
      cy += v * Math.cos((2 * Math.PI * y) / h);
      sy += v * Math.sin((2 * Math.PI * y) / h);
      mass += v;
      count++;
    }
  }
  const ax = Math.atan2(sx, cx);
  const ay = Math.atan2(sy, cy);
  return { x: ((ax < 0 ? ax + 2 * Math.PI : ax) * w) / (2 * Math.PI), y: ((ay < 0 ? ay + 2 * Math.PI : ay) * h) / (2 * Math.PI), mass, count };
}

function wrapDelta(d: number, period: number): number {
  return d - period * Math.round(d / period);
}

function slope(values: number[]): number {
  const n = values.length;
  const mx = (n - 1) / 2;
  const my = values.reduce((a, b) => a + b, 0) / n;
  let num = 0;
  let den = 0;
  values.forEach((v, i) => {
    num += (i - mx) * (v - my);
    den += (i - mx) ** 2;
  });
  return den > 0 ? num / den : 0;
}

export interface MotionFeatures {
  /** Net travel in pixels (x right, y down) of the centroid of the frame differences. */
  dx: number;
  dy: number;
  /** Trend of the log of the changing area (grows when approaching). */
  scaleTrend: number;
  /** Later speed minus earlier speed (pixels per frame). */
  speedTrend: number;
  /** Positive when the content turns clockwise on screen. */
  rotation: number;
}

export function motionFeatures(frames: Uint8Array[], w: number, h: number): MotionFeatures {
  const cents: { x: number; y: number; count: number }[] = [];
  const total = new Float32Array(w * h);
  for (let t = 0; t + 1 < frames.length; t++) {
    const d = diffMap(frames[t]!, frames[t + 1]!, w, h);
    for (let i = 0; i < d.length; i++) total[i]! += d[i]!;
    cents.push(circularCentroid(d, w, h));
  }
  const steps: { dx: number; dy: number }[] = [];
  for (let t = 0; t + 1 < cents.length; t++) {
    const a = cents[t]!;
    const b = cents[t + 1]!;
    // A centroid of a handful of changed pixels is noise: such steps count as no motion.
    if (a.count < 4 || b.count < 4) steps.push({ dx: 0, dy: 0 });
    else steps.push({ dx: wrapDelta(b.x - a.x, w), dy: wrapDelta(b.y - a.y, h) });
  }
  const dx = steps.reduce((s, v) => s + v.dx, 0);
  const dy = steps.reduce((s, v) => s + v.dy, 0);
  // Speed trend from the unwrapped track (sums of steps telescope, so jitter of the centroid around
  // the object does not add up): distance covered in the second half minus the first half.
  const track: { x: number; y: number }[] = [{ x: 0, y: 0 }];
  for (const st of steps) track.push({ x: track[track.length - 1]!.x + st.dx, y: track[track.length - 1]!.y + st.dy });
  const at = (i: number): { x: number; y: number } => {
    const lo = Math.max(0, i - 1);
    const hi = Math.min(track.length - 1, i + 1);
    let x = 0;
    let y = 0;
    for (let j = lo; j <= hi; j++) {
      x += track[j]!.x;
      y += track[j]!.y;
    }
    return { x: x / (hi - lo + 1), y: y / (hi - lo + 1) };
  };
  const p0 = at(0);
  const pm = at(Math.floor((track.length - 1) / 2));
  const p1 = at(track.length - 1);
  const speedTrend = Math.hypot(p1.x - pm.x, p1.y - pm.y) - Math.hypot(pm.x - p0.x, pm.y - p0.y);
  const scaleTrend = slope(cents.map((c) => Math.log(1 + c.count)));
  // Rotation sense: does frame t+k look like frame t turned clockwise or anticlockwise about the
  // centre of all motion?
  const centre = circularCentroid(total, w, h);
  const radius = 0.35 * Math.min(w, h);
  const k = 3;
  const delta = (12 * Math.PI) / 180;
  let rotation = 0;
  for (let t = 0; t + k < frames.length; t += 2) {
    const err = (sign: number): number => {
      const c = Math.cos(-sign * delta);
      const s = Math.sin(-sign * delta);
      let e = 0;
      for (let y = -radius; y <= radius; y++) {
        for (let x = -radius; x <= radius; x++) {
          if (x * x + y * y > radius * radius) continue;
          const qx = ((Math.round(centre.x + x) % w) + w) % w;
          const qy = ((Math.round(centre.y + y) % h) + h) % h;
          const px = ((Math.round(centre.x + x * c - y * s) % w) + w) % w;
          const py = ((Math.round(centre.y + x * s + y * c) % h) + h) % h;
          const a = frames[t + k]!;
          const b = frames[t]!;
          const oq = (qy * w + qx) * 3;
          const op = (py * w + px) * 3;
          e += Math.abs(a[oq]! - b[op]!) + Math.abs(a[oq + 1]! - b[op + 1]!) + Math.abs(a[oq + 2]! - b[op + 2]!);
        }
      }
      return e;
    };
    rotation += err(-1) - err(1);
  }
  return { dx, dy, scaleTrend, speedTrend, rotation };
}
