import { keep, noGrad, tidy, type Tensor } from '../engine/index.js';
import { UserError } from '../util/errors.js';

/**
 * The optimizer base: parameter groups with their own hyperparameters, per-parameter state,
 * zeroGrad/step, and a state dict that restores a run exactly. Subclasses give the update rule
 * for one parameter (`update`), which runs under no-grad inside a tidy() scope.
 */

/** Hyperparameter values a group may hold: numbers, flags, and pairs (AdamW's betas). */
export type HyperValue = number | boolean | readonly number[];
export type Hyperparameters = Record<string, HyperValue>;

/** A group as passed in: its parameters and any hyperparameters that differ from the defaults. */
export type ParamGroupInput<H> = { params: Tensor[] } & Partial<H>;

/** A group as the optimizer holds it; schedulers change `lr`, and record `initialLr` the first time. */
export type ParamGroup<H> = { params: Tensor[]; initialLr?: number } & H;

/** Per-parameter state: tensors (moments, buffers) and numbers (step counts). */
export type ParamState = Record<string, Tensor | number>;

/**
 * A serialisable snapshot: parameters are numbered across groups in order (PyTorch's numbering);
 * `state` is keyed by that number. The tensors are the optimizer's own (do not dispose them).
 */
export interface OptimizerStateDict {
  state: Record<string, ParamState>;
  paramGroups: (Record<string, HyperValue> & { params: number[] })[];
}

export abstract class Optimizer<H extends { lr: number } = { lr: number }> {
  readonly paramGroups: ParamGroup<H>[];
  protected readonly state = new Map<Tensor, ParamState>();

  constructor(params: Tensor[] | ParamGroupInput<H>[], readonly defaults: H) {
    const inputs: ParamGroupInput<H>[] = params.length > 0 && !isGroup(params[0]) ? [{ params: params as Tensor[] } as ParamGroupInput<H>]
      : params as ParamGroupInput<H>[];
    if (inputs.length === 0) throw new UserError(`${this.constructor.name}: no parameters to optimize`);
    const seen = new Set<Tensor>();
    this.paramGroups = inputs.map((input, index) => {
      if (!Array.isArray(input.params) || input.params.length === 0) throw new UserError(`${this.constructor.name}: parameter group ${index} has no parameters`);
      for (const param of input.params) {
        if (seen.has(param)) throw new UserError(`${this.constructor.name}: a parameter appears in more than one group`);
        seen.add(param);
      }
      const group = { ...defaults, ...input, params: [...input.params] } as ParamGroup<H>;
      this.validate(group, index);
      return group;
    });
  }

  /** Checks a group's hyperparameters (throws a UserError naming the bad one). */
  protected abstract validate(group: ParamGroup<H>, index: number): void;

  /** Updates one parameter in place from its gradient; runs under no-grad inside tidy(). */
  protected abstract update(param: Tensor, grad: Tensor, group: ParamGroup<H>, state: ParamState): void;

  /** Every parameter, in group order. */
  get params(): Tensor[] {
    return this.paramGroups.flatMap((group) => group.params);
  }

  /** Drops every gradient (as PyTorch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const param of this.params) param.grad = null;
  }

  /** One update of every parameter that has a gradient. */
  step(): void {
    noGrad(() => {
      for (const group of this.paramGroups) {
        for (const param of group.params) {
          // A scope per parameter: its temporaries are freed before the next one's are made, so their
          // memory is reused while it is in cache (one scope for the whole step kept a model's worth of
          // them alive: stc_resnext3d_101's SGD step took 100–134 ms, PyTorch's 37).
          tidy(() => {
            const grad = param.grad;
            if (grad === null) return;
            let state = this.state.get(param);
            if (!state) {
              state = {};
              this.state.set(param, state);
            }
            this.update(param, grad, group, state);
          });
        }
      }
    });
  }

  /** Keeps a state tensor made during step() alive past its tidy() scope, freeing the one it replaces. */
  protected setState(state: ParamState, key: string, value: Tensor): Tensor {
    const previous = state[key];
    if (previous !== undefined && typeof previous !== 'number' && previous !== value) previous.dispose();
    state[key] = keep(value);
    return value;
  }

  stateDict(): OptimizerStateDict {
    const state: Record<string, ParamState> = {};
    let index = 0;
    const paramGroups = this.paramGroups.map((group) => {
      const { params, ...hyper } = group;
      const numbers = params.map((param) => {
        const own = this.state.get(param);
        if (own && Object.keys(own).length > 0) state[String(index)] = { ...own };
        return index++;
      });
      return { ...(hyper as unknown as Record<string, HyperValue>), params: numbers };
    });
    return { state, paramGroups };
  }

  /**
   * Restores a stateDict() (from this optimizer's class, with the same groups and parameter
   * shapes). Tensors are copied onto each parameter's device, so the caller keeps its own.
   */
  loadStateDict(dict: OptimizerStateDict): void {
    const name = this.constructor.name;
    if (dict.paramGroups.length !== this.paramGroups.length) {
      throw new UserError(`${name}.loadStateDict: the state has ${dict.paramGroups.length} parameter groups, the optimizer ${this.paramGroups.length}`);
    }
    const params = this.params;
    dict.paramGroups.forEach((saved, g) => {
      if (saved.params.length !== this.paramGroups[g]!.params.length) {
        throw new UserError(`${name}.loadStateDict: group ${g} has ${saved.params.length} parameters in the state, ${this.paramGroups[g]!.params.length} here`);
      }
    });
    const restored = new Map<Tensor, ParamState>();
    try {
      for (const [key, entry] of Object.entries(dict.state)) {
        const param = params[Number(key)];
        if (param === undefined) throw new UserError(`${name}.loadStateDict: state for parameter ${key}, which does not exist`);
        const copy: ParamState = {};
        restored.set(param, copy);
        for (const [field, value] of Object.entries(entry)) {
          if (typeof value === 'number') {
            copy[field] = value;
            continue;
          }
          if (value.shape.join() !== param.shape.join()) {
            throw new UserError(`${name}.loadStateDict: ${field} of parameter ${key} has shape [${value.shape}], the parameter [${param.shape}]`);
          }
          copy[field] = noGrad(() => (value.device === param.device ? value.detach().clone() : value.detach().to(param.device as never)));
        }
      }
    } catch (error) {
      for (const state of restored.values()) disposeState(state);
      throw error;
    }
    for (const state of this.state.values()) disposeState(state);
    this.state.clear();
    for (const [param, state] of restored) this.state.set(param, state);
    dict.paramGroups.forEach((saved, g) => {
      const { params: _numbers, ...hyper } = saved;
      Object.assign(this.paramGroups[g]!, hyper);
    });
  }

  /** Frees the optimizer's state tensors (the parameters are not the optimizer's to free). */
  dispose(): void {
    for (const state of this.state.values()) disposeState(state);
    this.state.clear();
  }
}

function disposeState(state: ParamState): void {
  for (const value of Object.values(state)) if (typeof value !== 'number') value.dispose();
}

function isGroup(value: unknown): value is { params: Tensor[] } {
  return typeof value === 'object' && value !== null && 'params' in value && Array.isArray((value as { params: unknown }).params);
}

/** A UserError for a hyperparameter outside its range. */
export function badHyper(optimizer: string, index: number, name: string, value: unknown, expected: string): UserError {
  return new UserError(`${optimizer}: parameter group ${index}: ${name} = ${JSON.stringify(value)}; expected ${expected}`);
}
