import { native, type Handle } from '../engine/native.js';

/** c10d's process group: Gloo (CPU tensors) or NCCL (CUDA tensors; only in an addon built against a CUDA libtorch with NCCL). */
export type Backend = 'gloo' | 'nccl';

/** The addon's c10d surface (native/src/distributed.cc). */
export interface DistributedAddon {
  distInit(options: { host: string; port: number; rank: number; worldSize: number; timeoutMs: number; hostStore: boolean; backend: Backend; localRank: number }): Promise<number>;
  distHostStore(port: number, timeoutMs: number): { id: number; port: number };
  distCloseStore(id: number): void;
  distDestroy(id: number): void;
  distAllReduce(id: number, tensors: Handle[], op: 'sum' | 'max' | 'min'): Promise<void>;
  distBroadcast(id: number, tensors: Handle[], root: number): Promise<void>;
  distAllGather(id: number, tensor: Handle): Promise<Handle>;
  distBarrier(id: number): Promise<void>;
  distSilentRanks(id: number, waitMs: number): Promise<{ silent: number[]; behind: number[]; storeReachable: boolean }>;
  distArrive(id: number): void;
  distReducer(id: number, params: Handle[], bucketBytes: number, firstBucketBytes: number): void;
  distReducerPrepare(id: number): void;
  distSyncBatchNorm(id: number, input: Handle, weight: Handle, bias: Handle, runningMean: Handle, runningVar: Handle, momentum: number, eps: number): Handle;
}

export const dist = native as unknown as DistributedAddon;
