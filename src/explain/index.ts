export { gradCam, type GradCamResult, type GradCamOptions } from './grad_cam.js';
export { explainVideos, type VideoExplanation } from './explain.js';
export { clipFrames, heatColor, overlay, upscale, contactSheet, type Frames } from './render.js';
