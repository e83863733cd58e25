import { decodeVideo } from '../video/decode.js';
import { probeVideo } from '../video/probe.js';
import { VideoError } from '../video/process.js';
import { failureReason } from '../train/predict.js';
import { HttpError } from './errors.js';
import { makeClips, type ClipSpec, type Clips } from './clips.js';

/**
 * From a request's input to clips: an uploaded video file (ffprobe first, so a video over the limits
 * is refused before it is decoded), or frames already decoded (the JSON body). Inputs the model
 * cannot use are 422 answers that say why.
 */
export interface InputLimits {
  maxSeconds: number;
  maxFrames: number;
  minFrames: number;
}

/** What the answer tells about the input the clips came from. */
export interface InputSummary {
  kind: 'video' | 'frames';
  frames: number;
  width: number;
  height: number;
  fps?: number;
  seconds?: number;
}

function tooShort(frames: number, limits: InputLimits, what: string): HttpError {
  return new HttpError(422, 'too_short', `${what} has ${frames} frame${frames === 1 ? '' : 's'}; at least ${limits.minFrames} are needed ` +
    '(one frame shows no motion; the service\'s --min-frames)');
}

function undecodable(error: VideoError): HttpError {
  return new HttpError(422, 'undecodable', `the upload is not a video ffmpeg can decode (${failureReason(error.reason)})`);
}

export async function clipsFromVideo(file: string, decode: { shortSide: number; fps?: number }, spec: ClipSpec, limits: InputLimits,
  signal: AbortSignal): Promise<Clips & { input: InputSummary }> {
  let info;
  try {
    info = await probeVideo(file);
  } catch (error) {
    if (error instanceof VideoError) throw undecodable(error);
    throw error;
  }
  if (info.duration > limits.maxSeconds) {
    throw new HttpError(422, 'too_long', `the video is ${info.duration.toFixed(1)} s long; the limit is ${limits.maxSeconds} s (the service's --max-seconds)`);
  }
  const expected = decode.fps !== undefined && info.duration > 0 ? Math.floor(info.duration * decode.fps) : info.frames;
  if (expected > limits.maxFrames) {
    throw new HttpError(422, 'too_many_frames', `the video has ${expected} frames; the limit is ${limits.maxFrames} (the service's --max-frames)`);
  }
  if (!info.framesEstimated && info.frames > 0 && info.frames < limits.minFrames && decode.fps === undefined) throw tooShort(info.frames, limits, 'the video');
  let video;
  try {
    // One frame past the limit is enough to know a video whose header lied is over it.
    video = await decodeVideo(file, { shortSide: decode.shortSide, ...(decode.fps !== undefined ? { fps: decode.fps } : {}), maxFrames: limits.maxFrames + 1, signal }, info);
  } catch (error) {
    if (error instanceof VideoError) throw undecodable(error);
    throw error;
  }
  if (video.frames.length > limits.maxFrames) {
    throw new HttpError(422, 'too_many_frames', `the video has more than ${limits.maxFrames} frames (the service's --max-frames)`);
  }
  if (video.frames.length < limits.minFrames) throw tooShort(video.frames.length, limits, 'the video');
  const clips = makeClips(video.frames, video.width, video.height, spec);
  return {
    ...clips,
    input: { kind: 'video', frames: video.frames.length, width: info.width, height: info.height, fps: info.fps, seconds: info.duration },
  };
}

/** Frames given in the request (packed RGB, all width × height). */
export function clipsFromFrames(frames: readonly Uint8Array[], width: number, height: number, spec: ClipSpec, limits: InputLimits): Clips & { input: InputSummary } {
  if (frames.length > limits.maxFrames) {
    throw new HttpError(422, 'too_many_frames', `frames: ${frames.length} frames; the limit is ${limits.maxFrames} (the service's --max-frames)`);
  }
  if (frames.length < limits.minFrames) throw tooShort(frames.length, limits, 'frames');
  return { ...makeClips(frames, width, height, spec), input: { kind: 'frames', frames: frames.length, width, height } };
}
