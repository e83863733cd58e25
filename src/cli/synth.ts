import os from 'node:os';
import { defineCommand } from './args.js';
import { generateSynth, SYNTH_CLASSES } from '../data/synth.js';

export const command = defineCommand({
  name: 'synth',
  summary: 'generate a labeled video dataset whose classes differ only by motion (UCF101 layout)',
  usage: 'stcnet synth OUT_DIR [--classes 12] [--videos 20] [--width 160 --height 120] [--fps 25] [--seed 0]',
  positionals: { name: 'OUT_DIR' },
  examples: ['stcnet synth data/synth --classes 6 --videos 30 --scene plain', 'stcnet synth data/shapes --label shape --classes 6 --videos 20   # 5 shape classes, 6 motions mixed in', 'stcnet synth /tmp/motion --width 96 --height 72 --fps 16 --seed 1'],
  flags: {
    classes: { type: 'int', description: `number of classes (2..${SYNTH_CLASSES.length}): ${SYNTH_CLASSES.map((c) => c.name).join(', ')}`, default: SYNTH_CLASSES.length, min: 2, max: SYNTH_CLASSES.length },
    videos: { type: 'int', description: 'videos per class', default: 20, min: 1 },
    width: { type: 'int', description: 'frame width in pixels (even)', default: 160, min: 16 },
    height: { type: 'int', description: 'frame height in pixels (even)', default: 120, min: 16 },
    fps: { type: 'number', description: 'frames per second', default: 25, min: 1 },
    'min-duration': { type: 'number', description: 'shortest video, seconds', default: 2, min: 0.1 },
    'max-duration': { type: 'number', description: 'longest video, seconds', default: 4, min: 0.1 },
    noise: { type: 'number', description: 'pixel noise standard deviation (0-255 units)', default: 4, min: 0 },
    shake: { type: 'number', description: 'camera shake, maximum offset in pixels per frame', default: 1, min: 0 },
    scene: { type: 'string', description: "'varied': textured objects and backgrounds, distractors; 'plain': a solid bright object on a dark gradient (learnt from fewer videos)", default: 'varied', choices: ['varied', 'plain'] },
    label: { type: 'string', description: "what the classes are: 'motion' (default; no single frame tells them apart) or 'shape' (the moving object's shape, 5 classes that one frame shows, with --classes motions mixed into each: the frame-level task of stcnet train-2d)", default: 'motion', choices: ['motion', 'shape'] },
    'clips-per-group': { type: 'int', description: 'videos per group (a group shares its look; splits never share a group)', default: 4, min: 1 },
    seed: { type: 'int', description: 'random seed (the same seed gives byte-identical frames)', default: 0 },
    jobs: { type: 'int', description: 'parallel encoders', default: os.availableParallelism(), min: 1 },
    quiet: { type: 'boolean', description: 'no progress bar', default: false },
  },
  async run(args) {
    const out = args.positionals[0]!;
    const f = args.flags;
    const result = await generateSynth({
      out,
      classes: f.classes,
      videosPerClass: f.videos,
      width: f.width,
      height: f.height,
      fps: f.fps,
      minDuration: f['min-duration'],
      maxDuration: f['max-duration'],
      noise: f.noise,
      shake: f.shake,
      seed: f.seed,
      clipsPerGroup: f['clips-per-group'],
      scene: f.scene,
      label: f.label,
      jobs: f.jobs,
      quiet: f.quiet,
    });
    process.stdout.write(`synth: wrote ${result.videos} videos to ${out} in ${result.seconds.toFixed(1)} s ` +
      `(UCF101 layout: classInd.txt, trainlist0{1,2,3}.txt, testlist0{1,2,3}.txt)\n`);
  },
});
