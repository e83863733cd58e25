/**
 * Micro-batching across requests. Each request brings its clips (K × crops of them); the model runs
 * the clips of up to `maxBatch` requests in one forward pass. An idle model waits at most `waitMs`
 * after the first request arrives for others to join; requests that arrived while a pass was running
 * go in the next pass at once. With maxBatch 1 every request runs alone, as soon as the model is free.
 *
 * The forward pass is synchronous (libtorch on this thread), so passes never overlap; each runs in
 * its own event-loop turn, so uploads, decodes and answers keep moving between passes.
 */
export interface BatchResult {
  /** count × classes softmax scores of this request's clips. */
  probabilities: Float32Array;
  /** Requests and clips in the forward pass this request was part of. */
  batchRequests: number;
  batchClips: number;
  /** Milliseconds waiting for the pass, and the pass itself. */
  queueMs: number;
  inferenceMs: number;
}

interface Job {
  data: Float32Array;
  count: number;
  enqueuedAt: number;
  signal: AbortSignal | undefined;
  resolve(result: BatchResult): void;
  reject(error: unknown): void;
}

export interface BatcherOptions {
  maxBatch: number;
  waitMs: number;
  numClasses: number;
  clipElements: number;
}

export class MicroBatcher {
  private readonly queue: Job[] = [];
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  /** Forward passes run and requests in them, for /health. */
  passes = 0;
  requests = 0;

  constructor(private readonly forward: (data: Float32Array, count: number) => Float32Array, private readonly options: BatcherOptions) {}

  /** Requests waiting for a forward pass. */
  get waiting(): number {
    return this.queue.length;
  }

  /** Mean requests per forward pass so far. */
  get meanBatch(): number {
    return this.passes === 0 ? 0 : this.requests / this.passes;
  }

  submit(data: Float32Array, count: number, signal?: AbortSignal): Promise<BatchResult> {
    return new Promise<BatchResult>((resolve, reject) => {
      this.queue.push({ data, count, enqueuedAt: performance.now(), signal, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.immediate || this.queue.length === 0) return;
    const wait = this.queue.length >= this.options.maxBatch ? 0 : this.queue[0]!.enqueuedAt + this.options.waitMs - performance.now();
    if (wait <= 0) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.immediate = setImmediate(() => this.pass());
    } else if (!this.timer) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        this.schedule();
      }, Math.ceil(wait));
    }
  }

  private pass(): void {
    this.immediate = undefined;
    const jobs: Job[] = [];
    while (jobs.length < this.options.maxBatch && this.queue.length > 0) {
      const job = this.queue.shift()!;
      // A client gone while its request waited: its clips are not worth a forward pass.
      if (job.signal?.aborted) job.reject(job.signal.reason ?? new Error('aborted'));
      else jobs.push(job);
    }
    if (jobs.length > 0) this.run(jobs);
    this.schedule();
  }

  private run(jobs: Job[]): void {
    const { clipElements, numClasses } = this.options;
    const total = jobs.reduce((sum, job) => sum + job.count, 0);
    let data: Float32Array;
    if (jobs.length === 1) {
      data = jobs[0]!.data;
    } else {
      data = new Float32Array(total * clipElements);
      let offset = 0;
      for (const job of jobs) {
        data.set(job.data.subarray(0, job.count * clipElements), offset);
        offset += job.count * clipElements;
      }
    }
    const started = performance.now();
    let probabilities: Float32Array;
    try {
      probabilities = this.forward(data, total);
    } catch (error) {
      for (const job of jobs) job.reject(error);
      return;
    }
    const inferenceMs = performance.now() - started;
    this.passes++;
    this.requests += jobs.length;
    let row = 0;
    for (const job of jobs) {
      job.resolve({
        probabilities: probabilities.slice(row * numClasses, (row + job.count) * numClasses),
        batchRequests: jobs.length, batchClips: total, queueMs: started - job.enqueuedAt, inferenceMs,
      });
      row += job.count;
    }
  }
}
