import { spawn } from 'node:child_process';
import { stat } from 'node:fs/promises';
import path from 'node:path';

/** A video that cannot be read; `reason` is short and meant for a report line. */
export class VideoError extends Error {
  constructor(readonly file: string, readonly reason: string) {
    super(`${file}: ${reason}`);
    this.name = 'VideoError';
  }
}

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: Buffer;
  stderr: string;
}

/** Runs a tool to completion and collects its output (for ffprobe; decode streams instead). */
export function runTool(command: string, args: string[], options: { signal?: AbortSignal } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], signal: options.signal });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      if (err.length < 65536) err += chunk;
    });
    child.on('error', (error: NodeJS.ErrnoException) => {
      if (error.code === 'ENOENT') reject(new Error(`stcnet: \`${command}\` was not found; install ffmpeg (scripts/setup.sh)`));
      else reject(error);
    });
    child.on('close', (code, signal) => resolve({ code, signal, stdout: Buffer.concat(out), stderr: err }));
  });
}

/**
 * A file name as ffmpeg and ffprobe must be given it: absolute. A relative name starting with `-`
 * would be read as an option, and one with a `:` before any `/` as a protocol (`a:b.mp4`); an absolute
 * path starts with `/`, so it is always a plain file.
 */
export function toolPath(file: string): string {
  return path.resolve(file);
}

/** The first meaningful line of an ffmpeg/ffprobe error output, trimmed for a report. */
export function firstErrorLine(stderr: string, file: string): string {
  const lines = stderr.split('\n').map((line) => line.trim()).filter((line) => line.length > 0);
  const line = lines.find((l) => !/^(ffmpeg|ffprobe) version/.test(l)) ?? 'unknown error';
  // ffmpeg prefixes the file name (as it was given: absolute); drop it, the report already names the file.
  return line.split(toolPath(file) + ': ').join('').split(file + ': ').join('').slice(0, 300);
}

/** The file's size in bytes; a missing or empty file is a VideoError with the reason the report shows. */
export async function videoFileBytes(file: string): Promise<number> {
  let bytes: number;
  try {
    bytes = (await stat(file)).size;
  } catch {
    throw new VideoError(file, 'file not found');
  }
  if (bytes === 0) throw new VideoError(file, 'zero-length file');
  return bytes;
}
