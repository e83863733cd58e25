import { createRequire } from 'node:module';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { UserError } from './errors.js';
import { writeFileAtomic } from './fs.js';

/**
 * One of the package's native addons: node-gyp builds `<dir>/binding.gyp` into
 * `<dir>/build/Release/<target>.node`, inside the package's own folder.
 */
export interface AddonSpec {
  /** node-gyp's target name, also the file name. */
  target: string;
  /** The folder holding binding.gyp, relative to the package root. */
  dir: string;
  /** What the addon is, for messages ("the libtorch addon"). */
  title: string;
  /** What the build needs besides a C++ compiler, said when it fails. */
  requires: string;
  /** The npm script that builds it in a checkout of the repository. */
  script: string;
}

export const TORCH_ADDON: AddonSpec = {
  target: 'stcnet_torch',
  dir: 'native',
  title: 'the libtorch addon',
  requires: "libtorch headers and libraries (Debian's libtorch-dev, or LIBTORCH set to a libtorch folder with include/ and lib/)",
  script: 'build:native',
};

export const JPEG_ADDON: AddonSpec = {
  target: 'stcnet_jpeg',
  dir: 'native/jpeg',
  title: 'the JPEG addon',
  requires: "libturbojpeg with its header (Debian's libturbojpeg0-dev)",
  script: 'build:jpeg',
};

/** A native addon that is missing, cannot be built or cannot be loaded: the message says what to install or run. */
export class AddonError extends UserError {
  constructor(message: string, readonly addon: string) {
    super(message);
    this.name = 'AddonError';
  }
}

/** The package's root folder: the nearest folder above this file whose package.json names stcnet. */
export function packageRoot(): string {
  for (let dir = path.dirname(fileURLToPath(import.meta.url)); ; dir = path.dirname(dir)) {
    const manifest = path.join(dir, 'package.json');
    if (existsSync(manifest)) {
      try {
        if ((JSON.parse(readFileSync(manifest, 'utf8')) as { name?: unknown }).name === 'stcnet') return dir;
      } catch {
        // Not a readable manifest: keep walking up.
      }
    }
    if (path.dirname(dir) === dir) throw new Error(`stcnet: no package.json naming stcnet above ${fileURLToPath(import.meta.url)}`);
  }
}

export function addonFile(spec: AddonSpec, root = packageRoot()): string {
  return path.join(root, spec.dir, 'build', 'Release', `${spec.target}.node`);
}

export interface LoadOptions {
  /** The package folder (default: the one this file belongs to). */
  root?: string;
  /** Build the addon when it is missing (default true); false makes a missing addon an error at once. */
  build?: boolean;
}

/**
 * Loads an addon, building it first when it has never been built: npm 11 runs no install script of a
 * dependency unless the user approves it, so the first load is where a consumer's build happens.
 */
export function loadAddon<T>(spec: AddonSpec, options: LoadOptions = {}): T {
  const root = options.root ?? packageRoot();
  const file = addonFile(spec, root);
  // A lock folder means a build is running, or one was interrupted (its .node may be cut short).
  if (!existsSync(file) || existsSync(lockDir(spec, root))) {
    if (options.build === false) {
      throw new AddonError(`stcnet: ${spec.title} is not built (${file}); ${howToBuild(spec, root)}`, spec.target);
    }
    buildAddon(spec, { root });
  }
  const require = createRequire(import.meta.url);
  try {
    return require(file) as T;
  } catch (error) {
    const reason = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new AddonError(`stcnet: ${spec.title} (${file}) is built but cannot be loaded: ${reason}; ` +
      `it needs ${spec.requires} at run time; ${howToBuild(spec, root)}`, spec.target);
  }
}

function howToBuild(spec: AddonSpec, root: string): string {
  const inRepository = existsSync(path.join(root, 'src')) && existsSync(path.join(root, 'tsconfig.json'));
  return inRepository
    ? `build it with \`npm run ${spec.script}\` in ${root} (or bash scripts/setup.sh)`
    : `it needs ${spec.requires}, a C++ compiler, make and python3; rebuild with \`npx node-gyp rebuild --directory ${spec.dir}\` in ${root}`;
}

export interface BuildOptions {
  root?: string;
  /** Print what is happening to stderr (default true). */
  announce?: boolean;
}

/**
 * Builds an addon with node-gyp in the package's own folder, unless another process has just built it.
 * One build at a time per addon (a lock folder beside binding.gyp); a failure is an AddonError that
 * names what was missing and where node-gyp's whole output was saved.
 */
