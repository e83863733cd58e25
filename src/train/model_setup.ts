import { closest } from 'fastest-levenshtein';
import { manualSeed, type Tensor } from '../engine/index.js';
import { BatchNorm1d, BatchNorm2d, BatchNorm3d, type Module } from '../nn/index.js';
import { createModel, modelEntry, type AnyModelOptions } from '../models/registry.js';
import { loadModelCheckpoint } from '../models/checkpoint.js';
import type { ZooModel } from '../models/base.js';
import { SGD } from '../optim/sgd.js';
import { AdamW } from '../optim/adamw.js';
import type { Optimizer } from '../optim/optimizer.js';
import { UserError } from '../util/errors.js';
import type { TrainConfig } from './config.js';

/**
 * The model of a run: built from its name and options (weights seeded), or from `--init` (an
 * stcnet checkpoint, Hara et al.'s `.pth`, torchvision weights) with the classifier replaced when
 * the class count differs; frozen stages; parameter groups for the optimizer (`--fc-lr`).
 */

/** The model options the config sets (only those given, so each model's defaults hold otherwise). */
export function modelOptions(config: TrainConfig, numClasses: number): AnyModelOptions {
  const entry = modelEntry(config.model);
  const options: AnyModelOptions = { numClasses };
  if (entry.options.includes('frames')) options.frames = config.frames;
  const optional: [keyof TrainConfig, keyof AnyModelOptions][] = [
    ['width-multiplier', 'widthMultiplier'], ['reduction', 'reduction'], ['dropout', 'dropout'], ['shortcut', 'shortcut'],
  ];
  for (const [key, option] of optional) {
    if (config[key] === undefined) continue;
    if (!entry.options.includes(option)) {
      throw new UserError(`${key}: ${config.model} has no such option (it takes ${entry.options.filter((o) => o !== 'init').join(', ')})`);
    }
    (options as Record<string, unknown>)[option] = config[key];
  }
  return options;
}

export interface BuiltModel {
  model: ZooModel;
  /** Lines for the log (what --init loaded, what was replaced or frozen). */
  notes: string[];
  /** Modules kept in eval mode during training (frozen stages: their BN statistics stay fixed). */
  frozenModules: Module[];
}

/**
 * `resumeFrom`: a training-state file; the model is rebuilt from its metadata (arch and every
 * option, as the run built it, whatever `--init` it started from), so a resume needs neither the
 * init file nor options that only the init checkpoint knew.
 */
export function buildModel(config: TrainConfig, numClasses: number, resumeFrom?: string): BuiltModel {
  const options = modelOptions(config, numClasses);
  const notes: string[] = [];
  // The same seed gives the same initial weights (and the new classifier of a fine-tuning run).
  manualSeed(config.seed);
  let model: ZooModel;
  if (resumeFrom !== undefined) {
    model = loadModelCheckpoint(resumeFrom, { arch: config.model }).model;
    if (model.numClasses !== numClasses) {
      const found = model.numClasses;
      model.dispose();
      throw new UserError(`--resume: ${resumeFrom} has ${found} classes, the dataset now ${numClasses}; the data changed since the run started`);
    }
  } else if (config.init !== undefined) {
    const { numClasses: wanted, ...shapeOptions } = options;
    const loaded = loadModelCheckpoint(config.init, { ...shapeOptions, arch: config.model, numClasses: wanted });
    model = loaded.model;
    notes.push(`init: loaded ${config.init} (${loaded.meta.arch})`);
    if (loaded.headReset) notes.push(`init: the checkpoint's classifier does not have ${wanted} classes; replaced it with a new one (${model.numFeatures} → ${wanted})`);
  } else {
    model = createModel(config.model, options);
  }
  try {
    const frozenModules = freeze(model, config.freeze ?? []);
    if (frozenModules.length > 0) {
      const frozen = model.parameters().filter((p) => !p.requiresGrad).reduce((n, p) => n + p.numel, 0);
      const withBn = config.freeze!.includes('conv1') && !config.freeze!.includes('bn1') && [...model.namedChildren()].some(([name]) => name === 'bn1');
      notes.push(`freeze: ${config.freeze!.join(', ')}${withBn ? ' (conv1 with its bn1)' : ''} (${frozen.toLocaleString('en-US')} parameters, BN statistics fixed)`);
    }
    return { model, notes, frozenModules };
  } catch (error) {
    model.dispose();
    throw error;
  }
}

/**
 * Freezes the named submodules (`conv1`, `layer1`, `layer2.0`, ...): their parameters stop
 * requiring gradients, and they are returned so the trainer keeps them in eval mode (a frozen
 * BatchNorm also keeps its running statistics, as in Hara et al.'s fine-tuning).
 */
export function freeze(model: ZooModel, names: string[]): Module[] {
  const modules = new Map(model.namedModules());
  const frozen: Module[] = [];
  // The stem of Hara's and torchvision's 2D ResNets is conv1 + bn1: freezing conv1 freezes its BN too.
  const expanded = names.flatMap((name) => (name === 'conv1' && modules.has('bn1') && !names.includes('bn1') ? [name, 'bn1'] : [name]));
  for (const name of expanded) {
    const module = modules.get(name);
    if (!module || name === '') {
      const known = [...modules.keys()].filter((key) => key !== '' && !key.includes('.'));
      throw new UserError(`freeze: ${model.arch} has no module "${name}" (did you mean "${closest(name, [...modules.keys()].filter((k) => k))}"?); top-level modules: ${known.join(', ')}`);
    }
    for (const parameter of module.parameters()) parameter.requiresGrad = false;
    for (const [, inner] of module.namedModules()) frozen.push(inner);
  }
  if (model.parameters().every((p) => !p.requiresGrad)) throw new UserError(`freeze: ${names.join(', ')} freezes every parameter of ${model.arch}; nothing would train`);
  return frozen;
}

/** Puts the model in training mode except the frozen modules' normalisation layers. */
export function setTrainingMode(model: Module, frozen: Module[]): void {
  model.train();
  for (const module of frozen) {
    if (module instanceof BatchNorm1d || module instanceof BatchNorm2d || module instanceof BatchNorm3d) module.training = false;
  }
}

/** SGD (momentum, Hara et al.'s weight decay) or AdamW over the trainable parameters; `fc-lr` gives the classifier its own group. */
export function buildOptimizer(config: TrainConfig, model: ZooModel): Optimizer {
  const trainable = [...model.namedParameters()].filter(([, p]) => p.requiresGrad);
  const head = new Set(model.fc.parameters());
  let groups: { params: Tensor[]; lr?: number }[];
  if (config['fc-lr'] !== undefined) {
    const body = trainable.filter(([, p]) => !head.has(p)).map(([, p]) => p);
    const fc = trainable.filter(([, p]) => head.has(p)).map(([, p]) => p);
    if (fc.length === 0) throw new UserError('fc-lr: the classifier (fc) is frozen, so it has no learning rate to set');
    groups = body.length > 0 ? [{ params: body }, { params: fc, lr: config['fc-lr'] }] : [{ params: fc, lr: config['fc-lr'] }];
  } else {
    groups = [{ params: trainable.map(([, p]) => p) }];
  }
  const weightDecay = config['weight-decay']!;
  return config.optimizer === 'sgd'
    ? new SGD(groups, { lr: config.lr, momentum: config.momentum, weightDecay, nesterov: config.nesterov })
    : new AdamW(groups, { lr: config.lr, weightDecay });
}
