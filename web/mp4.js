// @ts-check
/**
 * The frame count and duration of an MP4/MOV file's first video track, read from its boxes
 * (moov/trak/mdia: hdlr, mdhd, minf/stbl/stts), so the page can number frames as ffmpeg does for
 * `stcnet predict` (a <video> element tells the duration but not the frame rate). Only the box
 * headers and the moov box are read, never the media data.
 */

/**
 * @callback ReadAt
 * @param {number} offset
 * @param {number} length
 * @returns {Promise<Uint8Array>}
 */

/** @param {Uint8Array} b @param {number} o */
const u32 = (b, o) => ((b[o] << 24) >>> 0) + (b[o + 1] << 16) + (b[o + 2] << 8) + b[o + 3];
/** @param {Uint8Array} b @param {number} o */
const u64 = (b, o) => u32(b, o) * 4294967296 + u32(b, o + 4);
/** @param {Uint8Array} b @param {number} o */
const fourcc = (b, o) => String.fromCharCode(b[o], b[o + 1], b[o + 2], b[o + 3]);

/**
 * The boxes inside bytes[start, end): type, payload start and end.
 * @param {Uint8Array} b @param {number} start @param {number} end
 */
function children(b, start, end) {
  /** @type {{ type: string, start: number, end: number }[]} */
  const out = [];
  let o = start;
  while (o + 8 <= end) {
    let size = u32(b, o);
    let header = 8;
    if (size === 1) {
      if (o + 16 > end) break;
      size = u64(b, o + 8);
      header = 16;
    } else if (size === 0) size = end - o;
    if (size < header || o + size > end) break;
    out.push({ type: fourcc(b, o + 4), start: o + header, end: o + size });
    o += size;
  }
  return out;
}

/** @param {Uint8Array} b @param {{ start: number, end: number }} box @param {string} type */
const child = (b, box, type) => children(b, box.start, box.end).find((c) => c.type === type);

/**
 * The first video track's sample (frame) count and media duration in seconds, or null when the file
 * is not an MP4/MOV or has no readable video track.
 * @param {ReadAt} readAt
 * @param {number} fileSize
 * @returns {Promise<{ frames: number, duration: number } | null>}
 */
export async function mp4VideoTiming(readAt, fileSize) {
  // Walk the top-level boxes by their headers to find moov (it may come after the media data).
  let offset = 0;
  let moov = null;
  for (let guard = 0; offset + 8 <= fileSize && guard < 1000; guard++) {
    const head = await readAt(offset, Math.min(16, fileSize - offset));
    let size = u32(head, 0);
    const type = fourcc(head, 4);
    if (guard === 0 && !['ftyp', 'moov', 'mdat', 'free', 'wide', 'skip', 'pdin'].includes(type)) return null;
    if (size === 1) size = head.length >= 16 ? u64(head, 8) : 0;
    else if (size === 0) size = fileSize - offset;
    if (size < 8) return null;
    if (type === 'moov') {
      if (size > 256 * 1024 * 1024) return null;
      moov = await readAt(offset, Math.min(size, fileSize - offset));
      break;
    }
    offset += size;
  }
  if (!moov) return null;
  const top = children(moov, 0, moov.length)[0];
  if (!top) return null;
  for (const trak of children(moov, top.start, top.end).filter((c) => c.type === 'trak')) {
    const mdia = child(moov, trak, 'mdia');
    if (!mdia) continue;
    const hdlr = child(moov, mdia, 'hdlr');
    if (!hdlr || hdlr.end - hdlr.start < 12 || fourcc(moov, hdlr.start + 8) !== 'vide') continue;
    const mdhd = child(moov, mdia, 'mdhd');
    const stbl = (() => {
      const minf = child(moov, mdia, 'minf');
      return minf && child(moov, minf, 'stbl');
    })();
    const stts = stbl && child(moov, stbl, 'stts');
    if (!mdhd || !stts) return null;
    const version = moov[mdhd.start];
    const timescale = version === 1 ? u32(moov, mdhd.start + 20) : u32(moov, mdhd.start + 12);
    const entries = u32(moov, stts.start + 4);
    if (stts.start + 8 + entries * 8 > stts.end || timescale === 0) return null;
    let frames = 0;
    let ticks = 0;
    for (let i = 0; i < entries; i++) {
      const count = u32(moov, stts.start + 8 + i * 8);
      frames += count;
      ticks += count * u32(moov, stts.start + 12 + i * 8);
    }
    if (frames === 0 || ticks === 0) return null;
    return { frames, duration: ticks / timescale };
  }
  return null;
}

/**
 * mp4VideoTiming for a File or Blob in the page.
 * @param {Blob} blob
 */
export function blobVideoTiming(blob) {
  return mp4VideoTiming(async (offset, length) => new Uint8Array(await blob.slice(offset, offset + length).arrayBuffer()), blob.size);
}
