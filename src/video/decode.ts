import { spawn } from 'node:child_process';
import { probeVideo, type VideoInfo } from './probe.js';
import { firstErrorLine, videoFileBytes, VideoError } from './process.js';

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
  args.push('-i', file);
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

/** A rate as ffmpeg's log prints it ("25", "29.97", "1k"); 0 when absent or unreadable. */
function parseLogRate(text: string, unit: 'fps' | 'tbr'): number {
  const match = new RegExp(`(?:^|, )(\\d+(?:\\.\\d+)?)(k?) ${unit}(?=,|\\s|$)`).exec(text);
  if (!match) return 0;
  let rate = Number(match[1]) * (match[2] ? 1000 : 1);
  // The log rounds to 0.01: take back the NTSC rates (24000/1001, 30000/1001, ...) it rounded.
  if (!Number.isInteger(rate)) {
    const ntsc = Math.round(rate * 1.001) / 1.001;
    if (Math.abs(ntsc - rate) < 0.005) rate = ntsc;
  }
  return rate;
}

/** WxH in a stream line (", 320x240 [SAR ...", ", 426x240, 30 fps"); not the hex codec tags. */
function parseLogSize(text: string): { width: number; height: number } | undefined {
  const match = /, (\d+)x(\d+)(?=[ ,]|$)/.exec(text);
  if (!match) return undefined;
  const width = Number(match[1]);
  const height = Number(match[2]);
  return width > 0 && height > 0 ? { width, height } : undefined;
}

interface LogStream {
  index: number;
  type: string;
  text: string;
  rotation: number;
}

/**
 * Reads the facts a probe would give from ffmpeg's info-level log, line by line: Input #0's duration
 * and streams, the stream mapping, and Output #0's video stream (the decoded frame size). Lines come
 * with their level (-v level+info), so the errors can be told from the rest.
 */
class FfmpegLog {
  section: 'none' | 'input' | 'mapping' | 'output' = 'none';
  inputSeen = false;
  duration: number | undefined;
  streams: LogStream[] = [];
  mapped: number | undefined;
  /** The output stream line, once seen. */
  output: string | undefined;
  /** Error-level lines (and their untagged continuations), as `-v error` would print them. */
  errors = '';
  private lastLevel = '';

  /** Takes one line; returns true when it was the output video stream line. */
  line(raw: string): boolean {
    const tagged = /^((?:\[[^\]]* @ 0x[0-9a-fA-F]+\] )?)\[(panic|fatal|error|warning|info|verbose|debug|trace)\] ?(.*)$/.exec(raw);
    const context = tagged?.[1] ?? '';
    const level = tagged ? tagged[2]! : this.lastLevel;
    const text = tagged ? tagged[3]! : raw;
    this.lastLevel = level;
    if (level === 'panic' || level === 'fatal' || level === 'error') {
      if (this.errors.length < 16384) this.errors += context + text + '\n';
      return false;
    }
    if (level !== 'info' || context) return false;
    if (/^Input #0,/.test(text)) {
      this.section = 'input';
      this.inputSeen = true;
      return false;
    }
    if (/^Input #\d+,/.test(text)) {
      this.section = 'none';
      return false;
    }
    if (/^Stream mapping:/.test(text)) {
      this.section = 'mapping';
      return false;
    }
    if (/^Output #0,/.test(text)) {
      this.section = 'output';
      return false;
    }
    if (/^\S/.test(text)) {
      this.section = 'none';
      return false;
    }
    if (this.section === 'input') {
      const duration = /^\s+Duration: (?:(\d+):(\d+):(\d+(?:\.\d+)?)|N\/A)/.exec(text);
      if (duration) {
        if (duration[1] !== undefined) this.duration = Number(duration[1]) * 3600 + Number(duration[2]) * 60 + Number(duration[3]);
        return false;
      }
      const stream = /^\s+Stream #0:(\d+)\S*: (\w+): (.*)$/.exec(text);
      if (stream) {
        this.streams.push({ index: Number(stream[1]), type: stream[2]!, text: stream[3]!, rotation: 0 });
        return false;
      }
      const rotation = /displaymatrix: rotation of (-?\d+(?:\.\d+)?) degrees/.exec(text);
      if (rotation && this.streams.length > 0) this.streams[this.streams.length - 1]!.rotation = Number(rotation[1]);
    } else if (this.section === 'mapping') {
      const map = /^\s+Stream #0:(\d+) -> #0:0\b/.exec(text);
      if (map && this.mapped === undefined) this.mapped = Number(map[1]);
    } else if (this.section === 'output' && this.output === undefined) {
      const stream = /^\s+Stream #0:0\S*: Video: (.*)$/.exec(text);
      if (stream) {
        this.output = stream[1]!;
        return true;
      }
    }
    return false;
  }

  /** The decoded video stream of Input #0 (the mapped one, else the first video stream). */
  videoStream(): LogStream | undefined {
    const video = this.streams.filter((s) => s.type === 'Video');
    return video.find((s) => s.index === this.mapped) ?? video[0];
  }

  /** The input's facts as a VideoInfo, or undefined when the log does not give them. */
  info(file: string, bytes: number): VideoInfo | undefined {
    const stream = this.videoStream();
    if (!stream) return undefined;
    const size = parseLogSize(stream.text);
    if (!size) return undefined;
    let fps = parseLogRate(stream.text, 'fps');
    if (!(fps > 0 && fps < 1000)) fps = parseLogRate(stream.text, 'tbr');
    if (!(fps > 0 && fps < 1000)) fps = 25;
    const duration = this.duration;
    const frames = duration !== undefined && duration > 0 ? Math.max(1, Math.round(duration * fps)) : 0;
    const quarter = Math.abs(Math.round(stream.rotation / 90)) % 2 === 1;
    return {
      file,
      width: quarter ? size.height : size.width,
      height: quarter ? size.width : size.height,
      fps,
      duration: duration ?? frames / fps,
      frames,
      framesEstimated: true,
      codec: /^(\w+)/.exec(stream.text)?.[1] ?? 'unknown',
      bytes,
    };
  }
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
