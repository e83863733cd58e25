import { extname } from 'node:path';
import { z } from 'zod';
import type { Device, Tensor } from '../engine/index.js';
import { dispose } from '../engine/index.js';
import { StateDictError, type LoadReport } from '../nn/index.js';
import { openFileSource } from '../nn/bytesource.js';
import { readSafetensorsHeader, writeSafetensors } from '../nn/safetensors.js';
import { loadStateDict, TORCH_EXTENSIONS } from '../nn/weights.js';
import { UserError } from '../util/errors.js';
import { fsUserError } from '../util/fs.js';
import { STCNET_VERSION } from './version.js';
import type { ZooModel } from './base.js';
import { createModel, modelEntry, isModelName, type AnyModelOptions, type ModelName } from './registry.js';
import { inferFrames, inferWidthMultiplier } from './infer.js';

/**
 * Checkpoints that describe themselves: a safetensors file whose metadata holds the architecture,
 * every option that built it, the class names, the preprocessing and the stcnet version, so a
 * model comes back from the file alone. Metadata values are strings (the format's rule); `arch`,
 * `frames` and `classes` stay readable by any safetensors tool (`classes` as a JSON array).
 */

/** How clips were made for this model; eval and predict must make them the same way. */
export interface Preprocessing {
  /** Frames per clip. */
  frames: number;
  /** Frame step within a clip. */
  stride: number;
  /** Crop height and width. */
  size: number;
  /** Per-channel mean and standard deviation (on 0–1 pixel values). */
  mean: number[];
  std: number[];
  /** The short side videos were decoded at, and the frame rate they were resampled to, if any. */
  shortSide?: number;
  fps?: number;
}

/** The parsed metadata of a stcnet checkpoint. */
export interface CheckpointMeta {
  arch: ModelName;
  /** Every option that built the model (`createModel(arch, options)` rebuilds it); `{}` in old files. */
  options: AnyModelOptions;
  classes?: string[];
  preprocessing?: Preprocessing;
  /** The stcnet version that wrote the file (absent in files written before checkpoints carried it). */
  version?: string;
  /** Tensors in the file that are not the model's (optimizer state, ...), by name. */
  extraTensors: string[];
  /** Every other metadata entry, as written (`extra` of saveModelCheckpoint, optimizer state, ...). */
  extra: Record<string, string>;
}

export interface SaveModelCheckpointOptions {
  classes?: string[];
  preprocessing?: Preprocessing;
  /** More metadata entries (string values); the reserved keys below are refused. */
  extra?: Record<string, string>;
  /** More tensors to store beside the model's (e.g. packOptimizerState's); names must not be the model's. */
  extraTensors?: Map<string, Tensor>;
}

/** Metadata keys this module owns. */
const RESERVED = ['arch', 'frames', 'classes', 'options', 'preprocessing', 'stcnet_version', 'extra_tensors', 'format'] as const;

const positiveInt = z.number().int().positive();
const reductionSchema = z.union([positiveInt, z.strictObject({ tcb: positiveInt.optional(), scb: positiveInt.optional() })]);
const optionsSchema = z.strictObject({
  numClasses: positiveInt.optional(),
  frames: positiveInt.optional(),
  inChannels: positiveInt.optional(),
  conv1TemporalSize: positiveInt.optional(),
  conv1TemporalStride: positiveInt.optional(),
  noMaxPool: z.boolean().optional(),
  widthMultiplier: z.number().positive().optional(),
  dropout: z.number().min(0).lt(1).optional(),
  shortcut: z.enum(['A', 'B']).optional(),
  stcStages: z.array(z.number().int().min(1).max(4)).optional(),
  stcPlacement: z.enum(['block', 'stage']).optional(),
  reduction: reductionSchema.optional(),
  cardinality: positiveInt.optional(),
  stemChannels: positiveInt.optional(),
});
const preprocessingSchema = z.strictObject({
  frames: positiveInt,
  stride: positiveInt,
  size: positiveInt,
  mean: z.array(z.number()).min(1),
  std: z.array(z.number().positive()).min(1),
  shortSide: positiveInt.optional(),
  fps: z.number().positive().optional(),
});
const classesSchema = z.array(z.string()).min(1);
const namesSchema = z.array(z.string());

