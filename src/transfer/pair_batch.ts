import { F, fromTypedArray, noGrad, tidy, type Tensor } from '../engine/index.js';
import type { ZooModel } from '../models/base.js';
import type { Normalization } from '../data/transforms.js';
import type { TransferHead } from './head.js';
import { itemKey, type Pair } from './pairs.js';
import type { ItemRef, LoadedClips } from './clip_source.js';
import { teacherFeatures } from './teacher.js';
import type { TeacherCache } from './teacher_cache.js';

/**
 * One batch of pairs through the networks: the student's clips and the teacher's frames come from
 * the batch's loaded clips (each (video, position) loaded once), the teacher's features from the
 * cache when it has them; then the head's logits, the cross-entropy and (training) the backward pass.
 */

export interface PairNetworks {
  student: ZooModel;
  head: TransferHead;
  teacher: ZooModel;
  /** Frame indices within the clip the teacher sees. */
  teacherFrames: readonly number[];
  studentNorm: Normalization | undefined;
  teacherNorm: Normalization | undefined;
  cache: TeacherCache | null;
  device: 'cpu' | 'cuda';
}

/** The clips a batch needs: every student clip, and the teacher's frames the cache does not hold. */
export function itemsToLoad(pairs: readonly Pair[], cache: TeacherCache | null): ItemRef[] {
  const items = new Map<string, ItemRef>();
  for (const pair of pairs) {
    items.set(itemKey(pair.video, pair.position), { video: pair.video, position: pair.position });
    const partner = itemKey(pair.partnerVideo, pair.partnerPosition);
    if (!cache?.has(partner)) items.set(partner, { video: pair.partnerVideo, position: pair.partnerPosition });
  }
  return [...items.values()];
}

export interface PairResult {
  /** Mean loss over the pairs used, their count and how many the head got right. */
  loss: number;
  correct: number;
  pairs: number;
  /** Seconds spent in the teacher's forward pass. */
  teacherSeconds: number;
}

/** uint8 pixels → [0,1] → (x − mean) / std per channel, for N×3×T×H×W clips. */
function normalized(pixels: Tensor, norm: Normalization | undefined): Tensor {
  return tidy(() => {
    const unit = pixels.float().div(255);
    if (!norm) return unit;
    const channel = (values: readonly number[]) => fromTypedArray(Float32Array.from(values), [1, 3, 1, 1, 1]);
    return unit.sub(channel(norm.mean)).div(channel(norm.std));
  });
}

const rowsTensor = (rows: number[]) => fromTypedArray(BigInt64Array.from(rows, (r) => BigInt(r)), [rows.length]);

/**
 * Forward (and, with `backward`, backward scaled by `scale`) of the pairs whose clips loaded. The
 * teacher's features computed here are added to the cache. Pairs whose clips failed are left out.
 */
export function runPairs(nets: PairNetworks, pairs: readonly Pair[], loaded: LoadedClips, backward: boolean): PairResult {
  const rowOf = new Map<string, number>();
  for (let r = 0; r < loaded.count; r++) rowOf.set(itemKey(loaded.videoIndices[r]!, loaded.positions[r]!), r);
  const teacherRow = new Map<string, Float32Array>();
  const usable = pairs.filter((pair) => rowOf.has(itemKey(pair.video, pair.position)) &&
    (nets.cache?.has(itemKey(pair.partnerVideo, pair.partnerPosition)) || rowOf.has(itemKey(pair.partnerVideo, pair.partnerPosition))));
  if (usable.length === 0) return { loss: 0, correct: 0, pairs: 0, teacherSeconds: 0 };
  return tidy(() => {
    const pixels = fromTypedArray(loaded.data, [loaded.count, 3, loaded.frames, loaded.size, loaded.size], { dtype: 'uint8' });
    const onDevice = (t: Tensor) => (nets.device === 'cpu' ? t : t.to(nets.device));
    // The teacher: features of the partner clips not in the cache, once each.
    const needed = new Set<string>();
    for (const pair of usable) {
      const key = itemKey(pair.partnerVideo, pair.partnerPosition);
      if (teacherRow.has(key) || needed.has(key)) continue;
      const cached = nets.cache?.lookup(key);
      if (cached) teacherRow.set(key, cached);
      else needed.add(key);
    }
    // With a cache, every clip loaded anyway is worth the teacher's pass: (video, position) is then
    // computed once, whether it comes up first as a student clip or as a partner.
    if (nets.cache) {
      for (const pair of usable) {
        const key = itemKey(pair.video, pair.position);
        if (!nets.cache.has(key)) needed.add(key);
      }
    }
    const started = performance.now();
    if (needed.size > 0) {
      const keys = [...needed];
      const input = onDevice(normalized(pixels.indexSelect(0, rowsTensor(keys.map((key) => rowOf.get(key)!))), nets.teacherNorm));
      const features = teacherFeatures(nets.teacher, input, nets.teacherFrames).float().cpu().toFloat32Array();
      const width = features.length / keys.length;
      keys.forEach((key, i) => {
        const row = features.slice(i * width, (i + 1) * width);
        teacherRow.set(key, row);
        nets.cache?.set(key, row);
      });
    }
    const teacherSeconds = (performance.now() - started) / 1000;
    const width = nets.teacher.numFeatures;
    const teacherData = new Float32Array(usable.length * width);
    usable.forEach((pair, i) => teacherData.set(teacherRow.get(itemKey(pair.partnerVideo, pair.partnerPosition))!, i * width));
    const teacherInput = onDevice(fromTypedArray(teacherData, [usable.length, width]));
    const studentInput = onDevice(normalized(pixels.indexSelect(0, rowsTensor(usable.map((pair) => rowOf.get(itemKey(pair.video, pair.position))!))), nets.studentNorm));
    const labels = onDevice(fromTypedArray(BigInt64Array.from(usable, (pair) => (pair.positive ? 1n : 0n)), [usable.length]));
    const forward = () => {
      const logits = nets.head.forwardPair(nets.student.forwardFeatures(studentInput), teacherInput);
      return { logits, loss: F.crossEntropy(logits, labels) };
    };
    const { logits, loss } = backward ? forward() : noGrad(forward);
    if (backward) loss.backward();
    const correct = noGrad(() => logits.argmax(1).eq(labels).sum().item());
    return { loss: loss.item(), correct, pairs: usable.length, teacherSeconds };
  });
}
