import { bytesPerElement, callOp, fromTypedArray, Tensor, type DType } from '../engine/index.js';
import { UserError } from '../util/errors.js';
import { openFileSource, type ByteSource } from './bytesource.js';
import { findTorchGlobal, StorageRef, TensorSpec } from './torchglobals.js';
import { unpickle, PyGlobal, UnpickleError, type UnpickleHooks } from './unpickle.js';
import { ZipArchive } from './zip.js';

/**
 * PyTorch `torch.save` files, read without Python and without running anything they contain:
 * the zip format (PyTorch ≥ 1.6: `<name>/data.pkl` + `<name>/data/<key>`) and the legacy
 * format older checkpoints use (Hara et al.'s 2018 Kinetics weights: consecutive pickles, then
 * the raw storages). Tensors come back on the CPU, contiguous; Python containers as Maps and arrays.
 */

export interface TorchLoadOptions {
  /** Only for tests and tools: the name to use in error messages instead of the path. */
  displayName?: string;
  /** Filled in with how many containers (lists, tuples, dicts) the load walked: each is walked once. */
  stats?: { containers: number };
}

/** Reads a torch.save file and returns its top-level object with Tensors in place of tensors. */
export function readTorchCheckpoint(path: string, options: TorchLoadOptions = {}): unknown {
  const source = openFileSource(path);
  const name = options.displayName ?? path;
  try {
    const magic = source.size >= 4 ? source.read(0, 4) : Buffer.alloc(0);
    const stats = options.stats ?? { containers: 0 };
    if (magic.length === 4 && magic.readUInt32LE(0) === 0x04034b50) return readZipCheckpoint(source, name, stats);
    if (magic.length >= 2 && magic[0] === 0x80 && magic[1]! <= 5) return readLegacyCheckpoint(source, name, stats);
    throw new UserError(`${name}: not a PyTorch checkpoint (neither the zip format nor the legacy pickle format)`);
  } finally {
    source.close();
  }
}

function wrapErrors<T>(name: string, fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    // Problems with the file become UserErrors naming it; anything else is a bug and keeps its stack.
    if (error instanceof UnpickleError) throw new UserError(`${name}: ${error.message}`);
    throw error;
  }
}

// ---- zip format ----

function readZipCheckpoint(source: ByteSource, name: string, stats: { containers: number }): unknown {
  return wrapErrors(name, () => {
    const zip = new ZipArchive(source);
    const pickleName = [...zip.entries.keys()].find((entry) => /^[^/]+\/data\.pkl$/.test(entry));
    if (!pickleName) throw new UserError(`${name}: the zip archive has no <name>/data.pkl; not a torch.save file`);
    const prefix = pickleName.slice(0, -'data.pkl'.length);
    if (zip.has(`${prefix}byteorder`)) {
      const order = zip.read(`${prefix}byteorder`).toString('latin1').trim();
      if (order !== 'little') throw new UserError(`${name}: tensors are stored ${order}-endian; only little-endian is supported`);
    }
    const storages = new Map<string, StorageRef>();
    const { value } = unpickle(zip.read(pickleName), {
      findGlobal: findTorchGlobal,
      persistentLoad: (pid) => storageFromPid(pid, storages),
      build: ignoreDictState,
    });
    const loadStorage = (ref: StorageRef): Tensor => {
      const entry = `${prefix}data/${ref.key}`;
      if (!zip.has(entry)) throw new UserError(`${name}: storage ${ref.key} is missing (no entry ${entry})`);
      const bytes = zip.read(entry);
      const needed = ref.numel * bytesPerElement(ref.dtype);
      if (bytes.length < needed) {
        throw new UserError(`${name}: storage ${ref.key} holds ${bytes.length} bytes, ${ref.numel} ${ref.dtype} elements need ${needed}`);
      }
      return fromTypedArray(bytes.subarray(0, needed), [ref.numel], { dtype: ref.dtype });
    };
    return materialize(value, loadStorage, name, stats);
  });
}

