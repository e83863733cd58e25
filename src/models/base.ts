import { tidy, type Tensor } from '../engine/index.js';
import { Module, Linear, Dropout, init, type Sequential } from '../nn/index.js';
import { ModelInputError, shapeText } from './errors.js';
import { trace, type Tracer, type TraceRow } from './flops.js';
import type { AnyModelOptions } from './registry.js';

/** What a model takes: (N, C, T, H, W) video or (N, C, H, W) images; STC models fix T. */
export interface InputSpec {
  dims: 2 | 3;
  channels: number;
  /** The only clip length accepted (STC models); undefined: any. */
  frames?: number;
  /** The clip length the model was configured for (default for costs). */
  defaultFrames?: number;
}

/**
 * The common surface of every model in the zoo: `forward(x)` gives logits N×classes;
 * `forwardFeatures(x)` the pooled features N×numFeatures (before dropout and `fc`);
 * `forwardHead(features)`; `resetClassifier(n)`; `trace(shape)` for output shapes and MACs.
 */
export abstract class ZooModel extends Module {
  abstract readonly name: string;
  abstract readonly input: InputSpec;
  fc!: Linear;
  dropout: Dropout | null = null;
  /** What the constructor resolved (defaults filled in); see `options`. */
  #builtOptions: Readonly<Record<string, unknown>> = {};

  /** The registry name, as `createModel` takes it (`stc_resnet3d_18`). */
  get arch(): string {
    return this.name;
  }

