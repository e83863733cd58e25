import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  tensor, zeros, ones, full, arange, linspace, eye, rand, randn, randint, cat, stack, fromTypedArray, scalar,
  zerosLike, fullLike, where, randperm, tidy, manualSeed, callOp, operatorSchema, DTYPES, F, type DType,
} from '../../src/engine/index.js';
import { assertClose } from '../helpers.js';

const values = [-2.5, -1, -0.25, 0, 0.5, 1, 3];

test('element-wise math matches JavaScript Math', () => {
  tidy(() => {
    const x = tensor(values, { dtype: 'float64' });
    const cases: [string, (t: typeof x) => typeof x, (v: number) => number][] = [
      ['neg', (t) => t.neg(), (v) => -v],
      ['abs', (t) => t.abs(), Math.abs],
      ['exp', (t) => t.exp(), Math.exp],
      ['sin', (t) => t.sin(), Math.sin],
      ['cos', (t) => t.cos(), Math.cos],
      ['tanh', (t) => t.tanh(), Math.tanh],
      ['sigmoid', (t) => t.sigmoid(), (v) => 1 / (1 + Math.exp(-v))],
      ['relu', (t) => t.relu(), (v) => Math.max(0, v)],
      ['square', (t) => t.square(), (v) => v * v],
      ['floor', (t) => t.floor(), Math.floor],
      ['ceil', (t) => t.ceil(), Math.ceil],
      ['sign', (t) => t.sign(), Math.sign],
      ['add scalar', (t) => t.add(2), (v) => v + 2],
      ['sub alpha', (t) => t.sub(t, 0.5), (v) => v - 0.5 * v],
      ['mul', (t) => t.mul(t), (v) => v * v],
      ['div scalar', (t) => t.div(4), (v) => v / 4],
      ['pow', (t) => t.abs().pow(1.5), (v) => Math.abs(v) ** 1.5],
      ['clamp', (t) => t.clamp(-1, 0.5), (v) => Math.min(0.5, Math.max(-1, v))],
      ['where', (t) => t.where(t.gt(0), -7), (v) => (v > 0 ? v : -7)],
    ];
    for (const [name, op, reference] of cases) {
      assertClose(op(x).toArray(), values.map(reference), { rtol: 1e-12, atol: 1e-12, what: name });
    }
    const positive = tensor([0.5, 1, 4, 9], { dtype: 'float64' });
    assertClose(positive.sqrt().toArray(), [Math.SQRT1_2, 1, 2, 3], { rtol: 1e-12, what: 'sqrt' });
    assertClose(positive.log().toArray(), [0.5, 1, 4, 9].map(Math.log), { rtol: 1e-12, what: 'log' });
    assertClose(positive.rsqrt().toArray(), [0.5, 1, 4, 9].map((v) => 1 / Math.sqrt(v)), { rtol: 1e-12, what: 'rsqrt' });
    assertClose(positive.reciprocal().toArray(), [2, 1, 0.25, 1 / 9], { rtol: 1e-12, what: 'reciprocal' });
  });
});

test('comparisons give bool tensors', () => {
  tidy(() => {
    const x = tensor([1, 2, 3]);
    const y = tensor([3, 2, 1]);
    assert.equal(x.eq(y).dtype, 'bool');
    assert.deepEqual(x.eq(y).toArray(), [0, 1, 0]);
    assert.deepEqual(x.lt(y).toArray(), [1, 0, 0]);
    assert.deepEqual(x.ge(2).toArray(), [0, 1, 1]);
    assert.deepEqual(x.ne(2).logicalNot().toArray(), [0, 1, 0]);
    assert.equal(x.gt(0).all().item(), 1);
    assert.equal(x.gt(2).any().item(), 1);
  });
});

