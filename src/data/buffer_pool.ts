/**
 * Batch data buffers that the loader's consumer gave back (ClipLoader.recycle), kept for the next
 * batches of the same byte length: a batch of 8 clips of 3×16×112² float32 is 19 MB, which the
 * consumer copies into a tensor and drops, so without reuse every batch is a fresh allocation.
 */
export class BatchBufferPool {
  /** Buffers ready for a batch task, oldest first. */
  private readonly spare: ArrayBuffer[] = [];
  /**
   * The buffer behind each batch handed out and not yet given back. Keyed by the batch object, not
   * the buffer: with workers: 0 one buffer comes back as the data of a later batch, and recycling
   * the earlier batch a second time must not put the later batch's buffer into the pool.
   */
  private readonly lent = new WeakMap<object, ArrayBuffer>();
  /** Batch tasks given a pooled buffer instead of a new one. */
  reused = 0;

  /** `capacity`: the most buffers kept; more could not all be in use at once, so they would only hold memory. */
  constructor(private readonly capacity: number) {}

  get size(): number {
    return this.spare.length;
  }

  /** Notes that `batch` carries `data` to the consumer, so that recycling it may pool the buffer. */
  lend(batch: object, data: Float32Array | Uint8Array): void {
    // Only a view of a whole buffer: pooling a buffer whose other part is still read elsewhere would overwrite it.
    if (data.byteOffset === 0 && data.byteLength === data.buffer.byteLength) this.lent.set(batch, data.buffer as ArrayBuffer);
  }

  /** Takes back the buffer of a lent batch; another batch, or one given back already, is ignored. */
  giveBack(batch: object): void {
    const buffer = this.lent.get(batch);
    if (!buffer) return;
    this.lent.delete(batch);
    // A consumer that transferred the data elsewhere left a detached (empty) buffer: nothing to keep.
    if (buffer.byteLength === 0) return;
    if (this.spare.length >= this.capacity) this.spare.shift();
    this.spare.push(buffer);
  }

  /**
   * A pooled buffer of exactly `byteLength` bytes, removed from the pool (so it is handed out once:
   * a transferred buffer is detached and could never be written again), or undefined.
   */
  take(byteLength: number): ArrayBuffer | undefined {
    const index = byteLength > 0 ? this.spare.findIndex((buffer) => buffer.byteLength === byteLength) : -1;
    if (index < 0) return undefined;
    this.reused++;
    return this.spare.splice(index, 1)[0];
  }

  clear(): void {
    this.spare.length = 0;
  }
}
