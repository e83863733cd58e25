import { Tensor, keep, noGrad, type Device } from '../engine/index.js';

/** What loadStateDict found: names missing from the dict, unexpected in it, or of another shape. */
export interface LoadReport {
  missing: string[];
  unexpected: string[];
  mismatched: { name: string; expected: number[]; got: number[] }[];
}

export class StateDictError extends Error {
  constructor(readonly report: LoadReport, context = 'loadStateDict') {
    super(formatLoadReport(report, context));
    this.name = 'StateDictError';
  }
}

export function formatLoadReport(report: LoadReport, context: string): string {
  const lines = [`${context}: the state dict does not fit the model`];
  const list = (names: string[]) => names.length > 8 ? `${names.slice(0, 8).join(', ')}, ... (${names.length} in all)` : names.join(', ');
  if (report.missing.length) lines.push(`  missing keys: ${list(report.missing)}`);
  if (report.unexpected.length) lines.push(`  unexpected keys: ${list(report.unexpected)}`);
  for (const { name, expected, got } of report.mismatched.slice(0, 8)) {
    lines.push(`  shape mismatch for ${name}: model has [${expected.join(', ')}], checkpoint has [${got.join(', ')}]`);
  }
  if (report.mismatched.length > 8) lines.push(`  ... ${report.mismatched.length - 8} more shape mismatches`);
  return lines.join('\n');
}

/**
 * A layer or network. Parameters, buffers and children are registered by name, in order, so
 * `namedParameters()` and `stateDict()` give PyTorch's names and order (`layer1.0.conv1.weight`).
 */
export abstract class Module {
  training = true;
  readonly #parameters = new Map<string, Tensor>();
  readonly #buffers = new Map<string, Tensor>();
  readonly #nonPersistent = new Set<string>();
  readonly #children = new Map<string, Module>();

  abstract forward(input: Tensor): Tensor;

  /** Registers a trainable tensor (requiresGrad on; exempt from tidy scopes). */
  protected addParameter(name: string, value: Tensor): Tensor {
    checkName(name);
    keep(value);
    if (!value.requiresGrad) value.requiresGrad = true;
    this.#parameters.set(name, value);
    return value;
  }

  /** Registers state that is saved but not trained (BN running statistics). */
  protected addBuffer(name: string, value: Tensor, persistent = true): Tensor {
    checkName(name);
    keep(value);
    this.#buffers.set(name, value);
    if (!persistent) this.#nonPersistent.add(name);
    return value;
  }

  protected addModule<M extends Module>(name: string, module: M): M {
    checkName(name);
    this.#children.set(name, module);
    return module;
  }

  *namedChildren(): Generator<[string, Module]> {
    yield* this.#children;
  }

