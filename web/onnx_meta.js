// @ts-check
/**
 * The metadata of an ONNX model file, read in the page (and in Node: no dependencies): the
 * ModelProto's metadata_props (field 14, key/value strings), where `stcnet export` writes the class
 * names and the preprocessing, and its producer. Only the top level of the protobuf is walked; the
 * graph (field 7, the weights) is skipped by its length, never parsed.
 */

/** Protobuf wire types. */
const VARINT = 0;
const FIXED64 = 1;
const BYTES = 2;
const FIXED32 = 5;

/** A protobuf reader over bytes; lengths up to 2^53 (a model can pass 2 GiB). */
class Reader {
  /** @param {Uint8Array} bytes */
  constructor(bytes) {
    this.bytes = bytes;
    this.pos = 0;
  }

  /** @returns {number} */
  varint() {
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.bytes.length) throw new Error('the file ends inside a number');
      const byte = this.bytes[this.pos++];
      value += (byte & 0x7f) * scale;
      if ((byte & 0x80) === 0) return value;
      scale *= 128;
    }
    throw new Error('a number is longer than 10 bytes');
  }

  /** @param {number} n @returns {Uint8Array} */
  take(n) {
    if (n > this.bytes.length - this.pos) throw new Error(`a field of ${n} bytes runs past the end of the file`);
    const out = this.bytes.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  /** Skips a field's value of the given wire type. @param {number} wire */
  skip(wire) {
    if (wire === VARINT) this.varint();
    else if (wire === FIXED64) this.take(8);
    else if (wire === BYTES) this.take(this.varint());
    else if (wire === FIXED32) this.take(4);
    else throw new Error(`unsupported protobuf wire type ${wire}`);
  }
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** @param {Uint8Array} bytes @returns {{ key: string, value: string }} */
function readEntry(bytes) {
  const r = new Reader(bytes);
  let key = '';
  let value = '';
  while (r.pos < bytes.length) {
    const tag = r.varint();
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    if (wire === BYTES && (field === 1 || field === 2)) {
      const text = utf8.decode(r.take(r.varint()));
      if (field === 1) key = text;
      else value = text;
    } else {
      r.skip(wire);
    }
  }
  return { key, value };
}

/**
 * The metadata_props and producer of an ONNX model. Throws an Error saying what is wrong when the
 * bytes are not a ModelProto (no graph, a broken field).
 * @param {Uint8Array} bytes
 * @returns {{ props: Record<string, string>, producer: string, irVersion: number }}
 */
export function readOnnxProps(bytes) {
  const r = new Reader(bytes);
  /** @type {Record<string, string>} */
  const props = {};
  let producer = '';
  let irVersion = 0;
  let graph = false;
  try {
    while (r.pos < bytes.length) {
      const tag = r.varint();
      const field = Math.floor(tag / 8);
      const wire = tag % 8;
      if (field === 0) throw new Error('a field numbered 0');
      if (field === 1 && wire === VARINT) irVersion = r.varint();
      else if (field === 2 && wire === BYTES) producer = utf8.decode(r.take(r.varint()));
      else if (field === 7 && wire === BYTES) {
        r.take(r.varint());
        graph = true;
      } else if (field === 14 && wire === BYTES) {
        const entry = readEntry(r.take(r.varint()));
        props[entry.key] = entry.value;
      } else r.skip(wire);
    }
  } catch (error) {
    throw new Error(`not an ONNX model: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (!graph || irVersion === 0) throw new Error('not an ONNX model: it has no graph or no IR version');
  return { props, producer, irVersion };
}

/**
 * @typedef {{ frames: number, stride: number, size: number, mean: number[], std: number[], shortSide?: number, fps?: number }} Preprocessing
 * @typedef {{ classes: string[], preprocessing: Preprocessing, arch: string, producer: string, batch: number }} ModelInfo
 */

/** @param {string} key @param {string} text @returns {unknown} */
function parseJson(key, text) {
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`the model's metadata "${key}" is not JSON: ${text.slice(0, 60)}`);
  }
}

/** @param {unknown} value @param {string} what @returns {number} */
function positiveInt(value, what) {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw new Error(`the model's preprocessing has a bad ${what}: ${JSON.stringify(value)}`);
  return value;
}

/** @param {unknown} value @param {string} what @param {boolean} positive @returns {number[]} */
function triple(value, what, positive) {
  const list = Array.isArray(value) && value.length === 1 ? [value[0], value[0], value[0]] : value;
  if (!Array.isArray(list) || list.length !== 3 || !list.every((v) => typeof v === 'number' && Number.isFinite(v) && (!positive || v > 0))) {
    throw new Error(`the model's preprocessing has a bad ${what} (expected 1 or 3 ${positive ? 'positive ' : ''}numbers): ${JSON.stringify(value)}`);
  }
  return list;
}

/**
 * What the page needs from an exported model: its class names and how its clips are made, from the
 * metadata `stcnet export` writes (`classes`: a JSON list; `preprocessing`: JSON as in a stcnet
 * checkpoint). A model without them cannot be used here (the page would have to guess).
 * @param {Record<string, string>} props
 * @param {string} producer
 * @returns {ModelInfo}
 */
export function modelInfo(props, producer = '') {
  if (props.classes === undefined) throw new Error('the model has no class names in its metadata ("classes"); export it with `stcnet export`');
  const classes = parseJson('classes', props.classes);
  if (!Array.isArray(classes) || classes.length === 0 || !classes.every((c) => typeof c === 'string')) {
    throw new Error('the model\'s metadata "classes" is not a non-empty list of names');
  }
  if (props.preprocessing === undefined) throw new Error('the model has no preprocessing in its metadata ("preprocessing"); export it with `stcnet export`');
  const raw = parseJson('preprocessing', props.preprocessing);
  if (typeof raw !== 'object' || raw === null) throw new Error('the model\'s metadata "preprocessing" is not an object');
  const p = /** @type {Record<string, unknown>} */ (raw);
  /** @type {Preprocessing} */
  const preprocessing = {
    frames: positiveInt(p.frames, 'frames'), stride: positiveInt(p.stride ?? 1, 'stride'), size: positiveInt(p.size, 'size'),
    mean: triple(p.mean, 'mean', false), std: triple(p.std, 'std', true),
  };
  if (p.shortSide !== undefined) preprocessing.shortSide = positiveInt(p.shortSide, 'shortSide');
  if (p.fps !== undefined) {
    if (typeof p.fps !== 'number' || !(p.fps > 0)) throw new Error(`the model's preprocessing has a bad fps: ${JSON.stringify(p.fps)}`);
    preprocessing.fps = p.fps;
  }
  // `input` (stcnet export): a fixed batch size, or null for a free batch axis.
  let batch = 1;
  if (props.input !== undefined) {
    const input = /** @type {{ batch?: unknown } | null} */ (parseJson('input', props.input));
    if (input !== null && typeof input === 'object' && typeof input.batch === 'number' && Number.isInteger(input.batch) && input.batch > 1) batch = input.batch;
  }
  return { classes, preprocessing, arch: props.arch ?? '', producer, batch };
}
