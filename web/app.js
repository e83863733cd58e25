// @ts-check
/**
 * The page: loads an exported model into onnxruntime-web (WebGPU where the browser has it, else
 * WebAssembly), then scores a video file the way `stcnet predict` does (K clips evenly spaced, the
 * mean of their softmax, the result updated after every clip), or the live frames of a playing
 * video or the webcam (one clip of the latest frames at a time). `window.stcnetPage` exposes the
 * state, the last result and a benchmark for tests and bench/web/run.ts.
 */
import { readOnnxProps, modelInfo } from './onnx_meta.js';
import { ClipMaker, softmax, topK, testClipIndices } from './clip.js';
import { blobVideoTiming } from './mp4.js';

/** @param {string} id @returns {any} */
const $ = (id) => document.getElementById(id);
const video = /** @type {HTMLVideoElement} */ ($('video'));
const canvas = /** @type {HTMLCanvasElement} */ ($('canvas'));
const params = new URLSearchParams(location.search);

/**
 * @typedef {{ index: number, label: string, score: number }} ClassScore
 * @typedef {{ kind: 'video' | 'live', file?: string, clips: number, scores: number[], top: ClassScore[] }} Result
 */
const page = {
  /** starting | no-model | ready | analysing | done | live | error */
  state: 'starting',
  /** @type {string} */
  message: '',
  /** @type {Result | null} */
  result: null,
  /** @type {{ name: string, arch: string, classes: string[], preprocessing: import('./onnx_meta.js').Preprocessing, backend: string, threads: number } | null} */
  model: null,
  /** Milliseconds of the model's forward per clip, in order. */
  /** @type {number[]} */
  clipMs: [],
  benchmark,
};
Object.assign(window, { stcnetPage: page });

/** @param {string} state @param {string} message @param {boolean} [error] */
function setState(state, message, error = false) {
  page.state = state;
  page.message = message;
  document.body.dataset.state = state;
  const status = $('status');
  status.textContent = message;
  status.classList.toggle('error', error);
}

/** @param {unknown} error */
const messageOf = (error) => (error instanceof Error ? error.message : String(error));

/** Cancels a running analysis or live loop when something new starts. */
let generation = 0;
/** @type {File | null} */
let currentFile = null;
/** @type {string | null} */
let objectUrl = null;
let liveToken = 0;

// ---- onnxruntime-web ----

/** @type {Promise<{ ort: any, providers: string[], backend: string }> | undefined} */
let runtime;

/** Loads onnxruntime-web once: the WebGPU build when an adapter is there (and ?backend=wasm is not), else the WebAssembly one. */
function loadRuntime() {
  runtime ??= (async () => {
    let gpu = false;
    const nav = /** @type {any} */ (navigator);
    if (params.get('backend') !== 'wasm' && nav.gpu) {
      try {
        gpu = (await nav.gpu.requestAdapter()) !== null;
      } catch {
        gpu = false;
      }
    }
    const ort = await import(gpu ? '../ort/ort.webgpu.min.mjs' : '../ort/ort.wasm.min.mjs');
    ort.env.wasm.wasmPaths = new URL('../ort/', import.meta.url).href;
    const threads = Number(params.get('threads') ?? 0);
    if (threads > 0) ort.env.wasm.numThreads = threads;
    // Threads need SharedArrayBuffer, which needs a cross-origin isolated page (the server's COOP/COEP headers).
    if (!crossOriginIsolated) ort.env.wasm.numThreads = 1;
    return { ort, providers: gpu ? ['webgpu', 'wasm'] : ['wasm'], backend: gpu ? 'WebGPU' : 'WebAssembly' };
  })();
  return runtime;
}

/** @type {{ session: any, ort: any, maker: ClipMaker, inputName: string, outputName: string, batch: number } | null} */
let model = null;
/** The latest forward (settled or not). */
/** @type {Promise<unknown>} */
let lastRun = Promise.resolve();

/**
 * Reads the model's metadata, then starts an inference session on it.
 * @param {Uint8Array} bytes @param {string} name
 */
