import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { AddonError, addonFile, loadAddon, diagnose, packageRoot, TORCH_ADDON, type AddonSpec } from '../../src/util/addon.js';
import { repoRoot, tempDir } from '../helpers.js';

// Small C addons in a temporary folder stand in for the package's own: the same loader builds them
// with node-gyp on first load, in a few seconds instead of the libtorch addon's minute.

const ADDON_SOURCE = `#include <node_api.h>
static napi_value answer(napi_env env, napi_callback_info info) {
  napi_value result;
  napi_create_int32(env, 42, &result);
  return result;
}
NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "answer", NAPI_AUTO_LENGTH, answer, NULL, &fn);
  napi_set_named_property(env, exports, "answer", fn);
  return exports;
}
`;

function fakeAddon(root: string, target: string, source: string): AddonSpec {
  const dir = path.join(root, target);
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, 'binding.gyp'), JSON.stringify({ targets: [{ target_name: target, sources: ['addon.c'] }] }));
  writeFileSync(path.join(dir, 'addon.c'), source);
  return { target, dir: target, title: `the test addon ${target}`, requires: 'nothing but a compiler', script: 'build:test' };
}

test('the package root is the folder whose package.json names stcnet; the addons live under it', () => {
  assert.equal(packageRoot(), repoRoot);
  assert.equal(addonFile(TORCH_ADDON), path.join(repoRoot, 'native', 'build', 'Release', 'stcnet_torch.node'));
});

test('a missing addon is built on first load, once, even when two processes load it at the same time', async () => {
  const root = tempDir('stcnet-addon-');
  const spec = fakeAddon(root, 'fake_ok', ADDON_SOURCE);
  // Two processes race for the build: the lock makes one build while the other waits, then both load it.
  const helper = pathToFileURL(path.join(repoRoot, 'dist', 'src', 'util', 'addon.js')).href;
  const script = `import(${JSON.stringify(helper)}).then((m) => {
    const addon = m.loadAddon(${JSON.stringify(spec)}, { root: ${JSON.stringify(root)} });
    process.stdout.write(String(addon.answer()));
  });`;
  const run = () => new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString(); });
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString(); });
    child.on('close', (code) => resolve({ code, stdout, stderr }));
  });
  const results = await Promise.all([run(), run()]);
  for (const result of results) assert.deepEqual([result.code, result.stdout], [0, '42'], result.stderr);
  const announcements = results.map((result) => result.stderr).join('').match(/is not built yet; building it with node-gyp in /g) ?? [];
  assert.equal(announcements.length, 1, 'one process built it');
  assert.match(results.map((result) => result.stderr).join(''), /stcnet: built the test addon fake_ok in \d+ s/);
  assert.ok(existsSync(addonFile(spec, root)));
  assert.ok(!existsSync(path.join(root, spec.dir, 'build.lock')), 'the lock is released');
  // Built: later loads do not build again.
  assert.equal(loadAddon<{ answer(): number }>(spec, { root }).answer(), 42);

  // A build killed halfway leaves its lock and maybe a cut-short file: the next load builds again.
  const dead = spawnSync(process.execPath, ['-e', '']).pid!;
  mkdirSync(path.join(root, spec.dir, 'build.lock'));
  writeFileSync(path.join(root, spec.dir, 'build.lock', 'pid'), String(dead));
  // A new file, not the loaded one truncated in place: this process has that one mapped.
  rmSync(addonFile(spec, root));
  writeFileSync(addonFile(spec, root), Buffer.alloc(100));
  const again = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' });
  assert.deepEqual([again.status, again.stdout], [0, '42'], again.stderr);
  assert.match(again.stderr, /is not built yet; building it/);
  assert.ok(!existsSync(path.join(root, spec.dir, 'build.lock')));
});

test('a failed build is an AddonError naming the missing header and the saved log; build: false names the file', () => {
  const root = tempDir('stcnet-addon-');
  const spec = fakeAddon(root, 'fake_broken', '#include <stcnet_no_such_header.h>\n');
  assert.throws(() => loadAddon(spec, { root, build: false }), (error: unknown) => {
    assert.ok(error instanceof AddonError);
    assert.match(error.message, /the test addon fake_broken is not built \(.*fake_broken\/build\/Release\/fake_broken\.node\)/);
    assert.match(error.message, /npx node-gyp rebuild --directory fake_broken/);
    return true;
  });
  assert.throws(() => loadAddon(spec, { root }), (error: unknown) => {
    assert.ok(error instanceof AddonError);
    assert.match(error.message, /could not build the test addon fake_broken .*: the header stcnet_no_such_header\.h is missing: it needs nothing but a compiler/);
    const log = /node-gyp's output is in (\S+)/.exec(error.message)?.[1];
    assert.ok(log && existsSync(log), `the log ${log} exists`);
    return true;
  });
  assert.ok(!existsSync(path.join(root, spec.dir, 'build.lock')), 'the lock is released after a failure');
});

test('build failures are explained in words a user can act on', () => {
  const spec = TORCH_ADDON;
  assert.match(diagnose('fatal error: turbojpeg.h: No such file or directory', undefined, spec), /turbojpeg\.h is missing: install Debian's libturbojpeg0-dev/);
  assert.match(diagnose('fatal error: ATen/ATen.h: No such file or directory', undefined, spec), /ATen\/ATen\.h is missing: install Debian's libtorch-dev or set LIBTORCH/);
  assert.match(diagnose('/usr/bin/ld: cannot find -lturbojpeg: No such file', undefined, spec), /libturbojpeg is missing: install Debian's libturbojpeg0-dev/);
  assert.match(diagnose("libtorch not found: install Debian's libtorch-dev or set LIBTORCH to a libtorch folder\ngyp: Call to", undefined, spec),
    /^libtorch not found: install Debian's libtorch-dev/);
  assert.match(diagnose('LIBTORCH=/opt/none: expected include/ATen/ATen.h there\n', undefined, spec), /LIBTORCH=\/opt\/none: .*unset it to use Debian's libtorch-dev/);
  assert.match(diagnose("Error: Cannot find module 'node-addon-api'", undefined, spec), /node-addon-api package is missing/);
  assert.match(diagnose('gyp ERR! stack is related to network connectivity.', undefined, spec), /npm_config_nodedir/);
  assert.match(diagnose('gyp ERR! find Python', undefined, spec), /python3/);
  assert.match(diagnose('', new Error('spawn node ENOENT'), spec), /could not run node-gyp \(spawn node ENOENT\)/);
});
