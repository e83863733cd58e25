import { Tensor } from '../engine/index.js';
import type { Handle } from '../engine/native.js';
import { UserError } from '../util/errors.js';
import { dist, type Backend } from './native.js';
import type { JobEnv } from './env.js';

/**
 * A failed rendezvous or collective: another rank died, froze past the timeout, or could not be
 * reached. A UserError, so the CLI prints its one line (naming the operation and the ranks).
 */
export class DistributedError extends UserError {
  constructor(message: string) {
    super(message);
    this.name = 'DistributedError';
  }
}

/** "ranks 1 and 3", "rank 2". */
export function rankList(ranks: readonly number[]): string {
  if (ranks.length === 1) return `rank ${ranks[0]}`;
  return `ranks ${ranks.slice(0, -1).join(', ')} and ${ranks.at(-1)}`;
}

/**
 * One rank's membership in a c10d process group (TCPStore rendezvous + ProcessGroupGloo). The
 * collectives resolve when every rank has taken part, and reject within the job's timeout with a
 * DistributedError naming the operation and the rank that broke it.
 */
export class ProcessGroup {
  private destroyed = false;

  private constructor(private readonly id: number, readonly job: JobEnv, readonly backend: Backend) {}

  get rank(): number {
    return this.job.rank;
  }

  get worldSize(): number {
    return this.job.worldSize;
  }

  /** @internal The addon's group id (the reducer and synchronised BatchNorm use it). */
  get nativeId(): number {
    return this.id;
  }

  /** Joins the job: rank 0 hosts the TCPStore unless an agent (torchrun, stcnet's launcher) does. */
  static async join(job: JobEnv, backend: Backend = 'gloo'): Promise<ProcessGroup> {
    const where = `${job.masterAddr}:${job.masterPort}`;
    try {
      const id = await dist.distInit({
        host: job.masterAddr, port: job.masterPort, rank: job.rank, worldSize: job.worldSize,
        timeoutMs: Math.round(job.timeoutSeconds * 1000), hostStore: job.rank === 0 && !job.agentStore, backend, localRank: job.localRank,
      });
      return new ProcessGroup(id, job, backend);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (/built without NCCL/.test(message)) throw new DistributedError(`--device cuda in a distributed job needs NCCL: ${message.replace(/^distInit: /, '')}`);
      if (/address already in use/i.test(message)) {
        throw new DistributedError(`MASTER_PORT=${job.masterPort}: port ${job.masterPort} is already in use on ${job.masterAddr} (another job, or one still closing); choose another port (--master ADDR:PORT, or MASTER_PORT)`);
      }
      throw new DistributedError(`rank ${job.rank} of ${job.worldSize}: rendezvous at ${where} failed within ${job.timeoutSeconds} s: ${message.replace(/^rendezvous at [^:]+:\d+ \([^)]*\): /, '')}`);
    }
  }

  /** Sums (or takes the max/min of) each tensor over the ranks, in place. Tensors must be contiguous. */
  async allReduce(tensors: Tensor[], what: string, op: 'sum' | 'max' | 'min' = 'sum'): Promise<void> {
    await this.onDevice(tensors, (moved) => this.run(what, () => dist.distAllReduce(this.id, moved.map((t) => t.handle), op)));
  }

  /** Copies `root`'s tensors into every rank's, in place. */
  async broadcast(tensors: Tensor[], what: string, root = 0): Promise<void> {
    await this.onDevice(tensors, (moved) => this.run(what, () => dist.distBroadcast(this.id, moved.map((t) => t.handle), root)));
  }

  /** Every rank's tensor (same shape on each), stacked along a new first dimension in rank order. */
  async allGather(tensor: Tensor, what: string): Promise<Tensor> {
    let gathered: Tensor | undefined;
    await this.onDevice([tensor], async ([moved]) => {
      gathered = new Tensor(await this.run(what, () => dist.distAllGather(this.id, moved!.handle)) as Handle);
    });
    if (this.backend === 'nccl' && tensor.device === 'cpu') {
      const cpu = gathered!.to('cpu');
      gathered!.dispose();
      return cpu;
    }
    return gathered!;
  }

  /**
   * NCCL reduces CUDA tensors only: CPU tensors (the step's metrics, validation scores) go to the
   * GPU for the collective and their results come back in place. Gloo takes them as they are.
   */
  private async onDevice(tensors: Tensor[], body: (moved: Tensor[]) => Promise<void>): Promise<void> {
    if (this.backend !== 'nccl' || tensors.every((t) => t.device !== 'cpu')) return body(tensors);
    const moved = tensors.map((t) => (t.device === 'cpu' ? t.to('cuda') : t));
    try {
      await body(moved);
      tensors.forEach((t, i) => { if (moved[i] !== t) t.copy_(moved[i]!.to('cpu')); });
    } finally {
      moved.forEach((m, i) => { if (m !== tensors[i]) m.dispose(); });
    }
  }

  /** Resolves once every rank has reached it. */
  async barrier(what: string): Promise<void> {
    await this.run(what, () => dist.distBarrier(this.id));
  }

  /** Leaves the group (its sockets close; the others see this rank gone at their next collective). */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    dist.distDestroy(this.id);
  }

  /**
   * Counts this rank into its next collective (every rank makes the same sequence). Published with
   * the heartbeat, so when one times out, the live ranks that never arrived can be named.
   */
  arrive(): void {
    dist.distArrive(this.id);
  }

  private async run<T>(what: string, body: () => Promise<T>): Promise<T> {
    if (this.destroyed) throw new Error(`${what}: the process group was destroyed`);
    this.arrive();
    try {
      return await body();
    } catch (error) {
      throw await this.explain(what, error);
    }
  }

  /**
   * Names the rank that broke a collective: every rank bumps a heartbeat counter in the store each
   * second, so one whose counter stands still for 2.5 seconds is dead or frozen; a live one that
   * entered fewer collectives than this rank never arrived at this one.
   */
  async explain(what: string, error: unknown): Promise<Error> {
    const cause = error instanceof Error ? error.message : String(error);
    // Collectives reject with ERR_DISTRIBUTED; the Reducer's all-reduces fail inside backward, as a
    // libtorch error carrying Gloo's message.
    const fromGloo = (error as { code?: string }).code === 'ERR_DISTRIBUTED' || /gloo|Connection (reset|closed)|Timed out/i.test(cause);
    if (!fromGloo) return error instanceof Error ? error : new Error(cause);
    let culprit = '';
    try {
      const { silent, behind, storeReachable } = await dist.distSilentRanks(this.id, 2500);
      if (!storeReachable) {
        culprit = this.job.agentStore ? 'the rendezvous store (the launcher) is unreachable' : 'rank 0 (which hosts the rendezvous store) is unreachable: it died or its machine is gone';
      } else if (silent.length > 0) {
        culprit = `${rankList(silent)} stopped answering (died or froze)`;
      } else if (behind.length > 0) {
        culprit = `${rankList(behind)} never reached it (busy or stuck before it)`;
      }
    } catch {
      culprit = '';
    }
    return new DistributedError(`rank ${this.rank} of ${this.worldSize}: ${what} failed${culprit ? `: ${culprit}` : ''} (${cause})`);
  }
}
