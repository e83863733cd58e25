import { closeSync, linkSync, openSync, readFileSync, renameSync, rmSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { UserError } from '../util/errors.js';
import { fsUserError } from '../util/fs.js';

/**
 * A folder lock: a file created with O_EXCL holding who took it (pid, host, start time). One writer
 * at a time, so two runs on one folder cannot interleave. A lock whose process is gone (same host,
 * pid not running) is stale and taken over; a lock held by a live process, or by another host
 * (whose processes cannot be checked from here), is refused with an error that names the holder.
 */

export interface LockHolder {
  pid: number;
  host: string;
  /** ISO time the lock was taken. */
  started: string;
  /** What holds it (e.g. "stcnet prepare"). */
  purpose: string;
}

const HolderSchema = z.object({ pid: z.number().int().positive(), host: z.string(), started: z.string(), purpose: z.string() });

/** True while a process with this pid runs on this host (EPERM: it runs, as another user). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Who holds the lock file, or undefined when there is none; 'unreadable' while it is being written or when damaged. */
export function readLock(file: string): LockHolder | 'unreadable' | undefined {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fsUserError(error, file);
  }
  try {
    return HolderSchema.parse(JSON.parse(text));
  } catch {
    return 'unreadable';
  }
}

/**
 * Removes a stale lock, unless another run replaced it since it was read: the file is first moved
 * aside (atomic), and put back when what was moved is not the stale holder's.
 */
function breakStaleLock(file: string, stale: LockHolder): void {
  const aside = `${file}.stale-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;
  try {
    renameSync(file, aside);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return; // someone else broke it first
    throw fsUserError(error, file);
  }
  const moved = readLock(aside);
  if (moved !== 'unreadable' && moved?.pid === stale.pid && moved.started === stale.started && moved.host === stale.host) {
    rmSync(aside, { force: true });
    return;
  }
  try {
    linkSync(aside, file); // a fresh lock: back where it was (fails only if a third run holds it now)
  } catch {
    // The next attempt reads whoever holds it now.
  }
  rmSync(aside, { force: true });
}

function describe(holder: LockHolder): string {
  return `${holder.purpose}, pid ${holder.pid} on ${holder.host}, since ${holder.started}`;
}

export interface FolderLock {
  readonly file: string;
  readonly holder: LockHolder;
  /** Removes the lock file (only if it is still ours). Safe to call twice. */
  release(): void;
}

/**
 * Takes `<dir>/<name>` or throws a UserError naming the holder. The lock is also removed when the
 * process exits (process.exit from a second Ctrl-C included); a crash leaves a stale lock that the
 * next run on this host takes over.
 */
export function acquireLock(dir: string, purpose: string, name = '.lock'): FolderLock {
  const file = path.join(dir, name);
  const holder: LockHolder = { pid: process.pid, host: os.hostname(), started: new Date().toISOString(), purpose };
  for (let attempt = 0; ; attempt++) {
    let fd: number;
    try {
      fd = openSync(file, 'wx');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw fsUserError(error, file);
      const current = readLock(file);
      if (current === undefined) continue; // released between our open and read: try again
      if (current === 'unreadable') {
        // The holder may be between creating and writing it; a few looks, then give up.
        if (attempt < 20) {
          Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 25);
          continue;
        }
        throw new UserError(`${dir} is locked by ${file}, which says nothing readable about its holder; ` +
          `if no stcnet command is using ${dir}, remove ${file}`);
      }
      const stale = current.host === os.hostname() && !processAlive(current.pid);
      if (!stale || attempt >= 20) {
        throw new UserError(`${dir} is in use by another run (${describe(current)}); wait for it to finish` +
          (current.host === os.hostname() ? '' : `, or remove ${file} if that process is gone`));
      }
      breakStaleLock(file, current);
      continue;
    }
    try {
      writeSync(fd, JSON.stringify(holder) + '\n');
    } finally {
      closeSync(fd);
    }
    break;
  }
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    process.off('exit', release);
    const current = readLock(file);
    if (current !== 'unreadable' && current?.pid === holder.pid && current.started === holder.started) rmSync(file, { force: true });
  };
  process.on('exit', release);
  return { file, holder, release };
}
