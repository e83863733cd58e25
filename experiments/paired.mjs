#!/usr/bin/env node
// Paired comparison of two training modes trained on the same seeds (experiment d):
//   paired.mjs OUT_DIR MODE_A MODE_B   → OUT_DIR/results.md, OUT_DIR/results.json
// reads OUT_DIR/runs/MODE-seedS/{eval-test1,eval-big}/report.json and prints, per test set and metric, the
// mean difference A − B in points with a 95% t-interval over the seeds both modes finished.
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [out, modeA, modeB] = process.argv.slice(2);
if (!out || !modeA || !modeB) {
  console.error('usage: paired.mjs OUT_DIR MODE_A MODE_B');
  process.exit(2);
}

const TEST_SETS = [['eval-big', 'further videos'], ['eval-test1', "the demo's test videos"]];
const METRICS = [['videoTop1', 'video top-1'], ['clipTop1', 'clip top-1']];

const readJson = (file) => (existsSync(file) ? JSON.parse(readFileSync(file, 'utf8')) : null);
const report = (mode, seed, set) => readJson(join(out, 'runs', `${mode}-seed${seed}`, set, 'report.json'));

// Two-sided 95% quantiles of Student's t by degrees of freedom (beyond the table: the nearest smaller entry,
// which errs on the wide side).
const T975 = { 1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
  11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120, 17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086,
  21: 2.080, 22: 2.074, 23: 2.069, 24: 2.064, 25: 2.060, 26: 2.056, 27: 2.052, 28: 2.048, 29: 2.045, 30: 2.042,
  40: 2.021, 50: 2.009, 60: 2.000, 80: 1.990, 100: 1.984, 120: 1.980 };
function t975(df) {
  const known = Object.keys(T975).map(Number).filter((k) => k <= df);
  return T975[Math.max(...known)];
}

const runs = existsSync(join(out, 'runs')) ? readdirSync(join(out, 'runs')) : [];
const seedsOf = (mode) => new Set(runs.filter((r) => r.startsWith(`${mode}-seed`)).map((r) => Number(r.slice(mode.length + 5))));
const seeds = [...seedsOf(modeA)].filter((s) => seedsOf(modeB).has(s)).sort((x, y) => x - y)
  .filter((s) => TEST_SETS.every(([set]) => report(modeA, s, set) && report(modeB, s, set)));
if (seeds.length < 2) {
  console.error(`paired.mjs: ${seeds.length} seed(s) with both modes evaluated under ${out}/runs; 2 or more are needed`);
  process.exit(2);
}

const pct = (x) => `${(100 * x).toFixed(1)}%`;
const lines = [`# ${modeA} against ${modeB}, ${seeds.length} seeds`, ''];
const header = TEST_SETS.flatMap(([, name]) => [`${modeA}, ${name}`, `${modeB}, ${name}`]);
lines.push(`| seed | ${header.join(' | ')} |`, `|---|${header.map(() => '---').join('|')}|`);
for (const seed of seeds) {
  const cells = TEST_SETS.flatMap(([set]) => [modeA, modeB].map((mode) => {
    const r = report(mode, seed, set);
    return `${pct(r.videoTop1)} / ${pct(r.clipTop1)}`;
  }));
  lines.push(`| ${seed} | ${cells.join(' | ')} |`);
}
lines.push('', `Video top-1 / clip top-1. Pair by pair (${modeA} − ${modeB}, points), 95% t-intervals:`);

const results = { modeA, modeB, seeds, comparisons: [] };
for (const [set, name] of TEST_SETS) {
  const videos = report(modeA, seeds[0], set).videos;
  for (const [metric, metricName] of METRICS) {
    const a = seeds.map((s) => 100 * report(modeA, s, set)[metric]);
    const b = seeds.map((s) => 100 * report(modeB, s, set)[metric]);
    const diff = a.map((x, i) => x - b[i]);
    const n = diff.length;
    const mean = (xs) => xs.reduce((s, x) => s + x, 0) / xs.length;
    const meanDiff = mean(diff);
    const sd = Math.sqrt(diff.reduce((s, d) => s + (d - meanDiff) ** 2, 0) / (n - 1));
    const half = t975(n - 1) * sd / Math.sqrt(n);
    const row = { set, videos, metric, n, meanA: mean(a), meanB: mean(b), difference: meanDiff, sd,
      t: meanDiff / (sd / Math.sqrt(n)), low: meanDiff - half, high: meanDiff + half };
    results.comparisons.push(row);
    const f = (x) => `${x >= 0 ? '+' : ''}${x.toFixed(2)}`;
    lines.push(`- ${name} (${videos}), ${metricName}: means ${row.meanA.toFixed(2)} / ${row.meanB.toFixed(2)}, difference ` +
      `${f(meanDiff)} (sd ${sd.toFixed(2)}${sd > 1e-9 ? `, t ${f(row.t)}` : ''}), 95% interval ${f(row.low)} .. ${f(row.high)}`);
  }
}

writeFileSync(join(out, 'results.md'), lines.join('\n') + '\n');
writeFileSync(join(out, 'results.json'), JSON.stringify(results, null, 2) + '\n');
console.log(lines.join('\n'));
