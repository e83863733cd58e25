import { spawn, type ChildProcess } from 'node:child_process';
import { rmSync } from 'node:fs';
import { mkdir, readdir, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import { fsUserError, temporarySibling } from '../util/fs.js';
import { processAlive } from './lock.js';
import { toolPath } from './process.js';

export interface EncodeOptions {
  width: number;
  height: number;
  fps: number;
  /** x264 constant rate factor (lower is better quality); default 20. */
  crf?: number;
  /** x264 preset; default veryfast. */
  preset?: string;
}

/** The temporary folder of an encodeVideoBatch run: `.encode-tmp-<pid>-<random>`, a dot-folder beside the videos. */
export const ENCODE_TEMP_DIR = /^\.encode-tmp-(\d+)-[a-z0-9]+$/;
/** A temporary sibling (util/fs) holds its writer's pid: `.<name>.tmp-<pid>-<random>`. */
const TEMP_SIBLING_PID = /^\..+\.tmp-(\d+)-[a-z0-9]+$/;

/**
 * Temporary outputs of this process and the encoders writing them. A process.exit (a second Ctrl-C)
 * skips every finally block, so an exit hook kills the encoders and removes the folders.
 */
const live = { paths: new Set<string>(), children: new Set<ChildProcess>(), hooked: false };

function track(tempPath: string, child?: ChildProcess): () => void {
  if (!live.hooked) {
    live.hooked = true;
    process.on('exit', () => {
      for (const c of live.children) c.kill('SIGKILL');
      for (const p of live.paths) rmSync(p, { recursive: true, force: true });
    });
  }
  live.paths.add(tempPath);
  if (child) live.children.add(child);
  return () => {
    live.paths.delete(tempPath);
    if (child) live.children.delete(child);
  };
}

/**
 * Removes the temporary folders and files that interrupted encodes left in `dir` (not recursive):
 * those of processes that no longer run. Returns the names removed.
 */
export async function removeStaleEncodeTemps(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw fsUserError(error, dir);
  }
  const removed: string[] = [];
  for (const name of names) {
    const match = ENCODE_TEMP_DIR.exec(name) ?? TEMP_SIBLING_PID.exec(name);
    if (!match) continue;
    const pid = Number(match[1]);
    if (pid !== process.pid && processAlive(pid)) continue; // another run writes into this folder now
    if (pid === process.pid && live.paths.has(path.join(dir, name))) continue;
    await rm(path.join(dir, name), { recursive: true, force: true });
    removed.push(name);
  }
  return removed;
}

/**
 * Writes an H.264 MP4 from raw RGB frames piped into ffmpeg. Output goes to a temporary file that is
 * renamed on `finish()`, so a crash never leaves a partial video under the final name. Bit-exact flags
 * and a single x264 thread keep the output a function of the frames alone.
 */
export class VideoWriter {
  private readonly child: ChildProcess;
  private readonly tmp: string;
  private readonly done: Promise<void>;
  private stderr = '';
  private failed: Error | undefined;
  private readonly untrack: () => void;

  constructor(readonly file: string, readonly options: EncodeOptions) {
    const { width, height, fps } = options;
    if (width % 2 !== 0 || height % 2 !== 0) throw new Error(`VideoWriter: ${width}x${height} must be even for yuv420p`);
    this.tmp = temporarySibling(toolPath(file));
    const args = ['-nostdin', '-hide_banner', '-v', 'error', '-y',
      '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${width}x${height}`, '-r', String(fps), '-i', '-',
      '-c:v', 'libx264', '-preset', options.preset ?? 'veryfast', '-crf', String(options.crf ?? 20),
      '-pix_fmt', 'yuv420p', '-threads', '1', '-x264-params', 'threads=1:sliced-threads=0',
      '-map_metadata', '-1', '-fflags', '+bitexact', '-flags:v', '+bitexact', '-movflags', '+faststart',
      '-f', 'mp4', this.tmp];
    this.child = spawn('ffmpeg', args, { stdio: ['pipe', 'ignore', 'pipe'] });
    this.untrack = track(this.tmp, this.child);
    this.child.stderr!.setEncoding('utf8');
    this.child.stderr!.on('data', (chunk: string) => {
      if (this.stderr.length < 8192) this.stderr += chunk;
    });
    this.child.stdin!.on('error', (error) => {
      this.failed ??= error;
    });
    this.done = new Promise((resolve, reject) => {
      this.child.on('error', (error: NodeJS.ErrnoException) => {
        reject(error.code === 'ENOENT' ? new Error('stcnet: `ffmpeg` was not found; install ffmpeg (scripts/setup.sh)') : error);
      });
      this.child.on('close', (code) => {
        if (code === 0) resolve();
        else reject(new Error(`ffmpeg failed writing ${file} (exit ${code}): ${this.stderr.trim().split('\n')[0] ?? ''}`));
      });
    });
    this.done.catch(() => undefined);
  }

  /** Writes one packed RGB frame; waits when ffmpeg's pipe is full (back-pressure). */
  async write(frame: Uint8Array): Promise<void> {
    if (this.failed) throw this.failed;
    const stdin = this.child.stdin!;
    if (!stdin.write(frame)) {
      await new Promise<void>((resolve, reject) => {
        const onDrain = (): void => { cleanup(); resolve(); };
        const onClose = (): void => { cleanup(); reject(this.failed ?? new Error(`ffmpeg exited while writing ${this.file}`)); };
        const cleanup = (): void => { stdin.off('drain', onDrain); this.child.off('close', onClose); };
        stdin.on('drain', onDrain);
        this.child.on('close', onClose);
      });
    }
  }

