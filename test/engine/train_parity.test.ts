import { test } from 'node:test';
import assert from 'node:assert/strict';
import { F, fromTypedArray, tidy, type Tensor } from '../../src/engine/index.js';
import { Module, Conv3d, BatchNorm3d, Linear } from '../../src/nn/index.js';
import { SGD } from '../../src/optim/index.js';
import { assertClose, pythonJson, type Packed } from '../helpers.js';

class Net extends Module {
  readonly conv1 = this.addModule('conv1', new Conv3d(3, 8, 3, { padding: 1, bias: false }));
  readonly bn1 = this.addModule('bn1', new BatchNorm3d(8));
  readonly conv2 = this.addModule('conv2', new Conv3d(8, 16, 3, { stride: 2, padding: 1 }));
  readonly conv3 = this.addModule('conv3', new Conv3d(16, 16, [1, 3, 3], { padding: [0, 1, 1], groups: 4 }));
  readonly fc = this.addModule('fc', new Linear(16, 5));

  forward(x: Tensor): Tensor {
    let y = this.bn1.forward(this.conv1.forward(x)).relu();
    y = this.conv2.forward(y).relu();
    y = this.conv3.forward(y).relu();
    return this.fc.forward(F.adaptiveAvgPool3d(y, 1).flatten(1));
  }
}

function load(packed: Packed): Tensor {
  return packed.dtype === 'int64'
    ? fromTypedArray(BigInt64Array.from(packed.data, (v) => BigInt(v)), packed.shape)
    : fromTypedArray(Float32Array.from(packed.data), packed.shape);
}

test('a 3-layer conv net trained with SGD gives PyTorch\'s losses for 20 steps', () => {
  const fixture = pythonJson<{ initial: Record<string, Packed>; inputs: Packed; targets: Packed; losses: number[]; final: Record<string, Packed> }>(
    'scripts/fixtures/train_parity.py');
  const net = new Net();
  tidy(() => net.loadStateDict(new Map(Object.entries(fixture.initial).map(([name, packed]) => [name, load(packed)]))));
  const optimizer = new SGD(net.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 1e-3, nesterov: true });
  const losses: number[] = [];
  tidy(() => {
    const inputs = load(fixture.inputs);
    const targets = load(fixture.targets);
    for (let step = 0; step < 20; step++) {
      losses.push(tidy(() => {
        optimizer.zeroGrad();
        const loss = F.crossEntropy(net.forward(inputs.select(0, step % 2)), targets.select(0, step % 2));
        loss.backward();
        optimizer.step();
        return loss.item();
      }));
    }
  });
  assert.equal(losses.length, 20);
  assertClose(losses, fixture.losses, { rtol: 1e-4, atol: 0, what: 'losses' });
  assert.ok(losses[19]! < losses[0]! * 0.9, `training on two batches lowers their loss: ${losses[0]} -> ${losses[19]}`);
  const final = net.stateDict();
  for (const [name, packed] of Object.entries(fixture.final)) {
    assertClose(final.get(name)!.toArray(), packed.data, { rtol: 1e-3, atol: 1e-5, what: `final ${name}` });
  }
  net.dispose();
});

test('Module.to moves gradients with their parameters', () => {
  tidy(() => {
    const net = new Linear(4, 2);
    F.linear(fromTypedArray(new Float32Array(8).fill(1), [2, 4]), net.weight, net.bias).sum().backward();
    net.to('float64');
    assert.equal(net.weight.dtype, 'float64');
    assert.equal(net.weight.grad!.dtype, 'float64');
    assert.deepEqual(net.weight.grad!.toArray(), new Array(8).fill(2));
    net.dispose();
  });
});
