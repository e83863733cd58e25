import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { manualSeed, memory, randn, tensor, tidy, zerosLike, type Tensor } from '../../src/engine/index.js';
import { clipGradNorm_ } from '../../src/optim/index.js';
import { assertClose, systemPython } from '../helpers.js';

// clipGradNorm_ (src/optim/clip.ts) against torch.nn.utils.clip_grad_norm_ and against hand figures.

/** A parameter whose gradient is `grad`. */
function withGrad(grad: Tensor): Tensor {
  const param = zerosLike(grad).requiresGrad_();
  param.grad = grad;
  return param;
}

test('clipGradNorm_ equals torch.nn.utils.clip_grad_norm_: the same norm and the same clipped gradients', () => {
  manualSeed(83);
  tidy(() => {
    const shapes = [[64, 3, 3, 3], [64], [10, 64], [1]];
    const grads = shapes.map((shape) => randn(shape).mul(0.5));
    const script = `
import json, sys, torch
cases = json.loads(sys.stdin.read())
out = []
for max_norm in cases["maxNorms"]:
    params = []
    for g in cases["grads"]:
        p = torch.zeros(g["shape"], requires_grad=True)
        p.grad = torch.tensor(g["data"], dtype=torch.float32).reshape(g["shape"])
        params.append(p)
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)
    out.append({"norm": norm.item(), "grads": [p.grad.reshape(-1).tolist() for p in params]})
print(json.dumps(out))`;
    const maxNorms = [1, 5, 1e6];
    const input = JSON.stringify({ maxNorms, grads: grads.map((g) => ({ shape: g.shape, data: [...g.toFloat32Array()] })) });
    const expected = JSON.parse(execFileSync(systemPython, ['-c', script], { input, encoding: 'utf8' })) as { norm: number; grads: number[][] }[];
    maxNorms.forEach((maxNorm, index) => {
      const params = grads.map((g) => withGrad(g.clone()));
      const norm = clipGradNorm_(params, maxNorm);
      assertClose([norm], [expected[index]!.norm], { rtol: 1e-6, what: `norm (max ${maxNorm})` });
      params.forEach((param, i) => assertClose(param.grad!.toFloat32Array(), expected[index]!.grads[i]!, { rtol: 1e-6, atol: 1e-7, what: `gradient ${i} (max ${maxNorm})` }));
    });
    // Limits 1 and 5 clip (the norm of these 2,433 values of standard deviation 0.5 is about 25); 1e6 does not.
    assert.ok(expected[0]!.norm > 5, `the gradients' norm ${expected[0]!.norm} is above the small limits`);
  });
});

test('clipGradNorm_ by hand: the joint norm of all gradients, parameters without one skipped, small norms untouched', () => {
  tidy(() => {
    const a = withGrad(tensor([3, 4]));
    const b = withGrad(tensor([[12]]));
    const none = tensor([1, 2]).requiresGrad_();
    assert.equal(clipGradNorm_([a, none, b], 6.5), 13);
    assertClose(a.grad!.toFloat32Array(), [1.5, 2], { rtol: 1e-6 });
    assertClose(b.grad!.toFloat32Array(), [6], { rtol: 1e-6 });
    assert.equal(none.grad, null);

    // Below the limit the gradients keep their exact values.
    const c = withGrad(tensor([0.1, -0.2, 0.3]));
    const before = [...c.grad!.toFloat32Array()];
    assertClose([clipGradNorm_([c], 1)], [Math.hypot(0.1, 0.2, 0.3)], { rtol: 1e-6 });
    assert.deepEqual([...c.grad!.toFloat32Array()], before);
    assert.equal(clipGradNorm_([none], 1), 0, 'no gradient at all: norm 0');
  });
});

test('clipGradNorm_: a non-finite gradient is reported and left alone; bad limits are refused; nothing leaks', () => {
  const live = memory().tensors;
  tidy(() => {
    const finite = withGrad(tensor([3, 4]));
    const broken = withGrad(tensor([1, Number.NaN]));
    assert.ok(Number.isNaN(clipGradNorm_([finite, broken], 1)));
    assert.deepEqual([...finite.grad!.toFloat32Array()], [3, 4]);
    const infinite = withGrad(tensor([Number.POSITIVE_INFINITY, 1]));
    assert.equal(clipGradNorm_([finite, infinite], 1), Number.POSITIVE_INFINITY);
    assert.deepEqual([...finite.grad!.toFloat32Array()], [3, 4]);
    for (const bad of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      assert.throws(() => clipGradNorm_([finite], bad), /clipGradNorm_: maxNorm must be a positive number/);
    }
    for (let round = 0; round < 3; round++) clipGradNorm_([finite, withGrad(randn([5, 5]))], 0.5);
  });
  assert.equal(memory().tensors, live);
});