  /**
   * Every option that built this model, defaults resolved (`init` aside, which changes no shape):
   * `createModel(model.arch, model.options)` builds the same network. `numClasses` follows
   * `resetClassifier`.
   */
  get options(): AnyModelOptions {
    return { ...structuredClone(this.#builtOptions), numClasses: this.numClasses } as AnyModelOptions;
  }

  /** Called by each constructor with the options it resolved. */
  protected recordOptions(options: Record<string, unknown>): void {
    const defined = Object.entries(options).filter(([, value]) => value !== undefined);
    this.#builtOptions = Object.freeze(Object.fromEntries(defined));
  }

  get numClasses(): number {
    return this.fc.outFeatures;
  }

  get numFeatures(): number {
    return this.fc.inFeatures;
  }

  /** The backbone's residual stages. */
  abstract readonly layer1: Sequential;
  abstract readonly layer2: Sequential;
  abstract readonly layer3: Sequential;
  abstract readonly layer4: Sequential;
  /** Global average pooling of the last stage. */
  abstract readonly avgpool: Module;
  /** Everything before layer1 on the caller's `x` (which it must not free). */
  protected abstract forwardStem(x: Tensor): Tensor;

  /** The pooled features N×numFeatures; runs the backbone without the classifier. */
  forwardFeatures(x: Tensor): Tensor {
    this.checkInput(x);
    return tidy(() => this.pooled(this.runStages(this.forwardStem(x), 0, 4, null), null));
  }

  /**
   * The output of stage `stage` (1–4: layer1..layer4), N×C×T'×H'×W', the activations that Grad-CAM
   * explains; `forwardFromStage(that, stage)` finishes the backbone from it.
   */
  forwardToStage(x: Tensor, stage: number): Tensor {
    checkStage(stage);
    this.checkInput(x);
    return tidy(() => this.runStages(this.forwardStem(x), 0, stage, null));
  }

  /** The pooled features from the output `h` of stage `stage` (1–4); `h` stays the caller's. */
  forwardFromStage(h: Tensor, stage: number): Tensor {
    checkStage(stage);
    return tidy(() => this.pooled(this.runStages(h, stage, 4, h), h));
  }

  /** Stages [from, to) on `h`, freeing each intermediate as soon as the next block has it (never `keep`). */
  private runStages(h: Tensor, from: number, to: number, keep: Tensor | null): Tensor {
    let out = h;
    for (const stage of [this.layer1, this.layer2, this.layer3, this.layer4].slice(from, to)) {
      for (const block of stage.layers) {
        const next = block.forward(out);
        if (next !== out && out !== keep) out.dispose();
        out = next;
      }
    }
    return out;
  }

  private pooled(out: Tensor, keep: Tensor | null): Tensor {
    const pooled = this.avgpool.forward(out);
    if (pooled !== out && out !== keep) out.dispose();
    const flat = pooled.flatten(1);
    pooled.dispose();
    return flat;
  }

  /** Same as forwardFeatures (the teachers' `features()` path, without `fc`). */
  features(x: Tensor): Tensor {
    return this.forwardFeatures(x);
  }

  forwardHead(features: Tensor): Tensor {
    if (!this.dropout || this.dropout.p === 0 || !this.training) return this.fc.forward(features);
    const dropped = this.dropout.forward(features);
    const logits = this.fc.forward(dropped);
    dropped.dispose();
    return logits;
  }

  /** Logits N×classes; every tensor made on the way is freed, whoever calls (no tidy() needed). */
  forward(x: Tensor): Tensor {
    return tidy(() => this.forwardHead(this.forwardFeatures(x)));
  }

  /** Replaces `fc` with a freshly initialised Linear for `numClasses` classes (fine-tuning). */
  resetClassifier(numClasses: number): void {
    checkPositiveInt('numClasses', numClasses);
    const old = this.fc;
    this.fc = this.addModule('fc', this.makeClassifier(this.numFeatures, numClasses));
    old.dispose();
  }

  /** The classifier layer; PyTorch's default Linear initialisation unless a model says otherwise. */
  protected makeClassifier(features: number, classes: number): Linear {
    return new Linear(features, classes);
  }

  protected addHead(features: number, classes: number, dropout: number): void {
    if (dropout > 0) this.dropout = this.addModule('dropout', new Dropout(dropout));
    this.fc = this.addModule('fc', this.makeClassifier(features, classes));
  }

  /** Throws a ModelInputError unless x fits `input`. */
  protected checkInput(x: Tensor): void {
    const shape = x.shape;
    const { dims, channels, frames } = this.input;
    const layout = dims === 3 ? 'N×C×T×H×W' : 'N×C×H×W';
    if (shape.length !== dims + 2) throw new ModelInputError(`${this.name}: expected a ${dims + 2}-D input ${layout}, got shape ${shapeText(shape)}`);
    if (shape[1] !== channels) throw new ModelInputError(`${this.name}: expected ${channels} input channels, got ${shape[1]} (input ${shapeText(shape)}, ${layout})`);
    if (frames !== undefined && shape[2] !== frames) {
      throw new ModelInputError(`${this.name}: built for ${frames}-frame clips, got ${shape[2]} frames (input ${shapeText(shape)}); ` +
        `an STC model's SCB width depends on the clip length: build it with frames: ${shape[2]} to take such clips`);
    }
  }

  /** The default input shape for costs: 1×C×frames×112×112 (3-D) or 1×C×224×224 (2-D). */
  defaultInputShape(options: { frames?: number; size?: number } = {}): number[] {
    const { dims, channels } = this.input;
    if (dims === 2) return [1, channels, options.size ?? 224, options.size ?? 224];
    return [1, channels, options.frames ?? this.input.frames ?? this.input.defaultFrames ?? 16, options.size ?? 112, options.size ?? 112];
  }

  /** Per-layer output shapes and MACs for an input shape, without running the network. */
  costs(inputShape: readonly number[] = this.defaultInputShape()): { rows: TraceRow[]; output: number[]; macs: number } {
    return trace(this, inputShape);
  }

  /** Shape flow through the network (Traceable); `costs()` is the public entry. */
  abstract trace(tracer: Tracer, name: string, shape: readonly number[]): number[];

  /** Traces the head: pooled features → [dropout] → fc. */
  protected traceHead(tracer: Tracer, features: number[]): number[] {
    return tracer.leaf('fc', this.fc, features);
  }
}

export function checkPositiveInt(what: string, value: number): void {
  if (!(Number.isInteger(value) && value >= 1)) throw new ModelInputError(`${what} must be a positive integer, got ${String(value)}`);
}

/** Hara's and torchvision's initialisation: Kaiming normal (fan_out, ReLU) for convolutions; BN 1 and 0 (the layers' default). */
export function initConvolutions(model: Module): void {
  for (const [name, parameter] of model.namedParameters()) {
    if (parameter.rank >= 3 && name.endsWith('weight')) init.kaimingNormal_(parameter, { mode: 'fan_out', nonlinearity: 'relu' });
  }
}

/** A backbone stage number, 1–4 (layer1..layer4). */
export function checkStage(stage: number): void {
  if (!(Number.isInteger(stage) && stage >= 1 && stage <= 4)) throw new ModelInputError(`stage must be 1, 2, 3 or 4 (layer1..layer4), got ${stage}`);
}
