import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { UserError } from '../util/errors.js';
import { fsUserError, writeFileAtomic } from '../util/fs.js';
import type { OnnxMetadata, OnnxPreprocessing } from '../onnx/metadata.js';

/**
 * `exportOnnx(checkpoint, out)`: a checkpoint (stcnet's, a run folder, or a PyTorch file of Hara et
 * al.'s / torchvision's with `arch`) to an .onnx file with its classes and preprocessing in the
 * metadata, checked against ONNX Runtime before anything is written, then written atomically.
 * libtorch and onnxruntime-node are loaded inside the call, never at import.
 */

export const DEFAULT_OPSET = 17;
/** The opsets the graph is written for: every operator used is the same from 17 through 21. */
export const OPSETS = [17, 18, 19, 20, 21] as const;
/** The IR version that goes with each opset (onnx/helper.py's table). */
const IR_VERSION: Record<number, number> = { 17: 8, 18: 8, 19: 9, 20: 9, 21: 10 };

export interface ExportOnnxOptions {
  /** The architecture of a PyTorch checkpoint or plain state dict; checked against a stcnet checkpoint. */
  arch?: string;
  /** Clip length, where the checkpoint does not record it (its own must agree). */
  frames?: number;
  /** Crop size, where the checkpoint does not record it. */
  size?: number;
  /** A class-name file, replacing the checkpoint's names. */
  labels?: string;
  /** The decode short side recorded for predict (default: the checkpoint's, else as `stcnet predict` decides). */
  shortSide?: number;
  /** ONNX opset, 17–21 (default 17). */
  opset?: number;
  /** A fixed batch size, or 'dynamic' (default) for a free batch axis. */
  batch?: number | 'dynamic';
  /** Check ONNX Runtime's output against stcnet's before writing (default true). */
  verify?: boolean;
  /** Seed of the random check clip (default 0). */
  seed?: number;
  /** Progress lines (default: none). */
  log?: (line: string) => void;
}

export interface ExportOnnxResult {
  file: string;
  arch: string;
  /** The file's size in bytes. */
  bytes: number;
  nodes: number;
  opset: number;
  metadata: Omit<OnnxMetadata, 'raw'>;
  /** What the check found; null when it was skipped (verify: false). */
  verified: { maxAbsDiff: number; maxLogit: number; batch: number; seed: number } | null;
  /** Where the class names came from ('none': generic names `class i` were written). */
  classesFrom: 'labels' | 'checkpoint' | 'none';
}

/** Checks the output path before any work: an .onnx name, in a folder that exists, not a folder itself. */
export function checkOnnxOut(out: string, checkpoint?: string): void {
  if (path.extname(out).toLowerCase() !== '.onnx') throw new UserError(`--onnx ${out}: the output file name must end in .onnx`);
  if (checkpoint !== undefined && path.resolve(out) === path.resolve(checkpoint)) throw new UserError(`--onnx ${out}: is the checkpoint itself`);
  const dir = path.dirname(path.resolve(out));
  let stats;
  try {
    stats = statSync(dir);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' || (error as NodeJS.ErrnoException).code === 'ENOTDIR') {
      throw new UserError(`--onnx ${out}: the folder ${path.dirname(out)} does not exist`);
    }
    throw fsUserError(error, dir);
  }
  if (!stats.isDirectory()) throw new UserError(`--onnx ${out}: ${path.dirname(out)} is a file, not a folder`);
  if (existsSync(out) && statSync(out).isDirectory()) throw new UserError(`--onnx ${out}: is a folder, expected a file name`);
}

function checkOptions(options: ExportOnnxOptions): { opset: number; batch: number | 'dynamic' } {
  const opset = options.opset ?? DEFAULT_OPSET;
  if (!(OPSETS as readonly number[]).includes(opset)) throw new UserError(`opset ${String(opset)} is not supported; choose one of ${OPSETS.join(', ')}`);
  const batch = options.batch ?? 'dynamic';
  if (batch !== 'dynamic' && !(Number.isInteger(batch) && batch >= 1)) throw new UserError(`batch must be a positive integer or "dynamic", got ${String(batch)}`);
  for (const key of ['frames', 'size', 'shortSide'] as const) {
    const value = options[key];
    if (value !== undefined && !(Number.isInteger(value) && value >= 1)) throw new UserError(`${key} must be a positive integer, got ${String(value)}`);
  }
  return { opset, batch };
}

