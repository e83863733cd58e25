import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { tempDir } from '../helpers.js';
import { checkFolderCreatable, ensureDir, ensureDirAsync, writeFileAtomic, writeFileAtomicAsync } from '../../src/util/fs.js';
import { writeSafetensors } from '../../src/nn/safetensors.js';

const userError = (pattern: RegExp) => (error: Error) => {
  assert.equal(error.name, 'UserError', error.stack);
  assert.match(error.message, pattern);
  assert.doesNotMatch(error.message, /\.tmp-\d+-/, 'never the temporary file the user does not know');
  return true;
};

test('a failed atomic write names the file asked for, not its temporary sibling', async () => {
  const dir = tempDir();
  const file = join(dir, 'file');
  writeFileSync(file, 'x');
  assert.throws(() => writeFileAtomic(join(file, 'out.json'), '{}'),
    userError(new RegExp(`^${file}/out\\.json: a parent of this path is a file`)));
  await assert.rejects(writeFileAtomicAsync(join(dir, 'missing', 'out.json'), '{}'),
    userError(new RegExp(`^${dir}/missing/out\\.json: no such file or folder`)));
  // A temporary of a temporary (a caller writing through writeSafetensors into its own temporary).
  assert.throws(() => writeSafetensors(join(dir, 'missing', '.m.safetensors.tmp-12-abc'), new Map()),
    userError(new RegExp(`^${dir}/missing/m\\.safetensors: no such file or folder`)));
  assert.deepEqual(readdirSync(dir), ['file'], 'nothing left behind');
});

test('ensureDir on a file, or below one, says a file stands where a folder is needed', async () => {
  const dir = tempDir();
  const file = join(dir, 'file');
  writeFileSync(file, 'x');
  assert.throws(() => ensureDir(file), userError(new RegExp(`^${file}: is a file, expected a folder$`)));
  await assert.rejects(ensureDirAsync(file), userError(new RegExp(`^${file}: is a file, expected a folder$`)));
  await assert.rejects(ensureDirAsync(join(file, 'sub')), userError(new RegExp(`^${file}(/sub)?: (is a file, expected a folder|a parent of this path is a file)`)));
  mkdirSync(join(dir, 'ok'));
  ensureDir(join(dir, 'ok'));
});

test('checkFolderCreatable: a folder, or a path under one, passes; a file on the way is named before any work', () => {
  const dir = tempDir();
  const file = join(dir, 'file');
  writeFileSync(file, 'x');
  checkFolderCreatable(dir);
  checkFolderCreatable(join(dir, 'new', 'deeper'));
  assert.throws(() => checkFolderCreatable(file, '--out'), userError(new RegExp(`^--out ${file}: is a file, expected a folder$`)));
  assert.throws(() => checkFolderCreatable(join(file, 'a', 'b'), '--out'),
    userError(new RegExp(`^--out ${file}/a/b: ${file} is a file, not a folder$`)));
  assert.deepEqual(readdirSync(dir), ['file'], 'nothing created');
});
