import { z } from 'zod';
import { firstErrorLine, runTool, toolPath, videoFileBytes, VideoError } from './process.js';

export interface VideoInfo {
  file: string;
  /** Display size, after any rotation in the metadata. */
  width: number;
  height: number;
  /** Average frame rate (frames per second). */
  fps: number;
  /** Seconds, from the stream or else the container. */
  duration: number;
  /** Frame count from the header, or duration × fps when the container does not say. */
  frames: number;
  /** True when `frames` is an estimate. */
  framesEstimated: boolean;
  codec: string;
  bytes: number;
}

/** The part of ffprobe's JSON this reads; every field optional, as ffprobe leaves out what it does not know. */
const ProbeSchema = z.object({
  streams: z.array(z.object({
    codec_type: z.string().optional(),
    codec_name: z.string().optional(),
    width: z.number().optional(),
    height: z.number().optional(),
    avg_frame_rate: z.string().optional(),
    r_frame_rate: z.string().optional(),
    duration: z.string().optional(),
    nb_frames: z.string().optional(),
    tags: z.record(z.string(), z.string()).optional(),
    side_data_list: z.array(z.object({ rotation: z.number().optional() })).optional(),
  })).optional(),
  format: z.object({ duration: z.string().optional() }).optional(),
});

function parseRate(rate: string | undefined): number {
  if (!rate) return 0;
  const [num, den] = rate.split('/').map(Number);
  if (!Number.isFinite(num) || !num) return 0;
  if (den === undefined) return num!;
  return den ? num! / den : 0;
}

/**
 * Reads a video's stream facts with ffprobe. Throws VideoError (file, reason) for a missing, empty,
 * unreadable or audio-only file; never for a readable video with odd metadata.
 */
export async function probeVideo(file: string): Promise<VideoInfo> {
  const bytes = await videoFileBytes(file);
  const result = await runTool('ffprobe', ['-v', 'error', '-print_format', 'json', '-show_streams', '-show_format',
    '-select_streams', 'v:0', toolPath(file)]);
  if (result.code !== 0) throw new VideoError(file, `unreadable: ${firstErrorLine(result.stderr, file)}`);
  let json: unknown;
  try {
    json = JSON.parse(result.stdout.toString('utf8'));
  } catch {
    throw new VideoError(file, 'unreadable: ffprobe gave no JSON');
  }
  const checked = ProbeSchema.safeParse(json);
  if (!checked.success) throw new VideoError(file, `unreadable: unexpected ffprobe output (${checked.error.issues[0]!.path.join('.')})`);
  const parsed = checked.data;
  const stream = parsed.streams?.find((s) => s.codec_type === 'video');
  if (!stream || !stream.width || !stream.height) throw new VideoError(file, 'no video stream');
  let fps = parseRate(stream.avg_frame_rate);
  if (!(fps > 0 && fps < 1000)) fps = parseRate(stream.r_frame_rate);
  if (!(fps > 0 && fps < 1000)) fps = 25;
  const duration = Number(stream.duration ?? parsed.format?.duration ?? NaN);
  const nb = Number(stream.nb_frames ?? NaN);
  let frames: number;
  let framesEstimated = false;
  if (Number.isFinite(nb) && nb > 0) {
    frames = nb;
  } else if (Number.isFinite(duration) && duration > 0) {
    frames = Math.max(1, Math.round(duration * fps));
    framesEstimated = true;
  } else {
    frames = 0;
    framesEstimated = true;
  }
  const rotation = Number(stream.side_data_list?.find((d) => d.rotation !== undefined)?.rotation ?? stream.tags?.rotate ?? 0);
  const quarter = Math.abs(Math.round(rotation / 90)) % 2 === 1;
  return {
    file,
    width: quarter ? stream.height : stream.width,
    height: quarter ? stream.width : stream.height,
    fps,
    duration: Number.isFinite(duration) ? duration : frames / fps,
    frames,
    framesEstimated,
    codec: stream.codec_name ?? 'unknown',
    bytes,
  };
}
