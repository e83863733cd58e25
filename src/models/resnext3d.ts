import { ResNet3d, RESNEXT3D_DEPTHS, type ResNet3dOptions, type StcOptions, type ResNeXtOptions } from './resnet3d.js';

/**
 * Hara et al.'s 3D ResNeXt: bottleneck of expansion 2, cardinality 32, stage widths
 * 128/256/512/1024, grouped conv2 of cardinality·⌊planes/32⌋ channels, conv1 of 64 channels.
 */
export function resnext3d(depth: keyof typeof RESNEXT3D_DEPTHS, options: ResNet3dOptions & StcOptions & ResNeXtOptions = {}, stc = false): ResNet3d {
  const name = `${stc ? 'stc_' : ''}resnext3d_${depth}`;
  return new ResNet3d(name, { name, block: 'resnext', layers: RESNEXT3D_DEPTHS[depth], stc }, options);
}

export const resnext3d_50 = (options?: ResNet3dOptions & ResNeXtOptions) => resnext3d(50, options);
export const resnext3d_101 = (options?: ResNet3dOptions & ResNeXtOptions) => resnext3d(101, options);
export const resnext3d_152 = (options?: ResNet3dOptions & ResNeXtOptions) => resnext3d(152, options);
export const stc_resnext3d_50 = (options?: ResNet3dOptions & StcOptions & ResNeXtOptions) => resnext3d(50, options, true);
export const stc_resnext3d_101 = (options?: ResNet3dOptions & StcOptions & ResNeXtOptions) => resnext3d(101, options, true);
export const stc_resnext3d_152 = (options?: ResNet3dOptions & StcOptions & ResNeXtOptions) => resnext3d(152, options, true);
