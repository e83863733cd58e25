/**
 * One path of `stcnet bench` in a process of its own (so its peak RSS is its own), loaded once and
 * asked for one timed iteration at a time (the protocol of serve_side.ts).
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { UserError } from '../util/errors.js';
import type { SideReady } from './serve_side.js';

export interface SideProcess {
  readonly path: string;
  /** What the side computed on the check input, before any timing. */
  readonly check: Omit<SideReady, 'ready'>;
  /** Seconds of one iteration at `batch`, after `untimed` ones. */
  time(batch: number, untimed: number): Promise<number>;
  /** Ends the side; its peak RSS in MiB. */
  end(): Promise<number>;
  kill(): void;
}

/** Starts `command args` and waits until it is loaded, checked and warmed up. */
export async function startSide(benchPath: string, command: string, args: string[]): Promise<SideProcess> {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], env: { ...process.env, STCNET_QUIET: '1' } });
  let stderr = '';
  let startError = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { stderr = (stderr + chunk).slice(-8000); });
  child.on('error', (error) => { startError = error.message; });
  child.stdin!.on('error', () => undefined);  // a side that died is reported when its output ends
  const closed = new Promise<void>((resolve) => child.on('close', () => resolve()));
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const nextLine = async (): Promise<string> => {
    const line = await lines.next();
    if (!line.done) return line.value;
    await closed;
    const detail = startError || stderr.trim().split('\n').slice(-3).join(' | ') || 'it stopped without a message';
    throw new UserError(`bench: ${benchPath} failed: ${detail}`);
  };
  const json = async <T>(what: string): Promise<T> => {
    // Libraries may print to stdout: the protocol's JSON lines are the ones that start with "{".
    for (;;) {
      const line = await nextLine();
      if (!line.startsWith('{')) continue;
      try {
        return JSON.parse(line) as T;
      } catch {
        throw new UserError(`bench: ${benchPath} sent an unreadable ${what}: ${line.slice(0, 200)}`);
      }
    }
  };
  try {
    const { ready: _ready, ...check } = await json<SideReady>('ready line');
    return {
      path: benchPath,
      check,
      time: async (batch, untimed) => {
        child.stdin!.write(`run ${batch} ${untimed}\n`);
        const line = await nextLine();
        const seconds = Number(line);
        if (!(seconds > 0)) throw new UserError(`bench: ${benchPath} sent "${line.slice(0, 200)}" for a timing`);
        return seconds;
      },
      end: async () => {
        child.stdin!.end('end\n');
        const { peakRssMiB } = await json<{ peakRssMiB: number }>('peak RSS');
        await closed;
        return peakRssMiB;
      },
      kill: () => {
        if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      },
    };
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
}
