import { defineCommand } from './args.js';

/** Checks that the engine loads and computes, and prints what it runs on. */
export async function selfCheck(): Promise<void> {
  const engine = await import('../engine/index.js');
  const { F, randn, tidy, noGrad, buildInfo, getNumThreads, cudaDeviceCount, memory } = engine;
  const info = buildInfo();
  const lines = [
    `libtorch ${info.torchVersion}, ${getNumThreads()} threads, oneDNN ${info.mkldnn ? 'yes' : 'no'}, CUDA devices ${cudaDeviceCount()}`,
  ];
  tidy(() => {
    const x = randn([2, 16, 8, 28, 28], { requiresGrad: true });
    const w = randn([16, 16, 3, 3, 3]).mul(0.05);
    const start = performance.now();
    const loss = F.conv3d(x, w, null, { padding: 1 }).square().mean();
    loss.backward();
    const convMs = performance.now() - start;
    if (!Number.isFinite(loss.item()) || x.grad === null) throw new Error('self-check: conv3d forward/backward gave no finite result');
    const a = randn([1024, 1024]);
    const b = randn([1024, 1024]);
    noGrad(() => a.mm(b));
    const mmStart = performance.now();
    noGrad(() => a.mm(b));
    const gflops = 2 * 1024 ** 3 / ((performance.now() - mmStart) / 1000) / 1e9;
    lines.push(`conv3d forward+backward [2,16,8,28,28]: ${convMs.toFixed(1)} ms; matmul 1024²: ${gflops.toFixed(0)} GFLOP/s`);
  });
  lines.push(`live tensors after the check: ${memory().tensors}`);
  lines.push('self-check passed');
  process.stdout.write(lines.join('\n') + '\n');
}

export const command = defineCommand({
  name: 'selfcheck',
  summary: 'check that the libtorch engine loads and computes; print threads, oneDNN and CUDA',
  usage: 'stcnet selfcheck',
  examples: ['stcnet selfcheck'],
  flags: {},
  run: () => selfCheck(),
});
