import type { DType } from '../engine/index.js';
import { PyGlobal, UnpickleError } from './unpickle.js';

/**
 * The allow-list of Python names a state-dict pickle may mention, and the inert values they
 * stand for. Nothing here runs Python: `_rebuild_tensor_v2` records where a tensor's elements
 * are (a TensorSpec) and the loader materialises it afterwards from the storage bytes.
 */

/** A storage reference from a persistent id: which bytes, holding what. */
export class StorageRef {
  constructor(
    readonly key: string,
    readonly dtype: DType,
    /** Elements in the storage this ref names. */
    readonly numel: number,
    /** For legacy storage views: element offset of this storage inside `rootKey`'s storage. */
    readonly rootKey: string = key,
    readonly rootOffset = 0,
  ) {}
}

/** A tensor as the pickle describes it: a strided window onto a storage. */
export class TensorSpec {
  constructor(
    readonly storage: StorageRef,
    readonly storageOffset: number,
    readonly size: number[],
    readonly stride: number[],
  ) {}
}

/** Storage classes by name (torch.save pickles the typed storage's class), and what they hold. */
export const STORAGE_DTYPES: Record<string, DType> = {
  FloatStorage: 'float32', DoubleStorage: 'float64', HalfStorage: 'float16', BFloat16Storage: 'bfloat16',
  LongStorage: 'int64', IntStorage: 'int32', ShortStorage: 'int16', CharStorage: 'int8',
  ByteStorage: 'uint8', BoolStorage: 'bool',
  // Newer PyTorch names raw byte storages so.
  UntypedStorage: 'uint8',
};

const TORCH_DTYPES = ['float32', 'float64', 'float16', 'bfloat16', 'int64', 'int32', 'int16', 'int8', 'uint8', 'bool',
  'float', 'double', 'half', 'long', 'int', 'short'];

function intList(value: unknown, what: string): number[] {
  if (!Array.isArray(value) || !value.every((item) => Number.isSafeInteger(item))) {
    throw new UnpickleError(`${what} is not a tuple of integers`);
  }
  return value as number[];
}

function rebuildTensor(args: unknown[], name: string): TensorSpec {
  const [storage, offset, size, stride] = args;
  if (!(storage instanceof StorageRef)) throw new UnpickleError(`${name}: first argument is not a storage reference`);
  if (!Number.isSafeInteger(offset)) throw new UnpickleError(`${name}: storage offset is not an integer`);
  return new TensorSpec(storage, offset as number, intList(size, `${name} size`), intList(stride, `${name} stride`));
}

function tensorArgument(args: unknown[], name: string): TensorSpec {
  if (!(args[0] instanceof TensorSpec)) throw new UnpickleError(`${name}: first argument is not a tensor`);
  return args[0];
}

/** Why a refused name was refused, with a hint where a common mistake explains it. */
function refusal(module: string, name: string): string {
  const qualified = `${module}.${name}`;
  let hint = '';
  if (module.startsWith('torch.nn.')) hint = '; the file pickles a whole model: save model.state_dict() instead';
  else if (module.startsWith('numpy')) hint = '; the checkpoint holds numpy objects: save plain numbers or tensors';
  return `refusing to load: the pickle references ${qualified}, which a state dict does not need ` +
    `(loading never runs code from a file)${hint}`;
}

/** Resolves a GLOBAL to an allowed, inert value, or throws an Error naming it. */
export function findTorchGlobal(module: string, name: string): PyGlobal {
  const qualified = `${module}.${name}`;
  if (qualified === 'collections.OrderedDict') {
    return new PyGlobal(qualified, (args) => {
      const map = new Map<unknown, unknown>();
      if (Array.isArray(args[0])) for (const pair of args[0]) if (Array.isArray(pair) && pair.length === 2) map.set(pair[0], pair[1]);
      return map;
    });
  }
  if (qualified === 'torch._utils._rebuild_tensor_v2' || qualified === 'torch._utils._rebuild_tensor') {
    return new PyGlobal(qualified, (args) => rebuildTensor(args, qualified));
  }
  if (qualified === 'torch._utils._rebuild_parameter' || qualified === 'torch._utils._rebuild_parameter_with_state') {
    return new PyGlobal(qualified, (args) => tensorArgument(args, qualified));
  }
  if (qualified === 'torch.Size') return new PyGlobal(qualified, (args) => [...intList(args[0] ?? [], 'torch.Size')]);
  if (qualified === '_codecs.encode') {
    // Protocol-2 pickles spell bytes as _codecs.encode(text, 'latin1').
    return new PyGlobal(qualified, ([text, encoding]) => {
      if (typeof text !== 'string') throw new UnpickleError('_codecs.encode: text is not a string');
      return Buffer.from(text, encoding === 'latin1' || encoding === 'latin-1' ? 'latin1' : 'utf8');
    });
  }
  if ((module === 'torch' || module === 'torch.storage') && name in STORAGE_DTYPES) {
    return new PyGlobal(qualified, null, STORAGE_DTYPES[name]);
  }
  if (module === 'torch' && TORCH_DTYPES.includes(name)) return new PyGlobal(qualified);
  throw new UnpickleError(refusal(module, name));
}
