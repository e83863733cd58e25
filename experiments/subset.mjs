#!/usr/bin/env node
// Annotation folders for the experiments, beside a UCF101-layout dataset made by `stcnet synth`:
//
//   subset.mjs labels VIDEOS_DIR OUT_DIR PERCENT SEED
//     classInd.txt and testlist01.txt as they are; trainlist01.txt with PERCENT % of each class's
//     training videos (at least one per class, chosen by SEED), each line repeated round(all/picked)
//     times so that an epoch has about as many steps as with every label (equal step budgets).
//   subset.mjs unlabeled VIDEOS_DIR OUT_DIR
//     classInd.txt and trainlist01.txt only: the training videos, for `stcnet transfer --format ucf101`
//     (which reads every split), so pre-training never sees a test video.
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

const [mode, videos, out, percentText, seedText] = process.argv.slice(2);
if (!['labels', 'unlabeled'].includes(mode ?? '') || !videos || !out) {
  console.error('usage: subset.mjs labels VIDEOS_DIR OUT_DIR PERCENT SEED | subset.mjs unlabeled VIDEOS_DIR OUT_DIR');
  process.exit(2);
}
const lines = readFileSync(join(videos, 'trainlist01.txt'), 'utf8').split(/\r?\n/).filter((l) => l.trim() !== '');
mkdirSync(out, { recursive: true });
copyFileSync(join(videos, 'classInd.txt'), join(out, 'classInd.txt'));
if (mode === 'unlabeled') {
  writeFileSync(join(out, 'trainlist01.txt'), lines.map((l) => l + '\r\n').join(''));
  console.log(`subset: ${lines.length} training videos, no test list, in ${out}`);
  process.exit(0);
}
const percent = Number(percentText);
const seed = Number(seedText);
if (!(percent > 0 && percent <= 100) || !Number.isInteger(seed)) {
  console.error(`subset.mjs: PERCENT must be in (0, 100] and SEED an integer, got ${percentText} ${seedText}`);
  process.exit(2);
}
copyFileSync(join(videos, 'testlist01.txt'), join(out, 'testlist01.txt'));

// A small seeded generator (mulberry32), so a seed picks the same videos on any machine.
let state = (seed * 0x9e3779b1 + 0x6d2b79f5) >>> 0;
const random = () => {
  state = (state + 0x6d2b79f5) >>> 0;
  let t = state;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const byClass = new Map();
for (const line of lines) {
  const label = line.split(/\s+/)[1];
  if (!byClass.has(label)) byClass.set(label, []);
  byClass.get(label).push(line);
}
const picked = [];
for (const [, members] of [...byClass].sort(([a], [b]) => Number(a) - Number(b))) {
  const shuffled = [...members];
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
  }
  picked.push(...shuffled.slice(0, Math.max(1, Math.round((members.length * percent) / 100))));
}
// Listed as often as makes an epoch about as long as one with every label (equal step budgets).
const repeat = Math.max(1, Math.round(lines.length / picked.length));
const list = [];
for (let r = 0; r < repeat; r++) list.push(...picked);
writeFileSync(join(out, 'trainlist01.txt'), list.map((l) => l + '\r\n').join(''));
console.log(`subset: ${picked.length} of ${lines.length} training videos (${percent}%, seed ${seed}), each listed ${repeat}×, in ${out}`);
