/**
 * stcnet's training step against PyTorch's, step by step: the two sides live in two processes and take
 * turns (one step each, the order swapped every pair), so that a change of the machine's speed — on a
 * shared VM up to 1.5× within minutes, and it moves whole runs of `stcnet bench` — falls on both sides
 * of a pair. Same seeded weights and clips, SGD (momentum 0.9, weight decay 1e-3), float32 loss.
 * Reports each side's median step and the median of the per-pair speed ratios.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/train/paired.js [--arch stc_resnet3d_18] [--frames 16]
 *       [--size 112] [--batch 8] [--threads 2] [--pairs 12] [--amp none|bf16] [--torch-amp none|bf16]
 *       [--python /usr/bin/python3]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { F, fromTypedArray, keep, setNumThreads, tidy } from '../../src/engine/index.js';
import { writeSafetensors } from '../../src/nn/index.js';
import { SGD } from '../../src/optim/index.js';
import { withAutocast, type AmpMode } from '../../src/train/autocast.js';
import { seededBenchModel } from '../../src/bench/seeded_model.js';
import { median, seededNormal } from '../../src/bench/timing.js';
import { alternate, choiceFlag, describeRatios, modelFlags, runMain, startPeer } from '../paired.js';

async function main(): Promise<void> {
  const { arch, frames, size, batch, threads, pairs, python } = modelFlags({ batch: 8, pairs: 12 });
  const amp: AmpMode = choiceFlag('amp', 'none', ['none', 'bf16']);
  const torchAmp: AmpMode = choiceFlag('torch-amp', amp, ['none', 'bf16']);
  const classes = 101;
  setNumThreads(threads);

  const dir = mkdtempSync(path.join(tmpdir(), 'stcnet-train-paired-'));
  try {
    const model = seededBenchModel(arch, frames, classes).train();
    const weights = path.join(dir, 'weights.safetensors');
    writeSafetensors(weights, model.stateDict());
    const clipValues = seededNormal(batch * 3 * frames * size * size, 11);
    const clipsFile = path.join(dir, 'clips.f32');
    writeFileSync(clipsFile, clipValues);
    const script = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../../scripts/bench/torch_train_paired.py');
    const torch = startPeer('bench/train/paired', python, script,
      [weights, arch, String(frames), String(size), String(classes), String(batch), String(threads), clipsFile, torchAmp]);

    const optimizer = new SGD(model.parameters(), { lr: 0.01, momentum: 0.9, weightDecay: 1e-3 });
    const clips = keep(fromTypedArray(clipValues, [batch, 3, frames, size, size]));
    const labels = keep(fromTypedArray(BigInt64Array.from({ length: batch }, (_, i) => BigInt((i * 7) % classes)), [batch]));
    // The step a trainer runs: forward under autocast when asked, float32 loss, backward, SGD update.
    const stcnetStep = (): number => {
      const start = process.hrtime.bigint();
      tidy(() => {
        optimizer.zeroGrad();
        const loss = F.crossEntropy(withAutocast(amp, 'cpu', () => model.forward(clips)).float(), labels);
        loss.backward();
        optimizer.step();
        loss.item();
      });
      return Number(process.hrtime.bigint() - start) / 1e9;
    };
    for (let i = 0; i < 3; i++) stcnetStep();
    await torch.ready();

    const precision = (mode: AmpMode) => (mode === 'bf16' ? 'bf16 autocast' : 'float32');
    console.log(`bench/train/paired: ${arch}, batch ${batch}, ${frames}×${size}×${size}, ${threads} threads, ${pairs} pairs; ` +
      `load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    const { ours: stcnet, theirs: pytorch } = await alternate(pairs, stcnetStep, torch.run);
    torch.close();
    const ms = (values: number[]) => `${(1000 * median(values)).toFixed(0)} ms (${(batch / median(values)).toFixed(2)} clips/s)`;
    console.log(`  stcnet ${precision(amp)}: median ${ms(stcnet)} per step`);
    console.log(`  PyTorch eager ${precision(torchAmp)}: median ${ms(pytorch)} per step`);
    console.log(`  speed ratio stcnet ÷ PyTorch, per pair: ${describeRatios(stcnet, pytorch)}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

runMain(main);
