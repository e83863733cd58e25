import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import { z } from 'zod';
import { UserError } from '../util/errors.js';
import { fsUserError } from '../util/fs.js';
import type { Preprocessing } from '../models/checkpoint.js';

/**
 * The stcnet metadata of an exported ONNX model (ModelProto.metadata_props), read without ONNX
 * Runtime and without decoding the graph: the file's top-level protobuf fields are walked and
 * every one but metadata_props (field 14) is skipped by its length, so a 130 MB model costs a few
 * small reads. Works on bytes too (`parseOnnxMetadata`), for code that already holds the file.
 * Nothing here imports the engine: this module is part of the libtorch-free `stcnet/onnx` entry.
 */

/** How clips are made for the model: a stcnet checkpoint's `preprocessing` (a type only: nothing of models/ is loaded). */
export type OnnxPreprocessing = Preprocessing;

/** The model's one input: float32 clips N×C×T×H×W, normalised; `batch` null where the batch axis is dynamic. */
export interface OnnxInputSpec {
  name: string;
  layout: 'NCTHW';
  batch: number | null;
  channels: number;
  frames: number;
  size: number;
}

export interface OnnxMetadata {
  /** The zoo architecture (`stc_resnet3d_18`). */
  arch: string;
  classes: string[];
  preprocessing: OnnxPreprocessing;
  input: OnnxInputSpec;
  /** The output's name (logits N×classes). */
  output: string;
  /** The options that built the model. */
  options: Record<string, unknown>;
  /** The stcnet version that wrote the file. */
  version: string;
  /** Every metadata entry as written. */
  raw: Record<string, string>;
}

export const ONNX_FORMAT = 'stcnet-onnx';

const positiveInt = z.number().int().positive();
const preprocessingSchema = z.object({
  frames: positiveInt,
  stride: positiveInt,
  size: positiveInt,
  mean: z.array(z.number()).min(1),
  std: z.array(z.number().positive()).min(1),
  shortSide: positiveInt.optional(),
  fps: z.number().positive().optional(),
});
const inputSchema = z.object({
  name: z.string().min(1),
  layout: z.literal('NCTHW'),
  batch: positiveInt.nullable(),
  channels: positiveInt,
  frames: positiveInt,
  size: positiveInt,
});

/** The metadata_props entries an exported model carries. */
export function onnxMetadataEntries(meta: Omit<OnnxMetadata, 'raw'>): Record<string, string> {
  return {
    format: ONNX_FORMAT,
    arch: meta.arch,
    classes: JSON.stringify(meta.classes),
    preprocessing: JSON.stringify(meta.preprocessing),
    input: JSON.stringify(meta.input),
    output: meta.output,
    options: JSON.stringify(meta.options),
    stcnet_version: meta.version,
  };
}

/** Reads random-access bytes: a file (positional reads) or a buffer. */
interface ByteSource {
  size: number;
  read(offset: number, length: number): Uint8Array;
}

class NotOnnx extends Error {}

/** Protobuf wire types (the low 3 bits of a field's tag). */
const VARINT = 0;
const FIXED64 = 1;
const LENGTH_DELIMITED = 2;
const FIXED32 = 5;

const MODEL_IR_VERSION = 1;
const MODEL_GRAPH = 7;
const MODEL_METADATA_PROPS = 14;

/** A varint at `offset`: [value, bytes used]. Values above 2^53 lose precision, which no length here reaches. */
function readVarint(source: ByteSource, offset: number): [number, number] {
  const bytes = source.read(offset, Math.min(10, source.size - offset));
  let value = 0;
  let scale = 1;
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i]!;
    value += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) return [value, i + 1];
    scale *= 128;
  }
  throw new NotOnnx('a varint runs past the end of the data');
}

/** The top-level fields of a message: [field number, wire type, value offset, value length]. */
function* fields(source: ByteSource, start: number, end: number): Generator<[number, number, number, number]> {
  let at = start;
  while (at < end) {
    const [tag, tagLength] = readVarint(source, at);
    at += tagLength;
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (field === 0) throw new NotOnnx('field number 0');
    let length: number;
    if (wire === VARINT) {
      length = readVarint(source, at)[1];
    } else if (wire === FIXED64) {
      length = 8;
    } else if (wire === FIXED32) {
      length = 4;
    } else if (wire === LENGTH_DELIMITED) {
      const [size, used] = readVarint(source, at);
      at += used;
      length = size;
    } else {
      throw new NotOnnx(`wire type ${wire}`);
    }
    if (at + length > end) throw new NotOnnx('a field runs past the end of the data');
    yield [field, wire, at, length];
    at += length;
  }
}

