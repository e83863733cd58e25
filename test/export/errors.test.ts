import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, tempDir } from '../helpers.js';
import { GraphBuilder } from '../../src/export/index.js';
import { loadOnnxModel, readOnnxMetadata } from '../../src/onnx/index.js';
import { UserError } from '../../src/util/errors.js';
import { manualSeed } from '../../src/engine/index.js';
import { createModel } from '../../src/models/index.js';
import { saveModelCheckpoint } from '../../src/models/checkpoint.js';
import { savedModel } from './fixture.js';

/** Bad input to `stcnet export` and to loadOnnxModel: a clear one-line error, exit 2, nothing (half-)written. */

const cli = join(repoRoot, 'dist/src/cli/main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 120_000 });

function assertUserError(result: ReturnType<typeof run>, pattern: RegExp): void {
  assert.equal(result.status, 2, `exit status (stderr: ${result.stderr})`);
  const lines = result.stderr.trimEnd().split('\n').filter((line) => !line.startsWith('export: '));
  assert.equal(lines.length, 1, `one error line, got:\n${result.stderr}`);
  assert.match(lines[0]!, /^error: /);
  assert.match(lines[0]!, pattern);
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
}

test('stcnet export: bad checkpoints, flags and output paths are one-line errors, and nothing is written', () => {
  const dir = tempDir('stcnet-export-errors-');
  const outDir = join(dir, 'out');
  mkdirSync(outDir);
  const saved = savedModel(dir, 'stc_resnet3d_10', { numClasses: 3, frames: 4, widthMultiplier: 0.25 }, 4, 32);
  saved.model.dispose();
  const text = join(dir, 'notes.safetensors');
  writeFileSync(text, 'these are my notes, not a checkpoint\n');
  const txt = join(dir, 'notes.txt');
  writeFileSync(txt, 'plain text\n');
  const badLabels = join(dir, 'labels.txt');
  writeFileSync(badLabels, 'one\ntwo\n');
  manualSeed(0);
  const image = createModel('resnet2d_18', { numClasses: 3 });
  const imageCheckpoint = join(dir, 'image.safetensors');
  saveModelCheckpoint(imageCheckpoint, image);
  image.dispose();
  const out = join(outDir, 'model.onnx');
  const cases: [string[], RegExp][] = [
    [['export', join(dir, 'missing.safetensors'), '--onnx', out], /missing\.safetensors: no such checkpoint file or run folder/],
    [['export', text, '--onnx', out], /notes\.safetensors: /],
    [['export', txt, '--onnx', out], /notes\.txt: unknown checkpoint format "\.txt"/],
    [['export', saved.checkpoint, '--onnx', join(dir, 'no-such-folder', 'model.onnx')], /--onnx .*model\.onnx: the folder .*no-such-folder does not exist/],
    [['export', saved.checkpoint, '--onnx', join(outDir, 'model.bin')], /the output file name must end in \.onnx/],
    [['export', saved.checkpoint, '--onnx', outDir + '.onnx'], /folder .* does not exist|is a folder/],
    [['export', saved.checkpoint], /missing --onnx OUT\.onnx/],
    [['export', saved.checkpoint, '--onnx', out, '--batch', 'lots'], /--batch expects "dynamic" or a positive integer, got "lots"/],
    [['export', saved.checkpoint, '--onnx', out, '--opset', '13'], /--opset must be at least 17/],
    [['export', saved.checkpoint, '--onnx', out, '--frames', '8'], /the checkpoint records frames 4; --frames 8 disagrees/],
    [['export', saved.checkpoint, '--onnx', out, '--size', '64'], /the checkpoint records size 32; --size 64 disagrees/],
    [['export', saved.checkpoint, '--onnx', out, '--labels', badLabels], /--labels .*labels\.txt: names 2 classes, but the model has 3 outputs/],
    [['export', saved.checkpoint, '--onnx', out, '--arch', 'r3d_18'], /the checkpoint is a stc_resnet3d_10, not r3d_18/],
    [['export', imageCheckpoint, '--onnx', out], /resnet2d_18 is a 2D image model; stcnet export writes video \(3D\) models/],
  ];
  mkdirSync(outDir + '.onnx');
  for (const [args, pattern] of cases) {
    assertUserError(run(...args), pattern);
    assert.deepEqual(readdirSync(outDir), [], `${args.join(' ')} left files behind`);
  }
  // A failed export leaves an existing file as it was.
  writeFileSync(out, 'the previous model');
  assertUserError(run('export', saved.checkpoint, '--onnx', out, '--labels', badLabels), /names 2 classes/);
  assert.equal(readFileSync(out, 'utf8'), 'the previous model');
  assert.deepEqual(readdirSync(outDir), ['model.onnx']);
});

test('stcnet export --help is instant: libtorch is not loaded', () => {
  const code = `process.argv = [process.argv[0], ${JSON.stringify(cli)}, 'export', '--help'];
    await import(${JSON.stringify(cli)});
    setTimeout(() => process.stderr.write(require('node:fs').readFileSync('/proc/self/maps', 'utf8').includes('libtorch') ? 'LOADED' : 'NOT LOADED'), 200);`;
  const child = spawnSync(process.execPath, ['--input-type=commonjs', '-e', `(async () => { ${code.replace('await import', 'await import')} })()`], { encoding: 'utf8' });
  assert.equal(child.status, 0, child.stderr);
  assert.match(child.stdout, /usage: stcnet export CHECKPOINT\|RUN_DIR --onnx OUT\.onnx/);
  assert.match(child.stdout, /examples:/);
  assert.equal(child.stderr, 'NOT LOADED');
});

test('loadOnnxModel / readOnnxMetadata: files that are not stcnet ONNX models are UserErrors naming the file', async () => {
  const dir = tempDir('stcnet-onnx-errors-');
  const text = join(dir, 'text.onnx');
  writeFileSync(text, 'hello, I am not a protobuf at all\n');
  const empty = join(dir, 'empty.onnx');
  writeFileSync(empty, '');
  const random = join(dir, 'random.onnx');
  writeFileSync(random, Buffer.from(Array.from({ length: 5000 }, (_, i) => (i * 97 + 13) % 256)));
  // A valid ONNX model that stcnet did not write (no stcnet metadata).
  const g = new GraphBuilder('other');
  const x = g.input({ name: 'x', shape: [1, 4] });
  const y = g.node('Relu', [x], 'y');
  const foreign = join(dir, 'foreign.onnx');
  writeFileSync(foreign, g.encode([{ name: y, shape: [1, 4] }], { opset: 17, irVersion: 8, producerVersion: '0', metadata: { author: 'someone' } }));
  // A real export cut in half (an interrupted copy).
  const saved = savedModel(dir, 'resnet3d_10', { numClasses: 3, widthMultiplier: 0.25 }, 4, 32);
  saved.model.dispose();
  const { exportOnnx } = await import('../../src/export/index.js');
  const whole = join(dir, 'whole.onnx');
  await exportOnnx(saved.checkpoint, whole, { verify: false });
  const bytes = readFileSync(whole);
  const truncated = join(dir, 'truncated.onnx');
  writeFileSync(truncated, bytes.subarray(0, Math.floor(bytes.length / 2)));
  // stcnet's metadata, damaged.
  const good = readOnnxMetadata(whole).raw;
  const damaged = (name: string, change: Record<string, string | undefined>) => {
    const file = join(dir, name);
    const props = Object.fromEntries(Object.entries({ ...good, ...change }).filter(([, v]) => v !== undefined)) as Record<string, string>;
    writeFileSync(file, g.encode([{ name: y, shape: [1, 4] }], { opset: 17, irVersion: 8, producerVersion: '0', metadata: props }));
    return file;
  };
  const cases: [string, RegExp][] = [
    [damaged('bad-json.onnx', { classes: '["a", "b"' }), /bad-json\.onnx: stcnet metadata "classes" is not valid JSON/],
    [damaged('no-pre.onnx', { preprocessing: undefined }), /no-pre\.onnx: stcnet metadata "preprocessing" is missing/],
    [damaged('bad-std.onnx', { preprocessing: JSON.stringify({ ...JSON.parse(good.preprocessing!), std: [0.2, 0, 0.2] }) }), /bad-std\.onnx: stcnet metadata "preprocessing" is malformed: .* at std\.1/],
    [damaged('disagree.onnx', { input: JSON.stringify({ ...JSON.parse(good.input!), size: 64 }) }), /disagree\.onnx: stcnet metadata disagree: input 4×64² but preprocessing 4×32²/],
    [join(dir, 'missing.onnx'), /missing\.onnx: no such file or folder/],
    [dir, /is a folder, expected an \.onnx file/],
    [text, /text\.onnx: not an ONNX model/],
    [empty, /empty\.onnx: not an ONNX model \(the file is empty\)/],
    [random, /random\.onnx: not an ONNX model/],
    [foreign, /foreign\.onnx: an ONNX model without stcnet metadata \(not written by `stcnet export`\); its metadata keys: author/],
    [truncated, /truncated\.onnx: not an ONNX model \(a field runs past the end of the data\)/],
  ];
  for (const [file, pattern] of cases) {
    assert.throws(() => readOnnxMetadata(file), (e: Error) => e instanceof UserError && pattern.test(e.message) && !e.message.includes('\n'), file);
    await assert.rejects(loadOnnxModel(file), (e: Error) => e instanceof UserError && pattern.test(e.message), file);
  }
  const model = await loadOnnxModel(whole, { threads: 1 });
  try {
    await assert.rejects(model.logits(new Float32Array(10), 1), /1 clip of 3×4×32×32 need 12288 values, got 10/);
    await assert.rejects(model.predictClip({ frames: [new Uint8Array(5)], width: 4, height: 4 }), /frame 0 must be 4×4 packed RGB \(48 bytes\), got 5/);
    await assert.rejects(model.predictClip({ frames: [], width: 4, height: 4 }), /no frames given/);
    await assert.rejects(model.predictVideo(text, { clips: 2 }), (e: Error) => e instanceof UserError && e.message.startsWith(`${text}: `));
    await assert.rejects(model.predictVideo(whole, { clips: 0 }), /clips must be a positive integer, got 0/);
  } finally {
    await model.close();
  }
  await assert.rejects(model.logits(new Float32Array(12288), 1), /the model was closed/);
});
