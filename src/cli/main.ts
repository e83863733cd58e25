#!/usr/bin/env node
import { helpText, parseArgs, type CommandSpec } from './args.js';
import { isUserError } from '../util/errors.js';

/**
 * Subcommands are loaded on demand, so `stcnet synth` never loads libtorch and
 * `stcnet --help` starts instantly. One file per subcommand; add a line here for a new one.
 */
const commands: Record<string, () => Promise<CommandSpec>> = {
  demo: async () => (await import('./demo.js')).command,
  selfcheck: async () => (await import('./selfcheck.js')).command,
  synth: async () => (await import('./synth.js')).command,
  models: async () => (await import('./models.js')).command,
  convert: async () => (await import('./convert.js')).command,
  data: async () => (await import('./data.js')).command,
  prepare: async () => (await import('./prepare.js')).command,
};

async function main(argv: string[]): Promise<void> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h' || name === 'help') {
    const summaries = await Promise.all(
      Object.entries(commands).map(async ([key, load]) => `  ${key.padEnd(12)} ${(await load()).summary}`),
    );
    process.stdout.write(['usage: stcnet <command> [flags]', '', 'commands:', ...summaries, '',
      'Run `stcnet <command> --help` for the flags of one command.', ''].join('\n'));
    return;
  }
  const load = commands[name];
  if (!load) {
    process.stderr.write(`stcnet: unknown command "${name}"; commands: ${Object.keys(commands).join(', ')}\n`);
    process.exitCode = 2;
    return;
  }
  const command = await load();
  if (rest.includes('--help') || rest.includes('-h')) {
    process.stdout.write(helpText(command) + '\n');
    return;
  }
  await command.run(parseArgs(command, rest));
}

main(process.argv.slice(2)).catch((error: unknown) => {
  if (isUserError(error)) {
    process.stderr.write(`error: ${error.message}\n`);
    process.exitCode = 2;
  } else {
    process.stderr.write(`stcnet: internal error: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exitCode = 1;
  }
});
