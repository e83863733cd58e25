import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import { UserError } from '../util/errors.js';
import { DEFAULT_TIMEOUT_SECONDS } from './env.js';

/**
 * `stcnet train --nproc-per-node N [--nnodes M --node-rank R --master ADDR:PORT]`: starts this
 * machine's N workers, each the same `stcnet train` command with torchrun's variables, as torchrun
 * would. The launcher of node 0 hosts the rendezvous store (as torchrun's agent does), so a port
 * in use is found before any worker starts and the store outlives any worker. Ctrl-C is passed on
 * once to every worker (they agree to stop after the same step; rank 0 saves `last`); a worker
 * that dies is named, and the others stop on their own within the timeout (their next collective
 * fails), or are killed after it.
 */
export interface LaunchOptions {
  nprocPerNode: number;
  nnodes: number;
  nodeRank: number;
  /** ADDR:PORT of node 0 (default 127.0.0.1:29500 on one machine). */
  master: string | undefined;
  /** The worker's command line: node, its flags, the CLI script and its arguments (launcher flags removed). */
  argv: string[];
}

export const DEFAULT_MASTER_PORT = 29500;

export function parseMaster(text: string | undefined, nnodes: number): { addr: string; port: number } {
  if (text === undefined) {
    if (nnodes > 1) throw new UserError('--master: required with --nnodes above 1 (ADDR:PORT of node 0, reachable from every node)');
    return { addr: '127.0.0.1', port: DEFAULT_MASTER_PORT };
  }
  const match = /^(.+):(\d+)$/.exec(text);
  const port = match ? Number(match[2]) : NaN;
  if (!match || !(port >= 1 && port <= 65535)) throw new UserError(`--master: expected ADDR:PORT (e.g. 10.0.0.1:29500), got "${text}"`);
  return { addr: match[1]!.replace(/^\[(.*)\]$/, '$1'), port };
}

export function validateLaunch(options: Omit<LaunchOptions, 'argv'>): void {
  if (!Number.isInteger(options.nprocPerNode) || options.nprocPerNode < 1) throw new UserError(`--nproc-per-node: expected a positive integer, got ${options.nprocPerNode}`);
  if (!Number.isInteger(options.nnodes) || options.nnodes < 1) throw new UserError(`--nnodes: expected a positive integer, got ${options.nnodes}`);
  if (!Number.isInteger(options.nodeRank) || options.nodeRank < 0 || options.nodeRank >= options.nnodes) {
    throw new UserError(`--node-rank: expected an integer from 0 to ${options.nnodes - 1} (--nnodes ${options.nnodes}), got ${options.nodeRank}`);
  }
  parseMaster(options.master, options.nnodes);
}

const describeExit = (code: number | null, signal: NodeJS.Signals | null) => (signal ? `was killed by ${signal}` : `exited with code ${code}`);

