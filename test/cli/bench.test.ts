import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, tempDir } from '../helpers.js';
import type { BenchReport } from '../../src/bench/run.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, 'bench', ...args], { encoding: 'utf8', timeout: 600_000 });
const tiny = ['--model', 'resnet3d_10', '--frames', '4', '--size', '32', '--classes', '5', '--threads', '1', '--repeats', '1', '--warmup', '0'];

test('stcnet bench: every path of every side runs the same function, and the report says so', () => {
  const json = join(tempDir(), 'bench.json');
  const result = run(...tiny, '--batches', '1,2', '--train-batch', '2', '--bf16', 'off', '--json', json);
  assert.equal(result.status, 0, result.stderr);
  const report = JSON.parse(readFileSync(json, 'utf8')) as BenchReport;
  const [infer, train] = report.tasks;
  assert.deepEqual(Object.keys(infer!.results).sort(),
    ['ort_f32', 'stcnet_eager_f32', 'stcnet_prepared_f32', 'torch_eager_f32', 'torch_frozen_f32'].sort());
  assert.deepEqual(Object.keys(train!.results).sort(), ['stcnet_train_f32', 'torch_train_f32']);
  // Same weights and input on every side: float32 logits agree, whatever path computed them.
  for (const [path, deviation] of Object.entries(infer!.logitDeviation)) assert.ok(deviation < 1e-4, `${path}: logits differ by ${deviation}`);
  // A float32 bound: training-mode BatchNorm at batch 2 amplifies rounding. On an AVX-512 CPU PyTorch's own two
  // float32 paths (oneDNN and its slow_conv3d) gave first losses 1.25e-5 apart for this model, each within
  // 8e-6 of float64; a different function would be off by far more.
  assert.ok(train!.lossDeviation.stcnet_train_f32! < 1e-4, `first training loss differs by ${train!.lossDeviation.stcnet_train_f32}`);
  for (const task of report.tasks) {
    for (const [path, r] of Object.entries(task.results)) {
      for (const batch of task.batches) assert.ok(r.rates[batch]! > 0, `${path} has a rate at batch ${batch}`);
      assert.ok(r.peakRssMiB > 10, `${path} reports its peak RSS`);
    }
    for (const batch of task.batches) {
      const best = task.bestRatio[batch]!;
      assert.ok(best.low > 0 && best.low <= best.ratio && best.ratio <= best.high, `batch ${batch}: ratio ${best.ratio} in ${best.low}..${best.high}`);
    }
    // Every path timed once per round (--repeats 1), at every batch size.
    for (const r of Object.values(task.results)) assert.deepEqual(task.batches.map((b) => r.roundSeconds[b]!.length), task.batches.map(() => 1));
  }
  assert.match(result.stdout, /^stcnet bench: resnet3d_10, 5 classes, 4×32×32, 1 threads, cpu/);
  assert.match(result.stdout, /PyTorch frozen TorchScript float32 .*\n/);
  assert.match(result.stdout, /batch 2: stcnet's best \(.*\) is \d+\.\d\d× the best peer/);
  assert.match(result.stderr, /infer: \[5\/5\] \w+ loaded, checked and warmed up/, 'a progress line per path');
  assert.match(result.stderr, /train: round 1\/1: stcnet's best ÷ the best peer \d+\.\d\d× at batch 2/, 'a progress line per round');
});

test('stcnet bench: bad options are refused before any work', () => {
  const cases: [string[], RegExp][] = [
    [['--model', 'r2plus1d_18'], /--model: "r2plus1d_18" is not a model the PyTorch reference builds/],
    [['--peers', 'tensorflow'], /--peers: "tensorflow" is not one of torch, ort/],
    [['--tasks', 'infer,fly'], /--tasks: "fly" is not one of infer, train/],
    [['--batches', '1,0'], /--batches must list positive integers/],
    [['--python', '/nonexistent/python3'], /the PyTorch peers need \/nonexistent\/python3 with torch/],
    [['--quick', '--model', 'resnet3d_10,resnet3d_18'], /--quick measures one model/],
    [['--json', '/etc/passwd/out.json'], /--json .*is a file/],
  ];
  for (const [args, message] of cases) {
    const result = run(...args);
    assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, message);
    assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
  }
});

test('stcnet bench: a side that fails is named with its error, exit 2, and no side is left running', () => {
  // A "Python" that has torch (for the check before any work) but whose bench side dies at once.
  const dir = tempDir();
  const python = join(dir, 'python3');
  writeFileSync(python, '#!/bin/sh\nif [ "$1" = "-c" ]; then echo 1.13.0; exit 0; fi\necho "RuntimeError: out of memory at step 1" >&2\nexit 1\n');
  chmodSync(python, 0o755);
  const result = run(...tiny, '--tasks', 'train', '--train-batch', '2', '--bf16', 'off', '--peers', 'torch', '--python', python);
  assert.equal(result.status, 2, result.stderr);
  assert.match(result.stderr, /bench: torch_train_f32 failed: RuntimeError: out of memory at step 1/);
  assert.doesNotMatch(result.stderr, /\n\s+at /, 'no stack trace');
  const side = join(repoRoot, 'dist/src/bench/stcnet_side.js');
  const running = readdirSync('/proc').filter((pid) => /^\d+$/.test(pid)).filter((pid) => {
    try {
      return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(side);
    } catch {
      return false;  // ended meanwhile
    }
  });
  assert.deepEqual(running, [], 'no stcnet side outlives the bench');
});

test('stcnet bench --peers none measures stcnet alone', () => {
  const result = run(...tiny, '--peers', 'none', '--tasks', 'infer', '--batches', '1', '--bf16', 'off');
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /stcnet prepareForInference float32/);
  assert.doesNotMatch(result.stdout, /PyTorch|ONNX/);
  assert.ok(!existsSync(join(repoRoot, 'bench.json')));
});
