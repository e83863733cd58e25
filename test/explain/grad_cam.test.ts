import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { F, fromTypedArray, manualSeed, noGrad, randn, tidy, memory } from '../../src/engine/index.js';
import { createModel, ModelInputError } from '../../src/models/index.js';
import { saveStateDict } from '../../src/nn/weights.js';
import { gradCam } from '../../src/explain/grad_cam.js';
import { clipFrames, contactSheet, heatColor, overlay, upscale } from '../../src/explain/render.js';
import { assertClose, pythonJson, tempDir } from '../helpers.js';

// Grad-CAM (src/explain/grad_cam.ts) against an independent PyTorch implementation on the reference model
// (scripts/fixtures/grad_cam.py: hooks on layerN, as MMAction2's tool does), against the closed form at
// the last stage, and the pictures made of it (src/explain/render.ts).

interface TorchGradCam { classIndex: number; scores: number[]; stageShape: number[]; cam: number[] }

test('gradCam: PyTorch\'s Grad-CAM of the same weights and clip, at stages 4 and 2, for the top class and a given one', () => {
  manualSeed(301);
  const dir = tempDir('stcnet-gradcam-');
  const model = createModel('stc_resnet3d_18', { numClasses: 5, frames: 8 });
  const weights = join(dir, 'weights.safetensors');
  saveStateDict(weights, model.stateDict());
  const clip = randn([1, 3, 8, 48, 48]);
  const clipFile = join(dir, 'clip.f32');
  writeFileSync(clipFile, clip.toFloat32Array());
  for (const [stage, classIndex] of [[4, undefined], [2, undefined], [2, 3]] as const) {
    const label = `stage ${stage}, class ${classIndex ?? 'top'}`;
    const expected = pythonJson<TorchGradCam>('scripts/fixtures/grad_cam.py',
      [weights, clipFile, 'stc_resnet3d_18', '8', '5', String(stage), ...(classIndex === undefined ? [] : [String(classIndex)])]);
    const got = gradCam(model, clip, { stage, classIndex });
    assert.equal(got.classIndex, expected.classIndex, label);
    assert.deepEqual(got.stageShape, expected.stageShape, label);
    assert.deepEqual(got.shape, [8, 48, 48], label);
    assertClose(got.scores, expected.scores, { rtol: 1e-4, atol: 1e-6, what: `${label}: scores` });
    assertClose(got.cam, expected.cam, { rtol: 0, atol: 2e-4, what: `${label}: map` });
    assert.ok(Math.min(...got.cam) === 0 && Math.max(...got.cam) === 1, `${label}: min-max normalised`);
    assert.equal(got.frameImportance.length, 8, label);
  }
  assert.equal(model.training, true, 'the model is left in the mode it was in');
  assert.ok(model.parameters().every((parameter) => parameter.requiresGrad && parameter.grad === null), 'no weight gradient made, requiresGrad restored');
  clip.dispose();
  model.dispose();
});

test('gradCam at the last stage is the class activation map: relu(Σ_c w[k, c] · A_c), upsampled, normalised', () => {
  manualSeed(307);
  const model = createModel('resnet3d_18', { numClasses: 4, frames: 8, widthMultiplier: 0.25 });
  const clip = randn([1, 3, 16, 64, 64]);
  const got = gradCam(model, clip, { stage: 4, classIndex: 2 });
  // Before global average pooling and a linear classifier the logit's gradient is w[k, c]/(T'·H'·W') at
  // every position: the channel weights are the classifier's row, up to a factor that normalising removes.
  const expected = noGrad(() => tidy(() => {
    model.eval();
    const activations = model.forwardToStage(clip, 4);
    const map = activations.mul(model.fc.weight.select(0, 2).view([1, -1, 1, 1, 1])).sum(1, true).relu();
    const upsampled = F.interpolate(map, got.shape).flatten();
    const low = upsampled.min().item();
    return upsampled.sub(low).div(upsampled.max().item() - low).toFloat32Array();
  }));
  model.train();
  assert.deepEqual(got.stageShape, [1, 2, 2]);
  assertClose(got.cam, expected, { rtol: 0, atol: 1e-5, what: 'map' });
  clip.dispose();
  model.dispose();
});