/** Runs this node's workers to their end; resolves with the exit code for the launcher. */
export async function launchWorkers(options: LaunchOptions, log: (line: string) => void): Promise<number> {
  validateLaunch(options);
  const { addr, port } = parseMaster(options.master, options.nnodes);
  const world = options.nprocPerNode * options.nnodes;
  const timeoutSeconds = Number(process.env.STCNET_DIST_TIMEOUT ?? DEFAULT_TIMEOUT_SECONDS);
  let store: { close(): void } | undefined;
  if (options.nodeRank === 0) {
    // Loaded here only: the launcher of other nodes (and --help) never needs libtorch.
    const { dist } = await import('./native.js');
    try {
      const hosted = dist.distHostStore(port, Math.round(timeoutSeconds * 1000));
      store = { close: () => dist.distCloseStore(hosted.id) };
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (/address already in use/i.test(message)) throw new UserError(`--master: port ${port} is already in use on this machine (another job, or one still closing); choose another with --master ${addr}:PORT`);
      throw new UserError(`--master ${addr}:${port}: cannot host the rendezvous store: ${message}`);
    }
  }
  // Each worker gets its share of the cores unless STCNET_THREADS says otherwise.
  const threads = process.env.STCNET_THREADS ?? String(Math.max(1, Math.floor(os.availableParallelism() / options.nprocPerNode)));
  const workers: { rank: number; child: ChildProcess; exit?: Promise<{ code: number | null; signal: NodeJS.Signals | null }> }[] = [];
  for (let local = 0; local < options.nprocPerNode; local++) {
    const rank = options.nodeRank * options.nprocPerNode + local;
    const child = spawn(options.argv[0]!, options.argv.slice(1), {
      // Its own process group: a terminal's Ctrl-C reaches the launcher only, which passes it on once.
      detached: true,
      stdio: 'inherit',
      env: {
        ...process.env, MASTER_ADDR: addr, MASTER_PORT: String(port), RANK: String(rank), WORLD_SIZE: String(world),
        LOCAL_RANK: String(local), LOCAL_WORLD_SIZE: String(options.nprocPerNode), GROUP_RANK: String(options.nodeRank),
        TORCHELASTIC_USE_AGENT_STORE: 'True', STCNET_LAUNCHER_PID: String(process.pid), STCNET_THREADS: threads,
      },
    });
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
      child.once('exit', (code, signal) => resolve({ code, signal }));
      child.once('error', () => resolve({ code: 1, signal: null }));
    });
    workers.push({ rank, child, exit });
  }
  log(`launch: ${options.nprocPerNode} worker${options.nprocPerNode > 1 ? 's' : ''} on node ${options.nodeRank} of ${options.nnodes} (world size ${world}, rendezvous ${addr}:${port}, ${threads} thread${threads === '1' ? '' : 's'} each)`);
  log(`launch: ${workers.map(({ rank, child }) => `rank ${rank} pid ${child.pid}`).join(', ')}`);

  let interrupts = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    interrupts++;
    // Passed on as SIGINT: the workers' first stops after the step, a second quits at once.
    for (const { child } of workers) if (child.exitCode === null && child.signalCode === null) child.kill('SIGINT');
    if (interrupts === 1 && signal === 'SIGINT') log('launch: interrupted; the workers stop after this step (Ctrl-C again to quit at once)');
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  let firstFailure: { rank: number; code: number | null; signal: NodeJS.Signals | null } | undefined;
  let killer: NodeJS.Timeout | undefined;
  try {
    await Promise.all(workers.map(async ({ rank, child, exit }) => {
      const { code, signal } = await exit!;
      if ((code === 0 || code === 130) && !signal) return;
      if (firstFailure) return;
      firstFailure = { rank, code, signal };
      log(`launch: rank ${rank} (pid ${child.pid}) ${describeExit(code, signal)}; the other workers stop at their next collective (within ${timeoutSeconds} s)`);
      // A backstop: whoever is still running after the timeout (and a margin) is killed.
      killer = setTimeout(() => {
        for (const other of workers) if (other.child.exitCode === null && other.child.signalCode === null) other.child.kill('SIGKILL');
      }, (timeoutSeconds + 30) * 1000);
    }));
  } finally {
    clearTimeout(killer);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    store?.close();
  }
  if (firstFailure) return firstFailure.code && firstFailure.code > 0 ? firstFailure.code : 1;
  const codes = await Promise.all(workers.map((w) => w.exit!));
  return codes.some((c) => c.code === 130) ? 130 : 0;
}

/**
 * In a worker started by the launcher: exit when the launcher is gone (killed with SIGKILL, its
 * machine's session closed), instead of training on as an orphan nobody can stop.
 */
export function exitWithLauncher(): void {
  const launcher = Number(process.env.STCNET_LAUNCHER_PID);
  if (!Number.isInteger(launcher) || launcher <= 0) return;
  setInterval(() => {
    if (process.ppid !== launcher) {
      process.stderr.write(`error: rank ${process.env.RANK}: the launcher (pid ${launcher}) is gone; stopping\n`);
      process.exit(1);
    }
  }, 1000).unref();
}