async function loadModel(bytes, name) {
  // The model in use stays until the new one has a session: a bad file changes nothing.
  setState('starting', `Loading ${name}…`);
  const { props, producer } = readOnnxProps(bytes);
  const info = modelInfo(props, producer);
  const { ort, providers, backend } = await loadRuntime();
  let session;
  try {
    session = await ort.InferenceSession.create(bytes, { executionProviders: providers, graphOptimizationLevel: 'all' });
  } catch (error) {
    throw new Error(`onnxruntime-web cannot run ${name}: ${messageOf(error)}`);
  }
  stopLive();
  ++generation;
  // The old session is freed once a forward still running on it has finished.
  const old = model;
  if (old) void lastRun.finally(() => old.session.release()).catch(() => {});
  const threads = crossOriginIsolated ? (ort.env.wasm.numThreads || Math.min(4, Math.ceil((navigator.hardwareConcurrency || 1) / 2))) : 1;
  model = { session, ort, maker: new ClipMaker(info.preprocessing), inputName: session.inputNames[0], outputName: session.outputNames[0], batch: info.batch };
  page.model = { name, arch: info.arch, classes: info.classes, preprocessing: info.preprocessing, backend, threads };
  const p = info.preprocessing;
  $('model-line').textContent = `${name}${info.arch ? ` (${info.arch})` : ''}: ${info.classes.length} classes, clips of ${p.frames} frames` +
    `${p.stride > 1 ? ` at stride ${p.stride}` : ''}, ${p.size}×${p.size} · ${backend}${backend === 'WebAssembly' ? `, ${threads} thread${threads > 1 ? 's' : ''}` : ''}`;
  page.clipMs = [];
  setState('ready', 'Open or drop a video, or start the webcam.');
}

/**
 * The model's class probabilities for one clip, and the forward's time.
 * @param {Float32Array} clip
 */
async function runClip(clip) {
  if (!model) throw new Error('no model is loaded');
  // This model to the end, even if another is opened while the forward runs.
  const m = model;
  const p = m.maker.p;
  // A model exported with a fixed batch of N takes N clips: the clip is repeated, the first row read.
  const batch = m.batch;
  let data = clip;
  if (batch > 1) {
    data = new Float32Array(clip.length * batch);
    for (let b = 0; b < batch; b++) data.set(clip, b * clip.length);
  }
  const input = new m.ort.Tensor('float32', data, [batch, 3, p.frames, p.size, p.size]);
  const start = performance.now();
  const run = m.session.run({ [m.inputName]: input });
  lastRun = run.catch(() => {});
  const outputs = await run;
  const ms = performance.now() - start;
  const logits = outputs[m.outputName];
  const probabilities = softmax(/** @type {Float32Array} */ (logits.data).subarray(0, logits.data.length / batch));
  logits.dispose?.();
  return { probabilities, ms };
}

// ---- drawing the results ----

/** @param {ArrayLike<number>} scores @param {string} title */
function showScores(scores, title) {
  if (!page.model) return;
  $('result-title').textContent = title;
  const bars = $('bars');
  bars.replaceChildren(...topK(scores, page.model.classes, Math.min(5, scores.length)).map((c, rank) => {
    const li = document.createElement('li');
    li.dataset.index = String(c.index);
    li.dataset.label = c.label;
    li.dataset.score = String(c.score);
    if (rank === 0) li.id = 'top1';
    const label = document.createElement('div');
    label.className = 'label';
    const name = document.createElement('span');
    name.textContent = c.label;
    const value = document.createElement('span');
    value.textContent = `${(c.score * 100).toFixed(1)}%`;
    label.append(name, value);
    const bar = document.createElement('div');
    bar.className = 'bar';
    bar.style.width = `${Math.max(0, Math.min(100, c.score * 100))}%`;
    li.append(label, bar);
    return li;
  }));
}

/**
 * The model's time for this clip and its recent mean, and a note (how long the frames took).
 * @param {number} ms @param {string} note
 */
function showTiming(ms, note) {
  page.clipMs.push(ms);
  const recent = page.clipMs.slice(-20);
  const mean = recent.reduce((a, b) => a + b, 0) / recent.length;
  $('timing').textContent = `model ${ms.toFixed(1)} ms per clip (mean ${mean.toFixed(1)} ms, ${(1000 / mean).toFixed(1)} clips/s) · ${note}`;
}

