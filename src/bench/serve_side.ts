/**
 * The line protocol every side of `stcnet bench` speaks (scripts/bench/torch_side.py too), so that
 * the paths of a task stay loaded and take turns a few iterations at a time: a drift of the machine's
 * speed then falls on every path of a round alike, which separate processes run one after the other
 * (each path's median of its own minute) could not give.
 *
 *   side → first line: {"ready": true, "logits"?: [...], "firstLoss"?: x} once loaded, checked and warmed up
 *   "run B W" → W untimed iterations at batch B, then one line: the seconds of one more (a forward, or a
 *               training step); W lets a side that sat idle while the others ran warm up again
 *   "end" (or the end of stdin) → one line: {"peakRssMiB": x}, then the side exits
 */
import { createInterface } from 'node:readline';
import { peakRssMiB } from './timing.js';

export interface SideReady {
  ready: true;
  logits?: number[];
  firstLoss?: number;
}

/** Serves `iterate` under the protocol above; `warmup` untimed iterations per batch first. */
export async function serveIterations(check: Omit<SideReady, 'ready'>, batches: number[], warmup: number,
  iterate: (batch: number) => unknown): Promise<void> {
  for (const batch of batches) for (let i = 0; i < warmup; i++) await iterate(batch);
  const say = (line: string) => process.stdout.write(line + '\n');
  say(JSON.stringify({ ready: true, ...check } satisfies SideReady));
  for await (const line of createInterface({ input: process.stdin })) {
    const [command, batchText, warmText] = line.trim().split(/\s+/);
    if (command === 'end') break;
    const batch = Number(batchText);
    const untimed = Number(warmText ?? 0);
    if (command !== 'run' || !batches.includes(batch) || !Number.isInteger(untimed) || untimed < 0) throw new Error(`bench side: unexpected request "${line}"`);
    for (let i = 0; i < untimed; i++) await iterate(batch);
    const start = process.hrtime.bigint();
    await iterate(batch);
    say(String(Number(process.hrtime.bigint() - start) / 1e9));
  }
  say(JSON.stringify({ peakRssMiB: peakRssMiB() }));
}
