import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { generateSynth, type SynthOptions } from '../../src/data/synth.js';
import { loadDataset } from '../../src/data/formats/index.js';

/** An interrupted synth leaves no partial videos, and no dataset format counts hidden files or folders. */

const root = await mkdtemp(path.join(os.tmpdir(), 'stcnet-synth-interrupt-'));
after(async () => {
  await rm(root, { recursive: true, force: true });
});
const synthModule = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/data/synth.js');
const small: Omit<SynthOptions, 'out'> = { classes: 2, videosPerClass: 2, width: 32, height: 32, fps: 10, minDuration: 0.5, maxDuration: 0.8,
  noise: 2, shake: 0, seed: 4, quiet: true, jobs: 1 };

/** Every hidden temporary an encode makes, anywhere under `dir`. */
async function encodeTemps(dir: string): Promise<string[]> {
  if (!existsSync(dir)) return [];
  return (await readdir(dir, { recursive: true })).map(String).filter((p) => /(^|\/)\.encode-tmp-|\.tmp-\d+/.test(p));
}

test('synth removes the partial videos interrupted runs left (dead writers only), and listings skip hidden names', async () => {
  const out = path.join(root, 'stale');
  const deadPid = spawnSync(process.execPath, ['-e', '']).pid!;
  const sleeper = spawn('sleep', ['60']);
  try {
    await mkdir(path.join(out, 'MoveRight', `.encode-tmp-${deadPid}-abc`), { recursive: true });
    await mkdir(path.join(out, `.encode-tmp-${deadPid}-def`), { recursive: true });
    await mkdir(path.join(out, 'MoveRight', `.encode-tmp-${sleeper.pid}-live`), { recursive: true });
    await writeFile(path.join(out, 'MoveRight', `.encode-tmp-${deadPid}-abc`, '00000.mp4'), 'partial');
    await writeFile(path.join(out, 'MoveLeft.mp4'), 'not in a class folder');
    await generateSynth({ ...small, out });
    const left = await encodeTemps(out);
    assert.deepEqual(left, [`MoveRight/.encode-tmp-${sleeper.pid}-live`], 'a live writer\'s folder stays, dead ones go');
  } finally {
    sleeper.kill();
  }

  // A folder dataset with hidden folders and files beside the real ones: none of them are samples or classes.
  await mkdir(path.join(out, '.encode-tmp-1-x'), { recursive: true });
  const video = path.join(out, 'MoveRight', 'v_MoveRight_g01_c01.mp4');
  await copyFile(video, path.join(out, '.encode-tmp-1-x', '00000.mp4'));
  await copyFile(video, path.join(out, 'MoveRight', '.v_MoveRight_hidden.mp4'));
  await copyFile(video, path.join(out, 'MoveLeft', '._v_MoveLeft_g01_c01.mp4'));
  const folder = await loadDataset(out, 'folder');
  assert.deepEqual(folder.classes, ['MoveLeft', 'MoveRight']);
  assert.equal(folder.splits.all!.length, 4);
  assert.ok(folder.splits.all!.every((s) => !s.relPath.split('/').some((part) => part.startsWith('.'))));
  const ucf = await loadDataset(out, 'ucf101');
  assert.equal(ucf.splits.train1!.length + ucf.splits.test1!.length, 4);
  // Kinetics annotations: a hidden CSV (an editor's backup, a half-written copy) is not read.
  await writeFile(path.join(out, '.train.csv'), 'not,a,kinetics,file\n');
  await writeFile(path.join(out, 'train.csv'), 'label,youtube_id,time_start,time_end,split\nMoveRight,abc,0,10,train\n');
  const kinetics = await loadDataset(out, 'kinetics');
  assert.deepEqual(kinetics.classes, ['MoveRight']);
});

/** Starts a synth in a child node; returns it once an encoder's temporary folder exists. */
async function synthChild(out: string, preamble: string): Promise<{ exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>; pid: number }> {
  const script = `
    import { generateSynth } from ${JSON.stringify(synthModule)};
    ${preamble}
    try {
      await generateSynth({ out: process.env.OUT, classes: 6, videosPerClass: 8, width: 160, height: 120, fps: 25, minDuration: 2, maxDuration: 3,
        noise: 4, shake: 1, seed: 1, quiet: true, jobs: 2 });
      console.log('finished');
    } catch (error) {
      console.error(error.name + ': ' + error.message);
      process.exit(3);
    }
  `;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, OUT: out }, stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => { stderr += chunk; });
  child.stdout.resume();
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stderr }));
  });
  for (let i = 0; i < 3000 && (await encodeTemps(out)).length === 0; i++) {
    if (child.exitCode !== null) break;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.ok((await encodeTemps(out)).length > 0, `no encoder started: ${stderr}`);
  return { exit, pid: child.pid! };
}

test('SIGTERM during synth: encoders stopped, temporary folders removed, the process ends by the signal', async () => {
  const out = path.join(root, 'sigterm');
  const { exit, pid } = await synthChild(out, '');
  process.kill(pid, 'SIGTERM');
  const { code, signal, stderr } = await exit;
  assert.equal(signal, 'SIGTERM', `exit ${code}: ${stderr}`);
  assert.deepEqual(await encodeTemps(out), []);
  const folder = await loadDataset(out, 'folder').catch(() => undefined);
  for (const sample of folder?.splits.all ?? []) assert.ok(!sample.relPath.includes('.encode-tmp'));
});

test('SIGINT during synth with a handler of the caller\'s: cleaned up, and generateSynth rejects with a UserError', async () => {
  const out = path.join(root, 'sigint');
  const { exit, pid } = await synthChild(out, `process.on('SIGINT', () => {});`);
  process.kill(pid, 'SIGINT');
  const { code, signal, stderr } = await exit;
  assert.deepEqual([code, signal], [3, null], stderr);
  assert.match(stderr, /UserError: synth: interrupted by SIGINT/);
  assert.deepEqual(await encodeTemps(out), []);
});
