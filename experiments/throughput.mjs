#!/usr/bin/env node
// Inference clips/s of a checkpoint on random clips of its own preprocessing size (batch B, no
// gradient, eval mode): 2 warm-up passes, then the median of 5 timed passes. Writes OUT_JSON.
// usage: throughput.mjs CHECKPOINT OUT_JSON [BATCH]
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const dist = (p) => join(fileURLToPath(import.meta.url), '..', '..', 'dist', 'src', p);
const [checkpoint, out, batchText] = process.argv.slice(2);
if (!checkpoint || !out) {
  console.error('usage: throughput.mjs CHECKPOINT OUT_JSON [BATCH]');
  process.exit(2);
}
const engine = await import(dist('engine/index.js'));
const { manualSeed, noGrad, randn, tidy } = engine;
const { loadModelCheckpoint } = await import(dist('models/checkpoint.js'));
const { model, meta } = loadModelCheckpoint(checkpoint);
model.eval();
const batch = Number(batchText ?? 8);
const { frames, size } = meta.preprocessing;
manualSeed(0);
const x = randn([batch, 3, frames, size, size]);
const pass = () => {
  const t0 = performance.now();
  noGrad(() => tidy(() => { model.forward(x).toFloat32Array(); }));
  return (performance.now() - t0) / 1000;
};
pass();
pass();
const times = Array.from({ length: 5 }, pass).sort((a, b) => a - b);
const result = { arch: meta.arch, batch, frames, size, seconds: times, clipsPerSecond: batch / times[2], threads: typeof engine.getNumThreads === 'function' ? engine.getNumThreads() : (process.env.STCNET_THREADS ?? 'default') };
writeFileSync(out, JSON.stringify(result, null, 2) + '\n');
console.log(`throughput: ${meta.arch} ${(batch / times[2]).toFixed(1)} clips/s (batch ${batch}, ${frames}×${size}², median of 5)`);
model.dispose();
x.dispose();
