import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { defineCommand, type FlagValues } from './args.js';
import { UserError } from '../util/errors.js';

/**
 * `stcnet serve CHECKPOINT`: an HTTP prediction service (POST /predict, GET /health, GET /model),
 * optionally with the browser page (--static). Every flag is checked before the model is loaded; the
 * service stops on SIGTERM or SIGINT after answering the requests in flight, and exits 0.
 */
const flags = {
  host: { type: 'string', description: 'address to listen on (0.0.0.0 for every interface)', default: '127.0.0.1' },
  port: { type: 'int', description: 'port to listen on; 0 picks a free one (the URL is printed)', default: 8080, min: 0, max: 65535 },
  threads: { type: 'int', description: 'libtorch threads for the forward pass (default: STCNET_THREADS, else the cores available)', min: 1, max: 1024 },
  dtype: { type: 'string', description: 'precision of the forward pass: bfloat16 is fast on CPUs with AVX-512 BF16 or AMX (emulated and slow elsewhere)', default: 'float32', choices: ['float32', 'bfloat16'] },
  'max-batch': { type: 'int', description: 'most requests whose clips share one forward pass (1: no batching across requests)', default: 4, min: 1, max: 256 },
  'batch-wait-ms': { type: 'number', description: 'how long an idle model waits for more requests to fill a batch', default: 5, min: 0, max: 60000 },
  'max-upload-mb': { type: 'number', description: 'largest upload (video file or JSON body), in MB; larger gets 413', default: 100, min: 0.001, max: 1_000_000 },
  'max-seconds': { type: 'number', description: 'longest video accepted, in seconds; longer gets 422', default: 120, min: 0.001 },
  'max-frames': { type: 'int', description: 'most frames a video or a JSON frame list may have; more gets 422', default: 3600, min: 1 },
  'min-frames': { type: 'int', description: 'fewest frames an input must have; fewer gets 422', default: 2, min: 1 },
  'max-queue': { type: 'int', description: '/predict requests in the service at once (receiving, decoding, waiting, running); more get 503 + Retry-After', default: 32, min: 1 },
  decoders: { type: 'int', description: 'videos decoded at once (ffmpeg processes)', default: 2, min: 1, max: 256 },
  clips: { type: 'int', description: 'clips per video, evenly spaced (K), as stcnet predict', default: 10, min: 1, max: 1000 },
  crops: { type: 'string', description: 'crops per clip: 1 (centre) or 3 (along the long side), as stcnet predict', default: '1', choices: ['1', '3'] },
  'top-k': { type: 'int', description: 'classes in an answer (a request may ask ?top=N)', default: 5, min: 1 },
  'tmp-dir': { type: 'string', description: 'folder for the upload folder (made at start, removed at exit)', default: tmpdir() },
  'request-timeout': { type: 'number', description: 'seconds a client may take to send its whole request', default: 120, min: 1 },
  static: { type: 'boolean', description: 'also serve the browser page (GET /) that runs the model in onnxruntime-web', default: false },
  onnx: { type: 'string', description: 'the ONNX model the page runs (with --static; default: CHECKPOINT exported at start)' },
  quiet: { type: 'boolean', description: 'no access log lines on stderr', default: false },
} as const;

export const command = defineCommand({
  name: 'serve',
  summary: 'serve a checkpoint over HTTP: POST /predict (a video or JSON frames) → top-k JSON; GET /health, GET /model',
  usage: 'stcnet serve CHECKPOINT [--host 127.0.0.1] [--port 8080] [--max-batch 4 --batch-wait-ms 5] [--max-upload-mb 100] [--static [--onnx FILE]]',
  positionals: { name: 'CHECKPOINT', min: 1, max: 1 },
  examples: [
    'stcnet serve runs/ucf101-stc18/best.safetensors --port 8080',
    'curl -F video=@clip.mp4 http://127.0.0.1:8080/predict',
    'curl -H "Content-Type: video/mp4" --data-binary @clip.mp4 "http://127.0.0.1:8080/predict?top=3"',
    'stcnet serve model.safetensors --port 0 --clips 1 --max-batch 8 --batch-wait-ms 10 --threads 4',
    'stcnet serve model.safetensors --static --onnx model.onnx   # the browser page at http://127.0.0.1:8080/',
  ],
  flags,
  run: (args) => runServe(args.positionals[0]!, args.flags, args.given),
});

