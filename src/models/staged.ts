import type { Tensor } from '../engine/index.js';
import type { Module } from '../nn/index.js';
import { ZooModel } from './base.js';
import { step } from './blocks.js';
import { child, type Tracer } from './flops.js';

/**
 * The layout Hara et al.'s 3D ResNets and torchvision's 2D ResNets share: conv1 → bn1 → ReLU →
 * [maxpool] → layer1..layer4 → avgpool → flatten (→ fc, in ZooModel). Subclasses build the parts.
 */
export abstract class StagedResNet extends ZooModel {
  abstract readonly conv1: Module;
  abstract readonly bn1: Module;
  abstract readonly maxpool: Module | null;

  protected forwardStem(x: Tensor): Tensor {
    let out = this.conv1.forward(x);
    out = step(out, (h) => this.bn1.forward(h)).relu_();
    const maxpool = this.maxpool;
    return maxpool ? step(out, (h) => maxpool.forward(h)) : out;
  }

  trace(tracer: Tracer, name: string, shape: readonly number[]): number[] {
    let s = tracer.leaf(child(name, 'conv1'), this.conv1, shape);
    s = tracer.leaf(child(name, 'bn1'), this.bn1, s);
    if (this.maxpool) s = tracer.leaf(child(name, 'maxpool'), this.maxpool, s);
    for (const key of ['layer1', 'layer2', 'layer3', 'layer4'] as const) s = tracer.module(child(name, key), this[key], s);
    s = tracer.leaf(child(name, 'avgpool'), this.avgpool, s);
    return this.traceHead(tracer, [s[0]!, s[1]!]);
  }
}
