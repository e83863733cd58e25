import { HttpError } from './errors.js';

/**
 * The JSON form of POST /predict: frames already decoded by the client.
 *
 *   { "width": W, "height": H, "frames": ["<base64 of H×W×3 RGB bytes, row-major>", ...] }
 *   { "frames": [ [[[r, g, b], ... W pixels], ... H rows], ... ] }
 *
 * Every frame has the same size; a frame may be either form. The body's size is bounded by the
 * service's --max-upload-mb before it is parsed, and the frame count by --max-frames afterwards, so
 * the work here is bounded too. A malformed body is a 400 that names the first bad field.
 */
export interface ParsedFrames {
  width: number;
  height: number;
  frames: Uint8Array[];
}

/** Largest frame side accepted (pixels). */
export const MAX_FRAME_SIDE = 8192;

function bad(message: string): HttpError {
  return new HttpError(400, 'bad_frames', message);
}

function side(value: unknown, name: string): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > MAX_FRAME_SIDE) {
    throw bad(`${name}: expected an integer from 1 to ${MAX_FRAME_SIDE}, got ${JSON.stringify(value)?.slice(0, 40)}`);
  }
  return value;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function nestedFrame(value: unknown[], index: number, size: { width?: number; height?: number }): Uint8Array {
  const height = value.length;
  const firstRow = value[0];
  const width = Array.isArray(firstRow) ? firstRow.length : 0;
  if (height < 1 || width < 1 || height > MAX_FRAME_SIDE || width > MAX_FRAME_SIDE) {
    throw bad(`frames[${index}]: expected H rows of W pixels of [r, g, b] (1 to ${MAX_FRAME_SIDE} each way)`);
  }
  if (size.height !== undefined && size.height !== height) throw bad(`frames[${index}]: ${height} rows, expected height ${size.height}`);
  if (size.width !== undefined && size.width !== width) throw bad(`frames[${index}]: ${width} pixels per row, expected width ${size.width}`);
  size.height = height;
  size.width = width;
  const out = new Uint8Array(width * height * 3);
  let o = 0;
  for (let y = 0; y < height; y++) {
    const row = value[y];
    if (!Array.isArray(row) || row.length !== width) throw bad(`frames[${index}][${y}]: expected a row of ${width} pixels`);
    for (let x = 0; x < width; x++) {
      const pixel = row[x] as unknown;
      if (!Array.isArray(pixel) || pixel.length !== 3) throw bad(`frames[${index}][${y}][${x}]: expected [r, g, b]`);
      for (let c = 0; c < 3; c++) {
        const v = pixel[c] as unknown;
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 255) {
          throw bad(`frames[${index}][${y}][${x}][${c}]: expected an integer from 0 to 255, got ${JSON.stringify(v)?.slice(0, 40)}`);
        }
        out[o++] = v;
      }
    }
  }
  return out;
}

export function parseFrames(body: unknown): ParsedFrames {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw bad('expected a JSON object {"frames": [...], "width": W, "height": H}');
  const record = body as Record<string, unknown>;
  const unknownKeys = Object.keys(record).filter((key) => !['frames', 'width', 'height'].includes(key));
  if (unknownKeys.length > 0) throw bad(`unknown field ${JSON.stringify(unknownKeys[0])}; expected frames, width, height`);
  const size = { width: side(record.width, 'width'), height: side(record.height, 'height') };
  const list = record.frames;
  if (!Array.isArray(list)) throw bad('frames: expected a list of frames (base64 RGB strings or H×W×3 nested lists)');
  const frames = list.map((frame: unknown, i) => {
    if (typeof frame === 'string') {
      if (size.width === undefined || size.height === undefined) throw bad(`frames[${i}]: a base64 frame needs "width" and "height" in the body`);
      if (!BASE64.test(frame)) throw bad(`frames[${i}]: not base64`);
      const bytes = Buffer.from(frame, 'base64');
      const expected = size.width * size.height * 3;
      if (bytes.length !== expected) throw bad(`frames[${i}]: ${bytes.length} bytes, expected width × height × 3 = ${expected} (packed RGB)`);
      return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
    }
    if (Array.isArray(frame)) return nestedFrame(frame, i, size);
    throw bad(`frames[${i}]: expected a base64 string or an H×W×3 nested list`);
  });
  return { width: size.width ?? 1, height: size.height ?? 1, frames };
}
