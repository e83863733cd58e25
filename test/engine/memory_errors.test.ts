import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  F, tensor, randn, zeros, tidy, keep, dispose, memory, fromTypedArray, noGrad, callOp, manualSeed,
  TorchError, DisposedError, ArgumentError, type Tensor,
} from '../../src/engine/index.js';
import { Conv3d, BatchNorm3d, Linear, Module } from '../../src/nn/index.js';
import { repoRoot } from '../helpers.js';

test('a shape mismatch throws a TorchError naming the operator and the shapes', () => {
  tidy(() => {
    const a = zeros([2, 3]);
    const b = zeros([4, 5]);
    assert.throws(() => a.matmul(b), (error: unknown) => {
      assert.ok(error instanceof TorchError);
      assert.match(error.message, /aten::matmul/);
      assert.match(error.message, /float32\[2, 3\]/);
      assert.match(error.message, /float32\[4, 5\]/);
      return true;
    });
    assert.throws(() => F.conv3d(zeros([1, 3, 4, 8, 8]), zeros([8, 4, 3, 3, 3])), (error: unknown) =>
      error instanceof TorchError && /conv/.test(error.message) && /\[8, 4, 3, 3, 3\]/.test(error.message));
  });
});

test('using a tensor after dispose throws DisposedError', () => {
  const x = tensor([1, 2]);
  x.dispose();
  assert.ok(x.isDisposed);
  assert.throws(() => x.add(1), DisposedError);
  assert.throws(() => x.shape, DisposedError);
  x.dispose(); // a second dispose is harmless
  const kept = tidy(() => tensor([1]));
  const freed = tidy(() => {
    const inner = tensor([2]);
    return { value: 1, inner };
  }).inner;
  assert.equal(kept.item(), 1);
  assert.equal(freed.item(), 2);
  let leaked: Tensor | undefined;
  tidy(() => {
    leaked = tensor([3]);
  });
  assert.throws(() => leaked!.item(), DisposedError);
  dispose([kept, freed]);
  assert.ok(kept.isDisposed && freed.isDisposed);
});

test('wrong dtypes and bad arguments throw typed errors with useful messages', () => {
  tidy(() => {
    manualSeed(9);
    const logits = randn([2, 3]);
    assert.throws(() => F.crossEntropy(logits, tensor([0.5, 1])), (error: unknown) =>
      error instanceof TorchError && /cross_entropy/.test(error.message));
    assert.throws(() => F.conv2d(zeros([1, 3, 4, 4], { dtype: 'int64' }), zeros([2, 3, 1, 1])), TorchError);
    assert.throws(() => fromTypedArray(new Float32Array(5), [2, 3]), (error: unknown) =>
      error instanceof ArgumentError && /needs 6 elements/.test(error.message));
    assert.throws(() => zeros([2, -1]), ArgumentError);
    assert.throws(() => F.conv3d(zeros([3, 4, 4]), zeros([2, 3, 1, 1, 1])), (error: unknown) =>
      error instanceof ArgumentError && /5-D input/.test(error.message));
    assert.throws(() => logits.to('float99' as 'float32'), /unknown dtype "float99"/);
  });
});

test('tidy frees intermediates, keeps what is returned or kept, and nests', () => {
  const before = memory().tensors;
  manualSeed(10);
  const result = tidy(() => {
    const a = randn([100]);
    const b = keep(a.mul(2));
    const inner = tidy(() => a.add(b).exp());
    return [inner, b];
  });
  assert.equal(memory().tensors, before + 2);
  dispose(result);
  assert.equal(memory().tensors, before);
  assert.equal(memory().scopes, 0);
});

test('memory() reports bytes of live tensors', () => {
  const before = memory();
  const x = zeros([1000]);
  assert.equal(memory().bytes - before.bytes, 4000);
  const view = x.view([10, 100]);
  assert.equal(memory().bytes - before.bytes, 4000, 'views do not count twice');
  dispose([x, view]);
  assert.equal(memory().bytes, before.bytes);
});

class TinyNet extends Module {
  readonly conv = this.addModule('conv', new Conv3d(3, 8, 3, { padding: 1, bias: false }));
  readonly bn = this.addModule('bn', new BatchNorm3d(8));
  readonly fc = this.addModule('fc', new Linear(8, 4));
  forward(x: Tensor): Tensor {
    return this.fc.forward(F.adaptiveAvgPool3d(this.bn.forward(this.conv.forward(x)).relu(), 1).flatten(1));
  }
}