function describeIssue(error: z.ZodError): string {
  const issue = error.issues[0]!;
  const path = issue.path.length > 0 ? ` at ${issue.path.map(String).join('.')}` : '';
  return `${issue.message}${path}`;
}

/** Parses one JSON metadata field with its schema; anything wrong is a UserError naming file and field. */
function parseField<T>(file: string, field: string, text: string, schema: z.ZodType<T>): T {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new UserError(`${file}: checkpoint metadata "${field}" is not valid JSON (${(error as Error).message})`);
  }
  const result = schema.safeParse(json);
  if (!result.success) throw new UserError(`${file}: checkpoint metadata "${field}" is malformed: ${describeIssue(result.error)}`);
  return result.data;
}

function readMetadata(file: string): Record<string, string> {
  let source;
  try {
    source = openFileSource(file);
  } catch (error) {
    throw fsUserError(error, file);
  }
  try {
    return readSafetensorsHeader(source).metadata;
  } finally {
    source.close();
  }
}

/** Checkpoint metadata from parsed safetensors metadata; null when it has no `arch` (a plain state dict). */
export function parseCheckpointMeta(file: string, metadata: Record<string, string>): CheckpointMeta | null {
  const arch = metadata.arch;
  if (arch === undefined) return null;
  if (!isModelName(arch)) {
    try {
      modelEntry(arch);
    } catch (error) {
      throw new UserError(`${file}: checkpoint metadata "arch" is malformed: ${(error as Error).message}`);
    }
  }
  const options = metadata.options === undefined ? {} : parseField(file, 'options', metadata.options, optionsSchema);
  if (metadata.frames !== undefined) {
    const frames = parseField(file, 'frames', metadata.frames, positiveInt);
    if (options.frames !== undefined && options.frames !== frames) {
      throw new UserError(`${file}: checkpoint metadata "frames" (${frames}) disagrees with "options" (frames ${options.frames})`);
    }
    if (modelEntry(arch).dims === 3) options.frames = frames;
  }
  const unknown = Object.keys(options).filter((key) => !modelEntry(arch).options.includes(key));
  if (unknown.length > 0) throw new UserError(`${file}: checkpoint metadata "options" has ${unknown.join(', ')}, which ${arch} does not take`);
  const meta: CheckpointMeta = {
    arch: arch as ModelName,
    options,
    extraTensors: metadata.extra_tensors === undefined ? [] : parseField(file, 'extra_tensors', metadata.extra_tensors, namesSchema),
    extra: Object.fromEntries(Object.entries(metadata).filter(([key]) => !(RESERVED as readonly string[]).includes(key))),
  };
  if (metadata.classes !== undefined) meta.classes = parseField(file, 'classes', metadata.classes, classesSchema);
  if (metadata.preprocessing !== undefined) meta.preprocessing = parseField(file, 'preprocessing', metadata.preprocessing, preprocessingSchema);
  if (metadata.stcnet_version !== undefined) meta.version = metadata.stcnet_version;
  if (meta.classes && options.numClasses !== undefined && meta.classes.length !== options.numClasses) {
    throw new UserError(`${file}: checkpoint metadata "classes" names ${meta.classes.length} classes but the model has ${options.numClasses}`);
  }
  return meta;
}

/**
 * The checkpoint metadata of a safetensors file (reads the header only), validated; null for a
 * plain state-dict file without it (no `arch`). A damaged field is a UserError naming the file and the field.
 */
export function readCheckpointMeta(file: string): CheckpointMeta | null {
  if (extname(file).toLowerCase() !== '.safetensors') {
    throw new UserError(`${file}: checkpoint metadata lives in .safetensors files; this is "${extname(file)}"`);
  }
  return parseCheckpointMeta(file, readMetadata(file));
}

