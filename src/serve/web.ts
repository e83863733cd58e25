import { createReadStream, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, extname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { FastifyInstance, FastifyReply } from 'fastify';
import { readOnnxMetadata } from '../onnx/metadata.js';
import { fsUserError } from '../util/fs.js';

/**
 * The browser page (web/): action recognition with onnxruntime-web on the user's own machine. This
 * registers the page, its scripts, the two stcnet modules it shares with the loader (the resampler
 * and the clip sampler, from dist/src/data), onnxruntime-web's scripts and WebAssembly, and the
 * model as GET /model.onnx. Every answer carries the cross-origin isolation headers, so the page
 * may use SharedArrayBuffer and onnxruntime-web runs its multi-threaded WebAssembly.
 */

export interface WebPageOptions {
  /** The exported model (`stcnet export CHECKPOINT --onnx FILE`); its metadata must name the classes and the preprocessing. */
  onnxFile: string;
}

/** The package's root: dist/src/serve/web.js is three folders down. */
const packageRoot = fileURLToPath(new URL('../../../', import.meta.url));
const webDir = join(packageRoot, 'web');
/** The compiled stcnet modules the page imports (by the same relative path as from web/ in the package). */
const sharedModules: Record<string, string> = {
  'transforms.js': fileURLToPath(new URL('../data/transforms.js', import.meta.url)),
  'samplers.js': fileURLToPath(new URL('../data/samplers.js', import.meta.url)),
};

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.wasm': 'application/wasm',
  '.onnx': 'application/octet-stream',
};

/** onnxruntime-web's dist folder, found by module resolution so it works from an installed package. */
export function onnxRuntimeWebDir(): string {
  // The './wasm' entry's require condition is dist/ort.wasm.min.js.
  return dirname(createRequire(import.meta.url).resolve('onnxruntime-web/wasm'));
}

/** Files of a folder whose names pass `keep`, by name. */
function listFiles(dir: string, keep: RegExp): Map<string, string> {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (error) {
    throw fsUserError(error, dir);
  }
  return new Map(names.filter((name) => keep.test(name)).map((name) => [name, join(dir, name)]));
}

function isolate(reply: FastifyReply): FastifyReply {
  return reply
    .header('Cross-Origin-Opener-Policy', 'same-origin')
    .header('Cross-Origin-Embedder-Policy', 'require-corp')
    .header('Cross-Origin-Resource-Policy', 'same-origin');
}

/** Streams a file with its MIME type and length; a file that vanished since registration is a 404. */
function sendFile(reply: FastifyReply, file: string, cache: 'no-cache' | 'immutable'): FastifyReply {
  let size: number;
  try {
    size = statSync(file).size;
  } catch {
    return isolate(reply).code(404).type('text/plain; charset=utf-8').send(`${basename(file)} is gone from the server`);
  }
  return isolate(reply)
    .type(MIME[extname(file).toLowerCase()] ?? 'application/octet-stream')
    .header('Content-Length', String(size))
    .header('Cache-Control', cache === 'immutable' ? 'public, max-age=86400' : 'no-cache')
    .send(createReadStream(file));
}

/**
 * Registers the page on a fastify app: GET / (the page), /web/* (its scripts and styles),
 * /dist/src/data/{transforms,samplers}.js, /ort/* (onnxruntime-web) and /model.onnx (the model).
 * The model is checked first: a missing file, or one without stcnet's metadata, is a UserError
 * naming the file.
 */
export async function registerWebPage(app: FastifyInstance, options: WebPageOptions): Promise<void> {
  const onnxFile = options.onnxFile;
  // A file that is no model, or has no stcnet metadata, is refused here (a UserError naming it), not in the page.
  readOnnxMetadata(onnxFile);
  const webFiles = listFiles(webDir, /^[\w-]+\.(js|css|html)$/);
  if (!webFiles.has('index.html')) throw new Error(`the web page is missing from the package (${webDir}/index.html)`);
  const ortFiles = listFiles(onnxRuntimeWebDir(), /^ort[\w.-]*\.(mjs|wasm)$/);
  const modelName = basename(onnxFile);

  app.get('/', (_request, reply) => sendFile(reply, webFiles.get('index.html')!, 'no-cache'));
  app.get<{ Params: { name: string } }>('/web/:name', (request, reply) => {
    const file = webFiles.get(request.params.name);
    return file ? sendFile(reply, file, 'no-cache') : isolate(reply).code(404).send({ error: `no such file: /web/${request.params.name}` });
  });
  app.get<{ Params: { name: string } }>('/dist/src/data/:name', (request, reply) => {
    const file = sharedModules[request.params.name];
    return file ? sendFile(reply, file, 'no-cache') : isolate(reply).code(404).send({ error: `no such file: /dist/src/data/${request.params.name}` });
  });
  app.get<{ Params: { name: string } }>('/ort/:name', (request, reply) => {
    const file = ortFiles.get(request.params.name);
    return file ? sendFile(reply, file, 'immutable') : isolate(reply).code(404).send({ error: `no such file: /ort/${request.params.name}` });
  });
  app.get('/model.onnx', (_request, reply) => sendFile(reply.header('X-Model-Name', encodeURIComponent(modelName)), onnxFile, 'no-cache'));
}
