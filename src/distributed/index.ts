/** Distributed data parallelism on libtorch's c10d (see docs/distributed.md). */
export { jobFromEnv, type JobEnv } from './env.js';
export { ProcessGroup, DistributedError } from './process_group.js';
export { broadcastState, GradientSync, synchroniseBatchNorm, anyRankStopping, type GradientMode } from './ddp.js';
export { DataParallel } from './data_parallel.js';
export { launchWorkers, type LaunchOptions } from './launch.js';
export { batchPositions, type Shard } from '../data/samplers.js';