/** `('storage', StorageType, key, location, numel)` → a StorageRef (one per key). */
function storageFromPid(pid: unknown, storages: Map<string, StorageRef>): StorageRef {
  if (!Array.isArray(pid) || pid[0] !== 'storage') throw new UnpickleError('unknown persistent id in the pickle (not a storage reference)');
  const [, type, key, , numel] = pid as [string, unknown, unknown, unknown, unknown];
  if (!(type instanceof PyGlobal) || typeof type.payload !== 'string') throw new UnpickleError('storage reference without a storage type');
  if (typeof key !== 'string' && typeof key !== 'number') throw new UnpickleError('storage reference with a bad key');
  if (!Number.isSafeInteger(numel) || (numel as number) < 0) throw new UnpickleError(`storage ${key} has a bad size`);
  const dtype = type.payload as DType;
  const id = String(key);
  const existing = storages.get(id);
  if (existing) return existing;
  const ref = new StorageRef(id, dtype, numel as number);
  storages.set(id, ref);
  return ref;
}

/** BUILD on an OrderedDict sets attributes such as `_metadata` (version numbers); we drop them. */
function ignoreDictState(target: unknown): void {
  if (!(target instanceof Map)) throw new UnpickleError('BUILD on an object that is not a dict (refused)');
}

// ---- legacy format (torch.save with _use_new_zipfile_serialization=False, PyTorch < 1.6) ----

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

function readLegacyCheckpoint(source: ByteSource, name: string, stats: { containers: number }): unknown {
  return wrapErrors(name, () => {
    // Legacy files are consecutive pickles followed by raw storages; they predate multi-GB
    // checkpoints, so the whole file is read at once.
    const plainHooks: UnpickleHooks = { findGlobal: findTorchGlobal, persistentLoad: () => { throw new UnpickleError('unexpected persistent id'); } };
    const bytes = source.read(0, source.size);
    let at = 0;
    const next = (hooks: UnpickleHooks = plainHooks): unknown => {
      const result = unpickle(bytes, hooks, at);
      at = result.end;
      return result.value;
    };
    const magic = next();
    if (magic !== LEGACY_MAGIC) {
      throw new UserError(`${name}: a pickle file, but not one torch.save wrote (wrong magic number)`);
    }
    const protocol = next();
    if (protocol !== 1001) throw new UserError(`${name}: legacy torch.save protocol ${String(protocol)} is not supported`);
    const sysInfo = next();
    if (sysInfo instanceof Map && sysInfo.get('little_endian') === false) {
      throw new UserError(`${name}: tensors are stored big-endian; only little-endian is supported`);
    }
    const storages = new Map<string, StorageRef>();
    const value = next({ findGlobal: findTorchGlobal, persistentLoad: (pid) => legacyStorageFromPid(pid, storages), build: ignoreDictState });
    const keys = next();
    if (!Array.isArray(keys)) throw new UserError(`${name}: the storage key list is missing`);
    // Raw storages follow in key order, each as an int64 element count and its bytes.
    const located = new Map<string, { offset: number; numel: number; dtype: DType }>();
    for (const rawKey of keys) {
      const key = String(rawKey);
      const dtype = [...storages.values()].find((ref) => ref.rootKey === key)?.dtype;
      if (!dtype) throw new UserError(`${name}: storage ${key} is listed but never used; cannot tell its element size`);
      if (at + 8 > bytes.length) throw new UserError(`${name}: truncated file (storage ${key} is missing)`);
      const numel = Number(bytes.readBigInt64LE(at));
      const length = numel * bytesPerElement(dtype);
      if (at + 8 + length > bytes.length) throw new UserError(`${name}: truncated file (storage ${key} needs ${length} bytes)`);
      located.set(key, { offset: at + 8, numel, dtype });
      at += 8 + length;
    }
    const loadStorage = (ref: StorageRef): Tensor => {
      const root = located.get(ref.rootKey);
      if (!root) throw new UserError(`${name}: storage ${ref.rootKey} is not in the file`);
      if (ref.rootOffset + ref.numel > root.numel) throw new UserError(`${name}: storage view ${ref.key} runs past storage ${ref.rootKey}`);
      const start = root.offset + ref.rootOffset * bytesPerElement(ref.dtype);
      return fromTypedArray(bytes.subarray(start, start + ref.numel * bytesPerElement(ref.dtype)), [ref.numel], { dtype: ref.dtype });
    };
    return materialize(value, loadStorage, name, stats);
  });
}