// ---- frames from the <video> element ----

/** The current frame of the video as the model's uint8 planes. */
function grabFrame() {
  if (!model) throw new Error('no model is loaded');
  const width = video.videoWidth;
  const height = video.videoHeight;
  if (canvas.width !== width || canvas.height !== height) {
    canvas.width = width;
    canvas.height = height;
  }
  const context = /** @type {CanvasRenderingContext2D} */ (canvas.getContext('2d', { willReadFrequently: true }));
  context.drawImage(video, 0, 0, width, height);
  return model.maker.frame(context.getImageData(0, 0, width, height).data, width, height);
}

/**
 * Resolves on `event` of the video, rejects on its error or after `ms`.
 * @param {string} event @param {number} ms @param {() => void} [start]
 */
function videoEvent(event, ms, start) {
  return new Promise((resolve, reject) => {
    const done = (/** @type {() => void} */ finish) => () => {
      clearTimeout(timer);
      video.removeEventListener(event, onEvent);
      video.removeEventListener('error', onError);
      finish();
    };
    const onEvent = done(() => resolve(undefined));
    const onError = done(() => reject(new Error(`the browser cannot decode this video (${video.error?.message || `media error ${video.error?.code ?? '?'}`})`)));
    const timer = setTimeout(done(() => reject(new Error(`the video did not answer (waited ${ms / 1000} s for "${event}")`))), ms);
    video.addEventListener(event, onEvent);
    video.addEventListener('error', onError);
    start?.();
  });
}

/** @param {number} time */
const seek = (time) => videoEvent('seeked', 10000, () => { video.currentTime = time; });

/**
 * The frame the video element last presented: its media time and a count. Chromium can fire `seeked`
 * before the sought frame reaches the element's canvas image (a fresh browser drew the previous frame,
 * or a blank one, a few times in 40 seeks), so a frame is drawn only once it has been presented.
 */
let presented = { time: NaN, count: 0 };
let watchToken = 0;

