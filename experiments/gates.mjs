#!/usr/bin/env node
// Experiment (c): what the STC gates weight, per class. Runs a trained STC model on the test clips of
// a dataset and records, in every STC block (layerK.i.stc):
//   - the gate (s_t + s_s)/2 per channel: the mean over each class's clips (gates-channels.png), and the
//     same minus its mean over classes (gates-channels-specific.png: which channels a class turns up or down);
//   - SCB's use of each time step: for a clip, |Σ_c W1[h, c·T+t] · z[c, t]| summed over SCB's hidden
//     units h, as a share of the sum over t (the part of SCB's first layer that each time step drives),
//     averaged per class (gates-time.png). The gate itself has no time axis: SCB is where time enters it.
// usage: gates.mjs CHECKPOINT VIDEOS_DIR CACHE_DIR OUT_DIR [CLIPS_PER_VIDEO]
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const repo = join(fileURLToPath(import.meta.url), '..', '..');
const dist = (p) => join(repo, 'dist', 'src', p);
const [checkpoint, videos, cache, out, clipsText] = process.argv.slice(2);
if (!checkpoint || !videos || !cache || !out) {
  console.error('usage: gates.mjs CHECKPOINT VIDEOS_DIR CACHE_DIR OUT_DIR [CLIPS_PER_VIDEO]');
  process.exit(2);
}
const started = performance.now();
const { noGrad, tidy } = await import(dist('engine/index.js'));
const { loadModelCheckpoint } = await import(dist('models/checkpoint.js'));
const { StcBlock } = await import(dist('models/stc.js'));
const { loadDataset } = await import(dist('data/formats/index.js'));
const { ClipLoader } = await import(dist('data/loader.js'));
const { batchTensors } = await import(dist('train/epoch.js'));
const { writeChart } = await import(dist('util/plot.js'));

const { model, meta } = loadModelCheckpoint(checkpoint);
model.eval();
const pre = meta.preprocessing;
if (!pre) throw new Error(`${checkpoint}: no preprocessing metadata (a stcnet train checkpoint has it)`);
const dataset = await loadDataset(videos, 'ucf101');
const classes = dataset.classes;

// Record every STC block's gate and SCB time shares for the clips of the current batch.
const blocks = [...model.namedModules()].filter(([, m]) => m instanceof StcBlock);
if (blocks.length === 0) throw new Error(`${checkpoint}: ${meta.arch} has no STC blocks`);
const current = new Map();
for (const [name, block] of blocks) {
  const gate = block.gate.bind(block);
  block.gate = (x) => {
    const g = gate(x);
    const [n, c, t] = x.shape;
    const shares = tidy(() => {
      const z = x.mean([3, 4]).flatten(1);                    // N × C·T, index c·T + t
      const w = block.scb.fc1.weight;                         // H × C·T
      const parts = z.unsqueeze(1).mul(w.unsqueeze(0)).view([n, w.shape[0], c, t]).sum(2).abs().sum(1); // N × T
      return parts.div(parts.sum(1, true)).toFloat32Array();
    });
    current.set(name, { gate: g.toFloat32Array(), shares, c, t });
    return g;
  };
}

const sums = new Map(blocks.map(([name]) => [name, null]));
const counts = new Array(classes.length).fill(0);
const loader = await ClipLoader.create({
  samples: dataset.splits.test1, source: { kind: 'cache', dir: cache }, mode: 'test', batchSize: 8, frames: pre.frames,
  stride: pre.stride, size: pre.size, normalize: { mean: pre.mean, std: pre.std }, testClips: Number(clipsText ?? 4), workers: 1,
});
try {
  for await (const batch of loader.epoch(0)) {
    noGrad(() => tidy(() => { model.forward(batchTensors(batch).clips); }));
    for (const [name, rec] of current) {
      let acc = sums.get(name);
      if (!acc) sums.set(name, acc = { c: rec.c, t: rec.t, gate: classes.map(() => new Float64Array(rec.c)), shares: classes.map(() => new Float64Array(rec.t)) });
      batch.labels.forEach((label, i) => {
        for (let k = 0; k < rec.c; k++) acc.gate[label][k] += rec.gate[i * rec.c + k];
        for (let k = 0; k < rec.t; k++) acc.shares[label][k] += rec.shares[i * rec.t + k];
      });
    }
    batch.labels.forEach((label) => { counts[label] += 1; });
  }
} finally {
  await loader.close();
}

