/**
 * bench/distributed: data-parallel step time and scaling for 1 and 2 processes of 1 thread each,
 * stcnet (c10d Gloo + Reducer through the addon) against PyTorch DDP with Gloo (/usr/bin/python3,
 * Debian's torch), on the same model (stc_resnet3d_18 at width 0.25, 8×48² clips), batch per
 * process and fixed random data, over loopback. Scaling efficiency = step time with 1 process /
 * step time with 2 (the batch per process is fixed, so 1.0 is perfect). Each configuration runs
 * `--repeats` times; the fastest counts (a shared machine's noise only adds time).
 *
 *   node dist/bench/distributed/bench.js [--steps 10] [--repeats 2] [--batch 8]
 */
import { spawn } from 'node:child_process';
import { createServer } from 'node:net';
import os from 'node:os';
import { join } from 'node:path';
import { formatRow, repoRoot } from '../common.js';

const arg = (name: string, fallback: string) => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
};
const steps = arg('steps', '10');
const repeats = Number(arg('repeats', '2'));
const batch = arg('batch', '8');

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => resolve(typeof address === 'object' && address ? address.port : 0));
    });
  });
}

function run(command: string, args: string[], env: NodeJS.ProcessEnv): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => { out += chunk.toString(); });
    child.once('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`${command} ${args.join(' ')}: exit ${code}`))));
  });
}

/** One job of `world` processes; rank 0's step time. */
async function job(side: 'stcnet' | 'pytorch', world: number): Promise<number> {
  const port = await freePort();
  const common = ['--steps', steps, '--batch', batch];
  const outputs = await Promise.all(Array.from({ length: world }, (_, rank) => {
    const env = { ...process.env, MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), RANK: String(rank), WORLD_SIZE: String(world),
      LOCAL_RANK: String(rank), LOCAL_WORLD_SIZE: String(world), STCNET_THREADS: '1', OMP_NUM_THREADS: '1' };
    return side === 'stcnet'
      ? run(process.execPath, [join(repoRoot, 'dist/bench/distributed/worker.js'), ...common], env)
      : run(process.env.STCNET_TORCH_PYTHON ?? '/usr/bin/python3', [join(repoRoot, 'bench/distributed/torch_ddp.py'), ...common], env);
  }));
  return (JSON.parse(outputs[0]!.trim().split('\n').at(-1)!) as { step_s: number }).step_s;
}

const results: Record<string, Record<number, number>> = { stcnet: {}, pytorch: {} };
for (let r = 0; r < repeats; r++) {
  for (const world of [1, 2]) {
    for (const side of ['stcnet', 'pytorch'] as const) {
      const seconds = await job(side, world);
      results[side]![world] = Math.min(results[side]![world] ?? Infinity, seconds);
    }
  }
}
const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
process.stdout.write(`bench/distributed: stc_resnet3d_18 ×0.25, 8×48² clips, batch ${batch} per process, 1 thread per process, Gloo over loopback; ${os.availableParallelism()} cores (${cpu}), load ${os.loadavg()[0]!.toFixed(2)} at the end\n`);
const widths = [10, 16, 16, 12];
process.stdout.write(formatRow(['', '1 process s/step', '2 processes s/step', 'scaling'], widths) + '\n');
for (const side of ['stcnet', 'pytorch'] as const) {
  const [one, two] = [results[side]![1]!, results[side]![2]!];
  process.stdout.write(formatRow([side, one.toFixed(3), two.toFixed(3), (one / two).toFixed(2)], widths) + '\n');
}
process.stdout.write(`stcnet / PyTorch step time: ${(results.stcnet![1]! / results.pytorch![1]!).toFixed(2)}× (1 process), ${(results.stcnet![2]! / results.pytorch![2]!).toFixed(2)}× (2 processes)\n`);
process.stdout.write(JSON.stringify(results) + '\n');