/** The metadata entries saveModelCheckpoint writes for a model. */
export function checkpointMetadata(model: ZooModel, options: SaveModelCheckpointOptions = {}): Record<string, string> {
  const modelOptions = model.options;
  const metadata: Record<string, string> = { format: 'stcnet-checkpoint', arch: model.arch };
  if (model.input.dims === 3 && typeof modelOptions.frames === 'number') metadata.frames = String(modelOptions.frames);
  metadata.options = JSON.stringify(modelOptions);
  if (options.classes !== undefined) {
    const classes = classesSchema.safeParse(options.classes);
    if (!classes.success) throw new UserError(`saveModelCheckpoint: classes must be a non-empty list of names (${describeIssue(classes.error)})`);
    if (options.classes.length !== model.numClasses) {
      throw new UserError(`saveModelCheckpoint: ${options.classes.length} class names for a model with ${model.numClasses} outputs`);
    }
    metadata.classes = JSON.stringify(options.classes);
  }
  if (options.preprocessing !== undefined) {
    const checked = preprocessingSchema.safeParse(options.preprocessing);
    if (!checked.success) throw new UserError(`saveModelCheckpoint: bad preprocessing (${describeIssue(checked.error)})`);
    metadata.preprocessing = JSON.stringify(checked.data);
  }
  metadata.stcnet_version = STCNET_VERSION;
  if (options.extraTensors && options.extraTensors.size > 0) metadata.extra_tensors = JSON.stringify([...options.extraTensors.keys()]);
  for (const [key, value] of Object.entries(options.extra ?? {})) {
    if ((RESERVED as readonly string[]).includes(key)) throw new UserError(`saveModelCheckpoint: extra metadata key "${key}" is reserved (${RESERVED.join(', ')})`);
    if (typeof value !== 'string') throw new UserError(`saveModelCheckpoint: extra metadata "${key}" must be a string`);
    metadata[key] = value;
  }
  return metadata;
}

/** Writes the model's state dict with self-describing metadata, atomically (temporary file, then rename). */
export function saveModelCheckpoint(file: string, model: ZooModel, options: SaveModelCheckpointOptions = {}): void {
  const metadata = checkpointMetadata(model, options);
  const tensors = model.stateDict();
  for (const [name, tensor] of options.extraTensors ?? []) {
    if (tensors.has(name)) throw new UserError(`saveModelCheckpoint: extra tensor "${name}" has the name of a model tensor`);
    tensors.set(name, tensor);
  }
  writeSafetensors(file, tensors, metadata);
}

export interface LoadModelCheckpointOptions extends AnyModelOptions {
  /** The architecture: needed for PyTorch files and plain state dicts; checked against the metadata otherwise. */
  arch?: string;
  /** A different class count: the checkpoint's classifier is loaded, then replaced by a fresh one (fine-tuning). */
  numClasses?: number;
  /** Refuse missing, unexpected or mis-shaped keys (default true). */
  strict?: boolean;
  device?: Device;
  /** Return the extra tensors (optimizer state) instead of freeing them. */
  keepExtraTensors?: boolean;
  /** For PyTorch files: a dotted path to the state dict inside (found automatically when omitted). */
  key?: string;
  /** Removed from every key that has it (default: `module.` when every key has it). */
  stripPrefix?: string;
}

export interface LoadedCheckpoint {
  model: ZooModel;
  /** The file's metadata; for PyTorch files and plain state dicts, what the model was built from. */
  meta: CheckpointMeta;
  report: LoadReport;
  /** True when numClasses differed from the checkpoint's and the classifier was replaced. */
  headReset: boolean;
  /** With keepExtraTensors: the file's other tensors (the caller disposes them). */
  extraTensors?: Map<string, Tensor>;
}

/**
 * Builds a model from a checkpoint and loads its weights. A stcnet checkpoint needs nothing else;
 * a PyTorch file (.pth/.pt) or a plain safetensors state dict needs `arch` (and any option its
 * shapes need beyond what the weights tell: `frames` and `widthMultiplier` are inferred when omitted).
 */