/** Legacy ids: `('storage', StorageType, root_key, location, root_numel, view_metadata)`. */
function legacyStorageFromPid(pid: unknown, storages: Map<string, StorageRef>): StorageRef {
  if (!Array.isArray(pid) || pid[0] !== 'storage') throw new UnpickleError('unknown persistent id in the pickle (not a storage reference)');
  const [, type, rootKey, , rootNumel, view] = pid as unknown[];
  if (!(type instanceof PyGlobal) || typeof type.payload !== 'string') throw new UnpickleError('storage reference without a storage type');
  const dtype = type.payload as DType;
  const root = String(rootKey);
  if (!Number.isSafeInteger(rootNumel)) throw new UnpickleError(`storage ${root} has a bad size`);
  if (!storages.has(root)) storages.set(root, new StorageRef(root, dtype, rootNumel as number));
  if (Array.isArray(view)) {
    const [viewKey, offset, numel] = view as unknown[];
    const key = String(viewKey);
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(numel)) throw new UnpickleError(`storage view ${key} is malformed`);
    if (!storages.has(key)) storages.set(key, new StorageRef(key, dtype, numel as number, root, offset as number));
    return storages.get(key)!;
  }
  return storages.get(root)!;
}

// ---- from descriptions to tensors ----

/**
 * Replaces every TensorSpec in the unpickled value by a Tensor (one per spec, so names that
 * pickled the same tensor share it). Each storage is read once; tensors that view part of a
 * storage or view it with gaps are copied out, so no tensor pins a larger buffer than its own.
 */
function materialize(root: unknown, loadStorage: (ref: StorageRef) => Tensor, name: string, stats: { containers: number }): unknown {
  const bases = new Map<StorageRef, Tensor>();
  const made = new Map<TensorSpec, Tensor>();
  const build = (spec: TensorSpec): Tensor => {
    const { storage, storageOffset, size, stride } = spec;
    if (size.length !== stride.length) throw new UserError(`${name}: a tensor has ${size.length} sizes but ${stride.length} strides`);
    const numel = size.reduce((a, b) => a * b, 1);
    if (numel > 0) {
      let last = storageOffset;
      for (let i = 0; i < size.length; i++) {
        if (size[i]! < 0 || stride[i]! < 0) throw new UserError(`${name}: a tensor has a negative size or stride`);
        last += (size[i]! - 1) * stride[i]!;
      }
      if (storageOffset < 0 || last >= storage.numel) {
        throw new UserError(`${name}: a tensor of size [${size.join(', ')}] at offset ${storageOffset} with strides ` +
          `[${stride.join(', ')}] reaches past its storage ${storage.key} (${storage.numel} elements)`);
      }
    }
    let base = bases.get(storage);
    if (!base) {
      base = loadStorage(storage);
      bases.set(storage, base);
    }
    const view = callOp('aten::as_strided', base, size, stride, storageOffset) as Tensor;
    const contiguous = isRowMajor(size, stride);
    if (contiguous && storageOffset === 0 && numel === storage.numel) return view;
    const copy = contiguous ? view.clone() : view.contiguous();
    view.dispose();
    return copy;
  };
  // A pickle's memo lets one container appear many times (and inside itself): walking each
  // container once keeps the work proportional to the file, not to the paths through it.
  const walked = new Set<unknown[] | Map<unknown, unknown>>();
  const walk = (value: unknown, depth: number): unknown => {
    if (depth > 64) throw new UserError(`${name}: the pickled object nests too deeply`);
    if (value instanceof TensorSpec) {
      let tensor = made.get(value);
      if (!tensor) {
        tensor = build(value);
        made.set(value, tensor);
      }
      return tensor;
    }
    if (!Array.isArray(value) && !(value instanceof Map)) return value;
    if (walked.has(value)) return value;
    walked.add(value);
    stats.containers++;
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) value[i] = walk(value[i], depth + 1);
    } else {
      for (const [key, item] of value) value.set(key, walk(item, depth + 1));
    }
    return value;
  };
  try {
    return walk(root, 0);
  } catch (error) {
    for (const tensor of made.values()) tensor.dispose();
    throw error;
  } finally {
    // The views hold the storages; the base handles are no longer needed.
    for (const base of bases.values()) base.dispose();
  }
}

