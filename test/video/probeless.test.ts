import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { decodeFramesProbeless, decodeVideo, type DecodeOptions } from '../../src/video/decode.js';
import { probeVideo } from '../../src/video/probe.js';
import { VideoError } from '../../src/video/process.js';
import { sharedVideos, sharedVideosAvailable } from '../helpers.js';

const SHARED = sharedVideos;

async function probeless(file: string, options: DecodeOptions) {
  const frames: Uint8Array[] = [];
  const result = await decodeFramesProbeless(file, options, (frame) => frames.push(frame.slice()));
  return { ...result, frames };
}

/** The VideoError reason a promise rejects with. */
async function reason(promise: Promise<unknown>): Promise<string> {
  try {
    await promise;
  } catch (error) {
    // Pointers in ffmpeg's context prefixes ("[h264 @ 0x55...]") differ from run to run.
    if (error instanceof VideoError) return error.reason.replace(/ @ 0x[0-9a-f]+\]/g, ' @ 0x]');
    throw error;
  }
  assert.fail('expected a VideoError');
}

test('probeless decode: same size, frames and pixels as the probe path on real clips; fps as ffprobe', async (t) => {
  const cases: [string, DecodeOptions][] = [
    ['test.mp4', { shortSide: 64 }], // H.264 MP4
    ['test.avi', { shortSide: 64 }], // MPEG-4 AVI with an mp3 track
    ['flipping_a_pancake.mkv', { shortSide: 64 }], // Matroska, no frame count in the header
    ['S001C001P001R001A001_rgb.avi', { shortSide: 64 }], // 1080p H.264
    ['v_Basketball_g01_c01.avi', { shortSide: 256 }], // an upscale (240 → 256): restarts with bicubic
    ['test.mp4', { shortSide: 32, start: 2, end: 3, fps: 10 }],
  ];
  if (!sharedVideosAvailable(t, ...new Set(cases.map(([name]) => name)))) return;
  for (const [name, options] of cases) {
    const file = path.join(SHARED, name);
    const label = `${name} ${JSON.stringify(options)}`;
    const [fast, direct, info] = await Promise.all([probeless(file, options), decodeVideo(file, options), probeVideo(file)]);
    assert.equal(fast.probed, false, `${label}: read from the log`);
    assert.deepEqual([fast.width, fast.height, fast.frames.length, fast.count], [direct.width, direct.height, direct.frames.length, direct.frames.length], label);
    fast.frames.forEach((frame, t) => assert.ok(Buffer.from(frame).equals(Buffer.from(direct.frames[t]!)), `${label}: frame ${t}`));
    assert.ok(Math.abs(fast.info.fps - info.fps) < 0.01, `${label}: fps ${fast.info.fps} vs ${info.fps}`);
    assert.deepEqual([fast.info.width, fast.info.height], [info.width, info.height], label);
    assert.equal(fast.fps, options.fps ?? fast.info.fps);
  }
});

test('probeless decode: errors read as the probe path reports them', async () => {
  const dir = await mkdtemp(path.join(os.tmpdir(), 'stcnet-probeless-'));
  try {
    const at = (name: string) => path.join(dir, name);
    const ffmpeg = (...args: string[]) => execFileSync('ffmpeg', ['-v', 'error', '-nostdin', '-y', ...args]);
    ffmpeg('-f', 'lavfi', '-i', 'testsrc2=s=160x120:d=3:r=25', '-pix_fmt', 'yuv420p', '-c:v', 'libx264', '-movflags', '+faststart', at('good.mp4'));
    ffmpeg('-f', 'lavfi', '-i', 'sine=d=1', at('audio.m4a'));
    const good = await readFile(at('good.mp4'));
    // The header stays, most of the picture data becomes noise: ffmpeg opens it, then fails (exit 69).
    const garbage = Buffer.from(good);
    let seed = 1;
    for (let i = garbage.indexOf('mdat') + 2048; i < garbage.length; i++) garbage[i] = (seed = (seed * 1103515245 + 12345) >>> 0) >>> 24;
    await writeFile(at('garbage.mp4'), garbage);
    await writeFile(at('cut.mp4'), good.subarray(0, Math.floor(good.length / 3)));
    await writeFile(at('empty.mp4'), '');
    await writeFile(at('text.avi'), 'this is not a video\n');

    const fast = (name: string) => reason(decodeFramesProbeless(at(name), { shortSide: 32 }, () => {}));
    const probed = (name: string) => reason(decodeVideo(at(name), { shortSide: 32 }));
    assert.equal(await fast('empty.mp4'), 'zero-length file');
    assert.equal(await fast('missing.mp4'), 'file not found');
    assert.match(await fast('text.avi'), /^unreadable: /);
    assert.equal(await fast('text.avi'), await probed('text.avi'));
    assert.equal(await fast('audio.m4a'), 'no video stream');
    assert.equal(await probed('audio.m4a'), 'no video stream');
    assert.match(await fast('garbage.mp4'), /^undecodable: /);
    assert.equal(await fast('garbage.mp4'), await probed('garbage.mp4'));
    assert.match(await fast('cut.mp4'), /^truncated: decoded \d+ of 75 frames/);
    assert.match(await probed('cut.mp4'), /^truncated: decoded \d+ of 75 frames/);
    // The good file decodes, at the log's 25 fps.
    const ok = await decodeFramesProbeless(at('good.mp4'), { shortSide: 32 }, () => {});
    assert.deepEqual([ok.width, ok.height, ok.count, ok.info.fps, ok.probed], [43, 32, 75, 25, false]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});
