import { noGrad, tidy } from '../engine/index.js';
import type { ZooModel } from '../models/base.js';
import { createModel, modelEntry } from '../models/registry.js';
import { UserError } from '../util/errors.js';

/**
 * A 2D ResNet trained as its 3D twin on one-frame clips, and back.
 *
 * Hara et al.'s 3D ResNet-D and torchvision's 2D ResNet-D share every name and every spatial
 * shape (stem 7×7 stride 2, max-pool 3 stride 2, the same blocks and strides, 1×1 shortcuts, v1.5
 * bottleneck stride). On a clip of ONE frame every 3D convolution pads time with ⌊kT/2⌋ zeros on
 * both sides, so only its middle time slice ever meets data; max-pooling pads with −∞ and
 * BatchNorm3d over (N, T=1, H, W) is BatchNorm2d over (N, H, W). The 3D network on 1-frame clips is
 * therefore exactly the 2D network whose kernels are those middle slices, and its other slices get
 * no gradient (only weight decay). `stcnet train-2d` uses this to train a teacher with `stcnet
 * train`'s own trainer (run folder, resume, plots, checkpoints) and then takes the middle slices.
 */

/** The 3D twin of a 2D teacher: resnet2d_18 → resnet3d_18 (same depth and block). */
export function twin3dArch(arch2d: string): string {
  const entry = modelEntry(arch2d);
  if (entry.family !== 'resnet2d') {
    throw new UserError(`model: ${arch2d} is not a 2D teacher; stcnet train-2d trains resnet2d_18, resnet2d_34 or resnet2d_50 (video models: stcnet train)`);
  }
  return arch2d.replace('resnet2d_', 'resnet3d_');
}

/**
 * The 2D ResNet whose kernels are the middle time slices of a 3D twin trained on one-frame clips
 * (any other clip length is refused: the other slices would have mattered).
 */
export function deflateTwin(model3d: ZooModel): ZooModel {
  const arch3d = model3d.arch;
  const match = /^resnet3d_(18|34|50)$/.exec(arch3d);
  if (!match) throw new UserError(`deflate: ${arch3d} has no 2D twin (resnet3d_18, resnet3d_34, resnet3d_50 do)`);
  const options = model3d.options;
  if (options.frames !== 1) throw new UserError(`deflate: ${arch3d} was built for ${options.frames}-frame clips; only a one-frame model is a 2D network`);
  if ((options.shortcut ?? 'B') !== 'B' || options.noMaxPool || (options.conv1TemporalStride ?? 1) !== 1) {
    throw new UserError(`deflate: ${arch3d} has options a torchvision ResNet lacks (shortcut ${options.shortcut}, noMaxPool ${options.noMaxPool})`);
  }
  const model2d = createModel(`resnet2d_${match[1]}`, {
    numClasses: model3d.numClasses, inChannels: options.inChannels, dropout: options.dropout,
    ...(options.widthMultiplier !== undefined && options.widthMultiplier !== 1 ? { widthMultiplier: options.widthMultiplier } : {}),
    init: false,
  });
  try {
    const source = model3d.stateDict();
    const target = model2d.stateDict();
    const unmatched = [...target.keys()].filter((name) => !source.has(name));
    if (unmatched.length > 0) throw new UserError(`deflate: ${arch3d} has no ${unmatched.slice(0, 3).join(', ')}`);
    noGrad(() => {
      for (const [name, dst] of target) {
        const src = source.get(name)!;
        if (src.rank === 5) {
          const middle = tidy(() => src.select(2, Math.floor(src.shape[2]! / 2)).contiguous());
          dst.copy_(middle);
          middle.dispose();
        } else {
          dst.copy_(src);
        }
      }
    });
    return model2d;
  } catch (error) {
    model2d.dispose();
    throw error;
  }
}
