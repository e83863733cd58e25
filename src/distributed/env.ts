import { UserError } from '../util/errors.js';

/**
 * Where this process sits in a job, from the variables torchrun sets (and Slurm or Kubernetes
 * PyTorchJob wrappers set the same way): MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK,
 * LOCAL_WORLD_SIZE. A process without WORLD_SIZE is not part of a job.
 */
export interface JobEnv {
  masterAddr: string;
  masterPort: number;
  rank: number;
  worldSize: number;
  localRank: number;
  localWorldSize: number;
  /** The rendezvous store is hosted outside the workers (torchrun's agent, stcnet's launcher), not by rank 0. */
  agentStore: boolean;
  /** Seconds a collective or the rendezvous may wait for the other ranks (STCNET_DIST_TIMEOUT, default 300). */
  timeoutSeconds: number;
}

export const DEFAULT_TIMEOUT_SECONDS = 300;

function integer(env: NodeJS.ProcessEnv, name: string, min: number, fallback?: number): number {
  const text = env[name];
  if (text === undefined || text === '') {
    if (fallback !== undefined) return fallback;
    throw new UserError(`${name}: not set; a distributed job needs MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE (as torchrun sets them)`);
  }
  const value = Number(text);
  if (!Number.isInteger(value) || value < min) throw new UserError(`${name}=${text}: expected an integer of at least ${min}`);
  return value;
}

/** The job this process belongs to, or null when WORLD_SIZE is unset (a plain single-process run). */
export function jobFromEnv(env: NodeJS.ProcessEnv = process.env): JobEnv | null {
  if (env.WORLD_SIZE === undefined || env.WORLD_SIZE === '') return null;
  const worldSize = integer(env, 'WORLD_SIZE', 1);
  const rank = integer(env, 'RANK', 0);
  if (rank >= worldSize) throw new UserError(`RANK=${rank}: must be below WORLD_SIZE=${worldSize}`);
  const masterAddr = env.MASTER_ADDR;
  if (!masterAddr) throw new UserError('MASTER_ADDR: not set; a distributed job needs MASTER_ADDR, MASTER_PORT, RANK and WORLD_SIZE (as torchrun sets them)');
  const masterPort = integer(env, 'MASTER_PORT', 1);
  if (masterPort > 65535) throw new UserError(`MASTER_PORT=${masterPort}: a port is at most 65535`);
  const localWorldSize = integer(env, 'LOCAL_WORLD_SIZE', 1, worldSize);
  const localRank = integer(env, 'LOCAL_RANK', 0, rank % localWorldSize);
  const timeoutSeconds = Number(env.STCNET_DIST_TIMEOUT ?? DEFAULT_TIMEOUT_SECONDS);
  if (!(timeoutSeconds > 0)) throw new UserError(`STCNET_DIST_TIMEOUT=${env.STCNET_DIST_TIMEOUT}: expected a positive number of seconds`);
  return {
    masterAddr, masterPort, rank, worldSize, localRank, localWorldSize, timeoutSeconds,
    // torchrun's own convention: workers join the agent's store instead of rank 0 hosting one.
    agentStore: env.TORCHELASTIC_USE_AGENT_STORE === 'True',
  };
}
