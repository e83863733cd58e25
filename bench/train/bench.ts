/**
 * bench/train: training clips per second with the data loader in the loop — stcnet (ClipLoader worker
 * threads + trainStep on libtorch) against PyTorch (DataLoader + the contract's PyTorch reference model,
 * bench/train/torch_train.py) on the same JPEG frame cache, same model, optimizer (SGD, momentum 0.9,
 * weight decay 1e-3), batch, threads and loader workers, in one run.
 *
 *   node dist/bench/train/bench.js [--config demo|full|both] [--cache DIR] [--steps 10] [--threads 2] [--workers 1]
 *                                  [--amp none|bf16|both] [--torch-amp none|bf16|both] [--rounds 1]
 *
 * `--amp` picks stcnet's precision (bf16: libtorch's autocast as `stcnet train --amp bf16` runs it),
 * `--torch-amp` PyTorch's. With `--rounds R` every path runs R times, alternating, and the best
 * clips/s of each is reported: this VM's speed drifts between minutes.
 *
 * `demo`: the demo's configuration (stc_resnet3d_18 at width 0.25, 8×48² clips, batch 8);
 * `full`: stc_resnet3d_18 at the paper's widths, 16×112² clips, batch 8.
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
import { createModel } from '../../src/models/index.js';
import { SGD } from '../../src/optim/index.js';
import { trainStep, type AmpMode } from '../../src/train/index.js';
import { OnDevice } from '../../src/train/on_device.js';
import { manualSeed, setNumThreads } from '../../src/engine/index.js';

function flag(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

interface BenchConfig { name: string; model: string; width: number; frames: number; size: number; batch: number }
const CONFIGS: Record<string, BenchConfig> = {
  demo: { name: 'demo configuration', model: 'stc_resnet3d_18', width: 0.25, frames: 8, size: 48, batch: 8 },
  full: { name: 'stc_resnet3d_18 16×112²', model: 'stc_resnet3d_18', width: 1, frames: 16, size: 112, batch: 8 },
};
const CLASSES = 12;

interface Measured { clips: number; seconds: number; clips_per_s: number; data_wait: number }

async function ours(config: BenchConfig, cacheDir: string, samples: VideoSample[], steps: number, warmup: number, workers: number,
  amp: AmpMode): Promise<Measured> {
  manualSeed(0);
  // As the trainer runs it: the forward (and so its backward) under autocast, master weights float32.
  const model = new OnDevice(createModel(config.model, { numClasses: CLASSES, frames: config.frames, widthMultiplier: config.width }), 'cpu', amp);
  const optimizer = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 1e-3 });
  const loader = await ClipLoader.create({ samples, source: { kind: 'cache', dir: cacheDir }, mode: 'train', batchSize: config.batch,
    frames: config.frames, size: config.size, workers, seed: 0 });
  model.train();
  let done = 0;
  let clips = 0;
  let waited = 0;
  let start = 0;
  try {
    outer: for (let epoch = 0; ; epoch++) {
      let fetchStart = performance.now();
      for await (const batch of loader.epoch(epoch)) {
        const fetched = performance.now();
        trainStep(model, optimizer, batch);
        loader.recycle(batch);
        done++;
        if (done === warmup) start = performance.now();
        else if (done > warmup) {
          clips += batch.labels.length;
          waited += fetched - fetchStart;
          if (done >= warmup + steps) break outer;
        }
        fetchStart = performance.now();
      }
    }
  } finally {
    await loader.close();
    model.dispose();
  }
  const seconds = (performance.now() - start) / 1000;
  return { clips, seconds, clips_per_s: clips / seconds, data_wait: waited / 1000 / seconds };
}

async function main(): Promise<void> {
  const threads = Number(flag('threads', String(os.availableParallelism())));
  const workers = Number(flag('workers', '1'));
  const steps = Number(flag('steps', '10'));
  const warmup = 2;
  const which = flag('config', 'both');
  // PyTorch paths: float32, and bf16 autocast (a PyTorch user's usual speed-up; emulated and slow on
  // CPUs without AVX-512 BF16 or AMX, so only on request there).
  const ampModes = (name: string): AmpMode[] => {
    const value = flag(name, 'none');
    if (value !== 'none' && value !== 'bf16' && value !== 'both') throw new Error(`--${name} must be none, bf16 or both, got ${value}`);
    return value === 'both' ? ['none', 'bf16'] : [value];
  };
  const ourAmps = ampModes('amp');
  const torchAmps = ampModes('torch-amp');
  const rounds = Number(flag('rounds', '1'));
  if (!(Number.isInteger(rounds) && rounds >= 1)) throw new Error(`--rounds must be a positive integer, got ${flag('rounds', '1')}`);
  const configs = which === 'both' ? [CONFIGS.demo!, CONFIGS.full!] : [CONFIGS[which]!];
  if (configs.some((c) => !c)) throw new Error(`--config must be demo, full or both, got ${which}`);
  setNumThreads(threads);
  let cacheDir = flag('cache', '');
  let tmp: string | undefined;
  if (!cacheDir) {
    tmp = await mkdtemp(path.join(os.tmpdir(), 'stcnet-bench-train-'));
    process.stderr.write(`bench/train: generating a synth dataset and its cache in ${tmp}\n`);
    await generateSynth({ out: path.join(tmp, 'synth'), classes: CLASSES, videosPerClass: 10, width: 160, height: 120, fps: 25,
      minDuration: 3, maxDuration: 3, noise: 4, shake: 1, seed: 0, quiet: true });
    const dataset = await loadDataset(path.join(tmp, 'synth'), 'ucf101');
    cacheDir = path.join(tmp, 'cache');
    await prepareCache(cacheDir, uniqueSamples(dataset).map((s) => ({ key: sampleKey(s), path: s.path })), { shortSide: 128, quality: 90, quiet: true });
  }
  const cache = await FrameCache.open(cacheDir);
  const samples: VideoSample[] = [...cache.entries.values()].map((entry, index) => ({ path: entry.key, relPath: entry.key, label: index % CLASSES }));
  const script = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../../bench/train/torch_train.py');
  const python = process.env.PYTHON ?? (existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3');
  const lines = [`bench/train: SGD training with the loader in the loop, ${threads} threads, ${workers} loader worker(s), ` +
    `${steps} timed steps after ${warmup} warm-up steps, ${os.availableParallelism()} CPUs (${os.cpus()[0]?.model ?? 'unknown CPU'})`];
  const precision = (side: 'stcnet' | 'PyTorch', amp: AmpMode) => `${side} ${amp === 'bf16' ? 'bf16 autocast' : 'float32'}`;
  const describe = (r: Measured) => `${r.clips_per_s.toFixed(2)} clips/s (${r.clips} clips in ${r.seconds.toFixed(2)} s, ${(100 * r.data_wait).toFixed(1)}% waiting for data)`;
  const best = (a: Measured | undefined, b: Measured) => (a && a.clips_per_s >= b.clips_per_s ? a : b);
  for (const config of configs) {
    const mine = new Map<AmpMode, Measured>();
    const theirs = new Map<AmpMode, Measured>();
    for (let round = 0; round < rounds; round++) {
      for (const amp of ourAmps) mine.set(amp, best(mine.get(amp), await ours(config, cacheDir, samples, steps, warmup, workers, amp)));
      for (const amp of torchAmps) {
        const py = spawnSync(python, [script, '--cache', cacheDir, '--model', config.model, '--width', String(config.width), '--classes', String(CLASSES),
          '--frames', String(config.frames), '--size', String(config.size), '--batch', String(config.batch), '--workers', String(workers),
          '--threads', String(threads), '--steps', String(steps), '--warmup', String(warmup), '--amp', amp], { encoding: 'utf8' });
        if (py.status !== 0) throw new Error(`PyTorch side failed: ${py.stderr}`);
        theirs.set(amp, best(theirs.get(amp), JSON.parse(py.stdout.trim().split('\n').pop()!) as Measured));
      }
    }
    lines.push(`${config.name} (${config.model}, width ×${config.width}, ${config.frames}×${config.size}², batch ${config.batch})${rounds > 1 ? `, best of ${rounds} rounds` : ''}:`);
    for (const [amp, r] of mine) lines.push(`  ${precision('stcnet', amp).padEnd(22)}: ${describe(r)}`);
    for (const [amp, r] of theirs) lines.push(`  ${precision('PyTorch', amp).padEnd(22)}: ${describe(r)}`);
    for (const [ourAmp, stcnetRun] of mine) {
      for (const [torchAmp, torchRun] of theirs) {
        lines.push(`    ratio ${precision('stcnet', ourAmp)} / ${precision('PyTorch', torchAmp)} (clips/s): ${(stcnetRun.clips_per_s / torchRun.clips_per_s).toFixed(2)}x`);
      }
    }
  }
  process.stdout.write(lines.join('\n') + '\n');
  if (tmp && existsSync(tmp)) await rm(tmp, { recursive: true, force: true });
}

main().catch((error: unknown) => {
  process.stderr.write(`${error instanceof Error ? error.stack : String(error)}\n`);
  process.exitCode = 1;
});
