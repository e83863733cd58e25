import { zerosLike, type Tensor } from '../engine/index.js';
import { badHyper, Optimizer, type ParamGroup, type ParamGroupInput, type ParamState } from './optimizer.js';

export type AdamWOptions = {
  lr: number;
  betas: readonly [number, number];
  eps: number;
  weightDecay: number;
  amsgrad: boolean;
  /** Ascend instead of descend. */
  maximize: boolean;
};

const DEFAULTS: Omit<AdamWOptions, 'lr'> = { betas: [0.9, 0.999], eps: 1e-8, weightDecay: 1e-2, amsgrad: false, maximize: false };

/**
 * Adam with decoupled weight decay, the update of torch.optim.AdamW exactly (its single-tensor
 * path): p ·= 1 − lr·wd; m = β1·m + (1−β1)·g; v = β2·v + (1−β2)·g²; v̂ = max(v̂, v) with amsgrad;
 * p −= lr/(1−β1^t) · m / (√v(or v̂)/√(1−β2^t) + ε). Per-parameter state: `step`, `exp_avg`,
 * `exp_avg_sq`, and `max_exp_avg_sq` with amsgrad.
 */
export class AdamW extends Optimizer<AdamWOptions> {
  constructor(params: Tensor[] | ParamGroupInput<AdamWOptions>[], options: Partial<AdamWOptions> & { lr?: number } = {}) {
    super(params, { ...DEFAULTS, lr: 1e-3, ...options } as AdamWOptions);
  }

  protected validate(group: ParamGroup<AdamWOptions>, index: number): void {
    if (!(group.lr >= 0)) throw badHyper('AdamW', index, 'lr', group.lr, 'a number ≥ 0');
    if (!(group.eps >= 0)) throw badHyper('AdamW', index, 'eps', group.eps, 'a number ≥ 0');
    const [beta1, beta2] = group.betas;
    if (!(beta1! >= 0 && beta1! < 1)) throw badHyper('AdamW', index, 'betas[0]', beta1, 'a number in [0, 1)');
    if (!(beta2! >= 0 && beta2! < 1)) throw badHyper('AdamW', index, 'betas[1]', beta2, 'a number in [0, 1)');
    if (!(group.weightDecay >= 0)) throw badHyper('AdamW', index, 'weightDecay', group.weightDecay, 'a number ≥ 0');
  }

  protected update(param: Tensor, rawGrad: Tensor, group: ParamGroup<AdamWOptions>, state: ParamState): void {
    const grad = group.maximize ? rawGrad.neg() : rawGrad;
    const [beta1, beta2] = group.betas;
    if (state.step === undefined) {
      state.step = 0;
      this.setState(state, 'exp_avg', zerosLike(param));
      this.setState(state, 'exp_avg_sq', zerosLike(param));
      if (group.amsgrad) this.setState(state, 'max_exp_avg_sq', zerosLike(param));
    }
    const step = (state.step as number) + 1;
    state.step = step;
    const expAvg = state.exp_avg as Tensor;
    const expAvgSq = state.exp_avg_sq as Tensor;

    param.mul_(1 - group.lr * group.weightDecay);
    expAvg.mul_(beta1).add_(grad, 1 - beta1);
    expAvgSq.mul_(beta2).addcmul_(grad, grad, 1 - beta2);

    const biasCorrection1 = 1 - beta1 ** step;
    const biasCorrection2 = 1 - beta2 ** step;
    const stepSize = group.lr / biasCorrection1;
    let second = expAvgSq;
    if (group.amsgrad) {
      const max = state.max_exp_avg_sq as Tensor;
      max.copy_(max.maximum(expAvgSq));
      second = max;
    }
    const denom = second.sqrt().div(Math.sqrt(biasCorrection2)).add_(group.eps);
    param.addcdiv_(expAvg, denom, -stepSize);
  }
}
