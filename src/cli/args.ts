import { parseArgs as parseNodeArgs } from 'node:util';
import { closest } from 'fastest-levenshtein';
import { UserError } from '../util/errors.js';

/** A flag's declared type; values are parsed and validated before a command runs. */
export type FlagType = 'string' | 'int' | 'number' | 'boolean' | 'list';

export interface FlagSpec {
  type: FlagType;
  description: string;
  default?: string | number | boolean | readonly string[];
  /** Accepted values for a string flag (or for every item of a list flag). */
  choices?: readonly string[];
  min?: number;
  max?: number;
}

export type FlagSpecs = Record<string, FlagSpec>;

type ValueOf<S extends FlagSpec> =
  S['type'] extends 'boolean' ? boolean
    : S['type'] extends 'int' | 'number' ? number
      : S['type'] extends 'list' ? string[]
        : S['choices'] extends readonly (infer C)[] ? C : string;

/** The parsed flags, typed from the spec: a flag with a default is always present. */
export type FlagValues<F extends FlagSpecs> =
  { -readonly [K in keyof F as F[K] extends { default: unknown } ? K : never]: ValueOf<F[K]> } &
  { -readonly [K in keyof F as F[K] extends { default: unknown } ? never : K]?: ValueOf<F[K]> };

export interface PositionalSpec {
  /** Shown in usage and errors, e.g. OUT_DIR. */
  name: string;
  /** At least this many (default 1). */
  min?: number;
  /** At most this many (default 1; Infinity for a list). */
  max?: number;
}

export interface ParsedArgs<F extends FlagSpecs = FlagSpecs> {
  positionals: string[];
  flags: FlagValues<F>;
  /** Flags given on the command line (not defaults), for config-file merging. */
  given: Set<string>;
}

export interface CommandSpec<F extends FlagSpecs = FlagSpecs> {
  name: string;
  summary: string;
  usage: string;
  /** Example command lines shown by --help. */
  examples: string[];
  /** Positional arguments; none when omitted. Subcommand-style commands validate their own. */
  positionals?: PositionalSpec | 'any';
  flags: F;
  run(parsed: ParsedArgs<F>): Promise<void>;
}

/** Keeps the literal types of a command's flags, so `run` sees typed values. */
export function defineCommand<const F extends FlagSpecs>(spec: CommandSpec<F>): CommandSpec<F> {
  return spec;
}

/**
 * Parses `--flag value`, `--flag=value`, `--no-flag` and `--` (everything after it is positional),
 * checking each flag against the command's spec, and the number of positionals. Unknown flags
 * suggest the closest known one.
 */
export function parseArgs<F extends FlagSpecs>(command: CommandSpec<F>, argv: string[]): ParsedArgs<F> {
  const options: Record<string, { type: 'string' | 'boolean' }> = {};
  for (const [name, spec] of Object.entries(command.flags)) options[name] = { type: spec.type === 'boolean' ? 'boolean' : 'string' };
  const { tokens } = parseNodeArgs({ args: argv, options, strict: false, allowPositionals: true, tokens: true });
  const flags: Record<string, unknown> = {};
  const given = new Set<string>();
  for (const [name, spec] of Object.entries(command.flags)) {
    if (spec.default !== undefined) flags[name] = Array.isArray(spec.default) ? [...spec.default] : spec.default;
  }
  const positionals: string[] = [];
  const prefix = `stcnet ${command.name}`;
  for (const token of tokens) {
    if (token.kind === 'positional') {
      positionals.push(token.value);
      continue;
    }
    if (token.kind !== 'option') continue;
    const spec = command.flags[token.name];
    if (token.rawName.startsWith('-') && !token.rawName.startsWith('--')) {
      throw new UserError(`${prefix}: unknown flag ${token.rawName}; flags are spelt --name (see ${prefix} --help)`);
    }
    if (!spec) {
      const negated = token.name.startsWith('no-') ? command.flags[token.name.slice(3)] : undefined;
      if (negated?.type === 'boolean' && token.value === undefined) {
        flags[token.name.slice(3)] = false;
        given.add(token.name.slice(3));
        continue;
      }
      const known = Object.keys(command.flags);
      const hint = known.length > 0 ? `; did you mean --${closest(token.name, known)}?` : '; this command takes no flags';
      throw new UserError(`${prefix}: unknown flag --${token.name}${hint} (see ${prefix} --help)`);
    }
    given.add(token.name);
    if (spec.type === 'boolean') {
      flags[token.name] = token.value === undefined ? true : parseBoolean(prefix, token.name, token.value);
      continue;
    }
    if (token.value === undefined) throw new UserError(`${prefix}: flag --${token.name} expects a value`);
    flags[token.name] = parseFlagValue(prefix, token.name, spec, token.value);
  }
  checkPositionals(command, positionals);
  return { positionals, flags: flags as FlagValues<F>, given };
}

