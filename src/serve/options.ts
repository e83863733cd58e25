/**
 * The service's settings, as `stcnet serve` validates them from its flags (and as a program gives
 * them to `startServer`). Every limit is checked before any work starts.
 */
export interface ServeOptions {
  /** A stcnet checkpoint or `stcnet train` run folder. */
  checkpoint: string;
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** libtorch intra-op threads. */
  threads?: number;
  /** Precision of the forward pass (default float32); bfloat16 is fast only on CPUs with AVX-512 BF16 or AMX. */
  dtype?: 'float32' | 'bfloat16';
  /** Most requests whose clips share one forward pass (1: no batching across requests). */
  maxBatch: number;
  /** How long an idle model waits for more requests to fill a batch, in milliseconds. */
  batchWaitMs: number;
  /** Largest upload (file, raw body or JSON frames), in bytes. */
  maxUploadBytes: number;
  /** Longest video accepted, in seconds. */
  maxSeconds: number;
  /** Most frames a video (or a JSON frame list) may have. */
  maxFrames: number;
  /** Fewest frames an input must have (a single frame shows no motion). */
  minFrames: number;
  /** Most /predict requests in the service at once; more are answered 503. */
  maxQueue: number;
  /** Videos decoded at once (ffmpeg processes). */
  decoders: number;
  /** Clips per video (K) and crops per clip, as `stcnet predict --clips/--crops`. */
  clips: number;
  crops: 1 | 3;
  /** Classes in an answer unless the request asks for fewer or more (?top=N). */
  topK: number;
  /** Folder the service makes its upload folder in (removed at exit). */
  tmpDir: string;
  /** Serve the browser page too; the ONNX model it runs (else exported from the checkpoint at start). */
  static: boolean;
  onnx?: string;
  /** Access log lines on stderr. */
  quiet: boolean;
  /** Seconds a client may take to send its request. */
  requestTimeoutS: number;
}

export const MEGABYTE = 1024 * 1024;
