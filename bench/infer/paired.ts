/**
 * stcnet's prepared inference against PyTorch's frozen TorchScript (or, `--peer autocast`, PyTorch eager
 * under bf16 autocast, the fastest PyTorch path at batch 8 on CPUs with AVX-512 BF16), forward by forward: the two sides
 * live in two processes and take turns (one forward each, the order swapped every pair), so that a
 * change of the machine's speed — on a shared VM up to 1.5× within minutes — falls on both sides of
 * a pair. Reports each side's median and the median of the per-pair ratios.
 *
 *   npx tsc -p tsconfig.json && node dist/bench/infer/paired.js [--arch stc_resnet3d_18] [--frames 16]
 *       [--size 112] [--batch 1] [--threads 2] [--pairs 20] [--dtype float32|bfloat16] [--peer frozen|autocast]
 *       [--python /usr/bin/python3]
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { randn, tidy, keep, manualSeed, setNumThreads } from '../../src/engine/index.js';
import { writeSafetensors } from '../../src/nn/index.js';
import { prepareForInference } from '../../src/models/index.js';
import { seededBenchModel } from '../../src/bench/seeded_model.js';
import { median } from '../../src/bench/timing.js';
import { alternate, choiceFlag, describeRatios, modelFlags, runMain, startPeer } from '../paired.js';

async function main(): Promise<void> {
  const { arch, frames, size, batch, threads, pairs, python } = modelFlags({ batch: 1, pairs: 20 });
  const dtype = choiceFlag('dtype', 'float32', ['float32', 'bfloat16']);
  const peer = choiceFlag('peer', 'frozen', ['frozen', 'autocast']);
  const peerName = peer === 'frozen' ? 'frozen TorchScript float32' : 'eager bf16 autocast';
  const classes = 101;
  setNumThreads(threads);

  const dir = mkdtempSync(path.join(tmpdir(), 'stcnet-paired-'));
  try {
    const model = seededBenchModel(arch, frames, classes).eval();
    const weights = path.join(dir, 'weights.safetensors');
    writeSafetensors(weights, model.stateDict());
    const script = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../../scripts/bench/torch_paired.py');
    const torch = startPeer('bench/infer/paired', python, script, [weights, arch, String(frames), String(size), String(classes), String(batch), String(threads), peer]);

    const prepared = prepareForInference(model, { dtype });
    manualSeed(1);
    const x = keep(randn([batch, 3, frames, size, size]));
    const stcnetForward = (): number => {
      const start = process.hrtime.bigint();
      tidy(() => { prepared.forward(x).toFloat32Array(); });
      return Number(process.hrtime.bigint() - start) / 1e9;
    };
    for (let i = 0; i < 3; i++) stcnetForward();
    await torch.ready();

    console.log(`bench/infer/paired: ${arch}, batch ${batch}, ${frames}×${size}×${size}, ${threads} threads, ${pairs} pairs; load ${loadavg().map((l) => l.toFixed(2)).join(' ')}`);
    const { ours: stcnet, theirs: pytorch } = await alternate(pairs, stcnetForward, torch.run);
    torch.close();
    const ms = (values: number[]) => `${(1000 * median(values)).toFixed(1)} ms`;
    console.log(`  stcnet prepareForInference ${dtype}: median ${ms(stcnet)} per forward`);
    console.log(`  PyTorch ${peerName}: median ${ms(pytorch)} per forward`);
    console.log(`  speed ratio stcnet ÷ PyTorch ${peerName}, per pair: ${describeRatios(stcnet, pytorch)}`);
    prepared.dispose();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

runMain(main);
