#!/usr/bin/env node
// Tables of experiments (a) and (b) from their run folders (summary.json, eval-test1/report.json):
//   summarize.mjs a OUT_DIR   → OUT_DIR/results.md, OUT_DIR/results.json
//   summarize.mjs b OUT_DIR   → the same
// Figures are read from the files the runs wrote; a run without them is listed as missing, never guessed.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [which, out] = process.argv.slice(2);
if (!['a', 'b'].includes(which ?? '') || !out) {
  console.error('usage: summarize.mjs a|b OUT_DIR');
  process.exit(2);
}

const readJson = (file) => (existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : null);

/** One finished run: its video accuracy, parameters, training throughput and times. */
function runFigures(dir) {
  const summary = readJson(join(dir, 'summary.json'));
  const report = readJson(join(dir, 'eval-test1', 'report.json'));
  const timing = readJson(join(dir, 'eval-test1', 'timing.json'));
  if (!summary || summary.status !== 'completed' || !report) return null;
  return {
    videoTop1: report.videoTop1, clipTop1: report.clipTop1, videos: report.videos, classes: report.classes.length,
    parameters: summary.parameters, trainClipsPerSecond: summary.last?.clipsPerSecond ?? null, trainSeconds: summary.seconds,
    evalSeconds: timing ? timing.seconds : null,
    inferenceClipsPerSecond: readJson(join(dir, 'throughput.json'))?.clipsPerSecond ?? null,
  };
}

function meanStd(values) {
  const n = values.length;
  const mean = values.reduce((s, v) => s + v, 0) / n;
  const std = n > 1 ? Math.sqrt(values.reduce((s, v) => s + (v - mean) ** 2, 0) / (n - 1)) : 0;
  return { mean, std, n };
}

const pct = ({ mean, std, n }) => `${(100 * mean).toFixed(1)} ± ${(100 * std).toFixed(1)}${n < 3 ? ` (n=${n})` : ''}`;

function runsIn(dir) {
  return existsSync(dir) ? readdirSync(dir).filter((name) => existsSync(join(dir, name, 'config.json'))).sort() : [];
}

const lines = [];
const results = {};
if (which === 'a') {
  const runs = join(out, 'runs');
  const groups = new Map();
  const missing = [];
  for (const name of runsIn(runs)) {
    const [, model, seed] = /^(.*)-seed(\d+)$/.exec(name) ?? [];
    const figures = runFigures(join(runs, name));
    if (!figures) { missing.push(name); continue; }
    if (!groups.has(model)) groups.set(model, []);
    groups.get(model).push({ seed: Number(seed), ...figures });
  }
  lines.push('| model | seeds | video top-1 % (mean ± std) | parameters | training clips/s (mean) | inference clips/s (batch 8) |', '|---|---|---|---|---|---|');
  for (const [model, list] of groups) {
    const acc = meanStd(list.map((r) => r.videoTop1));
    const train = meanStd(list.map((r) => r.trainClipsPerSecond));
    const measured = list.find((r) => r.inferenceClipsPerSecond !== null);
    const evalRate = measured ? measured.inferenceClipsPerSecond.toFixed(1) : 'n/a';
    lines.push(`| ${model} | ${list.map((r) => r.seed).join(', ')} | ${pct(acc)} | ${list[0].parameters.toLocaleString('en-US')} | ${train.mean.toFixed(1)} | ${evalRate} |`);
    results[model] = { runs: list, videoTop1: acc };
  }
  const chance = [...groups.values()][0]?.[0] ? (100 / [...groups.values()][0][0].classes).toFixed(1) : '?';
  lines.push('', `Chance: ${chance}%. Per seed:`, '', '| run | video top-1 % | clip top-1 % | test videos | training s | eval s |', '|---|---|---|---|---|---|');
  for (const [model, list] of groups) for (const r of list) lines.push(`| ${model} seed ${r.seed} | ${(100 * r.videoTop1).toFixed(1)} | ${(100 * r.clipTop1).toFixed(1)} | ${r.videos} | ${r.trainSeconds.toFixed(0)} | ${r.evalSeconds === null ? 'n/a' : r.evalSeconds.toFixed(0)} |`);
  if (missing.length) lines.push('', `Not finished (left out): ${missing.join(', ')}`);
} else {
  const root = join(out, 'runs');
  const missing = [];
  lines.push('| scene | labels | init | seeds | video top-1 % (mean ± std) |', '|---|---|---|---|---|');
  for (const scene of existsSync(root) ? readdirSync(root).sort() : []) {
    const groups = new Map();
    let classes = 0;
    for (const name of runsIn(join(root, scene))) {
      const [, init, percent, seed] = /^(\w+)-(\d+)-seed(\d+)$/.exec(name) ?? [];
      const figures = runFigures(join(root, scene, name));
      if (!figures) { missing.push(`${scene}/${name}`); continue; }
      classes = figures.classes;
      const key = `${percent}|${init}`;
      if (!groups.has(key)) groups.set(key, []);
      groups.get(key).push({ seed: Number(seed), ...figures });
    }
    const order = ['scratch', 'transfer', 'inflation'];
    const keys = [...groups.keys()].sort((a, b) => {
      const [pa, ia] = a.split('|');
      const [pb, ib] = b.split('|');
      return Number(pa) - Number(pb) || order.indexOf(ia) - order.indexOf(ib);
    });
    for (const key of keys) {
      const [percent, init] = key.split('|');
      const list = groups.get(key);
      const acc = meanStd(list.map((r) => r.videoTop1));
      lines.push(`| ${scene} | ${percent}% | ${init} | ${list.map((r) => r.seed).join(', ')} | ${pct(acc)} |`);
      results[`${scene}/${percent}/${init}`] = { runs: list, videoTop1: acc };
    }
    if (classes) lines.push(`| ${scene} | | chance | | ${(100 / classes).toFixed(1)} |`);
  }
  const teacher = readJson(join(out, 'teacher', 'summary.json'));
  if (teacher?.last) lines.push('', `Teacher (train-2d on shapes): validation frame accuracy ${(100 * (teacher.best?.valAccuracy ?? teacher.last.valAccuracy)).toFixed(1)}% (best epoch ${teacher.best?.epoch ?? '?'}), ${teacher.seconds.toFixed(0)} s.`);
  for (const scene of ['plain', 'varied']) {
    const transfer = readJson(join(out, scene, 'transfer', 'summary.json'));
    if (transfer?.last) lines.push(`Transfer (${scene}): held-out pair accuracy ${transfer.last.valAccuracy === null ? 'n/a' : (100 * transfer.last.valAccuracy).toFixed(1) + '%'} after ${transfer.epochs} epochs, ${transfer.seconds.toFixed(0)} s.`);
  }
  if (missing.length) lines.push('', `Not finished (left out): ${missing.join(', ')}`);
}
writeFileSync(join(out, 'results.md'), lines.join('\n') + '\n');
writeFileSync(join(out, 'results.json'), JSON.stringify(results, null, 2) + '\n');
console.log(lines.join('\n'));
