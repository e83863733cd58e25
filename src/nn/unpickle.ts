/**
 * A restricted pickle reader: enough of Python's pickle (protocols 0–5 as torch.save writes them)
 * to read state dicts, and nothing that can run code. Every GLOBAL goes through `findGlobal`,
 * which returns an inert description of a known name or throws; REDUCE only calls the
 * JavaScript functions those descriptions carry. Python values map to JavaScript as:
 * None → null, bool → boolean, int → number (bigint beyond 2^53), float → number, str → string,
 * bytes → Buffer, list and tuple → array, dict → Map.
 */

/** A Python name the caller allows: `call` (if any) is what REDUCE on it does. */
export class PyGlobal {
  constructor(
    readonly qualifiedName: string,
    readonly call: ((args: unknown[]) => unknown) | null = null,
    /** Set for marker globals (storage types): what the caller attaches to the name. */
    readonly payload: unknown = undefined,
  ) {}
}

export interface UnpickleHooks {
  /** Resolves `module.name`, or throws to refuse it. */
  findGlobal(module: string, name: string): PyGlobal;
  /** Resolves a persistent id (torch.save's storage references). */
  persistentLoad(pid: unknown): unknown;
  /** Applies BUILD state to an object made by REDUCE; throw to refuse. Default: refuse, except on a Map. */
  build?(target: unknown, state: unknown): void;
}

export class UnpickleError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnpickleError';
  }
}

