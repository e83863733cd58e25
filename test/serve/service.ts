import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { join } from 'node:path';
import { repoRoot } from '../helpers.js';

/**
 * `stcnet serve` as a child process on loopback, port 0: started, its URL read from stdout, its
 * stderr kept, its exit awaited. Requests through node's http module, so a test can stream a body,
 * stop half-way or cut the connection.
 */
export interface ServiceProcess {
  url: string;
  child: ChildProcess;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export const cli = join(repoRoot, 'dist/src/cli/main.js');

export async function startService(checkpoint: string, args: string[] = []): Promise<ServiceProcess> {
  const child = spawn(process.execPath, [cli, 'serve', checkpoint, '--port', '0', '--threads', '1', '--quiet', ...args], {
    stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, STCNET_THREADS: '1' },
  });
  let out = '';
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (chunk: string) => { err += chunk; });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const url = await new Promise<string>((resolve, reject) => {
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      const match = /listening on (http:\/\/\S+)/.exec(out);
      if (match) resolve(match[1]!);
    });
    void exited.then(({ code }) => reject(new Error(`stcnet serve exited (${code}) before listening: ${err}`)));
  });
  return {
    url, child, stderr: () => err, exited,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

export interface Answer {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: string;
  json<T = Record<string, unknown>>(): T;
}

function answerOf(response: http.IncomingMessage): Promise<Answer> {
  return new Promise((resolve, reject) => {
    let body = '';
    response.setEncoding('utf8');
    response.on('data', (chunk: string) => { body += chunk; });
    response.on('error', reject);
    response.on('end', () => resolve({
      status: response.statusCode!, headers: response.headers, body,
      json: <T>() => JSON.parse(body) as T,
    }));
  });
}

/** One request with a whole body (a fresh connection each time: no keep-alive between tests' requests). */
export function request(url: string, options: { method?: string; path: string; headers?: Record<string, string | number>; body?: Buffer | string }): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = http.request(new URL(options.path, url), { method: options.method ?? 'GET', headers: options.headers, agent: false }, (response) => {
      answerOf(response).then(resolve, reject);
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** A multipart/form-data body with one file field. */
export function multipart(field: string, filename: string, content: Buffer, type = 'video/mp4'): { body: Buffer; headers: Record<string, string | number> } {
  const boundary = `----stcnet-test-${filename.length}-${content.length}`;
  const head = Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${field}"; filename="${filename}"\r\nContent-Type: ${type}\r\n\r\n`);
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`);
  const body = Buffer.concat([head, content, tail]);
  return { body, headers: { 'content-type': `multipart/form-data; boundary=${boundary}`, 'content-length': body.length } };
}

/**
 * A body streamed in chunks until the server answers (or `limit` bytes are sent): for the bodies
 * over the size limit. Resolves with the answer and the bytes sent before it came.
 */
export function streamUntilAnswered(url: string, headers: Record<string, string | number>, chunk: Buffer, limit: number): Promise<{ answer: Answer; sent: number }> {
  return new Promise((resolve, reject) => {
    let sent = 0;
    let answered = false;
    const req = http.request(new URL('/predict', url), { method: 'POST', headers, agent: false }, (response) => {
      answered = true;
      answerOf(response).then((answer) => {
        req.destroy();
        resolve({ answer, sent });
      }, reject);
    });
    // The server closes the connection after its early answer: writes after that fail, which is expected.
    req.on('error', (error) => {
      if (!answered) reject(error);
    });
    const pump = (): void => {
      while (!answered && sent < limit) {
        sent += chunk.length;
        if (!req.write(chunk)) {
          req.once('drain', pump);
          return;
        }
      }
      if (!answered) req.end();
    };
    pump();
  });
}

/** Polls `check` every 50 ms until it returns true (or fails after `ms`). */
export async function eventually(check: () => Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`timed out waiting for ${what}`);
}

export interface Health {
  status: string;
  inFlight: number;
  waiting: number;
  served: number;
  liveTensors: number;
  rssBytes: number;
  uploadFiles: number;
  forwardPasses: number;
}

export async function health(url: string): Promise<Health> {
  return (await request(url, { path: '/health' })).json<Health>();
}
