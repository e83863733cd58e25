/**
 * Progress for work that takes more than a couple of seconds: a bar with rate and ETA on a TTY,
 * plain lines (at most one every `plainIntervalMs`) otherwise, so logs stay readable in CI.
 */
export interface ProgressOptions {
  total: number;
  label: string;
  unit?: string;
  stream?: NodeJS.WriteStream;
  plainIntervalMs?: number;
  /** Force silence (tests, library use). */
  quiet?: boolean;
}

export class Progress {
  private done = 0;
  private readonly startedAt = Date.now();
  private lastDrawAt = 0;
  private readonly stream: NodeJS.WriteStream;
  private readonly isTTY: boolean;
  private extra = '';

  constructor(private readonly options: ProgressOptions) {
    this.stream = options.stream ?? process.stderr;
    this.isTTY = Boolean(this.stream.isTTY);
  }

  /** Advances by `count` items; `extra` is shown after the rate (e.g. "loss 0.41"). */
  tick(count = 1, extra?: string): void {
    this.done += count;
    if (extra !== undefined) this.extra = extra;
    this.draw(false);
  }

  update(done: number, extra?: string): void {
    this.done = done;
    if (extra !== undefined) this.extra = extra;
    this.draw(false);
  }

  finish(extra?: string): void {
    if (extra !== undefined) this.extra = extra;
    this.draw(true);
    if (this.isTTY && !this.options.quiet) this.stream.write('\n');
  }

  get elapsedSeconds(): number {
    return (Date.now() - this.startedAt) / 1000;
  }

  private draw(force: boolean): void {
    if (this.options.quiet) return;
    const now = Date.now();
    const interval = this.isTTY ? 100 : (this.options.plainIntervalMs ?? 5000);
    if (!force && now - this.lastDrawAt < interval) return;
    // A finished count is printed once, by finish(), with its final figures (plain lines only).
    if (!force && !this.isTTY && this.done >= this.options.total) return;
    this.lastDrawAt = now;
    const { total, label } = this.options;
    const unit = this.options.unit ?? 'it';
    const elapsed = Math.max(1e-9, (now - this.startedAt) / 1000);
    const rate = this.done / elapsed;
    const remaining = rate > 0 ? (total - this.done) / rate : Infinity;
    const fraction = total > 0 ? Math.min(1, this.done / total) : 1;
    const stats = `${this.done}/${total} ${rate.toFixed(1)} ${unit}/s ETA ${formatDuration(remaining)}` +
      (this.extra ? ` ${this.extra}` : '');
    if (this.isTTY) {
      const width = 30;
      const filled = Math.round(fraction * width);
      const bar = '█'.repeat(filled) + '░'.repeat(width - filled);
      this.stream.write(`\r${label} ${bar} ${(fraction * 100).toFixed(0).padStart(3)}% ${stats}\x1b[K`);
    } else {
      this.stream.write(`${label}: ${(fraction * 100).toFixed(0)}% ${stats}\n`);
    }
  }
}

export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds)) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const mm = String(m).padStart(2, '0');
  const ss = String(sec).padStart(2, '0');
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}