/** Follows the presented frames of the current source (requestVideoFrameCallback). */
function watchFrames() {
  if (!('requestVideoFrameCallback' in video)) return;
  const my = ++watchToken;
  presented = { time: NaN, count: 0 };
  /** @type {VideoFrameRequestCallback} */
  const onFrame = (_now, meta) => {
    if (my !== watchToken) return;
    presented = { time: meta.mediaTime, count: presented.count + 1 };
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}

/**
 * Seeks to `time` and waits until the frame there is the one presented: at once when it already was
 * (the presented frame, of duration `frameDuration`, covers `time`), else until a newly presented frame
 * covers it (see the waits below for frames that never do).
 * @param {number} time @param {number} frameDuration
 */
async function seekFrame(time, frameDuration) {
  /** Whether the presented frame is the one on screen at `time`. */
  const covers = () => presented.count > 0 && presented.time <= time + 1e-6 && time < presented.time + frameDuration - 1e-6;
  const before = presented;
  const showing = covers();
  await seek(time);
  if (showing || !('requestVideoFrameCallback' in video)) return;
  // A frame presented late by an earlier load or seek does not count: the one at `time` should come.
  // Where the frame times are only estimated (not MP4), a new frame that does not cover `time` is
  // taken after 250 ms; with no new frame at all, after 3 s.
  const start = performance.now();
  for (;;) {
    const elapsed = performance.now() - start;
    const fresh = presented.count !== before.count;
    if ((fresh && (covers() || elapsed > 250)) || elapsed > 3000) return;
    await new Promise((resolve) => setTimeout(resolve, 4));
  }
}

/**
 * The frame rate of a non-MP4 video, estimated by playing it muted for a moment and reading the
 * presentation times of its frames (the <video> element tells no frame rate).
 */
async function estimateFrameDuration() {
  /** @type {number[]} */
  const times = [];
  // At half speed a busy machine drops fewer frames; the smallest step between presented frames is one frame.
  video.playbackRate = 0.5;
  await new Promise((resolve) => {
    const timer = setTimeout(resolve, 5000);
    /** @type {VideoFrameRequestCallback} */
    const onFrame = (_now, meta) => {
      times.push(meta.mediaTime);
      if (times.length >= 12) {
        clearTimeout(timer);
        resolve(undefined);
      } else video.requestVideoFrameCallback(onFrame);
    };
    video.requestVideoFrameCallback(onFrame);
    video.play().catch(() => resolve(undefined));
  });
  video.pause();
  video.playbackRate = 1;
  const deltas = times.slice(1).map((t, i) => t - times[i]).filter((d) => d > 1e-4).sort((a, b) => a - b);
  if (deltas.length === 0) throw new Error('the frame rate of this video could not be measured; an MP4 file is read exactly');
  return deltas[0];
}

/**
 * How the video's frames are numbered for clip sampling: as ffmpeg decodes them (MP4: the frame
 * count from the file; other containers: measured), or resampled to the model's frame rate.
 * @param {File} file
 */
async function frameTimes(file) {
  const fps = model?.maker.p.fps;
  const duration = video.duration;
  if (!(duration > 0) || !Number.isFinite(duration)) throw new Error('the video has no known duration');
  if (fps !== undefined) {
    // ffmpeg's fps filter: output frame i shows the input frame on screen at (i + 0.5)/fps.
    return { frames: Math.max(1, Math.floor(duration * fps)), time: (/** @type {number} */ i) => Math.min((i + 0.5) / fps, duration), frameDuration: 1 / fps };
  }
  const timing = await blobVideoTiming(file);
  const frames = timing ? timing.frames : Math.max(1, Math.round(duration / await estimateFrameDuration()));
  const span = timing ? timing.duration : duration;
  return { frames, time: (/** @type {number} */ i) => Math.min(((i + 0.5) * span) / frames, duration), frameDuration: span / frames };
}

// ---- a video file, as stcnet predict scores it ----


/** @param {File} file */
async function openVideo(file) {
  const my = ++generation;
  stopLive();
  stopWebcam();
  currentFile = file;
  page.result = null;
  setState('analysing', `Opening ${file.name}…`);
  if (objectUrl) URL.revokeObjectURL(objectUrl);
  objectUrl = URL.createObjectURL(file);
  video.classList.remove('live');
  video.controls = false;
  video.srcObject = null;
  try {
    await videoEvent('loadeddata', 30000, () => {
      video.src = /** @type {string} */ (objectUrl);
      watchFrames();
      video.load();
    });
    if (!(video.videoWidth > 0 && video.videoHeight > 0)) throw new Error('the file has no video track the browser can show');
    if (!model) {
      setState('no-model', 'Open a model (.onnx) to score this video.', true);
      return;
    }
    await analyse(file, my);
  } catch (error) {
    if (my === generation) setState('error', `${file.name}: ${messageOf(error)}`, true);
  } finally {
    if (my === generation) video.controls = true;
  }
}

/**
 * K clips evenly spaced over the video (stcnet's test-mode sampler), each scored as its frames come
 * in; the chart shows the mean of the clips' probabilities so far.
 * @param {File} file @param {number} my
 */
async function analyse(file, my) {
  if (!model) return;
  const m = model;
  const p = m.maker.p;
  const K = Math.max(1, Math.min(100, Math.floor(Number($('clips').value) || 10)));
  setState('analysing', `Reading ${file.name}…`);
  video.pause();
  const { frames, time, frameDuration } = await frameTimes(file);
  if (my !== generation) return;
  const clips = testClipIndices(frames, p.frames, p.stride, K);
  /** @type {Map<number, Uint8Array>} */
  const cache = new Map();
  const sum = new Float64Array(page.model?.classes.length ?? 0);
  page.clipMs = [];
  for (let k = 0; k < clips.length; k++) {
    const frameStart = performance.now();
    const planes = [];
    for (const index of clips[k]) {
      let planesOfFrame = cache.get(index);
      if (!planesOfFrame) {
        await seekFrame(time(index), frameDuration);
        if (my !== generation) return;
        planesOfFrame = grabFrame();
        cache.set(index, planesOfFrame);
      }
      planes.push(planesOfFrame);
    }
    const frameMs = performance.now() - frameStart;
    const { probabilities, ms } = await runClip(m.maker.clip(planes));
    if (my !== generation) return;
    for (let c = 0; c < sum.length; c++) sum[c] += probabilities[c];
    const mean = Array.from(sum, (s) => s / (k + 1));
    showScores(mean, `${file.name}: ${k + 1} of ${clips.length} clip${clips.length > 1 ? 's' : ''}`);
    showTiming(ms, `frames ${frameMs.toFixed(1)} ms`);
    setState('analysing', `Scoring ${file.name}: clip ${k + 1} of ${clips.length}`);
    if (k === clips.length - 1) {
      page.result = { kind: 'video', file: file.name, clips: clips.length, scores: mean, top: topK(mean, page.model?.classes ?? [], 5) };
    }
  }
  await seek(0);
  setState('done', `${file.name}: ${clips.length} clip${clips.length > 1 ? 's' : ''} of ${frames} frames. Press play for live predictions.`);
}

// ---- live: a playing video or the webcam ----

function stopLive() {
  liveToken++;
}

/** Scores the latest frames, one clip at a time, for as long as the video plays. */
function startLive() {
  if (!model || !('requestVideoFrameCallback' in video)) return;
  const my = ++liveToken;
  const m = model;
  const p = m.maker.p;
  const span = (p.frames - 1) * p.stride + 1;
  /** @type {Uint8Array[]} */
  const ring = [];
  let busy = false;
  let last = performance.now();
  setState('live', 'Live: scoring the latest frames.');
  /** @type {VideoFrameRequestCallback} */
  const onFrame = () => {
    if (my !== liveToken || model !== m) return;
    try {
      ring.push(grabFrame());
      if (ring.length > span) ring.shift();
      if (ring.length === span && !busy) {
        busy = true;
        const clip = m.maker.clip(ring.filter((_, i) => i % p.stride === 0));
        const sinceLast = performance.now() - last;
        runClip(clip).then(({ probabilities, ms }) => {
          if (my !== liveToken) return;
          showScores(probabilities, 'Live: the latest clip');
          showTiming(ms, `a clip every ${(sinceLast + ms).toFixed(0)} ms`);
          page.result = { kind: 'live', clips: 1, scores: Array.from(probabilities), top: topK(probabilities, page.model?.classes ?? [], 5) };
        }).catch((error) => setState('error', messageOf(error), true)).finally(() => {
          busy = false;
          last = performance.now();
        });
      }
    } catch (error) {
      setState('error', messageOf(error), true);
      return;
    }
    video.requestVideoFrameCallback(onFrame);
  };
  video.requestVideoFrameCallback(onFrame);
}

video.addEventListener('play', () => {
  if (page.state !== 'analysing') startLive();
});
video.addEventListener('pause', () => {
  if (page.state === 'live') {
    stopLive();
    setState('done', 'Paused. Press play for live predictions.');
  }
});
video.addEventListener('ended', () => {
  stopLive();
  if (page.state === 'live') setState('done', 'The video ended.');
});

/** @type {MediaStream | null} */
let webcam = null;

function stopWebcam() {
  webcam?.getTracks().forEach((track) => track.stop());
  webcam = null;
  $('webcam').textContent = 'Start the webcam';
}

async function toggleWebcam() {
  if (webcam) {
    stopLive();
    stopWebcam();
    video.srcObject = null;
    video.classList.remove('live');
    setState(model ? 'ready' : 'no-model', 'The webcam is off.');
    return;
  }
  ++generation;
  try {
    if (!navigator.mediaDevices?.getUserMedia) throw new Error('this page has no camera access here (browsers allow it on https:// or localhost only)');
    webcam = await navigator.mediaDevices.getUserMedia({ video: true, audio: false });
    $('webcam').textContent = 'Stop the webcam';
    video.removeAttribute('src');
    video.srcObject = webcam;
    video.classList.add('live');
    video.controls = false;
    await video.play();
    if (!model) setState('no-model', 'Open a model (.onnx) to score the webcam.', true);
  } catch (error) {
    stopWebcam();
    setState('error', `webcam: ${messageOf(error)}`, true);
  }
}

// ---- the benchmark (bench/web/run.ts) ----

/**
 * Clips per second of the loaded model's forward on seeded random clips, after `warmup` runs.
 * @param {number} clips @param {number} [warmup]
 */
async function benchmark(clips, warmup = 2) {
  if (!model) throw new Error('no model is loaded');
  const input = new Float32Array(model.maker.clipElements);
  let seed = 12345;
  for (let i = 0; i < input.length; i++) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    input[i] = seed / 2 ** 32 - 0.5;
  }
  for (let i = 0; i < warmup; i++) await runClip(input);
  /** @type {number[]} */
  const ms = [];
  const start = performance.now();
  for (let i = 0; i < clips; i++) ms.push((await runClip(input)).ms);
  const seconds = (performance.now() - start) / 1000;
  ms.sort((a, b) => a - b);
  return { clips, clipsPerSecond: clips / seconds, medianMs: ms[Math.floor(ms.length / 2)], backend: page.model?.backend, threads: page.model?.threads };
}

