import { test } from 'node:test';
import assert from 'node:assert/strict';
import { F, randn, tidy, noGrad, manualSeed, memory, type Tensor } from '../../src/engine/index.js';
import { SGD } from '../../src/optim/index.js';

// SGD's update runs as one native call per parameter (F.sgdUpdate_): the same operators, in the same order,
// as the update written out with tensor operations, so the trajectories are equal bit for bit.

/** torch.optim.SGD's update written out with tensor operations (the reference). */
function writtenOut(param: Tensor, grad: Tensor, buffer: Tensor | null, h: F.SgdHyper): Tensor | null {
  return noGrad(() => tidy(() => {
    let direction = h.maximize ? grad.neg() : grad;
    if (h.weightDecay !== 0) direction = direction.add(param, h.weightDecay);
    let next = buffer;
    if (h.momentum !== 0) {
      if (next === null) next = direction.clone();
      else next.mul_(h.momentum).add_(direction, 1 - h.dampening);
      direction = h.nesterov ? direction.add(next, h.momentum) : next;
    }
    param.add_(direction, -h.lr);
    return next;
  }));
}

const settings: [string, Partial<F.SgdHyper>][] = [
  ['plain', { momentum: 0, weightDecay: 0 }],
  ['weight decay', { momentum: 0, weightDecay: 1e-3 }],
  ['momentum + weight decay (Hara et al.)', { momentum: 0.9, weightDecay: 1e-3 }],
  ['dampening', { momentum: 0.9, dampening: 0.1, weightDecay: 5e-4 }],
  ['Nesterov', { momentum: 0.9, nesterov: true, weightDecay: 1e-3 }],
  ['maximize', { momentum: 0.5, maximize: true }],
];

for (const [name, setting] of settings) {
  test(`SGD (${name}): 6 steps equal the written-out update bit for bit`, () => {
    manualSeed(17);
    tidy(() => {
      const hyper: F.SgdHyper = { lr: 0.05, momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false, ...setting };
      const shapes = [[16, 8, 3, 3, 3], [16], [5, 7]];
      const ours = shapes.map((s) => randn(s).requiresGrad_());
      const reference = ours.map((p) => p.detach().clone());
      const buffers: (Tensor | null)[] = reference.map(() => null);
      const optimizer = new SGD(ours, hyper);
      for (let step = 0; step < 6; step++) {
        const grads = shapes.map((s) => randn(s));
        ours.forEach((p, i) => { p.grad = grads[i]!; });
        optimizer.step();
        reference.forEach((p, i) => { buffers[i] = writtenOut(p, grads[i]!, buffers[i]!, hyper); });
        ours.forEach((p, i) => assert.equal(p.detach().sub(reference[i]!).abs().max().item(), 0, `parameter ${i}, step ${step + 1}`));
      }
      optimizer.dispose();
    });
  });
}

test('sgdUpdate_: a momentum without its buffer is refused; steps leave no tensors behind', () => {
  manualSeed(19);
  tidy(() => {
    const param = randn([4]);
    assert.throws(() => F.sgdUpdate_(param, randn([4]), null, { lr: 0.1, momentum: 0.9, dampening: 0, weightDecay: 0, nesterov: false, maximize: false }),
      /sgdUpdate: a momentum buffer is needed/);
    const weight = randn([8, 8]).requiresGrad_();
    const optimizer = new SGD([weight], { lr: 0.01, momentum: 0.9, weightDecay: 1e-3 });
    const step = (): void => tidy(() => {
      weight.square().sum().backward();
      optimizer.step();
      optimizer.zeroGrad();
    });
    step();
    const during = memory().tensors;
    for (let i = 0; i < 20; i++) step();
    assert.equal(memory().tensors, during);
    optimizer.dispose();
  });
});