test('gradCam: a clip or class the model does not take, a 2D model or a bad stage is an error naming it; no tensors are left', () => {
  manualSeed(311);
  const model = createModel('stc_resnet3d_18', { numClasses: 3, frames: 4, widthMultiplier: 0.125 });
  const clip = randn([1, 3, 4, 32, 32]);
  assert.throws(() => gradCam(model, randn([2, 3, 4, 32, 32])), (error: Error) => error instanceof ModelInputError && /one clip, 1×C×T×H×W, got \[2, 3, 4, 32, 32\]/.test(error.message));
  assert.throws(() => gradCam(model, clip, { classIndex: 3 }), /class index must be an integer in \[0, 2\], got 3/);
  assert.throws(() => gradCam(model, clip, { stage: 5 }), /stage must be 1, 2, 3 or 4 \(layer1..layer4\), got 5/);
  assert.throws(() => gradCam(model, randn([1, 3, 8, 32, 32])), /built for 4-frame clips, got 8 frames/);
  const image = createModel('resnet2d_18', { numClasses: 3 });
  assert.throws(() => gradCam(image, clip), /resnet2d_18 is an image model/);
  image.dispose();
  gradCam(model, clip, { stage: 3 });
  const before = memory().tensors;
  for (let i = 0; i < 5; i++) gradCam(model, clip, { stage: 1 + (i % 4) });
  assert.equal(memory().tensors, before);
  clip.dispose();
  model.dispose();
});

test('render: the clip\'s frames back in bytes, the colour scale, blending, upscaling and the sheet', () => {
  const [height, width, frames] = [3, 4, 2];
  const mean = [0.4, 0.5, 0.6], std = [0.2, 0.25, 0.3];
  const pixels = Uint8Array.from({ length: 3 * frames * height * width }, (_, i) => (i * 37) % 256);  // C×T×H×W
  const normalised = Float32Array.from(pixels, (v, i) => {
    const c = Math.floor(i / (frames * height * width));
    return (v / 255 - mean[c]!) / std[c]!;
  });
  const clip = fromTypedArray(normalised, [1, 3, frames, height, width]);
  const back = clipFrames(clip, mean, std);
  clip.dispose();
  assert.deepEqual([back.width, back.height, back.images.length], [width, height, frames]);
  for (let t = 0; t < frames; t++) {
    for (let p = 0; p < height * width; p++) {
      for (let c = 0; c < 3; c++) assert.equal(back.images[t]![p * 3 + c], pixels[(c * frames + t) * height * width + p], `frame ${t}, pixel ${p}, channel ${c}`);
    }
  }
  const [cold, middle, hot] = [heatColor(0), heatColor(0.5), heatColor(1)];
  assert.ok(cold[2] > cold[0] && cold[2] > cold[1], `0 is blue: ${cold}`);
  assert.ok(middle[1] === 255, `0.5 is green-yellow: ${middle}`);
  assert.ok(hot[0] > hot[1] && hot[0] > hot[2], `1 is red: ${hot}`);
  assert.deepEqual(heatColor(-1), cold);
  const cam = Float32Array.from({ length: frames * height * width }, (_, i) => i / (frames * height * width - 1));
  assert.deepEqual(overlay(back, cam, 0).images, back.images, 'alpha 0 leaves the frames');
  const painted = overlay(back, cam, 1);
  assert.deepEqual(Array.from(painted.images[1]!.subarray(-3)), heatColor(1), 'alpha 1 is the colour scale');
  assert.throws(() => overlay(back, new Float32Array(5)), /a map of 5 values for 2 frames of 4×3/);
  const large = upscale(back, 2);
  assert.deepEqual([large.width, large.height], [8, 6]);
  assert.deepEqual(Array.from(large.images[0]!.subarray((1 * 8 + 3) * 3, (1 * 8 + 3) * 3 + 3)), Array.from(back.images[0]!.subarray(1 * 3, 2 * 3)));
  const sheet = contactSheet([back, painted], 1);
  assert.deepEqual([sheet.width, sheet.height], [2 * width + 1, 2 * height + 1]);
  assert.deepEqual(Array.from(sheet.rgb.subarray(0, 3)), Array.from(back.images[0]!.subarray(0, 3)));
  assert.deepEqual(Array.from(sheet.rgb.subarray(width * 3, width * 3 + 3)), [255, 255, 255], 'the gap is white');
  const lastRow = (height + 1 + height - 1) * sheet.width;
  assert.deepEqual(Array.from(sheet.rgb.subarray((lastRow + sheet.width - 1) * 3)), Array.from(painted.images[1]!.subarray(-3)));
});
