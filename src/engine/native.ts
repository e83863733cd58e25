import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A libtorch tensor handle: a number naming a slot in the addon's table (see native/src/handle.h). */
export type Handle = number & { readonly __handle: unique symbol };

/** The addon's surface, as native/src/*.cc exports it. */
export interface NativeAddon {
  dispose(handle: Handle): void;
  disposeMany(handles: Handle[], count?: number): void;
  recount(handle: Handle): void;
  memory(): { tensors: number; bytes: number };
  shape(handle: Handle): number[];
  strides(handle: Handle): number[];
  dtype(handle: Handle): string;
  device(handle: Handle): string;
  describe(handle: Handle): string;
  item(handle: Handle): number | boolean;
  sameStorage(a: Handle, b: Handle): boolean;
  isContiguous(handle: Handle): boolean;
  requiresGrad(handle: Handle): boolean;
  setRequiresGrad(handle: Handle, value: boolean): void;
  grad(handle: Handle): Handle | null;
  setGrad(handle: Handle, grad: Handle | null): void;
  isLeaf(handle: Handle): boolean;
  backward(handle: Handle, grad?: Handle | null, retainGraph?: boolean): void;
  gradEnabled(): boolean;
  setGradEnabled(enabled: boolean): void;
  setNumThreads(threads: number): void;
  numThreads(): number;
  manualSeed(seed: number): void;
  cudaDeviceCount(): number;
  buildInfo(): { torchVersion: string; mkldnn: boolean; cuda: boolean; parallelInfo: string };
  findOperator(name: string, overload: string): number;
  operatorSchema(id: number): string;
  operatorTypes(id: number): { arguments: string[]; returns: string[] };
  call(id: number, discardResult: boolean, ...args: unknown[]): unknown;
  fromBuffer(data: ArrayBufferView | ArrayBuffer, shape: readonly number[], dtype: string): Handle;
  toBuffer(handle: Handle): ArrayBuffer;
}

function findAddon(): string {
  const here = dirname(fileURLToPath(import.meta.url));
  // src/engine (ts-node style) or dist/src/engine (compiled): walk up to the package root.
  for (let dir = here, i = 0; i < 5; i++, dir = dirname(dir)) {
    const candidate = join(dir, 'native', 'build', 'Release', 'stcnet_torch.node');
    if (existsSync(candidate)) return candidate;
  }
  throw new Error('stcnet: the native addon is not built (native/build/Release/stcnet_torch.node); run `npm run build:native` or scripts/setup.sh');
}

const require = createRequire(import.meta.url);
export const native: NativeAddon = require(findAddon()) as NativeAddon;
