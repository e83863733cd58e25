import { noGrad, stack, tidy, type Tensor } from '../engine/index.js';
import { UserError } from '../util/errors.js';

/**
 * Rescales the gradients of `params` in place so that their joint L2 norm is at most `maxNorm`, as
 * torch.nn.utils.clip_grad_norm_ does (norm type 2): each gradient is multiplied by
 * min(1, maxNorm / (norm + 1e-6)). Parameters without a gradient are skipped. Returns the joint norm
 * before clipping. A non-finite norm (NaN or ∞ in some gradient) leaves the gradients as they are
 * (PyTorch would turn them all into NaN) and is returned for the caller to see.
 */
export function clipGradNorm_(params: Iterable<Tensor>, maxNorm: number): number {
  if (!(Number.isFinite(maxNorm) && maxNorm > 0)) throw new UserError(`clipGradNorm_: maxNorm must be a positive number, got ${maxNorm}`);
  return noGrad(() => tidy(() => {
    // New handles on the gradients (freed with the scope; the gradients stay).
    const grads = [...params].map((param) => param.grad).filter((grad): grad is Tensor => grad !== null);
    if (grads.length === 0) return 0;
    // Each gradient's norm in its own dtype (float32 for float32 parameters), then the norm of those.
    const total = stack(grads.map((grad) => grad.norm(2).float())).norm(2).item();
    const scale = maxNorm / (total + 1e-6);
    if (Number.isFinite(total) && scale < 1) for (const grad of grads) grad.mul_(scale);
    return total;
  }));
}
