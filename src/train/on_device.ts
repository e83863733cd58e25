import type { Tensor } from '../engine/index.js';
import type { InferenceModel } from '../models/inference.js';
import { Module } from '../nn/index.js';
import { withAutocast, type AmpMode } from './autocast.js';

/**
 * A model as the trainer runs it: inputs moved to the run's device and the forward pass under
 * autocast when asked. It wraps the model as its only child, so `evaluate()` (which takes any
 * Module and feeds it CPU batches) validates on the GPU and in bf16 as the training does.
 */
export class OnDevice extends Module {
  readonly inner: Module;
  constructor(inner: Module, readonly device: 'cpu' | 'cuda', readonly amp: AmpMode) {
    super();
    this.inner = this.addModule('model', inner);
  }

  forward(x: Tensor): Tensor {
    const moved = this.device === 'cpu' ? x : x.to(this.device);
    try {
      const logits = withAutocast(this.amp, this.device, () => this.inner.forward(moved));
      // Scores and the loss in float32, whatever autocast computed the layers in.
      if (logits.dtype === 'float32') return logits;
      const float = logits.float();
      logits.dispose();
      return float;
    } finally {
      if (moved !== x) moved.dispose();
    }
  }
}

/** A prepared inference network (prepareForInference) as a Module, for code that scores any Module. */
export class PreparedModule extends Module {
  readonly numClasses: number;
  constructor(readonly prepared: InferenceModel) {
    super();
    this.numClasses = prepared.numClasses;
  }

  forward(x: Tensor): Tensor {
    return this.prepared.forward(x);
  }

  /** Frees the prepared copy of the weights (the model it was prepared from is the caller's). */
  override dispose(): void {
    this.prepared.dispose();
  }
}
