import { spawn } from 'node:child_process';
import { probeVideo, type VideoInfo } from './probe.js';
import { firstErrorLine, VideoError } from './process.js';

export interface DecodeOptions {
  /** Resize so the shorter side has this many pixels (aspect kept). */
  shortSide?: number;
  /** Or an exact output size (both required). */
  width?: number;
  height?: number;
  /** Resample to this frame rate (ffmpeg's fps filter); default: the video's own frames. */
  fps?: number;
  /** Trim, in seconds. */
  start?: number;
  end?: number;
  /** Stop after this many frames. */
  maxFrames?: number;
  /**
   * Fail with "truncated" when fewer than this fraction of the expected frames decode (default 0.8);
   * 0 turns the check off.
   */
  minFrameFraction?: number;
  signal?: AbortSignal;
}

export interface DecodedVideo {
  info: VideoInfo;
  width: number;
  height: number;
  /** Frames per second of the decoded sequence (the requested fps, or the video's). */
  fps: number;
  /** Packed RGB frames (HWC, uint8), each width×height×3 bytes. */
  frames: Uint8Array[];
}

/** The output size for a short side: the shorter side becomes `shortSide`, the other keeps the aspect. */
export function scaledSize(width: number, height: number, shortSide: number): { width: number; height: number } {
  if (width <= height) return { width: shortSide, height: Math.max(1, Math.round((height * shortSide) / width)) };
  return { width: Math.max(1, Math.round((width * shortSide) / height)), height: shortSide };
}

function outputSize(info: VideoInfo, options: DecodeOptions): { width: number; height: number } {
  if (options.width !== undefined && options.height !== undefined) return { width: options.width, height: options.height };
  if (options.shortSide !== undefined) return scaledSize(info.width, info.height, options.shortSide);
  return { width: info.width, height: info.height };
}

/** Frames expected from a decode with these options (for the truncation check). */
function expectedFrames(info: VideoInfo, options: DecodeOptions): number {
  const start = options.start ?? 0;
  const end = Math.min(options.end ?? info.duration, info.duration);
  const seconds = Math.max(0, end - start);
  const fps = options.fps ?? info.fps;
  let expected = options.start !== undefined || options.end !== undefined || options.fps !== undefined
    ? Math.floor(seconds * fps)
    : info.frames;
  if (options.maxFrames !== undefined) expected = Math.min(expected, options.maxFrames);
  return expected;
}

/**
 * Decodes a video through an ffmpeg child process (rawvideo rgb24 on a pipe), calling `onFrame` for
 * each frame in order. The frame buffer passed to `onFrame` is reused after it returns: copy it to
 * keep it. Resolves to the frame count; throws VideoError for unreadable or truncated videos.
 */
export async function decodeFrames(
  file: string,
  options: DecodeOptions,
  onFrame: (frame: Uint8Array, index: number, size: { width: number; height: number }) => void,
  knownInfo?: VideoInfo,
): Promise<{ info: VideoInfo; width: number; height: number; fps: number; count: number }> {
  const info = knownInfo ?? (await probeVideo(file));
  const { width, height } = outputSize(info, options);
  const filters: string[] = [];
  if (options.fps !== undefined) filters.push(`fps=${options.fps}`);
  if (width !== info.width || height !== info.height) {
    const down = width * height < info.width * info.height;
    filters.push(`scale=${width}:${height}:flags=${down ? 'area' : 'bicubic'}`);
  }
  const args = ['-nostdin', '-hide_banner', '-v', 'error'];
  if (options.start !== undefined && options.start > 0) args.push('-ss', String(options.start));
  args.push('-i', file);
  if (options.end !== undefined) args.push('-t', String(Math.max(0, options.end - (options.start ?? 0))));
  args.push('-an', '-sn', '-map', '0:v:0');
  if (filters.length > 0) args.push('-vf', filters.join(','));
  if (options.maxFrames !== undefined) args.push('-frames:v', String(options.maxFrames));
  args.push('-f', 'rawvideo', '-pix_fmt', 'rgb24', '-');

  const frameBytes = width * height * 3;
  const frame = new Uint8Array(frameBytes);
  let filled = 0;
  let count = 0;
  let callbackError: unknown;
  const child = spawn('ffmpeg', args, { stdio: ['ignore', 'pipe', 'pipe'], signal: options.signal });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    if (stderr.length < 16384) stderr += chunk;
  });
  child.stdout.on('data', (chunk: Buffer) => {
    if (callbackError !== undefined) return;
    let offset = 0;
    while (offset < chunk.length) {
      const take = Math.min(frameBytes - filled, chunk.length - offset);
      frame.set(chunk.subarray(offset, offset + take), filled);
      filled += take;
      offset += take;
      if (filled === frameBytes) {
        try {
          onFrame(frame, count, { width, height });
        } catch (error) {
          callbackError = error;
          child.kill('SIGKILL');
          return;
        }
        count++;
        filled = 0;
      }
    }
  });
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve, reject) => {
    child.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') reject(new Error('stcnet: `ffmpeg` was not found; install ffmpeg (scripts/setup.sh)'));
      else reject(error);
    });
    child.on('close', (c, s) => resolve({ code: c, signal: s }));
  });
  if (callbackError !== undefined) throw callbackError;
  if (options.signal?.aborted) throw options.signal.reason ?? new Error('aborted');
  if (code !== 0) {
    throw new VideoError(file, code === null ? `ffmpeg killed by ${signal}` : `undecodable: ${firstErrorLine(stderr, file)}`);
  }
  if (count === 0) throw new VideoError(file, 'no frames decoded' + (stderr ? `: ${firstErrorLine(stderr, file)}` : ''));
  const fraction = options.minFrameFraction ?? 0.8;
  const expected = expectedFrames(info, options);
  if (fraction > 0 && expected > 0 && count < Math.floor(expected * fraction) - 1) {
    throw new VideoError(file, `truncated: decoded ${count} of ${expected} frames` + (stderr ? ` (${firstErrorLine(stderr, file)})` : ''));
  }
  return { info, width, height, fps: options.fps ?? info.fps, count };
}

/** Decodes a whole video (or a trimmed part) into memory as packed RGB frames. */
export async function decodeVideo(file: string, options: DecodeOptions = {}, knownInfo?: VideoInfo): Promise<DecodedVideo> {
  const frames: Uint8Array[] = [];
  const result = await decodeFrames(file, options, (frame) => frames.push(frame.slice()), knownInfo);
  return { info: result.info, width: result.width, height: result.height, fps: result.fps, frames };
}
