import { F, type Tensor } from '../engine/index.js';
import { badHyper, Optimizer, type ParamGroup, type ParamGroupInput, type ParamState } from './optimizer.js';

/** lr, momentum, dampening, weightDecay, nesterov, maximize (ascend instead of descend). */
export type SGDOptions = F.SgdHyper;

const DEFAULTS: Omit<SGDOptions, 'lr'> = { momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false };

/**
 * Stochastic gradient descent, the update of torch.optim.SGD exactly:
 * d = ±g + wd·p; b = d (first step) or μ·b + (1−τ)·d; d = d + μ·b (Nesterov) or b; p −= lr·d.
 * Per-parameter state: `momentum_buffer` (with momentum).
 */
export class SGD extends Optimizer<SGDOptions> {
  constructor(params: Tensor[] | ParamGroupInput<SGDOptions>[], options: Partial<SGDOptions> & { lr: number }) {
    super(params, { ...DEFAULTS, ...options } as SGDOptions);
  }

  protected validate(group: ParamGroup<SGDOptions>, index: number): void {
    if (!(group.lr >= 0)) throw badHyper('SGD', index, 'lr', group.lr, 'a number ≥ 0');
    if (!(group.momentum >= 0)) throw badHyper('SGD', index, 'momentum', group.momentum, 'a number ≥ 0');
    if (!(group.weightDecay >= 0)) throw badHyper('SGD', index, 'weightDecay', group.weightDecay, 'a number ≥ 0');
    if (!Number.isFinite(group.dampening)) throw badHyper('SGD', index, 'dampening', group.dampening, 'a number');
    if (group.nesterov && (group.momentum <= 0 || group.dampening !== 0)) {
      throw badHyper('SGD', index, 'nesterov', true, 'momentum > 0 and dampening = 0 (as PyTorch requires)');
    }
  }

  protected update(param: Tensor, grad: Tensor, group: ParamGroup<SGDOptions>, state: ParamState): void {
    const buffer = state.momentum_buffer as Tensor | undefined;
    if (group.momentum === 0 || buffer !== undefined) {
      // Every step but a momentum buffer's first: one native call (the same operators, in this order).
      F.sgdUpdate_(param, grad, group.momentum === 0 ? null : buffer!, group);
      return;
    }
    let direction = group.maximize ? grad.neg() : grad;
    if (group.weightDecay !== 0) direction = direction.add(param, group.weightDecay);
    // The first step with momentum: the buffer starts as the direction itself.
    const started = this.setState(state, 'momentum_buffer', direction.clone());
    direction = group.nesterov ? direction.add(started, group.momentum) : started;
    param.add_(direction, -group.lr);
  }
}