test('reductions match hand-computed values', () => {
  tidy(() => {
    const m = tensor([[1, 2, 3], [4, 5, 6]], { dtype: 'float64' });
    assert.equal(m.sum().item(), 21);
    assert.deepEqual(m.sum(0).toArray(), [5, 7, 9]);
    assert.deepEqual(m.sum(1, true).shape, [2, 1]);
    assert.deepEqual(m.mean(1).toArray(), [2, 5]);
    assert.equal(m.mean().item(), 3.5);
    assert.equal(m.max().item(), 6);
    assert.equal(m.min().item(), 1);
    const { values: maxValues, indices } = m.max(1);
    assert.deepEqual(maxValues.toArray(), [3, 6]);
    assert.deepEqual(indices.toArray(), [2, 2]);
    assert.deepEqual(m.argmax(0).toArray(), [1, 1, 1]);
    assert.deepEqual(m.argmin(1).toArray(), [0, 0]);
    assertClose(m.std(1).toArray(), [1, 1], { rtol: 1e-12 });
    assertClose(m.var(1, { unbiased: false }).toArray(), [2 / 3, 2 / 3], { rtol: 1e-12 });
    assertClose(m.logsumexp(1).toArray(), [Math.log(Math.exp(1) + Math.exp(2) + Math.exp(3)), Math.log(Math.exp(4) + Math.exp(5) + Math.exp(6))], { rtol: 1e-12 });
    assertClose([m.norm().item()], [Math.sqrt(91)], { rtol: 1e-12 });
    assert.equal(m.prod().item(), 720);
    const softmax = m.softmax(1).toArray();
    const denominator = Math.exp(1) + Math.exp(2) + Math.exp(3);
    assertClose(softmax.slice(0, 3), [Math.exp(1) / denominator, Math.exp(2) / denominator, Math.exp(3) / denominator], { rtol: 1e-12 });
    assertClose(m.logSoftmax(1).toArray().slice(0, 1), [1 - Math.log(denominator)], { rtol: 1e-12 });
  });
});

test('topk, sort and argsort', () => {
  tidy(() => {
    const x = tensor([[5, 1, 4, 2, 3], [0, 9, 8, 7, 6]]);
    const { values: top, indices } = x.topk(2, 1);
    assert.deepEqual(top.toArray(), [5, 4, 9, 8]);
    assert.deepEqual(indices.toArray(), [0, 2, 1, 2]);
    assert.deepEqual(x.topk(1, 1, false).values.toArray(), [1, 0]);
    assert.deepEqual(x.sort(1).values.toArray(), [1, 2, 3, 4, 5, 0, 6, 7, 8, 9]);
    assert.deepEqual(x.argsort(1, true).toArray(), [0, 2, 4, 3, 1, 1, 2, 3, 4, 0]);
  });
});

test('shape operations', () => {
  tidy(() => {
    const x = arange(24, undefined, 1, { dtype: 'float32' }).reshape([2, 3, 4]);
    assert.deepEqual(x.shape, [2, 3, 4]);
    assert.equal(x.rank, 3);
    assert.equal(x.numel, 24);
    assert.equal(x.size(-1), 4);
    assert.deepEqual(x.view([6, 4]).shape, [6, 4]);
    assert.deepEqual(x.flatten(1).shape, [2, 12]);
    assert.deepEqual(x.unsqueeze(0).shape, [1, 2, 3, 4]);
    assert.deepEqual(x.unsqueeze(0).squeeze(0).shape, [2, 3, 4]);
    assert.deepEqual(x.permute([2, 0, 1]).shape, [4, 2, 3]);
    assert.deepEqual(x.transpose(0, 2).contiguous().toArray().slice(0, 3), [0, 12, 4]);
    assert.deepEqual(x.select(1, 2).toArray(), [8, 9, 10, 11, 20, 21, 22, 23]);
    assert.deepEqual(x.narrow(2, 1, 2).shape, [2, 3, 2]);
    assert.deepEqual(x.slice(2, 1, undefined, 2).toArray(), [1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23]);
    assert.deepEqual(x.slice(0, -1).shape, [1, 3, 4]);
    assert.deepEqual(x.flip([2]).toArray().slice(0, 4), [3, 2, 1, 0]);
    assert.deepEqual(tensor([1, 2]).expand([3, 2]).toArray(), [1, 2, 1, 2, 1, 2]);
    assert.deepEqual(tensor([1, 2]).repeat([2]).toArray(), [1, 2, 1, 2]);
    assert.deepEqual(x.split(1, 0).map((part) => part.shape), [[1, 3, 4], [1, 3, 4]]);
    assert.deepEqual(x.chunk(2, 2).map((part) => part.shape), [[2, 3, 2], [2, 3, 2]]);
    assert.ok(x.view([24]).sharesStorageWith(x));
    assert.ok(!x.clone().sharesStorageWith(x));
    assert.ok(x.isContiguous());
    assert.ok(!x.transpose(0, 2).isContiguous());
  });
});

