import { execFileSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root, from dist/bench/... or bench/... */
export const repoRoot = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!dir.endsWith('/dist') && dir !== '/') dir = dirname(dir);
  return dir === '/' ? join(dirname(fileURLToPath(import.meta.url)), '..') : dirname(dir);
})();

/** Fastest of `repeats` timed runs after `warmup` untimed ones: the noise of a shared VM only adds time. */
export function timeMin(fn: () => void, repeats: number, warmup = 1): number {
  for (let i = 0; i < warmup; i++) fn();
  let best = Infinity;
  for (let i = 0; i < repeats; i++) {
    const start = process.hrtime.bigint();
    fn();
    best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e9);
  }
  return best;
}

/** Runs a Python benchmark with Debian's PyTorch and parses the JSON it prints last. */
export function runTorchBenchmark<T>(script: string, args: string[]): T {
  const python = process.env.STCNET_TORCH_PYTHON ?? '/usr/bin/python3';
  const out = execFileSync(python, [join(repoRoot, script), ...args], { encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const lines = out.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!) as T;
}

export function formatRow(cells: string[], widths: number[]): string {
  return cells.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
}