  /** Closes the pipe, waits for ffmpeg, and moves the file into place. */
  async finish(): Promise<void> {
    this.child.stdin!.end();
    try {
      await this.done;
      await rename(this.tmp, this.file);
    } catch (error) {
      await rm(this.tmp, { force: true });
      throw fsUserError(error, this.file);
    } finally {
      this.untrack();
    }
  }

  /** Stops ffmpeg and removes the temporary file. */
  async abort(): Promise<void> {
    this.child.kill('SIGKILL');
    await this.done.catch(() => undefined);
    await rm(this.tmp, { force: true });
    this.untrack();
  }
}

/**
 * Encodes several videos with one ffmpeg process (process start-up costs more than encoding a short
 * clip): the frames of all videos are piped in sequence, keyframes are forced at each boundary and
 * the segment muxer cuts the stream into one MP4 per video. Files appear under their final names
 * only after ffmpeg succeeded. `frames` yields each video's packed RGB frames in order. The segments
 * are made in a dot-folder (`.encode-tmp-<pid>-<random>`, which dataset listings skip), removed on
 * failure, on abort (`signal`: ffmpeg is killed and the abort reason thrown) and on process exit.
 */
export async function encodeVideoBatch(
  files: string[],
  frameCounts: number[],
  options: EncodeOptions & { signal?: AbortSignal },
  frames: Iterable<Uint8Array>,
): Promise<void> {
  const { width, height, fps } = options;
  if (files.length === 0) return;
  options.signal?.throwIfAborted();
  const dir = path.dirname(toolPath(files[0]!));
  const tmpDir = path.join(dir, `.encode-tmp-${process.pid}-${Math.random().toString(36).slice(2, 10) || '0'}`);
  try {
    await mkdir(tmpDir, { recursive: true });
  } catch (error) {
    throw fsUserError(error, tmpDir);
  }
  const boundaries: number[] = [];
  let total = 0;
  for (let i = 0; i < frameCounts.length - 1; i++) {
    total += frameCounts[i]!;
    boundaries.push(total);
  }
  const args = ['-nostdin', '-hide_banner', '-v', 'error', '-y',
    '-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${width}x${height}`, '-r', String(fps), '-i', '-',
    '-c:v', 'libx264', '-preset', options.preset ?? 'veryfast', '-crf', String(options.crf ?? 20),
    '-pix_fmt', 'yuv420p', '-threads', '1', '-x264-params', 'threads=1:sliced-threads=0',
    '-map_metadata', '-1', '-fflags', '+bitexact', '-flags:v', '+bitexact'];
  if (boundaries.length > 0) {
    args.push('-force_key_frames', `expr:${boundaries.map((b) => `eq(n,${b})`).join('+')}`,
      '-f', 'segment', '-segment_frames', boundaries.join(','), '-reset_timestamps', '1',
      '-segment_format', 'mp4', '-segment_format_options', 'movflags=+faststart', path.join(tmpDir, '%05d.mp4'));
  } else {
    args.push('-movflags', '+faststart', '-f', 'mp4', path.join(tmpDir, '00000.mp4'));
  }
  const child = spawn('ffmpeg', args, { stdio: ['pipe', 'ignore', 'pipe'] });
  const untrack = track(tmpDir, child);
  const onAbort = (): void => {
    child.kill('SIGKILL');
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  let stderr = '';
  child.stderr!.setEncoding('utf8');
  child.stderr!.on('data', (chunk: string) => {
    if (stderr.length < 8192) stderr += chunk;
  });
  let writeError: Error | undefined;
  child.stdin!.on('error', (error) => {
    writeError ??= error;
  });
  const exited = new Promise<number | null>((resolve, reject) => {
    child.on('error', (error: NodeJS.ErrnoException) => {
      reject(error.code === 'ENOENT' ? new Error('stcnet: `ffmpeg` was not found; install ffmpeg (scripts/setup.sh)') : error);
    });
    child.on('close', (code) => resolve(code));
  });
  exited.catch(() => undefined);
  let closed = false;
  child.on('close', () => {
    closed = true;
  });
  try {
    const frameBytes = width * height * 3;
    for (const frame of frames) {
      if (frame.length !== frameBytes) throw new Error(`encodeVideoBatch: frame has ${frame.length} bytes, expected ${frameBytes}`);
      if (writeError || closed || options.signal?.aborted) break;
      if (!child.stdin!.write(frame.slice())) {
        await new Promise<void>((resolve) => {
          const done = (): void => {
            child.stdin!.off('drain', done);
            child.off('close', done);
            resolve();
          };
          child.stdin!.on('drain', done);
          child.on('close', done);
        });
      }
    }
    child.stdin!.end();
    const code = await exited;
    options.signal?.throwIfAborted();
    if (code !== 0 || writeError) {
      throw new Error(`ffmpeg failed encoding ${files[0]}…: ${stderr.trim().split('\n')[0] ?? writeError?.message ?? `exit ${code}`}`);
    }
    for (let i = 0; i < files.length; i++) {
      try {
        await rename(path.join(tmpDir, `${String(i).padStart(5, '0')}.mp4`), files[i]!);
      } catch (error) {
        throw fsUserError(error, files[i]!);
      }
    }
  } catch (error) {
    child.kill('SIGKILL');
    await exited.catch(() => undefined);
    throw options.signal?.aborted ? options.signal.reason : error;
  } finally {
    options.signal?.removeEventListener('abort', onAbort);
    await rm(tmpDir, { recursive: true, force: true });
    untrack();
  }
}
