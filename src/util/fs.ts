import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { mkdir, open, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { UserError } from './errors.js';

/**
 * Files are written whole or not at all: to a temporary sibling (`.NAME.tmp-PID-RANDOM`, a dot-file so
 * dataset listings never see it), flushed, then renamed over the target. A crash leaves the old file.
 */
export function temporarySibling(file: string): string {
  return path.join(path.dirname(file), `.${path.basename(file)}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`);
}

/** Matches the temporary files `temporarySibling` makes, so a cleanup only removes what stcnet made. */
export const TEMPORARY_SIBLING = /^\..+\.tmp-\d+-[a-z0-9]+$/;

export function writeFileAtomic(file: string, data: string | Uint8Array | readonly Uint8Array[]): void {
  const temporary = temporarySibling(file);
  try {
    const fd = openSync(temporary, 'w');
    try {
      for (const chunk of Array.isArray(data) ? data : [data as string | Uint8Array]) writeSync(fd, chunk as Uint8Array);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(temporary, file);
  } catch (error) {
    removeTemporary(temporary);
    throw fsUserError(error, file);
  }
}

export async function writeFileAtomicAsync(file: string, data: string | Uint8Array): Promise<void> {
  const temporary = temporarySibling(file);
  try {
    const handle = await open(temporary, 'w');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(temporary, file);
  } catch (error) {
    await rm(temporary, { force: true }).catch(() => {});
    throw fsUserError(error, file);
  }
}

/**
 * Removes a temporary file after a failed write. Never throws: where the file could not be made (its
 * parent is a file, the folder is gone) removing it fails too, and that must not hide the first error.
 */
export function removeTemporary(temporary: string): void {
  try {
    rmSync(temporary, { force: true });
  } catch {
    // Nothing was made there.
  }
}

export function writeJsonAtomic(file: string, value: unknown): void {
  writeFileAtomic(file, JSON.stringify(value, null, 2) + '\n');
}

/** Creates a folder (and its parents); a parent that is a file or a read-only place is a UserError naming it. */
export function ensureDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (error) {
    throw mkdirUserError(error, dir);
  }
}

export async function ensureDirAsync(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true });
  } catch (error) {
    throw mkdirUserError(error, dir);
  }
}

/**
 * Checks, without creating anything, that `dir` is a folder or could be made as one: its nearest
 * existing ancestor must be a folder. For commands that write their output after long work, so that
 * `--out FILE/sub` fails before the work, not after it.
 */
export function checkFolderCreatable(dir: string, flag?: string): void {
  const named = flag ? `${flag} ${dir}` : dir;
  for (let at = path.resolve(dir); ; at = path.dirname(at)) {
    let stats;
    try {
      stats = statSync(at);
    } catch (error) {
      if (isFsError(error) && (error.code === 'ENOENT' || error.code === 'ENOTDIR') && at !== path.dirname(at)) continue;
      const reason = fsUserError(error, at);
      throw reason instanceof UserError ? new UserError(`${flag ? `${flag} ` : ''}${reason.message}`) : reason;
    }
    if (stats.isDirectory()) return;
    throw new UserError(at === path.resolve(dir) ? `${named}: is a file, expected a folder` : `${named}: ${at} is a file, not a folder`);
  }
}

/** A recursive mkdir fails with EEXIST only when the path, or one of its parents, is not a folder. */
function mkdirUserError(error: unknown, dir: string): unknown {
  if (isFsError(error) && error.code === 'EEXIST') {
    return new UserError(`${userPath(error.path ?? dir)}: is a file, expected a folder${error.path && error.path !== dir ? ` (to create ${dir})` : ''}`);
  }
  return fsUserError(error, dir);
}

const FS_REASONS: Record<string, string> = {
  ENOENT: 'no such file or folder',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  EROFS: 'read-only file system',
  ENOTDIR: 'a parent of this path is a file, not a folder',
  EISDIR: 'is a folder, expected a file',
  EEXIST: 'already exists',
  ENOSPC: 'no space left on the device',
  EDQUOT: 'disk quota exceeded',
  ENAMETOOLONG: 'name too long',
  EMFILE: 'too many open files',
  ENOTEMPTY: 'folder not empty',
  ELOOP: 'too many symbolic links',
};

/** True for Node's filesystem errors (they carry a `code` such as ENOENT). */
export function isFsError(error: unknown): error is NodeJS.ErrnoException {
  return error instanceof Error && typeof (error as NodeJS.ErrnoException).code === 'string' &&
    (error as NodeJS.ErrnoException).code! in FS_REASONS;
}

/**
 * A filesystem error as a one-line UserError naming the path (the CLI prints it and exits 2);
 * anything else is returned unchanged.
 */
export function fsUserError(error: unknown, fallbackPath?: string): unknown {
  if (error instanceof UserError || !isFsError(error)) return error;
  const where = userPath(error.path ?? fallbackPath ?? '');
  return new UserError(`${where}: ${FS_REASONS[error.code!]}${error.syscall ? ` (${error.syscall})` : ''}`);
}

/**
 * The path a user asked for: a temporary sibling (`.NAME.tmp-PID-RANDOM`, possibly of another
 * temporary) is named by the file it stands for, which is the only name the user knows.
 */
function userPath(file: string): string {
  let name = path.basename(file);
  for (let match = TEMPORARY_NAME.exec(name); match; match = TEMPORARY_NAME.exec(name)) name = match[1]!;
  return name === path.basename(file) ? file : path.join(path.dirname(file), name);
}

const TEMPORARY_NAME = /^\.(.+)\.tmp-\d+-[a-z0-9]+$/;