test('indexing: indexSelect, gather, advanced index, maskedFill', () => {
  tidy(() => {
    const x = tensor([[10, 11, 12], [20, 21, 22], [30, 31, 32]]);
    const rows = tensor([2, 0], { dtype: 'int64' });
    assert.deepEqual(x.indexSelect(0, rows).toArray(), [30, 31, 32, 10, 11, 12]);
    assert.deepEqual(x.gather(1, tensor([[0], [2], [1]], { dtype: 'int64' })).toArray(), [10, 22, 31]);
    assert.deepEqual(x.index([rows, tensor([1, 2], { dtype: 'int64' })]).toArray(), [31, 12]);
    assert.deepEqual(x.index([null, tensor([0], { dtype: 'int64' })]).toArray(), [10, 20, 30]);
    assert.deepEqual(x.maskedFill(x.gt(25), 0).toArray(), [10, 11, 12, 20, 21, 22, 0, 0, 0]);
  });
});

test('concatenation and stacking', () => {
  tidy(() => {
    const a = tensor([[1, 2]]);
    const b = tensor([[3, 4]]);
    assert.deepEqual(cat([a, b], 0).toArray(), [1, 2, 3, 4]);
    assert.deepEqual(cat([a, b], 1).shape, [1, 4]);
    assert.deepEqual(stack([a, b], 0).shape, [2, 1, 2]);
  });
});

test('matmul, mm, bmm and transpose agree with a hand-written product', () => {
  tidy(() => {
    const a = tensor([[1, 2], [3, 4], [5, 6]], { dtype: 'float64' });
    const b = tensor([[7, 8, 9], [10, 11, 12]], { dtype: 'float64' });
    const expected = [27, 30, 33, 61, 68, 75, 95, 106, 117];
    assert.deepEqual(a.matmul(b).toArray(), expected);
    assert.deepEqual(a.mm(b).toArray(), expected);
    assert.deepEqual(a.unsqueeze(0).bmm(b.unsqueeze(0)).toArray(), expected);
    assert.deepEqual(b.T().shape, [3, 2]);
  });
});

test('in-place updates return the same tensor and change its values', () => {
  tidy(() => {
    const x = tensor([1, 2, 3]);
    assert.equal(x.add_(1), x);
    assert.deepEqual(x.toArray(), [2, 3, 4]);
    x.mul_(2).sub_(tensor([1, 1, 1]), 2).div_(2);
    assert.deepEqual(x.toArray(), [1, 2, 3]);
    x.addcmul_(tensor([1, 1, 1]), tensor([2, 2, 2]), 0.5);
    assert.deepEqual(x.toArray(), [2, 3, 4]);
    x.addcdiv_(tensor([2, 2, 2]), tensor([4, 4, 4]), 2);
    assert.deepEqual(x.toArray(), [3, 4, 5]);
    x.lerp_(tensor([5, 6, 7]), 0.5);
    assert.deepEqual(x.toArray(), [4, 5, 6]);
    x.clamp_(4.5, 5.5);
    assert.deepEqual(x.toArray(), [4.5, 5, 5.5]);
    x.copy_(tensor([9, 9, 9])).zero_();
    assert.deepEqual(x.toArray(), [0, 0, 0]);
    x.fill_(1.5).sqrt_();
    assertClose(x.toArray(), [Math.sqrt(1.5), Math.sqrt(1.5), Math.sqrt(1.5)], { rtol: 1e-6 });
  });
});

