import { Worker, type WorkerOptions } from 'node:worker_threads';

let inherited: string[] | undefined;

/**
 * A worker thread that runs with this process's Node flags (--enable-source-maps, --import hooks, …)
 * except those a worker refuses: --input-type (from `node -e`), and the V8 and per-process flags
 * (`node --trace-gc`, `--max-old-space-size`, `--prof`, …) that made `new Worker` throw, so a user who
 * profiles `stcnet train` got an internal error instead of a run.
 */
export function startWorker(url: URL, options: Omit<WorkerOptions, 'execArgv'>): Worker {
  inherited ??= process.execArgv.filter((flag) => !flag.startsWith('--input-type'));
  try {
    return new Worker(url, { ...options, execArgv: inherited });
  } catch (error) {
    // Node names the refused flags in its message only: "… invalid execArgv flags: --a, --b=1".
    const refused = (error as { code?: string }).code === 'ERR_WORKER_INVALID_EXEC_ARGV'
      ? new Set((error as Error).message.split('flags:')[1]?.split(',').map((flag) => flag.trim()) ?? []) : new Set<string>();
    const kept = inherited.filter((flag) => !refused.has(flag));
    if (refused.size === 0 || kept.length === inherited.length) throw error;
    inherited = kept;
    return new Worker(url, { ...options, execArgv: inherited });
  }
}
