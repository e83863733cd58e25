import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { repoRoot, tempDir } from '../helpers.js';

// The published package, end to end: `npm pack`, then `npm install <tarball>` into a fresh project
// with no network, then `import('stcnet')` computes with libtorch. The install builds the two addons
// (about a minute or two on 2 cores); the test then checks the first-load build and its error.

interface PackResult {
  filename: string;
  entryCount: number;
  files: { path: string }[];
}

interface LockEntry {
  version?: string;
  resolved?: string;
  dev?: boolean;
  [key: string]: unknown;
}

function npm(args: string[], cwd: string, timeoutMs = 600_000): string {
  const result = spawnSync('npm', args, { cwd, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 });
  assert.equal(result.status, 0, `npm ${args.join(' ')} in ${cwd} failed:\n${result.stdout}\n${result.stderr}`);
  return result.stdout;
}

/**
 * A lockfile for the consumer that pins stcnet's dependencies to the repository's own lockfile, with
 * registry URLs. An offline `npm install <tarball>` must find every dependency in the npm cache; that
 * cache holds the tarballs `npm install` fetched for this checkout (by integrity) but not necessarily
 * the registry's package documents npm would need to resolve version ranges afresh.
 */
function consumerLock(tarball: string, manifest: { version: string; dependencies: Record<string, string> }, registry: string): object {
  const repoLock = JSON.parse(readFileSync(path.join(repoRoot, 'package-lock.json'), 'utf8')) as { packages: Record<string, LockEntry> };
  const spec = `file:../${path.basename(tarball)}`;
  const packages: Record<string, unknown> = {
    '': { name: 'consumer', dependencies: { stcnet: spec } },
    'node_modules/stcnet': {
      version: manifest.version, resolved: spec, hasInstallScript: true, dependencies: manifest.dependencies,
      integrity: `sha512-${createHash('sha512').update(readFileSync(tarball)).digest('base64')}`,
    },
  };
  for (const [location, entry] of Object.entries(repoLock.packages)) {
    if (location === '' || entry.dev) continue;
    const name = location.slice(location.lastIndexOf('node_modules/') + 'node_modules/'.length);
    const resolved = entry.resolved ?? `${registry.replace(/\/$/, '')}/${name}/-/${name.split('/').pop()}-${entry.version}.tgz`;
    packages[location] = { ...entry, resolved };
  }
  return { name: 'consumer', lockfileVersion: 3, requires: true, packages };
}

test('npm pack ships the library and the addon sources only; the tarball installs offline and computes', { timeout: 20 * 60_000 }, () => {
  assert.ok(existsSync(path.join(repoRoot, 'dist', 'src', 'index.js')), 'compile first (npm test does)');
  const work = tempDir('stcnet-pack-');
  // --ignore-scripts: prepack would compile again; the test runs on the compiled tree.
  const [pack] = JSON.parse(npm(['pack', '--ignore-scripts', '--json', '--pack-destination', work], repoRoot)) as [PackResult];
  const files = pack.files.map((file) => file.path);
  for (const required of ['package.json', 'README.md', 'LICENSE', 'dist/src/index.js', 'dist/src/index.d.ts', 'dist/src/cli/main.js',
    'dist/src/util/addon.js', 'native/binding.gyp', 'native/src/addon.cc', 'native/src/convert.cc', 'native/src/tensor_io.cc',
    'native/src/onednn.cc', 'native/src/handle.h', 'native/jpeg/binding.gyp', 'native/jpeg/jpeg.cc', 'scripts/libtorch-config.cjs', 'scripts/install.cjs',
    'dist/src/onnx/index.js', 'web/index.html', 'web/app.js', 'scripts/bench/torch_side.py', 'scripts/reference/stc_reference.py']) {
    assert.ok(files.includes(required), `the tarball has ${required}`);
  }
  const unwanted = files.filter((file) => /^(dist\/)?(test|bench)\//.test(file) || /(^|\/)fixtures\//.test(file) ||
    /\.(pt|pth|pkl|safetensors|node|o|map)$/.test(file) || /(^|\/)build\//.test(file) || file.startsWith('scripts/fixtures/'));
  assert.deepEqual(unwanted, [], 'no tests, fixtures, benchmarks, pickles or build outputs');
  // A bound against accidental bloat (a whole folder swept in), not a budget: 360 files when it was set to 450.
  assert.ok(pack.entryCount < 450, `${pack.entryCount} files`);

  const tarball = path.join(work, pack.filename);
  const manifest = JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')) as { version: string; dependencies: Record<string, string> };
  assert.ok(manifest.dependencies['node-addon-api'], 'node-addon-api is a dependency: the consumer builds the addon with it');
  const registry = npm(['config', 'get', 'registry'], repoRoot).trim();
  const consumer = path.join(work, 'consumer');
  mkdirSync(consumer);
  writeFileSync(path.join(consumer, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }, null, 2));
  writeFileSync(path.join(consumer, 'package-lock.json'), JSON.stringify(consumerLock(tarball, manifest, registry), null, 2));
  npm(['install', '--offline', '--no-audit', '--no-fund', tarball], consumer, 15 * 60_000);

  // Whether npm ran the install script (npm 11 still does, with a warning) or not, the import works:
  // a missing addon is built on first load.
  const node = (script: string, env: NodeJS.ProcessEnv = {}) => spawnSync(process.execPath, ['--input-type=module', '-e', script],
    { cwd: consumer, encoding: 'utf8', timeout: 15 * 60_000, env: { ...process.env, ...env } });
  const product = node("import('stcnet').then((m) => { const a = m.tensor([[1, 2], [3, 4]]); console.log(JSON.stringify(a.matmul(a).toArray())); })");
  assert.equal(product.status, 0, product.stderr);
  assert.equal(product.stdout.trim(), '[7,10,15,22]');

  // The first-load build, as after an install that ran no scripts: the JPEG addon is small.
  const installed = path.join(consumer, 'node_modules', 'stcnet');
  rmSync(path.join(installed, 'native', 'jpeg', 'build'), { recursive: true, force: true });
  const jpegModule = path.join(installed, 'dist', 'src', 'video', 'jpeg.js');
  const roundTrip = node(`import(${JSON.stringify(jpegModule)}).then((m) => {
    const addon = m.jpeg();
    const rgb = new Uint8Array(16 * 8 * 3).fill(128);
    console.log(JSON.stringify(addon.header(addon.encode(rgb, 16, 8, 90, 420))));
  });`);
  assert.equal(roundTrip.status, 0, roundTrip.stderr);
  assert.equal(roundTrip.stdout.trim(), '[16,8]');
  assert.match(roundTrip.stderr, /stcnet: the JPEG addon is not built yet; building it with node-gyp in .*native\/jpeg/);

  // A build that cannot succeed says what is missing.
  rmSync(path.join(installed, 'native', 'build'), { recursive: true, force: true });
  const broken = node("import('stcnet').then(() => process.exit(0), (e) => { console.error(`${e.name}: ${e.message}`); process.exit(3); })",
    { LIBTORCH: path.join(work, 'no-libtorch') });
  assert.equal(broken.status, 3, broken.stderr);
  assert.match(broken.stderr, /AddonError: stcnet: could not build the libtorch addon \(.*native\/build\/Release\/stcnet_torch\.node\): LIBTORCH=.*no-libtorch: expected include\/ATen\/ATen\.h there/);
});