// ---- wiring ----

/** @param {File} file */
async function openModelFile(file) {
  setState('starting', `Loading ${file.name}…`);
  try {
    await loadModel(new Uint8Array(await file.arrayBuffer()), file.name);
    if (webcam) startLive();
    else if (currentFile) await openVideo(currentFile);
  } catch (error) {
    setState('error', `${file.name}: ${messageOf(error)}`, true);
  }
}

/** @param {File} file */
function openFile(file) {
  if (/\.onnx$/i.test(file.name)) void openModelFile(file);
  else void openVideo(file);
}

$('video-file').addEventListener('change', (/** @type {Event} */ event) => {
  const input = /** @type {HTMLInputElement} */ (event.target);
  const file = input.files?.[0];
  if (file) openFile(file);
  input.value = '';
});
$('model-file').addEventListener('change', (/** @type {Event} */ event) => {
  const input = /** @type {HTMLInputElement} */ (event.target);
  const file = input.files?.[0];
  if (file) void openModelFile(file);
  input.value = '';
});
$('webcam').addEventListener('click', () => void toggleWebcam());
$('clips').addEventListener('change', () => {
  if (currentFile && !webcam && model) void openVideo(currentFile);
});
const drop = $('drop');
document.addEventListener('dragover', (event) => {
  event.preventDefault();
  drop.classList.add('over');
});
document.addEventListener('dragleave', () => drop.classList.remove('over'));
document.addEventListener('drop', (event) => {
  event.preventDefault();
  drop.classList.remove('over');
  const file = event.dataTransfer?.files[0];
  if (file) openFile(file);
});

