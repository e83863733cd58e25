/**
 * The CUDA path, checked and timed on a machine whose libtorch has CUDA (see scripts/gpu_check.sh):
 * CPU and GPU results agree for operators, gradients and a whole STC model, and conv3d
 * forward+backward runs at PyTorch's speed on the same GPU.
 *
 *   node dist/bench/cuda/cuda_check.js
 */
import { F, randn, tidy, keep, cudaAvailable, cudaDeviceCount, manualSeed, noGrad, type Tensor } from '../../src/engine/index.js';
import { createModel } from '../../src/models/index.js';
import { runTorchBenchmark } from '../common.js';

function maxRelativeDifference(a: Tensor, b: Tensor): number {
  const x = a.toFloat32Array();
  const y = b.toFloat32Array();
  let worst = 0;
  let scale = 1e-12;
  for (let i = 0; i < x.length; i++) {
    worst = Math.max(worst, Math.abs(x[i]! - y[i]!));
    scale = Math.max(scale, Math.abs(y[i]!));
  }
  return worst / scale;
}

function check(name: string, difference: number, tolerance: number): void {
  const ok = difference <= tolerance;
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}: max difference ${difference.toExponential(2)} of the largest value (tolerance ${tolerance})`);
  if (!ok) process.exitCode = 1;
}

if (!cudaAvailable()) {
  console.log('CUDA is not available to this libtorch; nothing to check');
  process.exit(1);
}
console.log(`CUDA devices: ${cudaDeviceCount()}`);

tidy(() => {
  manualSeed(3);
  const x = randn([2, 8, 6, 20, 20]);
  const w = randn([16, 8, 3, 3, 3]).mul(0.1);
  const run = (device: 'cpu' | 'cuda') => {
    const input = x.to(device).detach();
    input.requiresGrad = true;
    const weight = w.to(device).detach();
    weight.requiresGrad = true;
    const out = F.conv3d(input, weight, null, { padding: 1, stride: [1, 2, 2] });
    const loss = F.batchNorm(out, null, null, null, null, { training: true }).relu().square().mean();
    loss.backward();
    return { out: out.cpu(), dx: input.grad!.cpu(), dw: weight.grad!.cpu() };
  };
  const cpu = run('cpu');
  const gpu = run('cuda');
  // cuDNN convolutions use TF32 on Ampere and newer by default (as in PyTorch): ~1e-3 relative.
  check('conv3d forward, cpu vs cuda', maxRelativeDifference(gpu.out, cpu.out), 1e-3);
  check('conv3d+BN input gradient, cpu vs cuda', maxRelativeDifference(gpu.dx, cpu.dx), 1e-3);
  check('conv3d+BN weight gradient, cpu vs cuda', maxRelativeDifference(gpu.dw, cpu.dw), 1e-3);
});

tidy(() => {
  manualSeed(5);
  const model = createModel('stc_resnet3d_18', { numClasses: 10, frames: 8 }).eval();
  const clip = randn([2, 3, 8, 112, 112]);
  const cpuLogits = noGrad(() => model.forward(clip));
  model.to('cuda');
  const gpuLogits = noGrad(() => model.forward(clip.to('cuda'))).cpu();
  check('stc_resnet3d_18 logits, cpu vs cuda', maxRelativeDifference(gpuLogits, cpuLogits), 1e-3);
  model.dispose();
});

// conv3d forward+backward at the engine benchmark's shape, on the GPU, against PyTorch.
const x = keep(randn([8, 64, 16, 56, 56]).to('cuda'));
x.requiresGrad = true;
const w = keep(randn([64, 64, 3, 3, 3]).mul(0.01).to('cuda'));
w.requiresGrad = true;
const step = () => tidy(() => {
  F.conv3d(x, w, null, { padding: 1 }).sum().backward();
  x.grad = null;
  w.grad = null;
  // A host read waits for the GPU, so the time covers the work, not just its launch.
  x.sum().item();
});
for (let i = 0; i < 20; i++) step();
const start = performance.now();
for (let i = 0; i < 50; i++) step();
const ours = (performance.now() - start) / 50 / 1000;
const theirs = runTorchBenchmark<{ seconds: number; torch: string }>('bench/cuda/torch_side.py', []);
console.log(`conv3d fwd+bwd [8,64,16,56,56] k3 on CUDA: stcnet ${ours.toFixed(4)} s, PyTorch ${theirs.torch} ${theirs.seconds.toFixed(4)} s, ratio ${(ours / theirs.seconds).toFixed(2)}`);