export function buildAddon(spec: AddonSpec, options: BuildOptions = {}): void {
  const root = options.root ?? packageRoot();
  const announce = options.announce ?? true;
  const file = addonFile(spec, root);
  const gyp = path.join(root, spec.dir, 'binding.gyp');
  if (!existsSync(gyp)) {
    throw new AddonError(`stcnet: ${spec.title} is not built (${file}) and its sources are missing (no ${gyp}); reinstall stcnet`, spec.target);
  }
  const lock = acquireBuildLock(spec, root);
  try {
    // Built by whoever held the lock before us, unless that build died halfway.
    if (existsSync(file) && !lock.interrupted) return;
    const nodeGyp = findNodeGyp(root);
    const dir = path.join(root, spec.dir);
    if (announce) {
      process.stderr.write(`stcnet: ${spec.title} is not built yet; building it with node-gyp in ${dir} (once; this takes a minute or two)...\n`);
    }
    const started = process.hrtime.bigint();
    const args = [...nodeGyp.args, 'rebuild', '--jobs', 'max', ...localHeaders()];
    const result = spawnSync(nodeGyp.command, args, {
      cwd: dir, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024, env: { ...process.env, npm_config_loglevel: 'error' },
    });
    const output = `${result.stdout ?? ''}${result.stderr ?? ''}`;
    if (result.error || result.status !== 0 || !existsSync(file)) {
      const log = path.join(os.tmpdir(), `stcnet-${spec.target}-build.log`);
      let logNote = `node-gyp's output is in ${log}`;
      try {
        writeFileAtomic(log, `$ ${nodeGyp.command} ${args.join(' ')}  (in ${dir})\n${output}\n${result.error?.message ?? ''}\n`);
      } catch {
        logNote = `node-gyp's last lines: ${output.trim().split('\n').slice(-5).join(' | ')}`;
      }
      throw new AddonError(`stcnet: could not build ${spec.title} (${file}): ${diagnose(output, result.error, spec)}; ${logNote}`, spec.target);
    }
    if (announce) {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      process.stderr.write(`stcnet: built ${spec.title} in ${seconds.toFixed(0)} s (${file})\n`);
    }
  } finally {
    lock.release();
  }
}

/** What the build lacked, read from node-gyp's output, in words a user can act on. */
export function diagnose(output: string, spawnError: Error | undefined, spec: AddonSpec): string {
  if (spawnError) return `could not run node-gyp (${spawnError.message})`;
  // scripts/libtorch-config.cjs says why it found no libtorch.
  const libtorch = /^libtorch not found[^\n]*$/m.exec(output);
  if (libtorch) return libtorch[0];
  const badRoot = /^LIBTORCH=[^\n]*$/m.exec(output);
  if (badRoot) return `${badRoot[0]} (LIBTORCH must be a libtorch folder with include/ and lib/; unset it to use Debian's libtorch-dev)`;
  const header = /fatal error: ([^\s:]+): No such file or directory/.exec(output);
  if (header) return `the header ${header[1]} is missing: ${HEADER_HINTS.find(([pattern]) => pattern.test(header[1]!))?.[1] ?? `it needs ${spec.requires}`}`;
  const library = /cannot find -l([\w.+-]+)/.exec(output);
  if (library) return `the library lib${library[1]} is missing: ${LIBRARY_HINTS.find(([pattern]) => pattern.test(library[1]!))?.[1] ?? `it needs ${spec.requires}`}`;
  if (/Cannot find module 'node-addon-api'/.test(output)) return 'the node-addon-api package is missing: run `npm install` in the project that depends on stcnet';
  if (/find Python|Could not find any Python/i.test(output)) return 'node-gyp needs python3: install it (apt-get install python3)';
  if (/(^|\s)(make|g\+\+|c\+\+|cc): (command )?not found|spawn make ENOENT/m.test(output)) {
    return 'a C++ compiler and make are needed: install them (apt-get install g++ make)';
  }
  if (/getaddrinfo|ENOTFOUND|EAI_AGAIN|ECONNREFUSED|network connectivity/.test(output)) {
    return "node-gyp could not download Node.js's headers (offline?): set npm_config_nodedir to a Node.js source or headers folder";
  }
  if (/EACCES|permission denied/i.test(output)) return 'no permission to write the build folder: build it once as the user who installed the package';
  const firstError = output.split('\n').find((line) => /\berror\b/i.test(line) && !/^gyp (ERR|info)/.test(line));
  return `the build failed${firstError ? ` (${firstError.trim()})` : ''}; it needs ${spec.requires}, a C++ compiler, make and python3`;
}

