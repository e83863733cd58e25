#!/usr/bin/env node
// Runs the compiled test files (dist/test/**/*.test.js) with Node's test runner, one file at a time.
// Node 20's `node --test` takes no glob, and given a folder it also runs every helper module under
// test/ as a test file; so the files are listed here.
//   node scripts/test.mjs                      every test file
//   node scripts/test.mjs engine video/cache   only those folders or files (relative to dist/test)
//   node scripts/test.mjs --list [...]         print the files instead of running them
// STCNET_THREADS defaults to 2 here: libtorch's thread count changes floating-point sums, so results
// must not depend on the machine's core count.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const testRoot = path.join(root, 'dist', 'test');

function testFiles(dir) {
  return readdirSync(dir, { withFileTypes: true })
    .sort((a, b) => a.name.localeCompare(b.name))
    .flatMap((entry) => {
      const full = path.join(dir, entry.name);
      if (entry.isDirectory()) return testFiles(full);
      return entry.isFile() && entry.name.endsWith('.test.js') ? [full] : [];
    });
}

// dist/ is never cleaned: a compiled test whose source was renamed or deleted is left out.
function hasSource(file) {
  return existsSync(path.join(root, 'test', path.relative(testRoot, file)).replace(/\.js$/, '.ts'));
}

if (!existsSync(testRoot)) {
  process.stderr.write(`test: ${testRoot} does not exist; compile first (npx tsc -p tsconfig.json, or npm test)\n`);
  process.exit(2);
}
const list = process.argv.includes('--list');
const selections = process.argv.slice(2).filter((arg) => arg !== '--list');
const files = [];
for (const selection of selections.length > 0 ? selections : ['.']) {
  let target = path.resolve(testRoot, selection.replace(/\.ts$/, '.js'));
  if (!existsSync(target) && existsSync(`${target}.test.js`)) target = `${target}.test.js`;
  if (!existsSync(target)) {
    process.stderr.write(`test: no test folder or file ${selection} under ${testRoot}\n`);
    process.exit(2);
  }
  files.push(...(statSync(target).isDirectory() ? testFiles(target) : [target]));
}
const stale = files.filter((file) => !hasSource(file));
for (const file of stale) process.stderr.write(`test: skipping ${path.relative(root, file)}: its source is gone\n`);
files.splice(0, files.length, ...files.filter(hasSource));
if (files.length === 0) {
  process.stderr.write(`test: no *.test.js files under ${selections.join(', ') || testRoot}\n`);
  process.exit(2);
}

if (list) {
  process.stdout.write(files.map((file) => `${path.relative(root, file)}\n`).join(''));
  process.exit(0);
}

const env = { ...process.env, STCNET_THREADS: process.env.STCNET_THREADS ?? '2' };
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files.map((file) => path.relative(root, file))],
  { cwd: root, stdio: 'inherit', env });
if (result.error) {
  process.stderr.write(`test: could not run node --test: ${result.error.message}\n`);
  process.exit(2);
}
process.exit(result.status ?? 1);
