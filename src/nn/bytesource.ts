import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

/**
 * Random access to the bytes of a weights file. Checkpoints can be larger than we want to hold
 * twice in memory, so readers pull one tensor's bytes at a time instead of the whole file.
 */
export interface ByteSource {
  /** What to call the source in error messages (the file path). */
  readonly name: string;
  readonly size: number;
  /** Exactly `length` bytes from `offset`; throws a RangeError when they are not all there. */
  read(offset: number, length: number): Buffer;
  close(): void;
}

export function openFileSource(path: string): ByteSource {
  const fd = openSync(path, 'r');
  const size = fstatSync(fd).size;
  let open = true;
  return {
    name: path,
    size,
    read(offset, length) {
      if (!open) throw new Error(`${path}: read after close`);
      if (offset < 0 || length < 0 || offset + length > size) {
        throw new RangeError(`${path}: bytes ${offset}..${offset + length} are beyond the end of the file (${size} bytes)`);
      }
      const buffer = Buffer.allocUnsafe(length);
      let done = 0;
      while (done < length) {
        const got = readSync(fd, buffer, done, length - done, offset + done);
        if (got === 0) throw new RangeError(`${path}: file ended early at byte ${offset + done}`);
        done += got;
      }
      return buffer;
    },
    close() {
      if (open) closeSync(fd);
      open = false;
    },
  };
}

export function bufferSource(bytes: Uint8Array, name = '<buffer>'): ByteSource {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    name,
    size: buffer.length,
    read(offset, length) {
      if (offset < 0 || length < 0 || offset + length > buffer.length) {
        throw new RangeError(`${name}: bytes ${offset}..${offset + length} are beyond the end (${buffer.length} bytes)`);
      }
      return buffer.subarray(offset, offset + length);
    },
    close() {},
  };
}