test('creation functions', () => {
  tidy(() => {
    assert.deepEqual(zeros([2, 3]).toArray(), [0, 0, 0, 0, 0, 0]);
    assert.deepEqual(ones([2], { dtype: 'int32' }).toArray(), [1, 1]);
    assert.deepEqual(full([2], 7).toArray(), [7, 7]);
    assert.equal(arange(5).dtype, 'int64');
    assert.deepEqual(arange(1, 2, 0.25).toArray(), [1, 1.25, 1.5, 1.75]);
    assert.deepEqual(linspace(0, 1, 5).toArray(), [0, 0.25, 0.5, 0.75, 1]);
    assert.deepEqual(eye(2).toArray(), [1, 0, 0, 1]);
    assert.equal(scalar(3.5).item(), 3.5);
    assert.deepEqual(scalar(3.5).shape, []);
    assert.deepEqual(zerosLike(ones([2, 2])).toArray(), [0, 0, 0, 0]);
    manualSeed(12); // the statistical bounds below hold for this draw, not by chance on each run
    const r = rand([1000]).toArray();
    assert.ok(r.every((v) => v >= 0 && v < 1));
    const n = randn([4000]);
    assert.ok(Math.abs(n.mean().item()) < 0.1 && Math.abs(n.std().item() - 1) < 0.1);
    const ints = randint(3, 6, [500]).toArray();
    assert.ok(ints.every((v) => v >= 3 && v < 6) && new Set(ints).size === 3);
  });
});

test('manualSeed makes random draws repeatable', () => {
  tidy(() => {
    manualSeed(42);
    const first = randn([8]).toArray();
    manualSeed(42);
    assert.deepEqual(randn([8]).toArray(), first);
  });
});

test('typed arrays of every dtype round-trip through tensors', () => {
  const samples: Record<DType, ArrayBufferView> = {
    float32: new Float32Array([1.5, -2, 3.25]),
    float64: new Float64Array([1e-300, -2, 3.125]),
    float16: new Uint16Array([0x3c00, 0xc000, 0x4248]), // 1, -2, 3.140625
    bfloat16: new Uint16Array([0x3f80, 0xc000, 0x4049]), // 1, -2, 3.140625
    int64: new BigInt64Array([1n, -(2n ** 40n), 3n]),
    int32: new Int32Array([1, -2, 2 ** 31 - 1]),
    int16: new Int16Array([1, -2, 32767]),
    int8: new Int8Array([1, -2, 127]),
    uint8: new Uint8Array([0, 128, 255]),
    bool: new Uint8Array([1, 0, 1]),
  };
  tidy(() => {
    for (const dtype of DTYPES) {
      const source = samples[dtype];
      const x = fromTypedArray(source, [3], { dtype });
      assert.equal(x.dtype, dtype);
      assert.deepEqual(Array.from(x.toTypedArray() as ArrayLike<number | bigint>), Array.from(source as unknown as ArrayLike<number | bigint>), dtype);
    }
    assert.deepEqual(fromTypedArray(samples.float16, [3], { dtype: 'float16' }).toArray(), [1, -2, 3.140625]);
    assert.deepEqual(fromTypedArray(samples.bfloat16, [3], { dtype: 'bfloat16' }).toArray(), [1, -2, 3.140625]);
    assert.deepEqual(fromTypedArray(new Float32Array([1, 2, 3, 4, 5, 6]), [2, 3]).to('int32').toArray(), [1, 2, 3, 4, 5, 6]);
  });
});

