#!/usr/bin/env node
import { closest } from 'fastest-levenshtein';
import { helpText, parseArgs, type CommandSpec } from './args.js';
import { isUserError } from '../util/errors.js';
import { fsUserError } from '../util/fs.js';
// The version module reads package.json only: importing it never loads libtorch.
import { STCNET_VERSION } from '../models/version.js';

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyCommand = CommandSpec<any>;

/**
 * Subcommands are loaded on demand and load libtorch only inside `run`, so `--help` and `--version`
 * never start the engine. One file per subcommand; add a line here for a new one.
 */
const commands: Record<string, () => Promise<AnyCommand>> = {
  demo: async () => (await import('./demo.js')).command,
  selfcheck: async () => (await import('./selfcheck.js')).command,
  synth: async () => (await import('./synth.js')).command,
  models: async () => (await import('./models.js')).command,
  convert: async () => (await import('./convert.js')).command,
  data: async () => (await import('./data.js')).command,
  prepare: async () => (await import('./prepare.js')).command,
  eval: async () => (await import('./eval.js')).command,
  predict: async () => (await import('./predict.js')).command,
  explain: async () => (await import('./explain.js')).command,
  export: async () => (await import('./export.js')).command,
  serve: async () => (await import('./serve.js')).command,
  train: async () => (await import('./train.js')).command,
  transfer: async () => (await import('./transfer.js')).command,
  inflate: async () => (await import('./inflate.js')).command,
  'train-2d': async () => (await import('./train2d.js')).command,
  bench: async () => (await import('./bench.js')).command,
};

async function printOverview(): Promise<void> {
  const summaries = await Promise.all(
    Object.entries(commands).map(async ([key, load]) => `  ${key.padEnd(12)} ${(await load()).summary}`),
  );
  process.stdout.write(['usage: stcnet <command> [flags]', '', 'commands:', ...summaries, '',
    'Run `stcnet <command> --help` for the flags of one command; `stcnet --version` prints the version.', ''].join('\n'));
}

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h') return printOverview();
  if (name === '--version' || name === '-V' || name === 'version') {
    process.stdout.write(`stcnet ${STCNET_VERSION}\n`);
    return;
  }
  if (name === 'help') {
    if (!rest[0]) return printOverview();
    return main([rest[0], '--help']);
  }
  const load = commands[name];
  if (!load) {
    const hint = name.startsWith('-') ? '' : ` (did you mean "${closest(name, Object.keys(commands))}"?)`;
    process.stderr.write(`error: stcnet: unknown command "${name}"${hint}; commands: ${Object.keys(commands).join(', ')}\n`);
    process.exitCode = 2;
    return;
  }
  const command = await load();
  const beforeTerminator = rest.indexOf('--') >= 0 ? rest.slice(0, rest.indexOf('--')) : rest;
  if (beforeTerminator.includes('--help') || beforeTerminator.includes('-h')) {
    process.stdout.write(helpText(command) + '\n');
    return;
  }
  await command.run(parseArgs(command, rest));
}

// `stcnet predict ... | head` closes stdout early: that ends the output, it is not an error.
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
}

main(process.argv.slice(2)).catch((caught: unknown) => {
  const error = fsUserError(caught);
  if (isUserError(error)) {
    process.stderr.write(`error: ${error.message}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`stcnet: internal error: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exitCode = 1;
  }
});
