/**
 * What bench/infer/paired.ts and bench/train/paired.ts share: flags, the PyTorch side as a long-lived
 * process that times one unit of work per request, and the alternation that puts a drift of the
 * machine's speed on both sides of each pair.
 */
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { createInterface } from 'node:readline';
import { median } from '../src/bench/timing.js';
import { UserError } from '../src/util/errors.js';

export function flag(name: string, fallback: string): string {
  const index = process.argv.indexOf(`--${name}`);
  return index < 0 ? fallback : process.argv[index + 1] ?? '';
}

export function intFlag(name: string, fallback: number): number {
  const value = Number(flag(name, String(fallback)));
  if (!Number.isInteger(value) || value < 1) throw new UserError(`--${name} must be a positive integer, got "${flag(name, '')}"`);
  return value;
}

/** A flag that must be one of `choices`. */
export function choiceFlag<T extends string>(name: string, fallback: T, choices: readonly T[]): T {
  const value = flag(name, fallback);
  if (!(choices as readonly string[]).includes(value)) throw new UserError(`--${name} must be ${choices.join(' or ')}, got "${value}"`);
  return value as T;
}

/** The flags both paired benches take: the model, its input, threads, pairs and the Python to run. */
export function modelFlags(defaults: { batch: number; pairs: number }) {
  return {
    arch: flag('arch', 'stc_resnet3d_18'),
    frames: intFlag('frames', 16),
    size: intFlag('size', 112),
    batch: intFlag('batch', defaults.batch),
    threads: intFlag('threads', Math.min(2, availableParallelism())),
    pairs: intFlag('pairs', defaults.pairs),
    python: flag('python', '/usr/bin/python3'),
  };
}

/** A Python peer that prints "ready" once warmed up, then one line of seconds per "run" request. */
export interface Peer {
  ready(): Promise<void>;
  run(): Promise<number>;
  close(): void;
}

export function startPeer(what: string, python: string, script: string, args: string[]): Peer {
  const child = spawn(python, [script, ...args], { stdio: ['pipe', 'pipe', 'inherit'] });
  let startFailure = '';
  child.on('error', (error) => { startFailure = error.message; });  // its stdout then ends: nextLine reports it
  child.stdin!.on('error', () => undefined);  // a peer that died is reported by nextLine, not by a write
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const nextLine = async (): Promise<string> => {
    const line = await lines.next();
    if (line.done) throw new UserError(`${what}: ${startFailure || `${python} ${script} stopped (see its output above)`}`);
    return line.value;
  };
  return {
    ready: async () => {
      if ((await nextLine()) !== 'ready') throw new UserError(`${what}: unexpected first line from the PyTorch side`);
    },
    run: async () => {
      child.stdin!.write('run\n');
      return Number(await nextLine());
    },
    close: () => child.stdin!.end(),
  };
}

/**
 * `pairs` timings of each side, one after the other, the order swapped every pair. Each turn runs one
 * untimed iteration first: a process that sat idle while the other ran is slow for its next one
 * (PyTorch's training steps most), so timing it measured the hand-over, not the work.
 */
export async function alternate(pairs: number, ours: () => number, theirs: () => Promise<number>): Promise<{ ours: number[]; theirs: number[] }> {
  const result = { ours: [] as number[], theirs: [] as number[] };
  const ourTurn = () => {
    ours();
    result.ours.push(ours());
  };
  const theirTurn = async () => {
    await theirs();
    result.theirs.push(await theirs());
  };
  for (let pair = 0; pair < pairs; pair++) {
    if (pair % 2 === 0) {
      ourTurn();
      await theirTurn();
    } else {
      await theirTurn();
      ourTurn();
    }
  }
  return result;
}

/** "median R, quartiles Q1–Q3, range MIN–MAX" of theirs ÷ ours per pair (a speed ratio: above 1, stcnet is faster). */
export function describeRatios(ours: number[], theirs: number[]): string {
  const ratios = ours.map((seconds, i) => theirs[i]! / seconds).sort((a, b) => a - b);
  return `median ${median(ratios).toFixed(3)}, quartiles ${ratios[Math.floor(ratios.length / 4)]!.toFixed(3)}–` +
    `${ratios[Math.floor((3 * ratios.length) / 4)]!.toFixed(3)}, range ${ratios[0]!.toFixed(3)}–${ratios[ratios.length - 1]!.toFixed(3)}`;
}

/** Runs a bench's main: a UserError is one line and exit code 2. */
export function runMain(main: () => Promise<void>): void {
  main().catch((error: unknown) => {
    if (error instanceof UserError) {
      console.error(error.message);
      process.exit(2);
    }
    throw error;
  });
}