test('callOp reaches any operator by name, with schema defaults', () => {
  tidy(() => {
    const x = tensor([-4, 0.5, 4]);
    const y = callOp('aten::hardtanh', x) as ReturnType<typeof tensor>;
    assert.deepEqual(y.toArray(), [-1, 0.5, 1]);
    const [values, indices] = callOp('aten::kthvalue', tensor([3, 1, 2]), 2) as ReturnType<typeof tensor>[];
    assert.equal(values!.item(), 2);
    assert.equal(indices!.item(), 2);
    assert.match(operatorSchema('aten::hardtanh'), /min_val=-1/);
  });
});

test('more element-wise and logical wrappers', () => {
  tidy(() => {
    const a = tensor([1, -2, 3.5, Number.POSITIVE_INFINITY]);
    const b = tensor([0, 5, 3, 1]);
    assert.deepEqual(a.maximum(b).toArray(), [1, 5, 3.5, Infinity]);
    assert.deepEqual(a.minimum(b).toArray(), [0, -2, 3, 1]);
    assert.deepEqual(a.isfinite().toArray(), [1, 1, 1, 0]);
    assert.deepEqual(tensor([0.4, 0.6, -1.6, 2.5]).round().toArray(), [0, 1, -2, 2]);
    assertClose(tensor([0, 1e-3, 1], { dtype: 'float64' }).log1p().toArray(), [0, Math.log1p(1e-3), Math.LN2], { rtol: 1e-12 });
    const p = tensor([1, 0, 1], { dtype: 'bool' });
    const q = tensor([1, 1, 0], { dtype: 'bool' });
    assert.deepEqual(p.logicalAnd(q).toArray(), [1, 0, 0]);
    assert.deepEqual(p.logicalOr(q).toArray(), [1, 1, 1]);
    assert.deepEqual(where(p, a.slice(0, 0, 3), b.slice(0, 0, 3)).toArray(), [1, 5, 3.5]);
    assert.deepEqual(fullLike(b, 2).toArray(), [2, 2, 2, 2]);
    assert.deepEqual(tensor([1, 2]).expandAs(zeros([2, 2])).toArray(), [1, 2, 1, 2]);
  });
});

test('padding, 2-D pooling and bilinear resizing against hand-computed values', () => {
  tidy(() => {
    const image = tensor([[[[1, 2], [3, 4]]]]); // 1×1×2×2
    assert.deepEqual(F.pad(image, [1, 0, 0, 1], -1).toArray(), [-1, 1, 2, -1, 3, 4, -1, -1, -1]);
    assert.deepEqual(F.avgPool2d(image, 2).toArray(), [2.5]);
    assert.deepEqual(F.maxPool2d(image, 2).toArray(), [4]);
    // Half-pixel centres (align_corners false): doubling a 2×2 image gives 1, 1.25, 1.75, 2 on the first row.
    assertClose(F.interpolate(image, [4, 4]).toArray().slice(0, 4), [1, 1.25, 1.75, 2], { rtol: 1e-6 });
    assertClose(F.interpolate(image, [3, 3], true).toArray(), [1, 1.5, 2, 2, 2.5, 3, 3, 3.5, 4], { rtol: 1e-6 });
  });
});

test('random fills follow their distributions; randperm is a permutation', () => {
  tidy(() => {
    manualSeed(13);
    const u = zeros([20000]).uniform_(-2, 4);
    assert.ok(u.min().item() >= -2 && u.max().item() < 4);
    assert.ok(Math.abs(u.mean().item() - 1) < 0.05);
    const n = zeros([20000]).normal_(3, 0.5);
    assert.ok(Math.abs(n.mean().item() - 3) < 0.02 && Math.abs(n.std().item() - 0.5) < 0.02);
    assert.deepEqual(randperm(50).sort().values.toArray(), Array.from({ length: 50 }, (_, i) => i));
  });
});
