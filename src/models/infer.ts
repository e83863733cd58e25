import type { Tensor } from '../engine/index.js';
import { temporalSizes, type ResNet3dOptions } from './resnet3d.js';

/**
 * Options a state dict's shapes reveal, for files that do not say how their model was built
 * (PyTorch checkpoints, plain state dicts). Guesses: the strict load that follows checks them.
 */

/** The clip length an STC state dict was made for, from an SCB's input width (C·T), if it has one. */
export function inferFrames(dict: Map<string, Tensor>, options: Pick<ResNet3dOptions, 'conv1TemporalSize' | 'conv1TemporalStride' | 'noMaxPool'> = {}): number | undefined {
  for (const [key, scb] of dict) {
    const match = /^layer(\d)\.\d+\.stc\.scb\.fc1\.weight$/.exec(key);
    const tcb = match && dict.get(key.replace('.scb.', '.tcb.'));
    if (!match || !tcb || tcb.shape[1]! < 1) continue;
    const t = scb.shape[1]! / tcb.shape[1]!;
    const stage = Number(match[1]);
    // The largest clip length giving T at that stage (T halves per stage, so several clip lengths share one T).
    let found: number | undefined;
    for (let frames = 1; frames <= 1024; frames++) if (temporalSizes(frames, options)[stage] === t) found = frames;
    return found;
  }
  return undefined;
}

/** The width multiplier of a Hara-style 3D ResNet/ResNeXt state dict, from its stem (ResNet) or first stage (ResNeXt). */
export function inferWidthMultiplier(dict: Map<string, Tensor>, resnext: boolean): number | undefined {
  if (resnext) {
    const conv3 = dict.get('layer1.0.conv3.weight');
    return conv3 && conv3.rank >= 1 ? conv3.shape[0]! / 2 / 128 : undefined;
  }
  const conv1 = dict.get('conv1.weight');
  return conv1 && conv1.rank >= 1 ? conv1.shape[0]! / 64 : undefined;
}