/** Whether strides lay the sizes out densely in row-major order (size-1 dimensions may have any stride). */
function isRowMajor(size: number[], stride: number[]): boolean {
  let expected = 1;
  for (let i = size.length - 1; i >= 0; i--) {
    if (size[i] !== 1 && stride[i] !== expected) return false;
    expected *= size[i]!;
  }
  return true;
}

// ---- finding the state dict in a checkpoint ----

export interface FindStateDictOptions {
  /** A dotted path to the state dict inside the checkpoint (e.g. `state_dict` or `model.ema`). */
  key?: string;
  /** Removed from the start of every key that has it (e.g. `module.` from DataParallel). */
  stripPrefix?: string;
  /** For error messages. */
  fileName?: string;
}

/** Keys that checkpoints commonly nest a state dict under, in the order they are tried. */
const NESTED_KEYS = ['state_dict', 'model_state_dict', 'model', 'model_state', 'net', 'network', 'module', 'state_dict_ema', 'ema'];

export function isTensorDict(value: unknown): value is Map<string, Tensor> {
  if (!(value instanceof Map) || value.size === 0) return false;
  for (const [key, item] of value) if (typeof key !== 'string' || !(item instanceof Tensor)) return false;
  return true;
}

/**
 * The state dict inside a checkpoint: the top-level object when it is one, else the first of
 * NESTED_KEYS that holds one (Hara et al.'s `{arch, epoch, state_dict, optimizer}` finds
 * `state_dict`), or exactly `options.key`. Returns a new Map sharing the tensors.
 */
export function findStateDict(root: unknown, options: FindStateDictOptions = {}): Map<string, Tensor> {
  const file = options.fileName ? `${options.fileName}: ` : '';
  let found: Map<string, Tensor> | undefined;
  if (options.key !== undefined) {
    let value: unknown = root;
    for (const part of options.key.split('.')) {
      if (!(value instanceof Map) || !value.has(part)) throw new UserError(`${file}the checkpoint has no "${options.key}"`);
      value = value.get(part);
    }
    if (!isTensorDict(value)) throw new UserError(`${file}"${options.key}" in the checkpoint is not a state dict (a dict of tensors)`);
    found = value;
  } else {
    found = search(root, 0);
    if (!found) {
      const keys = root instanceof Map ? [...root.keys()].map(String).join(', ') : typeof root;
      throw new UserError(`${file}no state dict found in the checkpoint (top level: ${keys}); pass the key that holds it`);
    }
  }
  const prefix = options.stripPrefix;
  const result = new Map<string, Tensor>();
  for (const [key, tensor] of found) result.set(prefix && key.startsWith(prefix) ? key.slice(prefix.length) : key, tensor);
  return result;
}

/** Looks two levels down NESTED_KEYS, checking each dict once however often the pickle shares it. */
function search(value: unknown, depth: number, seen = new Set<unknown>()): Map<string, Tensor> | undefined {
  if (!(value instanceof Map) || seen.has(value)) return undefined;
  seen.add(value);
  if (isTensorDict(value)) return value;
  if (depth >= 2) return undefined;
  for (const key of NESTED_KEYS) {
    const found = value.has(key) ? search(value.get(key), depth + 1, seen) : undefined;
    if (found) return found;
  }
  return undefined;
}

/**
 * Every Tensor reachable from an unpickled value (to free what a caller does not keep). Each
 * container is visited once, so shared and self-containing ones cost no more than their size.
 */
export function tensorsIn(value: unknown, into = new Set<Tensor>(), stats: { containers: number } = { containers: 0 }): Set<Tensor> {
  const visited = new Set<unknown>();
  const pending: unknown[] = [value];
  while (pending.length > 0) {
    const item = pending.pop();
    if (item instanceof Tensor) {
      into.add(item);
    } else if ((Array.isArray(item) || item instanceof Map) && !visited.has(item)) {
      visited.add(item);
      stats.containers++;
      for (const child of item instanceof Map ? item.values() : item) pending.push(child);
    }
  }
  return into;
}
