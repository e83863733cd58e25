/**
 * bench/loader: clips per second of 16×112×112 training clips (multi-scale corner crop, flip,
 * Kinetics normalisation, float32 NCTHW) from a JPEG frame cache: stcnet's ClipLoader against a
 * PyTorch DataLoader doing the same work (PIL decode of the same cache, same worker count), in one run.
 *
 *   node dist/bench/loader/bench.js [--cache DIR] [--workers 2] [--batch 8] [--clips 960] [--recycle on|off|both]
 *
 * Without --cache it generates a synth dataset (120 videos, 160×120, 3 s) and caches it at short side 128.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ClipLoader } from '../../src/data/loader.js';
import { FrameCache, prepareCache } from '../../src/video/cache.js';
import { generateSynth } from '../../src/data/synth.js';
import { loadDataset } from '../../src/data/formats/index.js';
import { sampleKey, uniqueSamples, type VideoSample } from '../../src/data/dataset.js';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

async function main(): Promise<void> {
  const workers = Number(flag('workers', '2'));
  const batch = Number(flag('batch', '8'));
  const clips = Number(flag('clips', '960'));
  let cacheDir = flag('cache', '');
  let tmp: string | undefined;
  if (!cacheDir) {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'stcnet-bench-loader-'));
    process.stderr.write(`bench/loader: generating a synth dataset and its cache in ${tmp}\n`);
    await generateSynth({ out: path.join(tmp, 'synth'), classes: 12, videosPerClass: 10, width: 160, height: 120, fps: 25,
      minDuration: 3, maxDuration: 3, noise: 4, shake: 1, seed: 0, quiet: true });
    const ds = await loadDataset(path.join(tmp, 'synth'), 'ucf101');
    cacheDir = path.join(tmp, 'cache');
    await prepareCache(cacheDir, uniqueSamples(ds).map((s) => ({ key: sampleKey(s), path: s.path })), { shortSide: 128, quality: 90, quiet: true });
  }
  const cache = await FrameCache.open(cacheDir);
  const samples: VideoSample[] = [...cache.entries.values()].map((e) => ({ path: e.key, relPath: e.key, label: 0 }));

  // --recycle both: the ClipLoader with and without giving buffers back, alternating (twice each).
  const recycleMode = flag('recycle', 'on');
  if (!['on', 'off', 'both'].includes(recycleMode)) throw new Error(`--recycle must be on, off or both, got "${recycleMode}"`);
  const ourRuns: { recycle: boolean; rate: number; counted: number; seconds: number }[] = [];
  for (const recycle of recycleMode === 'both' ? [false, true, false, true] : [recycleMode === 'on']) {
    const loader = await ClipLoader.create({ samples, source: { kind: 'cache', dir: cacheDir }, mode: 'train', batchSize: batch, frames: 16, size: 112, workers, seed: 0 });
    let counted = 0;
    let seen = 0;
    let start = 0;
    const warmup = 2;
    outer: for (let e = 0; ; e++) {
      for await (const b of loader.epoch(e)) {
        // A training loop gives each batch back once it is copied into a tensor; this one reads nothing.
        if (recycle) loader.recycle(b);
        seen++;
        if (seen === warmup) {
          start = performance.now();
          continue;
        }
        if (seen > warmup) {
          counted += b.shape[0];
          if (counted >= clips) break outer;
        }
      }
    }
    const seconds = (performance.now() - start) / 1000;
    await loader.close();
    ourRuns.push({ recycle, rate: counted / seconds, counted, seconds });
  }
  const ours = Math.max(...ourRuns.map((run) => run.rate));

  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../../bench/loader/torch_loader.py');
  // Debian's python3-torch lives in the system Python; a pyenv shim may shadow it.
  const python = process.env.PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
  const py = spawnSync(python, [script, '--cache', cacheDir, '--workers', String(workers), '--batch', String(batch), '--clips', String(clips)], { encoding: 'utf8' });
  if (py.status !== 0) throw new Error(`PyTorch side failed: ${py.stderr}`);
  const torch = JSON.parse(py.stdout.trim().split('\n').pop()!) as { clips: number; seconds: number; clips_per_s: number };

  const lines = [
    `bench/loader: 16x112x112 float32 training clips from ${cacheDir} (${samples.length} videos), batch ${batch}, ${workers} workers, ${os.availableParallelism()} CPUs`,
    ...ourRuns.map((run) => `  stcnet ClipLoader${run.recycle ? ', buffers recycled' : ', new buffers'}: ${run.rate.toFixed(1)} clips/s (${run.counted} clips in ${run.seconds.toFixed(2)} s)`),
    `  PyTorch DataLoader:  ${torch.clips_per_s.toFixed(1)} clips/s (${torch.clips} clips in ${torch.seconds.toFixed(2)} s)`,
    `  ratio: ${(ours / torch.clips_per_s).toFixed(2)}x`,
  ];
  process.stdout.write(lines.join('\n') + '\n');
  if (tmp && existsSync(tmp)) await rm(tmp, { recursive: true, force: true });
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
});
