import { CosineAnnealingLR, LinearWarmup, MultiStepLR, ReduceLROnPlateau, StepLR, type LRScheduler } from '../optim/schedules.js';
import type { Optimizer } from '../optim/optimizer.js';
import { UserError } from '../util/errors.js';
import type { TrainConfig } from './config.js';

/**
 * The learning-rate schedule of a run. step, multistep and cosine advance every optimizer step
 * (their lengths are given in epochs and converted, so a multistep drop lands exactly on an epoch
 * boundary while warm-up and cosine are smooth); plateau advances once per epoch with the
 * validation accuracy (or the training loss when there is no validation split).
 */
export interface RunSchedule {
  scheduler: LRScheduler;
  /** 'step': call step() after each optimizer step; 'epoch': step(metric) after each epoch. */
  unit: 'step' | 'epoch';
}

/** Warm-up starts at this fraction of the base lr. */
export const WARMUP_START_FACTOR = 0.1;

export function buildSchedule(config: TrainConfig, optimizer: Optimizer, stepsPerEpoch: number, hasValidation: boolean): RunSchedule {
  const warmup = config['warmup-epochs'];
  if (config.schedule === 'plateau') {
    const plateau = new ReduceLROnPlateau(optimizer, {
      mode: hasValidation ? 'max' : 'min', factor: config.gamma, patience: config.patience, minLr: config['min-lr'],
    });
    const scheduler = warmup > 0 ? new LinearWarmup(optimizer, { epochs: warmup, startFactor: WARMUP_START_FACTOR, then: plateau }) : plateau;
    return { scheduler, unit: 'epoch' };
  }
  const afterWarmup = (config.epochs - warmup) * stepsPerEpoch;
  let main: LRScheduler;
  switch (config.schedule) {
    case 'cosine':
      main = new CosineAnnealingLR(optimizer, { tMax: Math.max(1, afterWarmup), etaMin: config['min-lr'] });
      break;
    case 'step':
      main = new StepLR(optimizer, { stepSize: config['step-size']! * stepsPerEpoch, gamma: config.gamma });
      break;
    case 'multistep': {
      const late = config.milestones!.filter((m) => m <= warmup);
      if (late.length > 0) throw new UserError(`milestones: ${late.join(', ')} fall within the ${warmup} warm-up epochs; milestones count epochs from the start of the run`);
      main = new MultiStepLR(optimizer, { milestones: config.milestones!.map((m) => (m - warmup) * stepsPerEpoch), gamma: config.gamma });
      break;
    }
  }
  const scheduler = warmup > 0 ? new LinearWarmup(optimizer, { epochs: warmup * stepsPerEpoch, startFactor: WARMUP_START_FACTOR, then: main }) : main;
  return { scheduler, unit: 'step' };
}
