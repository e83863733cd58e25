/**
 * What one `stcnet bench` run measures, written to a JSON file that every side (stcnet, PyTorch,
 * ONNX Runtime) reads, so that all of them run the same model, weights, inputs and settings.
 */
export type BenchTask = 'infer' | 'train';
export type BenchDevice = 'cpu' | 'cuda';

/** Every path a user could pick, by side. A path runs in a process of its own (its peak RSS is its own). */
export const PATHS = {
  infer: {
    stcnet: ['stcnet_eager_f32', 'stcnet_prepared_f32', 'stcnet_prepared_bf16'],
    torch: ['torch_eager_f32', 'torch_eager_bf16', 'torch_frozen_f32'],
    ort: ['ort_f32'],
  },
  train: {
    stcnet: ['stcnet_train_f32', 'stcnet_train_bf16'],
    torch: ['torch_train_f32', 'torch_train_bf16'],
    ort: [],
  },
} as const satisfies Record<BenchTask, Record<'stcnet' | 'torch' | 'ort', readonly string[]>>;

export const PATH_LABELS: Record<string, string> = {
  stcnet_eager_f32: 'stcnet eager float32',
  stcnet_prepared_f32: 'stcnet prepareForInference float32',
  stcnet_prepared_bf16: 'stcnet prepareForInference bf16',
  torch_eager_f32: 'PyTorch eager float32',
  torch_eager_bf16: 'PyTorch eager bf16 autocast',
  torch_frozen_f32: 'PyTorch frozen TorchScript float32',
  ort_f32: 'ONNX Runtime float32 (PyTorch export)',
  stcnet_train_f32: 'stcnet float32',
  stcnet_train_bf16: 'stcnet bf16 autocast',
  torch_train_f32: 'PyTorch eager float32',
  torch_train_bf16: 'PyTorch bf16 autocast',
};

export interface BenchPlan {
  arch: string;
  /** Model options in PyTorch's reference spelling (frames, num_classes) and stcnet's. */
  frames: number;
  size: number;
  classes: number;
  threads: number;
  device: BenchDevice;
  /** Rounds: timed iterations per path and batch size, after `warmup` untimed ones; the median is reported. */
  repeats: number;
  warmup: number;
  inferBatches: number[];
  trainBatch: number;
  /** Files in the run's temporary folder. */
  weights: string;
  checkInput: string;
  trainInput: string;
  trainLabels: string;
  onnx: string;
}

/** One path's figures. */
export interface PathResult {
  path: string;
  /** Clips per second by batch size (inference) or at the training batch: over the median round's seconds. */
  rates: Record<string, number>;
  /** Seconds of its iteration in each round, by batch size. */
  roundSeconds: Record<string, number[]>;
  /** Inference: logits on the check clip; training: the loss of the first step. */
  logits?: number[];
  firstLoss?: number;
  /** Peak resident memory of the process, in MiB. */
  peakRssMiB: number;
}

export function isBf16Path(path: string): boolean {
  return path.endsWith('bf16');
}