/** Every metadata_props entry of a ModelProto; throws NotOnnx when the bytes are not one. */
function scanModel(source: ByteSource): Record<string, string> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const entries: Record<string, string> = {};
  let irVersion = false;
  let graph = false;
  for (const [field, wire, offset, length] of fields(source, 0, source.size)) {
    if (field === MODEL_IR_VERSION && wire === VARINT) irVersion = true;
    if (field === MODEL_GRAPH && wire === LENGTH_DELIMITED) graph = true;
    if (field !== MODEL_METADATA_PROPS) continue;
    if (wire !== LENGTH_DELIMITED) throw new NotOnnx('metadata_props is not a message');
    if (length > 64 * 1024 * 1024) throw new NotOnnx('a metadata entry over 64 MB');
    const entry = source.read(offset, length);
    const inner: ByteSource = { size: entry.length, read: (o, n) => entry.subarray(o, o + n) };
    let key = '';
    let value = '';
    for (const [f, w, o, n] of fields(inner, 0, inner.size)) {
      if (w !== LENGTH_DELIMITED) continue;
      let text: string;
      try {
        text = decoder.decode(entry.subarray(o, o + n));
      } catch {
        throw new NotOnnx('a metadata string is not UTF-8');
      }
      if (f === 1) key = text;
      else if (f === 2) value = text;
    }
    entries[key] = value;
  }
  if (!irVersion || !graph) throw new NotOnnx(`no ${irVersion ? 'graph' : 'ir_version'} field`);
  return entries;
}

function fileSource(fd: number, size: number): ByteSource {
  return {
    size,
    read(offset, length) {
      const buffer = new Uint8Array(length);
      let done = 0;
      while (done < length) {
        const n = readSync(fd, buffer, done, length - done, offset + done);
        if (n === 0) throw new NotOnnx('the file ends early');
        done += n;
      }
      return buffer;
    },
  };
}

/** Validates stcnet's entries; `where` names the file in errors. */
function interpret(where: string, raw: Record<string, string>): OnnxMetadata {
  if (raw.format !== ONNX_FORMAT) {
    throw new UserError(`${where}: an ONNX model without stcnet metadata (not written by \`stcnet export\`); ` +
      `its metadata keys: ${Object.keys(raw).join(', ') || 'none'}`);
  }
  const json = <T>(key: string, schema: z.ZodType<T>): T => {
    const text = raw[key];
    if (text === undefined) throw new UserError(`${where}: stcnet metadata "${key}" is missing`);
    let value: unknown;
    try {
      value = JSON.parse(text);
    } catch (error) {
      throw new UserError(`${where}: stcnet metadata "${key}" is not valid JSON (${(error as Error).message})`);
    }
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      throw new UserError(`${where}: stcnet metadata "${key}" is malformed: ${issue.message}${issue.path.length ? ` at ${issue.path.join('.')}` : ''}`);
    }
    return parsed.data;
  };
  const classes = json('classes', z.array(z.string()).min(1));
  const preprocessing = json('preprocessing', preprocessingSchema);
  const input = json('input', inputSchema);
  const options = json('options', z.record(z.string(), z.unknown()));
  if (input.frames !== preprocessing.frames || input.size !== preprocessing.size) {
    throw new UserError(`${where}: stcnet metadata disagree: input ${input.frames}×${input.size}² but preprocessing ${preprocessing.frames}×${preprocessing.size}²`);
  }
  for (const key of ['mean', 'std'] as const) {
    if (preprocessing[key].length !== 1 && preprocessing[key].length !== input.channels) {
      throw new UserError(`${where}: stcnet metadata "preprocessing" ${key} has ${preprocessing[key].length} values for ${input.channels} channels`);
    }
  }
  return {
    arch: raw.arch ?? 'unknown', classes, preprocessing, input, output: raw.output ?? 'logits', options,
    version: raw.stcnet_version ?? 'unknown', raw,
  };
}

/** The stcnet metadata of ONNX model bytes (no ONNX Runtime needed). */
export function parseOnnxMetadata(bytes: Uint8Array, where = 'ONNX model'): OnnxMetadata {
  let raw: Record<string, string>;
  try {
    raw = scanModel({ size: bytes.length, read: (o, n) => bytes.subarray(o, o + n) });
  } catch (error) {
    if (error instanceof NotOnnx) throw new UserError(`${where}: not an ONNX model (${error.message})`);
    throw error;
  }
  return interpret(where, raw);
}

/**
 * The stcnet metadata of an exported .onnx file: classes, preprocessing, input spec, architecture.
 * Reads only the top-level field headers and metadata_props; a file that is not an ONNX model, or one
 * without stcnet's metadata, is a UserError naming the file.
 */
export function readOnnxMetadata(file: string): OnnxMetadata {
  let fd: number;
  try {
    fd = openSync(file, 'r');
  } catch (error) {
    throw fsUserError(error, file);
  }
  try {
    let size: number;
    try {
      const stats = fstatSync(fd);
      if (stats.isDirectory()) throw new UserError(`${file}: is a folder, expected an .onnx file`);
      size = stats.size;
    } catch (error) {
      throw fsUserError(error, file);
    }
    if (size === 0) throw new UserError(`${file}: not an ONNX model (the file is empty)`);
    let raw: Record<string, string>;
    try {
      raw = scanModel(fileSource(fd, size));
    } catch (error) {
      if (error instanceof NotOnnx) throw new UserError(`${file}: not an ONNX model (${error.message})`);
      throw fsUserError(error, file);
    }
    return interpret(file, raw);
  } finally {
    closeSync(fd);
  }
}
