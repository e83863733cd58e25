import type { VideoInfo } from './probe.js';

/**
 * Reading ffmpeg's info-level log (`-v level+info`): the facts an ffprobe run would give (duration,
 * streams, rotation) and the decoded output size, so a decode needs one process, not two.
 */

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
export function parseLogSize(text: string): { width: number; height: number } | undefined {
  const match = /, (\d+)x(\d+)(?=[ ,]|$)/.exec(text);
  if (!match) return undefined;
  const width = Number(match[1]);
  const height = Number(match[2]);
  return width > 0 && height > 0 ? { width, height } : undefined;
}

export interface LogStream {
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
export class FfmpegLog {
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
