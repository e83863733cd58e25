import { rmSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import path from 'node:path';
import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import { ServedModel } from './model.js';
import type { ServeOptions } from './options.js';
import { Service } from './service.js';
import { UploadFolder } from './upload.js';

/**
 * A running service: the model loaded once, the upload folder, the HTTP server listening.
 * `close()` stops accepting, lets the requests in flight finish, then frees the model and removes
 * the upload folder (and a temporary ONNX export).
 */
export interface RunningServer {
  url: string;
  app: FastifyInstance;
  service: Service;
  close(): Promise<void>;
  /** Removes the upload folder (and a temporary export) now, for an exit that cannot wait for close(). */
  removeTemporariesSync(): void;
}


export async function startServer(options: ServeOptions, log: (line: string) => void = () => undefined): Promise<RunningServer> {
  const model = await ServedModel.load(options.checkpoint, { clips: options.clips, crops: options.crops, threads: options.threads, dtype: options.dtype });
  let uploads: UploadFolder | undefined;
  let exportDir: string | undefined;
  let app: FastifyInstance | undefined;
  try {
    uploads = await UploadFolder.create(options.tmpDir);
    const service = new Service(model, uploads, options);
    app = await buildApp(service);
    if (options.static) {
      let onnxFile = options.onnx;
      if (onnxFile === undefined) {
        exportDir = await mkdtemp(path.join(options.tmpDir, 'stcnet-serve-onnx-'));
        onnxFile = path.join(exportDir, `${model.description.name}.onnx`);
        log(`serve: exporting ${model.description.checkpoint} to ONNX for the page (--onnx FILE skips this)`);
        const { exportOnnx } = await import('../export/index.js');
        await exportOnnx(model.description.checkpoint, onnxFile, { log });
      }
      const { registerWebPage } = await import('./web.js');
      await registerWebPage(app, { onnxFile });
    }
    const url = await app.listen({ host: options.host, port: options.port });
    let closing: Promise<void> | undefined;
    const running: RunningServer = {
      url, app, service,
      close: () => {
        closing ??= (async () => {
          service.closing = true;
          await app!.close();
          model.dispose();
          await uploads!.remove();
          if (exportDir) await rm(exportDir, { recursive: true, force: true });
        })();
        return closing;
      },
      removeTemporariesSync: () => {
        rmSync(uploads!.dir, { recursive: true, force: true });
        if (exportDir) rmSync(exportDir, { recursive: true, force: true });
      },
    };
    return running;
  } catch (error) {
    await app?.close().catch(() => undefined);
    model.dispose();
    await uploads?.remove();
    if (exportDir) await rm(exportDir, { recursive: true, force: true });
    throw error;
  }
}
