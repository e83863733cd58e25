import { test } from 'node:test';
import assert from 'node:assert/strict';
import { manualSeed, randn, noGrad, memory } from '../../src/engine/index.js';
import { createModel, type AnyModelOptions } from '../../src/models/index.js';

/**
 * A model's forward frees everything it made but its output, whoever calls it: outside any
 * tidy() scope, with and without gradients, in train and eval mode. Counted in live native tensors.
 */
const FAMILIES: [string, AnyModelOptions, number[]][] = [
  ['resnet3d_10', { widthMultiplier: 0.25 }, [2, 3, 4, 24, 24]],
  ['resnet3d_50', { widthMultiplier: 0.125 }, [1, 3, 4, 24, 24]],
  ['stc_resnet3d_18', { widthMultiplier: 0.25, frames: 4 }, [2, 3, 4, 24, 24]],
  ['resnext3d_50', { widthMultiplier: 0.25 }, [1, 3, 4, 24, 24]],
  ['resnet3d_18', { widthMultiplier: 0.25, shortcut: 'A' }, [1, 3, 4, 24, 24]],
  ['r3d_18', {}, [1, 3, 2, 16, 16]],
  ['r2plus1d_18', {}, [1, 3, 2, 16, 16]],
  ['mc3_18', { dropout: 0.5 }, [1, 3, 2, 16, 16]],
  ['resnet2d_18', { dropout: 0.2 }, [2, 3, 32, 32]],
];

const CALLS = 3;

for (const [name, options, shape] of FAMILIES) {
  test(`${name}: forward outside tidy leaves no tensor behind (train and eval, with and without gradients)`, () => {
    manualSeed(0);
    const model = createModel(name, { ...options, numClasses: 3, init: false });
    const x = randn(shape);
    for (const mode of ['train', 'eval'] as const) {
      model.train(mode === 'train');
      for (const grad of [false, true]) {
        const run = () => {
          const y = grad ? model.forward(x) : noGrad(() => model.forward(x));
          if (grad) {
            const loss = y.sum();
            loss.backward();
            loss.dispose();
          }
          y.dispose();
        };
        run(); // the first call may create gradients that stay with the parameters
        const before = memory().tensors;
        for (let i = 0; i < CALLS; i++) run();
        assert.equal(memory().tensors - before, 0, `${name} ${mode} ${grad ? 'with' : 'without'} gradients: ${CALLS} calls`);
      }
      const before = memory().tensors;
      for (let i = 0; i < CALLS; i++) noGrad(() => model.forwardFeatures(x)).dispose();
      assert.equal(memory().tensors - before, 0, `${name} ${mode} forwardFeatures`);
    }
    x.dispose();
    model.dispose();
  });
}
