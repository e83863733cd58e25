import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { repoRoot, tempDir } from '../helpers.js';
import { defineCommand, parseArgs } from '../../src/cli/args.js';

const cli = join(repoRoot, 'dist/src/cli/main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60_000 });

const spec = defineCommand({
  name: 'example', summary: 'a test command', usage: 'stcnet example IN [--count N]', examples: ['stcnet example a'],
  positionals: { name: 'IN' },
  flags: {
    count: { type: 'int', description: 'how many', default: 2, min: 1, max: 9 },
    mode: { type: 'string', description: 'how', choices: ['fast', 'slow'] },
    tags: { type: 'list', description: 'labels' },
    verbose: { type: 'boolean', description: 'talk', default: false },
  },
  run: async () => {},
});

test('parseArgs: typed values, defaults, --flag=value, --no-flag, and "--" ending the flags', () => {
  const parsed = parseArgs(spec, ['--count=3', '--mode', 'slow', '--tags', 'a, b', '--no-verbose', '--', '--not-a-flag']);
  assert.deepEqual(parsed.positionals, ['--not-a-flag']);
  assert.equal(parsed.flags.count, 3);
  assert.equal(parsed.flags.mode, 'slow');
  assert.deepEqual(parsed.flags.tags, ['a', 'b']);
  assert.equal(parsed.flags.verbose, false);
  assert.deepEqual([...parsed.given].sort(), ['count', 'mode', 'tags', 'verbose']);
  assert.equal(parseArgs(spec, ['x']).flags.count, 2, 'default');
  assert.equal(parseArgs(spec, ['x']).given.size, 0);
});

test('parseArgs: every bad argument is refused, named, with the nearest spelling', () => {
  const refuse = (argv: string[], pattern: RegExp) => assert.throws(() => parseArgs(spec, argv), (error: Error) => {
    assert.equal(error.name, 'UserError');
    assert.match(error.message, pattern);
    return true;
  });
  refuse(['x', '--cuont', '3'], /unknown flag --cuont; did you mean --count\?/);
  refuse(['x', '-c', '3'], /unknown flag -c; flags are spelt --name/);
  refuse(['x', '--count', '0'], /--count must be at least 1, got 0/);
  refuse(['x', '--count', '10'], /--count must be at most 9, got 10/);
  refuse(['x', '--count', '2.5'], /--count expects an integer, got "2.5"/);
  refuse(['x', '--count'], /--count expects a value/);
  refuse(['x', '--mode', 'fats'], /--mode expects one of fast, slow, got "fats"; did you mean "fast"\?/);
  refuse(['x', '--tags', ''], /--tags expects a comma-separated list/);
  refuse(['x', '--verbose=maybe'], /--verbose expects true or false/);
  refuse([], /missing IN/);
  refuse(['a', 'b'], /unexpected argument "b" after IN/);
});

test('stcnet: --version, typo suggestions, extra positionals and empty lists exit 2 with one line', () => {
  const manifest = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
  const version = run('--version');
  assert.equal(version.status, 0);
  assert.equal(version.stdout, `stcnet ${manifest.version}\n`);
  for (const [args, pattern] of [
    [['sytnh', 'x'], /unknown command "sytnh" \(did you mean "synth"\?\)/],
    [['synth', 'a', 'b'], /unexpected argument "b" after OUT_DIR/],
    [['synth', 'a', '--clases', '3'], /unknown flag --clases; did you mean --classes\?/],
    [['prepare', 'root', '--out', 'cache', '--splits', ''], /--splits expects a comma-separated list/],
    [['selfcheck', 'extra'], /unexpected argument "extra"/],
  ] as [string[], RegExp][]) {
    const result = run(...args);
    assert.equal(result.status, 2, `${args.join(' ')}: ${result.stderr}`);
    assert.match(result.stderr, pattern);
    assert.equal(result.stderr.trim().split('\n').length, 1, `one line: ${result.stderr}`);
  }
  const dir = tempDir();
  assert.ok(!existsSync(join(dir, 'a')), 'nothing was written');
});

test('stcnet synth into a path whose parent is a file: one line naming the path, exit 2', () => {
  const dir = tempDir();
  const file = join(dir, 'file');
  writeFileSync(file, 'x');
  const result = run('synth', join(file, 'out'), '--classes', '2', '--videos', '1', '--quiet');
  assert.equal(result.status, 2, result.stderr);
  assert.match(result.stderr, new RegExp(`${file}`));
  assert.doesNotMatch(result.stderr, /internal error|\n\s+at /);
});

test('stcnet <command> --help prints usage and examples without loading libtorch', () => {
  const probe = `
    import { readFileSync } from 'node:fs';
    process.argv = [process.argv[0], ${JSON.stringify(cli)}, process.env.COMMAND, '--help'];
    await import(${JSON.stringify(cli)});
    setTimeout(() => process.stderr.write(readFileSync('/proc/self/maps', 'utf8').includes('libtorch') ? 'LOADED' : 'NOT LOADED'), 200);
  `;
  for (const command of ['demo', 'synth', 'prepare', 'data', 'selfcheck']) {
    const result = spawnSync(process.execPath, ['--input-type=module', '-e', probe], { encoding: 'utf8', env: { ...process.env, COMMAND: command } });
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, new RegExp(`^stcnet ${command}: `));
    assert.match(result.stdout, /\nexamples:\n  stcnet /);
    assert.equal(result.stderr, 'NOT LOADED', command);
  }
});