  /** This module and every descendant, depth first, with dotted names ('' for this one). */
  *namedModules(prefix = ''): Generator<[string, Module]> {
    yield [prefix, this];
    for (const [name, child] of this.#children) yield* child.namedModules(prefix ? `${prefix}.${name}` : name);
  }

  *namedParameters(prefix = ''): Generator<[string, Tensor]> {
    for (const [moduleName, module] of this.namedModules(prefix)) {
      for (const [name, parameter] of module.#parameters) yield [moduleName ? `${moduleName}.${name}` : name, parameter];
    }
  }

  parameters(): Tensor[] {
    return [...this.namedParameters()].map(([, parameter]) => parameter);
  }

  *namedBuffers(prefix = ''): Generator<[string, Tensor]> {
    for (const [moduleName, module] of this.namedModules(prefix)) {
      for (const [name, buffer] of module.#buffers) yield [moduleName ? `${moduleName}.${name}` : name, buffer];
    }
  }

  /** Number of trainable elements. */
  parameterCount(): number {
    return this.parameters().reduce((total, parameter) => total + parameter.numel, 0);
  }

  /** Parameters and persistent buffers by name, in PyTorch's state_dict order. Shares storage with the model. */
  stateDict(): Map<string, Tensor> {
    const dict = new Map<string, Tensor>();
    this.collectState('', dict);
    return dict;
  }

  private collectState(prefix: string, into: Map<string, Tensor>): void {
    for (const [name, parameter] of this.#parameters) into.set(prefix + name, parameter);
    for (const [name, buffer] of this.#buffers) if (!this.#nonPersistent.has(name)) into.set(prefix + name, buffer);
    for (const [name, child] of this.#children) child.collectState(`${prefix}${name}.`, into);
  }

  /**
   * Copies values from `dict` into this model's tensors (converting dtype). With `strict`
   * (the default) any missing, unexpected or mis-shaped key throws a StateDictError naming them;
   * otherwise the report says what was skipped.
   */
  loadStateDict(dict: Map<string, Tensor> | Record<string, Tensor>, options: { strict?: boolean } = {}): LoadReport {
    const strict = options.strict ?? true;
    const own = this.stateDict();
    const source = withoutDataParallelPrefix(dict instanceof Map ? dict : new Map(Object.entries(dict)), own);
    const report: LoadReport = { missing: [], unexpected: [], mismatched: [] };
    const matched: [Tensor, Tensor][] = [];
    const defaults = this.stateDefaults();
    const filled: [Tensor, number][] = [];
    for (const [name, target] of own) {
      const value = source.get(name);
      if (!value && defaults.has(name)) {
        filled.push([target, defaults.get(name)!]);
      } else if (!value) {
        report.missing.push(name);
      } else if (!sameShape(target.shape, value.shape)) {
        report.mismatched.push({ name, expected: target.shape, got: value.shape });
      } else {
        matched.push([target, value]);
      }
    }
    for (const name of source.keys()) if (!own.has(name)) report.unexpected.push(name);
    if (strict && (report.missing.length || report.unexpected.length || report.mismatched.length)) {
      throw new StateDictError(report);
    }
    noGrad(() => {
      for (const [target, value] of matched) target.copy_(value);
      for (const [target, value] of filled) target.fill_(value);
    });
    return report;
  }

  /**
   * State a checkpoint may lack, with the value it takes then (not reported as missing). PyTorch's
   * BatchNorm fills `num_batches_tracked` with 0 when a state dict from before PyTorch 0.4.1 has none.
   */
  protected defaultedState(): ReadonlyMap<string, number> {
    return NO_DEFAULTS;
  }

  /** Every module's defaultedState(), by full state-dict name. */
  private stateDefaults(): Map<string, number> {
    const all = new Map<string, number>();
    for (const [prefix, module] of this.namedModules()) {
      for (const [name, value] of module.defaultedState()) all.set(prefix ? `${prefix}.${name}` : name, value);
    }
    return all;
  }

  train(mode = true): this {
    for (const [, module] of this.namedModules()) module.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Moves parameters and buffers to a device (or dtype) in place; references to them stay valid. */
  to(target: Device | 'float32' | 'float64' | 'bfloat16' | 'float16'): this {
    const floating = new Set(['float32', 'float64', 'bfloat16', 'float16']);
    noGrad(() => {
      for (const tensor of [...this.parameters(), ...[...this.namedBuffers()].map(([, buffer]) => buffer)]) {
        if (floating.has(target) && !floating.has(tensor.dtype)) continue;
        const moved = tensor.to(target);
        tensor.setData_(moved);
        moved.dispose();
        // The gradient follows its parameter, as in PyTorch (else the next step mixes devices/dtypes).
        const grad = tensor.grad;
        if (grad) {
          const movedGrad = grad.to(target);
          grad.setData_(movedGrad);
          movedGrad.dispose();
          grad.dispose();
        }
      }
    });
    return this;
  }

  /** Frees every parameter and buffer; the module is unusable afterwards. */
  dispose(): void {
    for (const tensor of this.parameters()) tensor.dispose();
    for (const [, buffer] of this.namedBuffers()) buffer.dispose();
  }
}

const NO_DEFAULTS: ReadonlyMap<string, number> = new Map();

/** DataParallel's `module.` before every key, where the model names none so, is dropped (as loadStateDict(path) does). */
function withoutDataParallelPrefix(source: Map<string, Tensor>, own: Map<string, Tensor>): Map<string, Tensor> {
  const prefix = 'module.';
  const keys = [...source.keys()];
  if (keys.length === 0 || !keys.every((key) => key.startsWith(prefix)) || [...own.keys()].some((key) => key.startsWith(prefix))) return source;
  return new Map(keys.map((key) => [key.slice(prefix.length), source.get(key)!]));
}

function checkName(name: string): void {
  if (name.length === 0 || name.includes('.')) throw new Error(`module member name "${name}" must be non-empty and contain no "."`);
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((size, i) => size === b[i]);
}
