import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';

/** The repository root (tests run from dist/test/...). */
export const repoRoot = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!dir.endsWith('/dist') && dir !== '/') dir = dirname(dir);
  return dirname(dir);
})();

/** Debian's PyTorch lives in the system Python, not in whatever `python3` comes first on PATH. */
export const systemPython = '/usr/bin/python3';

/** Runs a fixture script (path relative to the repo) with extra arguments; returns its stdout. */
export function runPython(script: string, args: string[] = [], timeoutMs = 300_000): string {
  return execFileSync(systemPython, [join(repoRoot, script), ...args], {
    encoding: 'utf8', timeout: timeoutMs, maxBuffer: 256 * 1024 * 1024, env: { ...process.env, OMP_NUM_THREADS: '1' },
  });
}

/** A temporary directory removed when the process exits. */
export function tempDir(prefix = 'stcnet-test-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs a fixture script that writes JSON to the path given as its first argument, and parses it. */
export function pythonJson<T>(script: string, args: string[] = []): T {
  const out = join(tempDir(), 'fixture.json');
  runPython(script, [out, ...args]);
  return JSON.parse(readFileSync(out, 'utf8')) as T;
}

/** A tensor as the fixture scripts write it. */
export interface Packed {
  shape: number[];
  dtype: string;
  data: number[];
}

export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, options: { rtol?: number; atol?: number; what?: string } = {}): void {
  const rtol = options.rtol ?? 1e-5;
  const atol = options.atol ?? 1e-6;
  assert.equal(actual.length, expected.length, `${options.what ?? 'values'}: length ${actual.length} vs ${expected.length}`);
  let worst = 0;
  let worstIndex = -1;
  for (let i = 0; i < actual.length; i++) {
    const a = actual[i]!;
    const e = expected[i]!;
    const excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (!(excess <= worst) || Number.isNaN(a) !== Number.isNaN(e)) {
      worst = Number.isNaN(excess) ? Infinity : excess;
      worstIndex = i;
    }
  }
  if (worstIndex >= 0) {
    assert.fail(`${options.what ?? 'values'} differ at index ${worstIndex}: got ${actual[worstIndex]}, expected ${expected[worstIndex]} (rtol ${rtol}, atol ${atol})`);
  }
}

/** The real clips beside the repository (`../shared/videos`, as CI lays it out); never copied into it. */
export const sharedVideos = process.env.STCNET_SHARED_VIDEOS ?? join(repoRoot, '..', 'shared', 'videos');

/**
 * For a test that needs real clips: true when they are all in `sharedVideos`. Otherwise the test is
 * skipped with a message saying which are missing (a clone has no ../shared/videos), except where
 * STCNET_REQUIRE_SHARED_VIDEOS=1 (.ci/run sets it): there their absence fails the test.
 *   test('...', async (t) => { if (!sharedVideosAvailable(t, 'test.mp4')) return; ... });
 */
export function sharedVideosAvailable(t: TestContext, ...names: string[]): boolean {
  const missing = names.filter((name) => !existsSync(join(sharedVideos, name)));
  if (missing.length === 0) return true;
  const message = `real clips missing from ${sharedVideos}: ${missing.join(', ')} (set STCNET_SHARED_VIDEOS to their folder)`;
  if (process.env.STCNET_REQUIRE_SHARED_VIDEOS === '1') assert.fail(`${message}; STCNET_REQUIRE_SHARED_VIDEOS=1 requires them`);
  t.skip(message);
  return false;
}
