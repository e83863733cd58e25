import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import { checkFolderCreatable, ensureDir, fsUserError, temporarySibling } from '../util/fs.js';

/**
 * A report folder written whole or not at all: everything goes into a temporary sibling, which is
 * renamed into place once complete. An earlier report there is replaced only when `isOurs` says the
 * folder is one (or it is empty), so a mistyped --out never deletes someone's data.
 */
export async function writeFolderAtomic(target: string, isOurs: (existing: string) => boolean, fill: (dir: string) => Promise<void>,
  flag = '--out'): Promise<void> {
  checkReplaceable(target, isOurs, flag);
  ensureDir(path.dirname(path.resolve(target)));
  const temporary = temporarySibling(path.resolve(target));
  try {
    mkdirSync(temporary);
  } catch (error) {
    throw fsUserError(error, temporary);
  }
  try {
    await fill(temporary);
    if (existsSync(target)) {
      // Two renames: the old report never mixes with the new one, and a crash leaves one whole folder.
      const old = temporarySibling(path.resolve(target));
      renameSync(target, old);
      renameSync(temporary, target);
      rmSync(old, { recursive: true, force: true });
    } else {
      renameSync(temporary, target);
    }
  } catch (error) {
    rmSync(temporary, { recursive: true, force: true });
    throw fsUserError(error, target);
  }
}

/** Refuses (before any work) a target that exists and is not a folder this command wrote. */
export function checkReplaceable(target: string, isOurs: (existing: string) => boolean, flag = '--out'): void {
  if (!existsSync(target)) {
    // A file on the way (`--out afile/report`) is named now, not after every clip is scored.
    checkFolderCreatable(target, flag);
    return;
  }
  if (!statSync(target).isDirectory()) throw new UserError(`${flag} ${target}: is a file, expected a folder`);
  if (readdirSync(target).length === 0) return;
  if (!isOurs(target)) throw new UserError(`${flag} ${target}: the folder exists and holds something other than an earlier report; choose another ${flag} or empty it`);
}