/**
 * The body of a response, with its progress on the status line (a paper-size model is 130 MB).
 * @param {Response} response @param {string} name
 */
async function download(response, name) {
  const total = Number(response.headers.get('Content-Length') ?? 0);
  if (!response.body || !(total > 0)) return new Uint8Array(await response.arrayBuffer());
  const bytes = new Uint8Array(total);
  const reader = response.body.getReader();
  let received = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    if (received + value.length > total) throw new Error(`the server sent more than the ${total} bytes it announced`);
    bytes.set(value, received);
    received += value.length;
    setState('starting', `Downloading ${name}: ${(received / 1e6).toFixed(1)} of ${(total / 1e6).toFixed(1)} MB`);
  }
  if (received !== total) throw new Error(`the download ended after ${received} of ${total} bytes`);
  return bytes;
}

/** The server's model (GET model.onnx), if it has one. */
async function start() {
  let response;
  try {
    response = await fetch(new URL('../model.onnx', import.meta.url));
  } catch (error) {
    setState('no-model', `No model from the server (${messageOf(error)}): open a .onnx file exported by \`stcnet export\`.`);
    return;
  }
  if (response.status === 404) {
    $('model-line').textContent = 'No model yet.';
    setState('no-model', 'This server has no model: open a .onnx file exported by `stcnet export`.');
    return;
  }
  try {
    if (!response.ok) throw new Error(`the server answered ${response.status} ${response.statusText}`);
    const name = decodeURIComponent(response.headers.get('X-Model-Name') ?? 'model.onnx');
    await loadModel(await download(response, name), name);
  } catch (error) {
    $('model-line').textContent = 'The model could not be loaded.';
    setState('error', `model.onnx: ${messageOf(error)}`, true);
  }
}

void start();