/** Exports a checkpoint to ONNX; see ExportOnnxOptions. Throws UserError for bad input (nothing is written then). */
export async function exportOnnx(checkpointFile: string, outFile: string, options: ExportOnnxOptions = {}): Promise<ExportOnnxResult> {
  const { opset, batch } = checkOptions(options);
  const log = options.log ?? (() => {});
  checkOnnxOut(outFile, checkpointFile);
  const { resolveModelSource } = await import('../train/model_source.js');
  const source = resolveModelSource(checkpointFile);
  if (path.resolve(source.checkpoint) === path.resolve(outFile)) throw new UserError(`--onnx ${outFile}: is the checkpoint itself`);
  await precheckCheckpoint(source.checkpoint, options);
  const { loadClassifier, classNamesOf } = await import('../train/classifier.js');
  log(`loading ${source.checkpoint}`);
  const classifier = await loadClassifier(source, {
    ...(options.arch !== undefined ? { arch: options.arch } : {}),
    ...(options.frames !== undefined ? { frames: options.frames } : {}),
    ...(options.labels !== undefined ? { labels: options.labels } : {}),
    ...(options.shortSide !== undefined ? { shortSide: options.shortSide } : {}),
  });
  const { model } = classifier;
  try {
    const { buildGraph, checkExportable } = await import('./export_model.js');
    checkExportable(model);
    const preprocessing = settlePreprocessing(source.checkpoint, classifier.preprocessing, classifier.preprocessingFrom, model.input.frames, options);
    const classes = classNamesOf(classifier);
    const { STCNET_VERSION } = await import('../models/version.js');
    const { onnxMetadataEntries } = await import('../onnx/metadata.js');
    const built = buildGraph(model, { frames: preprocessing.frames, size: preprocessing.size, batch });
    const metadata: Omit<OnnxMetadata, 'raw'> = {
      arch: classifier.arch, classes, preprocessing,
      input: { name: built.input.name, layout: 'NCTHW', batch: batch === 'dynamic' ? null : batch, channels: model.input.channels, frames: preprocessing.frames, size: preprocessing.size },
      output: built.output.name, options: model.options as Record<string, unknown>, version: STCNET_VERSION,
    };
    // A protobuf message cannot exceed 2 GiB; ONNX's way past it (external data files) is not written here.
    if (built.builder.initializerBytes > 2 ** 31 - 2 ** 24) {
      throw new UserError(`${source.checkpoint}: ${classifier.arch} has ${(built.builder.initializerBytes / 2 ** 30).toFixed(2)} GiB of weights, over ONNX's 2 GiB single-file limit`);
    }
    log(`encoding ${built.builder.nodeCount} nodes, ${(built.builder.initializerBytes / 1e6).toFixed(1)} MB of weights`);
    const bytes = built.builder.encode([built.output], {
      opset, irVersion: IR_VERSION[opset]!, producerVersion: STCNET_VERSION, metadata: onnxMetadataEntries(metadata),
      docString: `${classifier.arch} exported by stcnet ${STCNET_VERSION}: input ${built.input.name} N×C×T×H×W (normalised clips), output ${built.output.name} N×classes`,
    });
    let verified: ExportOnnxResult['verified'] = null;
    if (options.verify ?? true) {
      const { verifyExport, RELATIVE_TOLERANCE } = await import('./verify.js');
      const n = batch === 'dynamic' ? 2 : batch;
      log(`checking ONNX Runtime against stcnet on a random batch of ${n} clip${n === 1 ? '' : 's'}`);
      const check = await verifyExport(model, bytes, built.input.name, [n, model.input.channels, preprocessing.frames, preprocessing.size, preprocessing.size], options.seed ?? 0);
      if (!check.ok) {
        throw new UserError(`${source.checkpoint}: the exported graph does not reproduce stcnet's output: max |diff| ${check.maxAbsDiff.toExponential(2)} ` +
          `exceeds ${RELATIVE_TOLERANCE} × max |logit| ${check.maxLogit.toPrecision(4)}; nothing was written (--no-verify writes it anyway)`);
      }
      verified = { maxAbsDiff: check.maxAbsDiff, maxLogit: check.maxLogit, batch: check.batch, seed: check.seed };
    }
    writeFileAtomic(outFile, bytes);
    return { file: outFile, arch: classifier.arch, bytes: bytes.length, nodes: built.builder.nodeCount, opset, metadata, verified, classesFrom: classifier.classesFrom };
  } finally {
    model.dispose();
  }
}

/**
 * What the checkpoint's metadata says, checked before its weights are read: a 2D image model is
 * refused (loadClassifier's message speaks of eval and predict), and --frames may not contradict a
 * clip length the checkpoint records (the model would be built for the wrong length and not load).
 */
async function precheckCheckpoint(checkpoint: string, options: ExportOnnxOptions): Promise<void> {
  const { modelEntry } = await import('../models/registry.js');
  let name = options.arch;
  if (path.extname(checkpoint).toLowerCase() === '.safetensors') {
    const { readCheckpointMeta } = await import('../models/checkpoint.js');
    const meta = readCheckpointMeta(checkpoint);
    if (meta) {
      name ??= meta.arch;
      const recorded = meta.preprocessing?.frames ?? (modelEntry(meta.arch).stc ? meta.options.frames : undefined);
      if (options.frames !== undefined && recorded !== undefined && recorded !== options.frames) {
        throw new UserError(`${checkpoint}: the checkpoint records frames ${recorded}; --frames ${options.frames} disagrees (the flag only fills in what a checkpoint lacks)`);
      }
    }
  }
  if (name !== undefined && modelEntry(name).dims !== 3) throw new UserError(`${checkpoint}: ${name} is a 2D image model; stcnet export writes video (3D) models`);
}

/**
 * The preprocessing written into the file: the checkpoint's (or its run's, or the family defaults
 * as predict uses them), with --frames/--size filling what the checkpoint does not record.
 */
function settlePreprocessing(checkpoint: string, base: OnnxPreprocessing, from: 'checkpoint' | 'run config' | 'defaults',
  modelFrames: number | undefined, options: ExportOnnxOptions): OnnxPreprocessing {
  const preprocessing = { ...base, mean: [...base.mean], std: [...base.std] };
  for (const key of ['frames', 'size'] as const) {
    const value = options[key];
    if (value === undefined || value === preprocessing[key]) continue;
    if (from !== 'defaults') {
      throw new UserError(`${checkpoint}: the ${from === 'checkpoint' ? 'checkpoint' : 'run'} records ${key} ${preprocessing[key]}; --${key} ${value} disagrees (the flag only fills in what a checkpoint lacks)`);
    }
    preprocessing[key] = value;
  }
  if (modelFrames !== undefined && preprocessing.frames !== modelFrames) {
    throw new UserError(`${checkpoint}: the STC model is built for ${modelFrames}-frame clips, the preprocessing says ${preprocessing.frames}`);
  }
  return preprocessing;
}
