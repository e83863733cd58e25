/**
 * bench/engine: the engine's big operators and its per-call overhead, through stcnet and through
 * PyTorch (same threads, same shapes), in one run. Prints times and the ratio stcnet / PyTorch.
 *
 *   node dist/bench/engine/engine.js [--threads N] [--conv-repeats N]
 */
import { availableParallelism } from 'node:os';
import { F, randn, tidy, noGrad, setNumThreads, getNumThreads, keep } from '../../src/engine/index.js';
import { formatRow, runTorchBenchmark, timeMin } from '../common.js';

function flag(name: string, fallback: number): number {
  const index = process.argv.indexOf(`--${name}`);
  return index >= 0 ? Number(process.argv[index + 1]) : fallback;
}

const threads = flag('threads', availableParallelism());
const convRepeats = flag('conv-repeats', 3);
setNumThreads(threads);

const x = keep(randn([8, 64, 16, 56, 56], { requiresGrad: true }));
const w = keep(randn([64, 64, 3, 3, 3]).mul(0.01));
w.requiresGrad = true;

const ours = {
  conv3d_fwd_bwd: timeMin(() => tidy(() => {
    F.conv3d(x, w, null, { padding: 1 }).sum().backward();
    x.grad = null;
    w.grad = null;
  }), convRepeats),
  conv3d_fwd: timeMin(() => noGrad(() => tidy(() => { F.conv3d(x, w, null, { padding: 1 }); })), convRepeats),
  conv3d_small_fwd: (() => {
    const input = keep(randn([1, 64, 8, 28, 28]));
    const weight = keep(randn([64, 64, 3, 3, 3]).mul(0.01));
    return timeMin(() => noGrad(() => tidy(() => { F.conv3d(input, weight, null, { padding: 1 }); })), 20, 3);
  })(),
  matmul: (() => {
    const a = keep(randn([2048, 2048]));
    const b = keep(randn([2048, 2048]));
    return timeMin(() => tidy(() => { a.mm(b); }), 10);
  })(),
  chain_us: (() => {
    const small = keep(randn([16]));
    const seconds = timeMin(() => tidy(() => {
      let y = small;
      for (let i = 0; i < 1000; i++) y = y.add(1);
    }), 100, 5);
    return seconds / 1000 * 1e6;
  })(),
};

const theirs = runTorchBenchmark<typeof ours & { torch: string }>('bench/engine/torch_side.py', [String(threads), String(convRepeats)]);

const convFlops = 2 * 64 * 64 * 27 * 8 * 16 * 56 * 56;
const rows: [string, number, number, string][] = [
  ['conv3d fwd+bwd [8,64,16,56,56] k3 (s)', ours.conv3d_fwd_bwd, theirs.conv3d_fwd_bwd, `${(3 * convFlops / ours.conv3d_fwd_bwd / 1e9).toFixed(0)} GFLOP/s`],
  ['conv3d fwd [8,64,16,56,56] k3 (s)', ours.conv3d_fwd, theirs.conv3d_fwd, `${(convFlops / ours.conv3d_fwd / 1e9).toFixed(0)} GFLOP/s`],
  ['conv3d fwd [1,64,8,28,28] k3 (s)', ours.conv3d_small_fwd, theirs.conv3d_small_fwd, `${(2 * 64 * 64 * 27 * 8 * 28 * 28 / ours.conv3d_small_fwd / 1e9).toFixed(0)} GFLOP/s`],
  ['matmul 2048² (s)', ours.matmul, theirs.matmul, `${(2 * 2048 ** 3 / ours.matmul / 1e9).toFixed(0)} GFLOP/s`],
  ['1,000 small add ops (µs per op, best of 100)', ours.chain_us, theirs.chain_us, ''],
];
const widths = [46, 10, 10, 8, 14];
console.log(`bench/engine: ${getNumThreads()} threads, PyTorch ${theirs.torch}, ${new Date().toISOString().slice(0, 10)}`);
console.log(formatRow(['work', 'stcnet', 'PyTorch', 'ratio', 'stcnet rate'], widths));
for (const [name, mine, reference, rate] of rows) {
  console.log(formatRow([name, mine.toFixed(4), reference.toFixed(4), (mine / reference).toFixed(2), rate], widths));
}