mkdirSync(out, { recursive: true });
const channelRows = [];
const specificRows = [];
const timeRows = [];
const summary = {};
for (const [name, acc] of sums) {
  const gate = acc.gate.map((row, k) => Array.from(row, (v) => v / Math.max(1, counts[k])));
  const shares = acc.shares.map((row, k) => Array.from(row, (v) => v / Math.max(1, counts[k])));
  summary[name] = { channels: acc.c, timeSteps: acc.t, gate, timeShares: shares };
  for (let ch = 0; ch < acc.c; ch++) {
    const mean = gate.reduce((s, row) => s + row[ch], 0) / classes.length;
    classes.forEach((cls, k) => {
      channelRows.push({ block: name, class: cls, channel: ch, value: gate[k][ch] });
      specificRows.push({ block: name, class: cls, channel: ch, value: gate[k][ch] - mean });
    });
  }
  classes.forEach((cls, k) => shares[k].forEach((v, t) => timeRows.push({ block: name, class: cls, step: t, value: v })));
}
writeFileSync(join(out, 'gates.json'), JSON.stringify({ checkpoint, arch: meta.arch, classes, clipsPerClass: counts, blocks: summary }, null, 1) + '\n');

const heatmap = (title, values, x, xTitle, scheme, domainMid, ownColours = false) => ({
  $schema: 'https://vega.github.io/schema/vega-lite/v5.json', title, background: 'white', data: { values },
  facet: { row: { field: 'block', type: 'nominal', title: null, sort: [...new Set(values.map((v) => v.block))] } },
  spec: {
    width: x === 'channel' ? 480 : 160, height: 16 * classes.length, mark: 'rect',
    encoding: {
      x: { field: x, type: 'ordinal', title: xTitle, axis: x === 'channel' ? { labels: false, ticks: false } : {} },
      y: { field: 'class', type: 'nominal', title: null, sort: classes },
      color: { field: 'value', type: 'quantitative', title: null, scale: { scheme, ...(domainMid !== undefined ? { domainMid } : {}) } },
    },
  },
  resolve: { scale: { x: 'independent', ...(ownColours ? { color: 'independent' } : {}) } },
});
await writeChart(heatmap('STC gate per channel, mean per class', channelRows, 'channel', 'channel', 'viridis'), join(out, 'gates-channels'));
await writeChart(heatmap('STC gate per channel minus its mean over classes', specificRows, 'channel', 'channel', 'redblue', 0), join(out, 'gates-channels-specific'));
// Blocks where time is already pooled to one step have nothing to show; each block gets its own colour range.
const timed = timeRows.filter((row) => summary[row.block].timeSteps > 1);
if (timed.length > 0) {
  await writeChart(heatmap("Share of SCB's first layer driven by each time step, mean per class (blocks with T > 1)", timed, 'step', 'time step at the block', 'viridis', undefined, true), join(out, 'gates-time'));
}

// A short text summary: per block, the spread of class means (how class-specific the gates are).
const lines = [`gates: ${meta.arch}, ${counts.reduce((a, b) => a + b, 0)} test clips, classes ${classes.join(', ')}`];
for (const [name, s] of Object.entries(summary)) {
  const spread = [];
  for (let ch = 0; ch < s.channels; ch++) {
    const values = s.gate.map((row) => row[ch]);
    spread.push(Math.max(...values) - Math.min(...values));
  }
  const mean = s.gate.flat().reduce((a, b) => a + b, 0) / (s.channels * classes.length);
  const shares = s.timeShares.map((row) => row.map((v) => v.toFixed(2)).join('/'));
  lines.push(`  ${name}: ${s.channels} channels, mean gate ${mean.toFixed(3)}, largest class spread of a channel ${Math.max(...spread).toFixed(3)}; ` +
    `SCB time shares (T=${s.timeSteps}) per class: ${classes.map((c, k) => `${c} ${shares[k]}`).join(', ')}`);
}
lines.push(`gates: wrote ${out}/gates-{channels,channels-specific,time}.{svg,png} and gates.json in ${((performance.now() - started) / 1000).toFixed(1)} s`);
writeFileSync(join(out, 'gates.txt'), lines.join('\n') + '\n');
console.log(lines.join('\n'));
model.dispose();