test('2,000 training steps keep the live tensor count constant and RSS flat', () => {
  manualSeed(11); // the initial weights and the input: the loss below is reached from this start
  const net = new TinyNet();
  const input = keep(randn([2, 3, 4, 8, 8]));
  const target = keep(tensor([1, 3], { dtype: 'int64' }));
  const step = () => tidy(() => {
    const loss = F.crossEntropy(net.forward(input), target);
    loss.backward();
    noGrad(() => {
      for (const parameter of net.parameters()) {
        const grad = parameter.grad!;
        parameter.sub_(grad, 0.01);
        parameter.grad = null;
      }
    });
    return loss.item();
  });
  for (let i = 0; i < 50; i++) step();
  const tensorsAfterWarmup = memory().tensors;
  const rssAfterWarmup = process.memoryUsage().rss;
  let lastLoss = Infinity;
  for (let i = 0; i < 2000; i++) {
    lastLoss = step();
    if (i % 500 === 0) assert.equal(memory().tensors, tensorsAfterWarmup, `live tensors changed at step ${i}`);
  }
  assert.equal(memory().tensors, tensorsAfterWarmup);
  const growthMb = (process.memoryUsage().rss - rssAfterWarmup) / 2 ** 20;
  assert.ok(growthMb < 50, `RSS grew ${growthMb.toFixed(1)} MB over 2,000 steps`);
  assert.ok(Number.isFinite(lastLoss) && lastLoss < 0.1, `the net should fit two samples, loss ${lastLoss}`);
  input.dispose();
  target.dispose();
  net.dispose();
});

test('tensors that escape every scope are freed by the garbage collector as a safety net', () => {
  // A child process with --expose-gc: the collector runs on demand there, and the finalizers get the
  // event loop turns they need. Bounded by rounds of gc(), never by time.
  const engine = pathToFileURL(path.join(repoRoot, 'dist', 'src', 'engine', 'index.js')).href;
  const script = `
    const { memory, zeros } = await import(${JSON.stringify(engine)});
    const before = memory().tensors;
    (() => { for (let i = 0; i < 200; i++) zeros([256, 1024]); })(); // 1 MB each, never disposed
    const made = memory().tensors - before;
    let rounds = 0;
    for (; rounds < 100 && memory().tensors > before; rounds++) {
      globalThis.gc();
      await new Promise((resolve) => setImmediate(resolve));
    }
    process.stdout.write(JSON.stringify({ made, left: memory().tensors - before, rounds }));
  `;
  const output = execFileSync(process.execPath, ['--expose-gc', '--input-type=module', '-e', script], { encoding: 'utf8', timeout: 120_000 });
  const { made, left, rounds } = JSON.parse(output) as { made: number; left: number; rounds: number };
  assert.ok(made >= 200, `${made} tensors made`);
  assert.equal(left, 0, `every unreachable tensor was finalized (${left} left after ${rounds} rounds of gc)`);
});

test('callOp never reads a plain number as a tensor handle', () => {
  tidy(() => {
    const x = tensor([1, 2, 3]);
    // 1 in a Tensor position is the number 1 (wrapped as PyTorch does), not the tensor in slot 1.
    const y = callOp('aten::add.Tensor', x, 1) as Tensor;
    assert.deepEqual(y.toArray(), [2, 3, 4]);
    assert.throws(() => callOp('aten::add.Tensor', x, 'text'), ArgumentError);
  });
});

test('bad devices, stale caches and tensors in scalar positions are errors, never crashes or silent misreads', () => {
  tidy(() => {
    assert.throws(() => zeros([2], { device: 'gpu' as 'cpu' }), (error: unknown) => error instanceof ArgumentError && /got 'gpu'/.test(error.message));
    assert.throws(() => zeros([2]).to('cuda:one' as 'cuda'), ArgumentError);
    const x = zeros([3]);
    assert.throws(() => callOp('aten::clamp', x, tensor([0.5, 0.5, 0.5])), (error: unknown) =>
      error instanceof ArgumentError && /Scalar\?/.test(error.message));
    const y = zeros([2, 3]);
    callOp('aten::unsqueeze_', y, 0);
    assert.deepEqual(y.shape, [1, 2, 3]);
    const p = zeros([4], { requiresGrad: true });
    assert.throws(() => { p.grad = zeros([1]); }, (error: unknown) => error instanceof ArgumentError && /must match/.test(error.message));
    assert.throws(() => tidy(async () => zeros([1])), /synchronous/);
    assert.throws(() => noGrad(async () => 1), /synchronous/);
  });
});

test('memory() counts a storage once, however many handles share it (views, in-place results)', () => {
  const before = memory().bytes;
  tidy(() => {
    const x = zeros([1024, 1024]);
    x.add_(1);
    callOp('aten::add_.Tensor', x, 1);
    x.contiguous();
    x.to('float32');
    assert.equal(memory().bytes - before, 4 * 1024 * 1024);
  });
  assert.equal(memory().bytes, before);
});