const HEADER_HINTS: [RegExp, string][] = [
  [/^(ATen|torch|c10)\//, "install Debian's libtorch-dev or set LIBTORCH to a libtorch folder with include/ and lib/"],
  [/^turbojpeg\.h$/, "install Debian's libturbojpeg0-dev"],
  [/^napi\.h$/, 'the node-addon-api package is missing: run `npm install` in the project that depends on stcnet'],
  [/^(node_api|js_native_api)\.h$/, "Node.js's headers are missing: set npm_config_nodedir to a Node.js headers folder"],
];

const LIBRARY_HINTS: [RegExp, string][] = [
  [/^(torch|torch_cpu|c10|torch_cuda|c10_cuda)$/, "install Debian's libtorch-dev or set LIBTORCH to a libtorch folder with include/ and lib/"],
  [/^turbojpeg$/, "install Debian's libturbojpeg0-dev"],
];

/**
 * `--nodedir` for the running Node.js when it has its headers installed beside it (Debian's nodejs, the
 * nodejs.org tarballs), unless the user chose a nodedir: node-gyp would otherwise download them, which
 * fails offline.
 */
function localHeaders(): string[] {
  if (process.env.npm_config_nodedir) return [];
  const prefix = path.dirname(path.dirname(process.execPath));
  return existsSync(path.join(prefix, 'include', 'node', 'common.gypi')) ? [`--nodedir=${prefix}`] : [];
}

/** node-gyp as npm ships it (npm passes its path to scripts), else one installed beside the package or on PATH. */
function findNodeGyp(root: string): { command: string; args: string[] } {
  const candidates = [
    process.env.npm_config_node_gyp,
    path.join(path.dirname(path.dirname(process.execPath)), 'lib', 'node_modules', 'npm', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js'),
  ];
  try {
    candidates.push(createRequire(path.join(root, 'package.json')).resolve('node-gyp/bin/node-gyp.js'));
  } catch {
    // Not installed beside the package.
  }
  const script = candidates.find((candidate): candidate is string => Boolean(candidate) && existsSync(candidate!));
  if (script) return { command: process.execPath, args: [script] };
  const onPath = spawnSync('node-gyp', ['--version'], { encoding: 'utf8' });
  if (!onPath.error && onPath.status === 0) return { command: 'node-gyp', args: [] };
  throw new AddonError('stcnet: the native addons are built with node-gyp, which was not found (npm ships one; or `npm install -g node-gyp`)', 'node-gyp');
}

function lockDir(spec: AddonSpec, root: string): string {
  return path.join(root, spec.dir, 'build.lock');
}

function lockOwner(dir: string): number | undefined {
  try {
    const pid = Number(readFileSync(path.join(dir, 'pid'), 'utf8'));
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return existsSync(dir) ? 0 : undefined; // a lock whose pid is not written yet (or never will be)
  }
}

function lockAgeMs(dir: string): number {
  try {
    return Date.now() - statSync(dir).mtimeMs;
  } catch {
    return 0;
  }
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Takes the addon's build lock, waiting while another live process (or thread) holds it. A lock left
 * by a dead process is taken over, and `interrupted` says so: that build may have left a partial file.
 */
function acquireBuildLock(spec: AddonSpec, root: string): { release: () => void; interrupted: boolean } {
  const dir = lockDir(spec, root);
  const sleeper = new Int32Array(new SharedArrayBuffer(4));
  let waitingForUnwritten = 0;
  let interrupted = false;
  for (;;) {
    try {
      mkdirSync(dir);
      writeFileSync(path.join(dir, 'pid'), String(process.pid));
      return { release: () => rmSync(dir, { recursive: true, force: true }), interrupted };
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code !== 'EEXIST') {
        throw new AddonError(`stcnet: cannot build ${spec.title}: cannot write in ${path.dirname(dir)} (${code}); ` +
          'build it once as the user who installed the package', spec.target);
      }
    }
    const owner = lockOwner(dir);
    // Stale: its process is gone, it never got a pid (its maker died between mkdir and write), or it is
    // older than any build (the pid now names another process).
    if ((owner === 0 && ++waitingForUnwritten > 50) || (owner !== undefined && owner !== 0 && !processAlive(owner)) || lockAgeMs(dir) > 30 * 60_000) {
      rmSync(dir, { recursive: true, force: true });
      interrupted = true;
    } else {
      Atomics.wait(sleeper, 0, 0, 200); // another process is building it: wait for it to finish
    }
  }
}

/** Builds every addon that is not built yet (the package's install script). */
export function buildMissingAddons(options: BuildOptions = {}): void {
  for (const spec of [TORCH_ADDON, JPEG_ADDON]) {
    if (!existsSync(addonFile(spec, options.root))) buildAddon(spec, options);
  }
}
