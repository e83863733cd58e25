import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { cudaAvailable } from '../src/engine/index.js';
import { repoRoot, tempDir } from './helpers.js';

/**
 * Every ```ts block of README.md runs, as written, against the built package: `from 'stcnet'` is
 * pointed at dist/src/index.js and each block runs in its own node process and empty folder.
 * Markers, kept few and explicit:
 *   <!-- readme-test: skip REASON -->   on the line before a block: the block is not run;
 *   // readme-test: cuda               at the end of a line: the line runs only where libtorch has CUDA.
 * STCNET_README points the test at another copy of the README (to try an edit).
 */

interface Block {
  line: number;
  code: string;
  skip?: string;
}

const readmePath = process.env.STCNET_README ?? join(repoRoot, 'README.md');

export function extractBlocks(markdown: string): Block[] {
  const lines = markdown.split('\n');
  const blocks: Block[] = [];
  for (let i = 0; i < lines.length; i++) {
    if (lines[i]!.trim() !== '```ts') continue;
    const start = i;
    const body: string[] = [];
    for (i++; i < lines.length && lines[i]!.trim() !== '```'; i++) body.push(lines[i]!);
    const marker = /<!--\s*readme-test:\s*skip\s*(.*?)\s*-->/.exec(lines[start - 1] ?? '');
    blocks.push({ line: start + 1, code: body.join('\n'), ...(marker ? { skip: marker[1] || 'marked' } : {}) });
  }
  return blocks;
}

const packageRoot = pathToFileURL(join(repoRoot, 'dist/src/index.js')).href;

function runnable(code: string, cuda: boolean): string {
  const kept = code.split('\n').map((line) => (/\/\/\s*readme-test:\s*cuda\b/.test(line) && !cuda ? '' : line)).join('\n');
  const js = ts.transpileModule(kept, { compilerOptions: { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: false } }).outputText;
  return js.replace(/from\s+(['"])stcnet\1/g, `from '${packageRoot}'`);
}

const blocks = extractBlocks(readFileSync(readmePath, 'utf8'));
const cuda = cudaAvailable();
const work = tempDir('stcnet-readme-');

test('README.md has TypeScript examples', () => {
  assert.ok(blocks.length >= 5, `${blocks.length} blocks`);
});

for (const block of blocks) {
  test(`README.md example at line ${block.line} runs`, { skip: block.skip, timeout: 600_000 }, () => {
    const dir = join(work, `line-${block.line}`);
    mkdirSync(dir);
    const file = join(dir, 'example.mjs');
    writeFileSync(file, runnable(block.code, cuda));
    const result = spawnSync(process.execPath, [file], { cwd: dir, encoding: 'utf8', timeout: 540_000 });
    assert.equal(result.status, 0, `README.md line ${block.line}: exit ${result.status}${result.signal ? ` (${result.signal})` : ''}\n${result.stderr}`);
  });
}
