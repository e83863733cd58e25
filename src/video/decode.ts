import { spawn } from 'node:child_process';
import { FfmpegLog, parseLogSize } from './ffmpeg_log.js';
import { probeVideo, type VideoInfo } from './probe.js';
import { firstErrorLine, toolPath, videoFileBytes, VideoError } from './process.js';

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

type FrameCallback = (frame: Uint8Array, index: number, size: { width: number; height: number }) => void;

interface DecodeResult {
  info: VideoInfo;
  width: number;
  height: number;
  fps: number;
  count: number;
}

/** The ffmpeg arguments for a decode to rawvideo rgb24 on stdout (shared by both decode paths). */
function ffmpegArgs(file: string, options: DecodeOptions, filters: string[], logLevel: string): string[] {
  const args = ['-nostdin', '-hide_banner', '-nostats', '-v', logLevel];
  if (options.start !== undefined && options.start > 0) args.push('-ss', String(options.start));
  args.push('-i', toolPath(file));
  if (options.end !== undefined) args.push('-t', String(Math.max(0, options.end - (options.start ?? 0))));
  args.push('-an', '-sn', '-map', '0:v:0');
  if (filters.length > 0) args.push('-vf', filters.join(','));
  if (options.maxFrames !== undefined) args.push('-frames:v', String(options.maxFrames));
  args.push('-f', 'rawvideo', '-pix_fmt', 'rgb24', '-');
  return args;
}

interface PipeControl {
  /** Starts framing stdout (bytes that came before are buffered until now). */
  setFrameSize(width: number, height: number): void;
  /** Kills ffmpeg and discards its output (the caller decodes another way). */
  stop(): void;
}

interface PipeResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  count: number;
  /** stderr, capped at 64 KiB. */
  stderr: string;
}

/**
 * Runs one ffmpeg decode and cuts its stdout into frames of a fixed size, calling `onFrame` for each
 * (one reused buffer). The size is given up front, or later through `setFrameSize` from a stderr line
 * handler; stdout is buffered until then. Throws the callback's error, the abort reason, or a
 * missing-ffmpeg error.
 */