type Flags = FlagValues<typeof flags>;

function checkFolder(dir: string, flag: string): void {
  if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new UserError(`stcnet serve: --${flag} ${dir}: no such folder`);
  try {
    accessSync(dir, constants.W_OK);
  } catch {
    throw new UserError(`stcnet serve: --${flag} ${dir}: not writable`);
  }
}

async function runServe(checkpointArg: string, f: Flags, given: Set<string>): Promise<void> {
  if (f.host.trim() === '') throw new UserError('stcnet serve: --host expects an address, got an empty string');
  if (f['min-frames'] > f['max-frames']) throw new UserError(`stcnet serve: --min-frames ${f['min-frames']} is more than --max-frames ${f['max-frames']}`);
  if (f.onnx !== undefined && !f.static) throw new UserError('stcnet serve: --onnx applies only with --static (the page runs it)');
  if (f.onnx !== undefined && (!existsSync(f.onnx) || !statSync(f.onnx).isFile())) throw new UserError(`stcnet serve: --onnx ${f.onnx}: no such file`);
  checkFolder(f['tmp-dir'], 'tmp-dir');
  const { resolveModelSource } = await import('../train/model_source.js');
  const source = resolveModelSource(checkpointArg);

  const { startServer } = await import('../serve/server.js');
  const log = (line: string) => process.stderr.write(line + '\n');
  let server;
  try {
    server = await startServer({
      checkpoint: source.checkpoint, host: f.host, port: f.port, ...(f.threads !== undefined ? { threads: f.threads } : {}),
      dtype: f.dtype as 'float32' | 'bfloat16',
      maxBatch: f['max-batch'], batchWaitMs: f['batch-wait-ms'], maxUploadBytes: Math.round(f['max-upload-mb'] * 1024 * 1024),
      maxSeconds: f['max-seconds'], maxFrames: f['max-frames'], minFrames: f['min-frames'], maxQueue: f['max-queue'], decoders: f.decoders,
      clips: f.clips, crops: Number(f.crops) as 1 | 3, topK: f['top-k'], tmpDir: f['tmp-dir'], static: f.static,
      ...(f.onnx !== undefined ? { onnx: f.onnx } : {}), quiet: f.quiet, requestTimeoutS: f['request-timeout'],
    }, log);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new UserError(`stcnet serve: --port ${f.port}: the port is in use on ${f.host} (--port 0 picks a free one)`);
    if (code === 'EACCES') throw new UserError(`stcnet serve: --port ${f.port}: not allowed to listen there (ports below 1024 need privileges)`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new UserError(`stcnet serve: --host ${f.host}: not an address of this machine`);
    throw error;
  }
  const d = server.service.model.description;
  const batching = f['max-batch'] > 1 ? `up to ${f['max-batch']} requests per forward pass, ${f['batch-wait-ms']} ms wait` : 'no batching across requests';
  log(`serve: ${d.arch} from ${d.checkpoint}: ${d.numClasses} classes, ${d.input.frames}×${d.input.size}² clips, ${f.clips} clip${f.clips === 1 ? '' : 's'} × ${f.crops} crop per video; ${batching}`);
  // The one stdout line: a script starting the service with --port 0 reads the URL from it.
  process.stdout.write(`stcnet serve: listening on ${server.url}${f.static ? ' (page at /)' : ''}\n`);
  if (given.has('threads')) log(`serve: ${f.threads} libtorch threads`);

  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) {
        log(`serve: ${signal} again: exiting without waiting for the requests in flight`);
        server.removeTemporariesSync();
        process.exit(1);
      }
      stopping = true;
      log(`serve: ${signal}: no new requests; finishing ${server.service.inFlight} in flight`);
      server.close().then(() => {
        log('serve: stopped');
        resolve();
      }, (error: unknown) => {
        log(`serve: error while stopping: ${error instanceof Error ? error.message : String(error)}`);
        process.exitCode = 1;
        resolve();
      });
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
  });
}
