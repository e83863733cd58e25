import { createWriteStream } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import { Transform, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { randomBytes } from 'node:crypto';
import { HttpError, formatMb } from './errors.js';

/**
 * Uploads on disk: each request's body is streamed into its own file in the service's upload folder,
 * counted as it arrives and cut off the moment it passes the limit (a 413; nothing past the limit is
 * written), and removed when the request is done, whatever happened: an error, a 4xx, a client gone
 * mid-upload. The folder itself is removed when the service stops.
 */
export class UploadFolder {
  private constructor(readonly dir: string) {}

  static async create(parent: string): Promise<UploadFolder> {
    return new UploadFolder(await mkdtemp(path.join(parent, 'stcnet-serve-')));
  }

  /** A fresh file name in the folder (not created). */
  newFile(): string {
    return path.join(this.dir, `upload-${Date.now().toString(36)}-${randomBytes(6).toString('hex')}`);
  }

  /**
   * Runs `use(file)` on the body saved to a new file; the file is removed afterwards in every case.
   * `isTruncated` reports a part cut short by the multipart parser's own size limit.
   */
  async withUpload<T>(body: Readable, maxBytes: number, use: (file: string, bytes: number) => Promise<T>,
    isTruncated: () => boolean = () => false): Promise<T> {
    const file = this.newFile();
    try {
      // A temp cleaner may have removed the folder of a long-running service: make it again.
      await mkdir(this.dir, { recursive: true });
      const bytes = await saveStream(body, file, maxBytes);
      if (isTruncated()) throw tooLarge(maxBytes);
      if (bytes === 0) throw new HttpError(422, 'empty_upload', 'the upload is empty (0 bytes); send a video file');
      return await use(file, bytes);
    } finally {
      await rm(file, { force: true });
    }
  }

  async remove(): Promise<void> {
    await rm(this.dir, { recursive: true, force: true });
  }
}

export function tooLarge(maxBytes: number): HttpError {
  return new HttpError(413, 'upload_too_large', `the upload is larger than ${formatMb(maxBytes)} (the service's --max-upload-mb)`);
}

/** Streams `body` into `file`, failing with a 413 as soon as more than `maxBytes` have come. */
async function saveStream(body: Readable, file: string, maxBytes: number): Promise<number> {
  let bytes = 0;
  const counter = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      bytes += chunk.length;
      if (bytes > maxBytes) done(tooLarge(maxBytes));
      else done(null, chunk);
    },
  });
  await pipeline(body, counter, createWriteStream(file, { flags: 'wx' }));
  return bytes;
}
