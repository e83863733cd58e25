import { parentPort, workerData } from 'node:worker_threads';
import { ClipMaker, type BatchTask, type ClipSettings } from './clip.js';

/**
 * A loader worker thread: receives batch tasks, each perhaps with a recycled buffer to write the
 * batch into, and sends back batches (buffers transferred both ways, not copied).
 */
const maker = new ClipMaker(workerData as ClipSettings);
const port = parentPort!;

port.on('message', (message: { type: 'batch'; task: BatchTask; into?: ArrayBuffer } | { type: 'close' }) => {
  if (message.type === 'close') {
    port.close();
    return;
  }
  const { task, into } = message;
  maker.makeBatch(task, into).then(
    (result) => {
      port.postMessage({ type: 'batch', result }, [result.data.buffer as ArrayBuffer, result.labels.buffer as ArrayBuffer,
        result.videoIndices.buffer as ArrayBuffer, result.clipIndices.buffer as ArrayBuffer, result.cropIndices.buffer as ArrayBuffer]);
    },
    (error: unknown) => {
      port.postMessage({ type: 'error', id: task.id, message: error instanceof Error ? (error.stack ?? error.message) : String(error) });
    },
  );
});
