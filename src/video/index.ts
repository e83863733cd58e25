export { probeVideo, type VideoInfo } from './probe.js';
export { decodeVideo, decodeFrames, decodeFramesProbeless, scaledSize, type DecodeOptions, type DecodedVideo } from './decode.js';
export { FrameCache, prepareCache, openCachedVideo, readCachedFrames, type PrepareOptions, type PrepareResult, type CacheMeta } from './cache.js';
