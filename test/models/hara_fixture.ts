import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { runPython, tempDir } from '../helpers.js';

/** Hara et al.-style checkpoints made by PyTorch (scripts/fixtures/hara_checkpoint.py), once per test process. */
export interface HaraFixture {
  dir: string;
  arch: string;
  options: { widthMultiplier: number; numClasses: number; frames: number };
  inputShape: number[];
  logitsShape: number[];
  keys: string[];
}

let fixture: HaraFixture | undefined;

export function haraFixture(): HaraFixture {
  if (!fixture) {
    const dir = tempDir('stcnet-hara-');
    runPython('scripts/fixtures/hara_checkpoint.py', [dir]);
    fixture = { dir, ...(JSON.parse(readFileSync(join(dir, 'hara.json'), 'utf8')) as Omit<HaraFixture, 'dir'>) };
  }
  return fixture;
}
