import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import multipart from '@fastify/multipart';
import type { Socket } from 'node:net';
import type { Readable } from 'node:stream';
import { HttpError, errorBody, formatMb } from './errors.js';
import type { Service } from './service.js';
import { tooLarge } from './upload.js';

/**
 * The HTTP surface: POST /predict, GET /health, GET /model, and JSON errors for everything else.
 * Requests are admitted before their body is read: over --max-queue they get a 503 with Retry-After,
 * and a Content-Length over --max-upload-mb gets a 413 without a byte being read. Every answer the
 * service gives on purpose has the body { error, code, status }; anything unexpected is a 500 with
 * the same shape (and its stack on stderr), never a crash.
 */

/** The upload media types: any video/*, or bytes of unknown type (ffprobe decides). */
const VIDEO_TYPE = /^(video\/[a-z0-9][\w.+-]*|application\/octet-stream)\s*(;.*)?$/i;
const ACCEPTED = 'multipart/form-data (a file field), video/* or application/octet-stream (the raw file), or application/json (frames)';
/** Room for multipart boundaries and part headers around a file of the largest size. */
const MULTIPART_OVERHEAD = 64 * 1024;

function mediaType(request: FastifyRequest): string {
  return (request.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
}

/** How long a refused upload's connection stays open after the answer, its bytes read and dropped. */
const LINGER_MS = 2000;

/**
 * Node ends a 'Connection: close' answer with socket.destroySoon(): the socket is destroyed once
 * the answer is written, and a client still sending its body gets a reset, which on Linux can drop
 * the answer before the client reads it (it sees EPIPE, not the 413). As web servers do ("lingering
 * close"), the write side is closed after the answer and what still comes is read and dropped for a
 * short while, then the socket is destroyed.
 */
function lingerOnClose(socket: Socket | null): void {
  if (!socket || (socket as Socket & { lingering?: boolean }).lingering) return;
  (socket as Socket & { lingering?: boolean }).lingering = true;
  socket.destroySoon = function lingeringDestroy(this: Socket) {
    this.end();
    this.resume();
    setTimeout(() => this.destroy(), LINGER_MS).unref();
  };
}

function sendError(reply: FastifyReply, error: HttpError): FastifyReply {
  for (const [name, value] of Object.entries(error.headers)) reply.header(name, value);
  // Refused while the client may still be sending (a 413 of a 2 GB body): close the connection
  // after the answer instead of reading the rest.
  if (!reply.request.raw.readableEnded) {
    reply.header('connection', 'close');
    lingerOnClose(reply.request.raw.socket);
  }
  return reply.code(error.status).type('application/json; charset=utf-8').send(errorBody(error));
}

/** Fastify's and the multipart parser's own errors, as the service's answers. */
function asHttpError(error: unknown, request: FastifyRequest, maxBytes: number): HttpError | undefined {
  if (error instanceof HttpError) return error;
  const e = error as { code?: string; statusCode?: number; message?: string };
  switch (e.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
    case 'FST_REQ_FILE_TOO_LARGE':
      return tooLarge(maxBytes);
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new HttpError(415, 'unsupported_media_type', `Content-Type ${JSON.stringify(request.headers['content-type'] ?? '')} is not accepted; send ${ACCEPTED}`);
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return new HttpError(400, 'bad_json', 'the JSON body is empty; expected {"frames": [...], "width": W, "height": H}');
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return new HttpError(400, 'bad_content_length', 'the Content-Length does not match the body');
    case 'FST_PARTS_LIMIT':
    case 'FST_FILES_LIMIT':
    case 'FST_FIELDS_LIMIT':
      return new HttpError(413, 'too_many_parts', 'the multipart form has too many parts; send one file field');
    case 'FST_INVALID_MULTIPART_CONTENT_TYPE':
      return new HttpError(415, 'unsupported_media_type', `not a multipart request; send ${ACCEPTED}`);
    case 'FST_PROTO_VIOLATION':
      return new HttpError(400, 'bad_form', 'the multipart form has a forbidden field name');
  }
  // The service's own disk failing is not the client's fault: a 507 for a full disk, else a 500 (logged).
  if (e.code === 'ENOSPC' || e.code === 'EDQUOT') return new HttpError(507, 'no_space', 'the service\'s upload folder is out of space; retry later');
  if (typeof e.code === 'string' && /^E[A-Z]+$/.test(e.code) && 'syscall' in (error as object) && e.code !== 'ECONNRESET') return undefined;
  if (request.raw.aborted || e.code === 'ERR_STREAM_PREMATURE_CLOSE' || e.code === 'ECONNRESET') {
    return new HttpError(400, 'upload_incomplete', 'the upload ended before its end (the client closed the connection)');
  }
  if (e.statusCode === 400 && /JSON|Unexpected|token/i.test(e.message ?? '')) {
    return new HttpError(400, 'bad_json', `the JSON body does not parse (${(e.message ?? '').slice(0, 200)})`);
  }
  if (e.message && /Multipart|Unexpected end of form|boundary/i.test(e.message)) {
    return new HttpError(400, 'bad_form', `the multipart form is malformed (${e.message.slice(0, 200)})`);
  }
  if (typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500) {
    return new HttpError(e.statusCode, 'bad_request', e.message ?? 'bad request');
  }
  return undefined;
}

export async function buildApp(service: Service): Promise<FastifyInstance> {
  const options = service.options;
  const maxBytes = options.maxUploadBytes;
  const app = Fastify({
    logger: false,
    bodyLimit: maxBytes,
    requestTimeout: options.requestTimeoutS * 1000,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
  });
  await app.register(multipart, {
    // One file; a part over the limit by a byte is enough for the 413 (the stream is also counted).
    limits: { fileSize: maxBytes + 1, files: 1, fields: 16, fieldSize: 4096, parts: 20, headerPairs: 64 },
  });
  // Raw uploads are handed over as the request stream: the handler writes them to a temp file.
  app.addContentTypeParser(VIDEO_TYPE, (_request, payload, done) => done(null, payload));

  app.setErrorHandler((error, request, reply) => {
    const known = asHttpError(error, request, maxBytes);
    if (known) return sendError(reply, known);
    process.stderr.write(`serve: internal error on ${request.method} ${request.url}: ${error instanceof Error ? error.stack : String(error)}\n`);
    return sendError(reply, new HttpError(500, 'internal', 'internal error (see the service log)'));
  });
  app.setNotFoundHandler((request, reply) => sendError(reply, new HttpError(404, 'not_found',
    `no route ${request.method} ${request.url.split('?')[0]}; endpoints: POST /predict, GET /health, GET /model${options.static ? ', GET / (the page)' : ''}`)));

  if (!options.quiet) {
    app.addHook('onResponse', async (request, reply) => {
      process.stderr.write(`serve: ${request.method} ${request.url} ${reply.statusCode} ${reply.elapsedTime.toFixed(0)} ms\n`);
    });
  }

  app.get('/health', async () => service.health());
  app.get('/model', async () => service.model.description);

  app.post('/predict', {
    // Admission before the body is read: the queue bound, then the declared size.
    onRequest: async (request, reply) => {
      if (service.inFlight >= options.maxQueue) {
        return sendError(reply, new HttpError(503, 'busy', `the service is busy (${service.inFlight} requests in progress, --max-queue ${options.maxQueue}); retry later`,
          { 'retry-after': String(service.retryAfterSeconds()) }));
      }
      const declared = Number(request.headers['content-length'] ?? NaN);
      const allowance = mediaType(request) === 'multipart/form-data' ? MULTIPART_OVERHEAD : 0;
      if (Number.isFinite(declared) && declared > maxBytes + allowance) {
        return sendError(reply, new HttpError(413, 'upload_too_large', `the upload is ${formatMb(declared)}, larger than ${formatMb(maxBytes)} (the service's --max-upload-mb)`));
      }
      service.inFlight++;
      const controller = new AbortController();
      (request as FastifyRequest & { abort?: AbortSignal }).abort = controller.signal;
      // 'close' comes once the answer is sent or the connection is gone: either way the slot is free,
      // and a client gone before its answer stops the work still waiting for it.
      reply.raw.once('close', () => {
        service.inFlight--;
        if (!reply.raw.writableFinished) controller.abort(new HttpError(400, 'upload_incomplete', 'the client closed the connection'));
      });
      return undefined;
    },
  }, async (request, reply) => {
    const signal = (request as FastifyRequest & { abort?: AbortSignal }).abort!;
    const topK = service.topK(request.query);
    const type = mediaType(request);
    try {
      let prediction;
      if (request.isMultipart()) {
        const part = await request.file();
        if (!part) throw new HttpError(422, 'no_file', 'the multipart form has no file part; send the video as a file field (e.g. curl -F video=@clip.mp4)');
        prediction = await service.predictUpload(part.file, topK, signal, () => part.file.truncated);
      } else if (VIDEO_TYPE.test(type)) {
        prediction = await service.predictUpload(request.body as Readable, topK, signal);
      } else if (type === 'application/json') {
        prediction = await service.predictFrames(request.body, topK, signal);
      } else {
        throw new HttpError(415, 'unsupported_media_type', `Content-Type ${JSON.stringify(request.headers['content-type'] ?? '')} is not accepted; send ${ACCEPTED}`);
      }
      service.served++;
      return reply.send(prediction);
    } catch (error) {
      service.failed++;
      throw error;
    }
  });
  return app;
}
