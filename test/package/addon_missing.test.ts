import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { repoRoot, tempDir } from '../helpers.js';

// A copy of the compiled library in a package folder without its native sources: the JPEG addon can be
// neither found nor built there. The repository's own addons stay untouched.

test('without the JPEG addon, reading a frame cache fails once with the addon\'s path; decoding videos falls back', () => {
  const pkg = tempDir('stcnet-noaddon-');
  cpSync(path.join(repoRoot, 'dist', 'src'), path.join(pkg, 'dist', 'src'), { recursive: true });
  writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ name: 'stcnet', type: 'module' }));
  symlinkSync(path.join(repoRoot, 'node_modules'), path.join(pkg, 'node_modules'));
  const clip = pathToFileURL(path.join(pkg, 'dist', 'src', 'data', 'clip.js')).href;
  const jpeg = pathToFileURL(path.join(pkg, 'dist', 'src', 'video', 'jpeg.js')).href;
  const script = `
    const { ClipMaker } = await import(${JSON.stringify(clip)});
    const { jpeg } = await import(${JSON.stringify(jpeg)});
    const settings = { mode: 'test', frames: 4, stride: 1, size: 32, output: 'uint8', scales: [1], flip: false, testClips: 1, testCrops: 1, seed: 0 };
    const outcome = (fn) => { try { fn(); return 'ok'; } catch (error) { return \`\${error.name}: \${error.message}\`; } };
    const first = outcome(() => new ClipMaker({ ...settings, source: { kind: 'cache' } }));
    const again = outcome(() => jpeg());
    const video = outcome(() => new ClipMaker({ ...settings, source: { kind: 'video' } }));
    process.stdout.write(JSON.stringify({ first, again, video }));
  `;
  const result = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 120_000 });
  assert.equal(result.status, 0, result.stderr);
  const { first, again, video } = JSON.parse(result.stdout) as Record<string, string>;
  const expected = `AddonError: stcnet: the JPEG addon is not built (${path.join(pkg, 'native', 'jpeg', 'build', 'Release', 'stcnet_jpeg.node')}) ` +
    `and its sources are missing (no ${path.join(pkg, 'native', 'jpeg', 'binding.gyp')}); reinstall stcnet`;
  assert.equal(first, expected, 'a cache source needs the addon: the clip maker fails at once');
  assert.equal(again, expected, 'the failure is remembered, not retried per video');
  assert.equal(video, 'ok', 'decoding videos falls back to the JavaScript resampler');
});