/** Reads one pickle from `bytes` at `start`; returns the value and the offset after its STOP. */
export function unpickle(bytes: Uint8Array, hooks: UnpickleHooks, start = 0): { value: unknown; end: number } {
  const data = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = start;
  const stack: unknown[] = [];
  const marks: number[] = [];
  const memo = new Map<number, unknown>();

  const need = (n: number): void => {
    if (pos + n > data.length) throw new UnpickleError(`pickle data ends early (at byte ${pos}, needs ${n} more)`);
  };
  const u8 = (): number => { need(1); return data[pos++]!; };
  const u16 = (): number => { need(2); const v = data.readUInt16LE(pos); pos += 2; return v; };
  const u32 = (): number => { need(4); const v = data.readUInt32LE(pos); pos += 4; return v; };
  const i32 = (): number => { need(4); const v = data.readInt32LE(pos); pos += 4; return v; };
  const u64 = (): number => {
    need(8);
    const v = data.readBigUInt64LE(pos);
    pos += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new UnpickleError(`length ${v} is too large`);
    return Number(v);
  };
  const take = (n: number): Buffer => { need(n); const v = data.subarray(pos, pos + n); pos += n; return v; };
  const line = (): string => {
    const end = data.indexOf(0x0a, pos);
    if (end < 0) throw new UnpickleError('pickle data ends inside a text line');
    const text = data.toString('latin1', pos, end);
    pos = end + 1;
    return text;
  };
  const pop = (): unknown => {
    if (stack.length === 0 || (marks.length > 0 && stack.length <= marks[marks.length - 1]!)) {
      throw new UnpickleError(`pickle stack underflow at byte ${pos - 1}`);
    }
    return stack.pop();
  };
  const top = (): unknown => {
    if (stack.length === 0) throw new UnpickleError(`pickle stack underflow at byte ${pos - 1}`);
    return stack[stack.length - 1];
  };
  const popMark = (): unknown[] => {
    const mark = marks.pop();
    if (mark === undefined) throw new UnpickleError(`pickle has no MARK to pop at byte ${pos - 1}`);
    return stack.splice(mark);
  };
  const memoGet = (index: number): unknown => {
    if (!memo.has(index)) throw new UnpickleError(`pickle memo has no entry ${index}`);
    return memo.get(index);
  };
  const setItems = (target: unknown, items: unknown[]): void => {
    if (!(target instanceof Map)) throw new UnpickleError('SETITEM(S) on something that is not a dict');
    if (items.length % 2 !== 0) throw new UnpickleError('SETITEMS with an odd number of items');
    for (let i = 0; i < items.length; i += 2) target.set(items[i], items[i + 1]);
  };
  const appendItems = (target: unknown, items: unknown[]): void => {
    if (!Array.isArray(target)) throw new UnpickleError('APPEND(S) on something that is not a list');
    // One push per item: spreading a list of many thousand items would overflow the call stack.
    for (const item of items) target.push(item);
  };
  const resolve = (module: string, name: string): PyGlobal => hooks.findGlobal(module, name);
  const reduce = (callable: unknown, args: unknown): unknown => {
    if (!(callable instanceof PyGlobal)) throw new UnpickleError('REDUCE on something that is not a global');
    if (!callable.call) throw new UnpickleError(`${callable.qualifiedName} cannot be called while loading`);
    if (!Array.isArray(args)) throw new UnpickleError(`REDUCE arguments for ${callable.qualifiedName} are not a tuple`);
    return callable.call(args);
  };

  for (;;) {
    const at = pos;
    const op = u8();
    switch (op) {
      case 0x80: u8(); break; // PROTO
      case 0x95: u64(); break; // FRAME: framing is only a buffering hint
      case 0x2e: return { value: pop(), end: pos }; // STOP
      case 0x28: marks.push(stack.length); break; // MARK
      case 0x30: pop(); break; // POP
      case 0x31: popMark(); break; // POP_MARK
      case 0x32: stack.push(top()); break; // DUP
      case 0x4e: stack.push(null); break; // NONE
      case 0x88: stack.push(true); break; // NEWTRUE
      case 0x89: stack.push(false); break; // NEWFALSE
      case 0x4a: stack.push(i32()); break; // BININT
      case 0x4b: stack.push(u8()); break; // BININT1
      case 0x4d: stack.push(u16()); break; // BININT2
      case 0x8a: stack.push(readLong(take(u8()))); break; // LONG1
      case 0x8b: stack.push(readLong(take(u32()))); break; // LONG4
      case 0x49: { // INT (text; "01"/"00" are True/False in protocol 0)
        const text = line();
        stack.push(text === '01' ? true : text === '00' ? false : parseTextInt(text));
        break;
      }
      case 0x4c: stack.push(parseTextInt(line().replace(/L$/, ''))); break; // LONG (text)
      case 0x47: { need(8); stack.push(data.readDoubleBE(pos)); pos += 8; break; } // BINFLOAT
      case 0x46: stack.push(Number.parseFloat(line())); break; // FLOAT (text)
      case 0x58: stack.push(take(u32()).toString('utf8')); break; // BINUNICODE
      case 0x8c: stack.push(take(u8()).toString('utf8')); break; // SHORT_BINUNICODE
      case 0x8d: stack.push(take(u64()).toString('utf8')); break; // BINUNICODE8
      case 0x54: stack.push(take(i32()).toString('latin1')); break; // BINSTRING (Python 2 str)
      case 0x55: stack.push(take(u8()).toString('latin1')); break; // SHORT_BINSTRING
      case 0x42: stack.push(Buffer.from(take(u32()))); break; // BINBYTES
      case 0x43: stack.push(Buffer.from(take(u8()))); break; // SHORT_BINBYTES
      case 0x8e: stack.push(Buffer.from(take(u64()))); break; // BINBYTES8
      case 0x5d: stack.push([]); break; // EMPTY_LIST
      case 0x29: stack.push([]); break; // EMPTY_TUPLE
      case 0x7d: stack.push(new Map()); break; // EMPTY_DICT
      case 0x6c: stack.push(popMark()); break; // LIST
      case 0x74: stack.push(popMark()); break; // TUPLE
      case 0x85: stack.push([pop()]); break; // TUPLE1
      case 0x86: { const b = pop(); const a = pop(); stack.push([a, b]); break; } // TUPLE2
      case 0x87: { const c = pop(); const b = pop(); const a = pop(); stack.push([a, b, c]); break; } // TUPLE3
      case 0x64: { const dict = new Map(); setItems(dict, popMark()); stack.push(dict); break; } // DICT
      case 0x73: { const value = pop(); const key = pop(); setItems(top(), [key, value]); break; } // SETITEM
      case 0x75: { const items = popMark(); setItems(top(), items); break; } // SETITEMS
      case 0x61: { const value = pop(); appendItems(top(), [value]); break; } // APPEND
      case 0x65: { const items = popMark(); appendItems(top(), items); break; } // APPENDS
      case 0x71: memo.set(u8(), top()); break; // BINPUT
      case 0x72: memo.set(u32(), top()); break; // LONG_BINPUT
      case 0x70: memo.set(parseTextInt(line()) as number, top()); break; // PUT
      case 0x94: memo.set(memo.size, top()); break; // MEMOIZE
      case 0x68: stack.push(memoGet(u8())); break; // BINGET
      case 0x6a: stack.push(memoGet(u32())); break; // LONG_BINGET
      case 0x67: stack.push(memoGet(parseTextInt(line()) as number)); break; // GET
      case 0x63: { const module = line(); const name = line(); stack.push(resolve(module, name)); break; } // GLOBAL
      case 0x93: { // STACK_GLOBAL
        const name = pop();
        const module = pop();
        if (typeof module !== 'string' || typeof name !== 'string') throw new UnpickleError('STACK_GLOBAL needs two strings');
        stack.push(resolve(module, name));
        break;
      }
      case 0x52: { const args = pop(); const callable = pop(); stack.push(reduce(callable, args)); break; } // REDUCE
      case 0x51: stack.push(hooks.persistentLoad(pop())); break; // BINPERSID
      case 0x50: stack.push(hooks.persistentLoad(line())); break; // PERSID
      case 0x62: { // BUILD
        const state = pop();
        const target = top();
        if (hooks.build) hooks.build(target, state);
        else if (!(target instanceof Map)) throw new UnpickleError('BUILD on an object this reader does not construct');
        break;
      }
      case 0x81: case 0x92: { // NEWOBJ, NEWOBJ_EX: instantiating classes is never allowed
        if (op === 0x92) pop();
        pop();
        const cls = pop();
        throw new UnpickleError(`refusing to instantiate ${cls instanceof PyGlobal ? cls.qualifiedName : 'a class'} (NEWOBJ)`);
      }
      case 0x69: { // INST
        const module = line();
        const name = line();
        throw new UnpickleError(`refusing to instantiate ${module}.${name} (INST)`);
      }
      case 0x6f: throw new UnpickleError('refusing to instantiate a class (OBJ)');
      case 0x82: case 0x83: case 0x84: throw new UnpickleError('the pickle uses the copyreg extension registry (EXT), which is not supported');
      default:
        throw new UnpickleError(`unsupported pickle opcode 0x${op.toString(16).padStart(2, '0')} at byte ${at}`);
    }
  }
}

/** Little-endian two's-complement integer (LONG1/LONG4). */
function readLong(bytes: Buffer): number | bigint {
  if (bytes.length === 0) return 0;
  let value = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) value = (value << 8n) | BigInt(bytes[i]!);
  if (bytes[bytes.length - 1]! & 0x80) value -= 1n << BigInt(8 * bytes.length);
  return Number.isSafeInteger(Number(value)) && BigInt(Number(value)) === value ? Number(value) : value;
}

function parseTextInt(text: string): number | bigint {
  if (!/^[+-]?\d+$/.test(text)) throw new UnpickleError(`bad integer "${text}" in pickle`);
  const value = BigInt(text);
  return Number.isSafeInteger(Number(value)) ? Number(value) : value;
}