function checkPositionals(command: CommandSpec<FlagSpecs>, positionals: string[]): void {
  const spec = command.positionals;
  if (spec === 'any') return;
  const prefix = `stcnet ${command.name}`;
  if (!spec) {
    if (positionals.length > 0) throw new UserError(`${prefix}: unexpected argument "${positionals[0]}" (this command takes flags only; usage: ${command.usage})`);
    return;
  }
  const min = spec.min ?? 1;
  const max = spec.max ?? 1;
  if (positionals.length < min) throw new UserError(`${prefix}: missing ${spec.name} (usage: ${command.usage})`);
  if (positionals.length > max) {
    throw new UserError(`${prefix}: unexpected argument "${positionals[max]}" after ${spec.name} (usage: ${command.usage})`);
  }
}

function parseBoolean(prefix: string, name: string, value: string): boolean {
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw new UserError(`${prefix}: flag --${name} expects true or false, got "${value}"`);
}

/** Parses one flag value by its spec (also used for config-file values given as strings). */
export function parseFlagValue(prefix: string, name: string, spec: FlagSpec, value: string): string | number | string[] {
  if (spec.type === 'int' || spec.type === 'number') {
    const num = Number(value);
    if (value.trim() === '' || !Number.isFinite(num) || (spec.type === 'int' && !Number.isInteger(num))) {
      throw new UserError(`${prefix}: flag --${name} expects ${spec.type === 'int' ? 'an integer' : 'a number'}, got "${value}"`);
    }
    if (spec.min !== undefined && num < spec.min) throw new UserError(`${prefix}: flag --${name} must be at least ${spec.min}, got ${num}`);
    if (spec.max !== undefined && num > spec.max) throw new UserError(`${prefix}: flag --${name} must be at most ${spec.max}, got ${num}`);
    return num;
  }
  if (spec.type === 'list') {
    const items = value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
    if (items.length === 0) throw new UserError(`${prefix}: flag --${name} expects a comma-separated list, got "${value}"`);
    for (const item of items) checkChoice(prefix, name, spec, item);
    return items;
  }
  if (value === '') throw new UserError(`${prefix}: flag --${name} expects a value, got an empty string`);
  checkChoice(prefix, name, spec, value);
  return value;
}

function checkChoice(prefix: string, name: string, spec: FlagSpec, value: string): void {
  if (spec.choices && !spec.choices.includes(value)) {
    throw new UserError(`${prefix}: flag --${name} expects one of ${spec.choices.join(', ')}, got "${value}"` +
      `; did you mean "${closest(value, [...spec.choices])}"?`);
  }
}

export function helpText(command: CommandSpec<FlagSpecs>): string {
  const lines = [`stcnet ${command.name}: ${command.summary}`, '', `usage: ${command.usage}`, ''];
  const entries = Object.entries(command.flags);
  if (entries.length > 0) lines.push('flags:');
  for (const [name, spec] of entries) {
    const def = spec.default !== undefined ? ` (default: ${String(spec.default)})` : '';
    const choices = spec.choices ? ` [${spec.choices.join('|')}]` : '';
    lines.push(`  --${name}${spec.type === 'boolean' ? '' : ' <' + spec.type + '>'}${choices}  ${spec.description}${def}`);
  }
  if (command.examples.length > 0) lines.push('', 'examples:', ...command.examples.map((example) => `  ${example}`));
  return lines.join('\n');
}