async function runDecodePipe(
  args: string[],
  options: {
    signal?: AbortSignal;
    size?: { width: number; height: number };
    onStderrLine?: (line: string, control: PipeControl) => void;
    onFrame: FrameCallback;
  },
): Promise<PipeResult> {
  const child = spawn('ffmpeg', args, { stdio: ['ignore', 'pipe', 'pipe'], signal: options.signal });
  let size: { width: number; height: number } | undefined;
  let frame = new Uint8Array(0);
  let frameBytes = 0;
  let filled = 0;
  let count = 0;
  let stopped = false;
  let callbackError: unknown;
  const pending: Buffer[] = [];

  const consume = (chunk: Buffer): void => {
    let offset = 0;
    while (offset < chunk.length && !stopped) {
      const take = Math.min(frameBytes - filled, chunk.length - offset);
      frame.set(chunk.subarray(offset, offset + take), filled);
      filled += take;
      offset += take;
      if (filled === frameBytes) {
        try {
          options.onFrame(frame, count, size!);
        } catch (error) {
          callbackError = error;
          control.stop();
          return;
        }
        count++;
        filled = 0;
      }
    }
  };
  const control: PipeControl = {
    setFrameSize(width, height) {
      if (size || stopped) return;
      size = { width, height };
      frameBytes = width * height * 3;
      frame = new Uint8Array(frameBytes);
      for (const chunk of pending.splice(0)) consume(chunk);
    },
    stop() {
      if (stopped) return;
      stopped = true;
      pending.length = 0;
      child.kill('SIGKILL');
    },
  };
  if (options.size) control.setFrameSize(options.size.width, options.size.height);

  let stderr = '';
  let partial = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk: string) => {
    if (stderr.length < 65536) stderr += chunk;
    if (!options.onStderrLine) return;
    const lines = (partial + chunk).split(/\r\n|\n|\r/);
    partial = lines.pop()!;
    for (const line of lines) if (!stopped) options.onStderrLine(line, control);
  });
  child.stderr.on('end', () => {
    if (options.onStderrLine && partial && !stopped) options.onStderrLine(partial, control);
    partial = '';
  });
  child.stdout.on('data', (chunk: Buffer) => {
    if (stopped) return;
    if (size) consume(chunk);
    else pending.push(chunk);
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
  return { code, signal, count, stderr };
}

/** The exit, empty and truncation checks shared by both decode paths. */
function checkDecode(file: string, run: PipeResult, errors: string, expected: number, options: DecodeOptions): void {
  if (run.code !== 0) {
    throw new VideoError(file, run.code === null ? `ffmpeg killed by ${run.signal}` : `undecodable: ${firstErrorLine(errors, file)}`);
  }
  if (run.count === 0) throw new VideoError(file, 'no frames decoded' + (errors ? `: ${firstErrorLine(errors, file)}` : ''));
  const fraction = options.minFrameFraction ?? 0.8;
  if (fraction > 0 && expected > 0 && run.count < Math.floor(expected * fraction) - 1) {
    throw new VideoError(file, `truncated: decoded ${run.count} of ${expected} frames` + (errors ? ` (${firstErrorLine(errors, file)})` : ''));
  }
}

/**
 * Decodes a video through an ffmpeg child process (rawvideo rgb24 on a pipe), calling `onFrame` for
 * each frame in order. The frame buffer passed to `onFrame` is reused after it returns: copy it to
 * keep it. Resolves to the frame count; throws VideoError for unreadable or truncated videos.
 */
export async function decodeFrames(
  file: string,
  options: DecodeOptions,
  onFrame: FrameCallback,
  knownInfo?: VideoInfo,
): Promise<DecodeResult> {
  const info = knownInfo ?? (await probeVideo(file));
  const { width, height } = outputSize(info, options);
  const filters: string[] = [];
  if (options.fps !== undefined) filters.push(`fps=${options.fps}`);
  if (width !== info.width || height !== info.height) {
    const down = width * height < info.width * info.height;
    filters.push(`scale=${width}:${height}:flags=${down ? 'area' : 'bicubic'}`);
  }
  const run = await runDecodePipe(ffmpegArgs(file, options, filters, 'error'), { signal: options.signal, size: { width, height }, onFrame });
  checkDecode(file, run, run.stderr, expectedFrames(info, options), options);
  return { info, width, height, fps: options.fps ?? info.fps, count: run.count };
}

/**
 * Like `decodeFrames`, but with no ffprobe run first: one ffmpeg process at info log level, whose log
 * gives the input's duration, frame rate and size and the output frame size (stdout is buffered until
 * that line). A short side is scaled by an ffmpeg expression that reproduces `scaledSize()`. Errors
 * read as the probe path's (zero-length file, unreadable: ..., no video stream, undecodable: ...,
 * truncated: ...). Falls back to the probe path when the log cannot be read, so a format change in
 * ffmpeg's log costs time, never a wrong decode. The returned info's frame count is always an
 * estimate (duration × fps).
 */
export async function decodeFramesProbeless(
  file: string,
  options: DecodeOptions,
  onFrame: FrameCallback,
): Promise<DecodeResult & { /** True when the log could not be read and the probe path decoded instead. */ probed: boolean }> {
  const bytes = await videoFileBytes(file);
  const exact = options.width !== undefined && options.height !== undefined;
  const filters: string[] = [];
  if (options.fps !== undefined) filters.push(`fps=${options.fps}`);
  // One expression cannot pick the scaler flags, so this asks for area (the probe path's choice for a
  // downscale, and a cache build downscales in practice); when the log shows an upscale, the decode
  // restarts with bicubic as the probe path would (an equal size is no resample with either flag).
  if (exact) {
    filters.push(`scale=${options.width}:${options.height}:flags=area`);
  } else if (options.shortSide !== undefined) {
    const s = options.shortSide;
    filters.push(`scale='if(lte(iw,ih),${s},max(1,round(iw*${s}/ih)))':'if(lte(iw,ih),max(1,round(ih*${s}/iw)),${s})':flags=area`);
  }
  const log = new FfmpegLog();
  let info: VideoInfo | undefined;
  let outSize: { width: number; height: number } | undefined;
  let outcome = 'decode' as 'decode' | 'fallback' | 'upscale';
  const run = await runDecodePipe(ffmpegArgs(file, options, filters, 'level+info'), {
    signal: options.signal,
    onFrame,
    onStderrLine(line, control) {
      if (!log.line(line)) return;
      info = log.info(file, bytes);
      outSize = parseLogSize(log.output!);
      const expected = info && (exact ? { width: options.width!, height: options.height! }
        : options.shortSide !== undefined ? scaledSize(info.width, info.height, options.shortSide) : info);
      if (!info || !outSize || outSize.width !== expected!.width || outSize.height !== expected!.height) {
        outcome = 'fallback';
        control.stop();
      } else if ((exact || options.shortSide !== undefined) && outSize.width * outSize.height > info.width * info.height) {
        outcome = 'upscale';
        control.stop();
      } else {
        control.setFrameSize(outSize.width, outSize.height);
      }
    },
  });
  const probe = async () => ({ ...(await decodeFrames(file, options, onFrame)), probed: true });
  if (outcome === 'upscale') {
    const upscaled = await decodeFrames(file, { ...options, shortSide: undefined, width: outSize!.width, height: outSize!.height }, onFrame, info);
    return { ...upscaled, probed: false };
  }
  if (outcome === 'fallback') return probe();
  if (!log.inputSeen) {
    if (run.code !== 0 && run.code !== null) throw new VideoError(file, `unreadable: ${firstErrorLine(log.errors || run.stderr, file)}`);
    if (run.code === 0) return probe();
  }
  if (log.inputSeen && !log.videoStream()) throw new VideoError(file, 'no video stream');
  if (log.output === undefined) {
    // ffmpeg stopped before its output started: a failure we can name, else a log we cannot read.
    if (run.code !== 0) checkDecode(file, run, log.errors || run.stderr, 0, options);
    return probe();
  }
  checkDecode(file, run, log.errors, expectedFrames(info!, options), options);
  return { info: info!, width: outSize!.width, height: outSize!.height, fps: options.fps ?? info!.fps, count: run.count, probed: false };
}

/** Decodes a whole video (or a trimmed part) into memory as packed RGB frames. */
export async function decodeVideo(file: string, options: DecodeOptions = {}, knownInfo?: VideoInfo): Promise<DecodedVideo> {
  const frames: Uint8Array[] = [];
  const result = await decodeFrames(file, options, (frame) => frames.push(frame.slice()), knownInfo);
  return { info: result.info, width: result.width, height: result.height, fps: result.fps, frames };
}