export function loadModelCheckpoint(file: string, options: LoadModelCheckpointOptions = {}): LoadedCheckpoint {
  const { arch: givenArch, numClasses, strict = true, device, keepExtraTensors = false, key, stripPrefix, ...overrides } = options;
  delete (overrides as AnyModelOptions).init;
  const extension = extname(file).toLowerCase();
  if (extension !== '.safetensors' && !TORCH_EXTENSIONS.has(extension)) {
    throw new UserError(`${file}: unknown checkpoint format "${extension}"; expected .safetensors, .pt or .pth`);
  }
  let meta = extension === '.safetensors' ? readCheckpointMeta(file) : null;
  if (meta && givenArch !== undefined && givenArch !== meta.arch) {
    throw new UserError(`${file}: the checkpoint is a ${meta.arch}, not ${givenArch}`);
  }
  if (!meta && givenArch === undefined) {
    throw new UserError(`${file}: ${extension === '.safetensors' ? 'a plain state dict without stcnet metadata' : 'a PyTorch checkpoint'} ` +
      'does not say which model it is; pass its architecture (arch, or --arch on the command line)');
  }
  const dict = loadStateDict(file, { key, stripPrefix });
  const extra = new Map<string, Tensor>();
  for (const name of meta?.extraTensors ?? []) {
    const tensor = dict.get(name);
    if (tensor) {
      extra.set(name, tensor);
      dict.delete(name);
    }
  }
  let model: ZooModel | undefined;
  try {
    if (!meta) meta = describeStateDict(modelEntry(givenArch!).name, dict, overrides);
    const fc = dict.get('fc.weight');
    const built: AnyModelOptions = { ...meta.options, ...overrides, init: false };
    if (built.numClasses === undefined && fc && fc.rank === 2) built.numClasses = fc.shape[0];
    model = createModel(meta.arch, built);
    let report: LoadReport;
    try {
      report = model.loadStateDict(dict, { strict });
    } catch (error) {
      if (error instanceof StateDictError) {
        throw new UserError(`${file} does not fit ${meta.arch} (${describeOptions(model)}):\n${error.message.split('\n').slice(1).join('\n')}`);
      }
      throw error;
    }
    const headReset = numClasses !== undefined && numClasses !== model.numClasses;
    if (headReset) model.resetClassifier(numClasses);
    if (device !== undefined) model.to(device);
    if (!keepExtraTensors) dispose([...extra.values()]);
    // A replaced head has no names for its classes: the file's describe the old one.
    const { classes, ...rest } = meta;
    const described: CheckpointMeta = { ...rest, ...(classes && !headReset ? { classes } : {}), options: model.options };
    return { model, meta: described, report, headReset, ...(keepExtraTensors ? { extraTensors: extra } : {}) };
  } catch (error) {
    model?.dispose();
    dispose([...extra.values()]);
    throw error;
  } finally {
    dispose([...dict.values()]);
  }
}

/** Metadata for a file without it: the given options, plus what the weights' shapes tell. */
function describeStateDict(arch: ModelName, dict: Map<string, Tensor>, given: AnyModelOptions): CheckpointMeta {
  const entry = modelEntry(arch);
  const options: AnyModelOptions = { ...given };
  if (entry.options.includes('frames') && options.frames === undefined && entry.stc) {
    const frames = inferFrames(dict);
    if (frames !== undefined) options.frames = frames;
  }
  if (entry.options.includes('widthMultiplier') && options.widthMultiplier === undefined) {
    const width = inferWidthMultiplier(dict, entry.family === 'resnext3d');
    if (width !== undefined && width !== 1) options.widthMultiplier = width;
  }
  return { arch, options, extraTensors: [], extra: {} };
}

function describeOptions(model: ZooModel): string {
  return Object.entries(model.options).map(([key, value]) => `${key} ${JSON.stringify(value)}`).join(', ');
}
