import { UserError } from '../util/errors.js';

/** A flag's declared type; values are parsed and validated before a command runs. */
export type FlagType = 'string' | 'int' | 'number' | 'boolean' | 'list';

export interface FlagSpec {
  type: FlagType;
  description: string;
  default?: string | number | boolean | string[];
  /** Accepted values for a string flag. */
  choices?: readonly string[];
  min?: number;
}

export interface CommandSpec {
  name: string;
  summary: string;
  usage: string;
  flags: Record<string, FlagSpec>;
  run(parsed: ParsedArgs): Promise<void>;
}

export interface ParsedArgs {
  positionals: string[];
  flags: Record<string, string | number | boolean | string[] | undefined>;
}

/** Parses `--flag value`, `--flag=value` and `--no-flag`, checking each against the command's spec. */
export function parseArgs(command: CommandSpec, argv: string[]): ParsedArgs {
  const positionals: string[] = [];
  const flags: ParsedArgs['flags'] = {};
  for (const [name, spec] of Object.entries(command.flags)) {
    if (spec.default !== undefined) flags[name] = spec.default;
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--') || arg === '--') {
      positionals.push(arg);
      continue;
    }
    let name = arg.slice(2);
    let value: string | undefined;
    const eq = name.indexOf('=');
    if (eq >= 0) {
      value = name.slice(eq + 1);
      name = name.slice(0, eq);
    }
    let spec = command.flags[name];
    if (!spec && name.startsWith('no-') && command.flags[name.slice(3)]?.type === 'boolean') {
      flags[name.slice(3)] = false;
      continue;
    }
    if (!spec) {
      throw new UserError(`stcnet ${command.name}: unknown flag --${name} (see stcnet ${command.name} --help)`);
    }
    if (spec.type === 'boolean') {
      flags[name] = value === undefined ? true : parseBoolean(command.name, name, value);
      continue;
    }
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new UserError(`stcnet ${command.name}: flag --${name} expects a value`);
    }
    flags[name] = parseValue(command.name, name, spec, value);
  }
  return { positionals, flags };
}

function parseBoolean(command: string, name: string, value: string): boolean {
  if (value === 'true' || value === '1') return true;
  if (value === 'false' || value === '0') return false;
  throw new UserError(`stcnet ${command}: flag --${name} expects true or false, got "${value}"`);
}

function parseValue(command: string, name: string, spec: FlagSpec, value: string): string | number | string[] {
  if (spec.type === 'int' || spec.type === 'number') {
    const num = Number(value);
    if (value.trim() === '' || !Number.isFinite(num) || (spec.type === 'int' && !Number.isInteger(num))) {
      throw new UserError(`stcnet ${command}: flag --${name} expects ${spec.type === 'int' ? 'an integer' : 'a number'}, got "${value}"`);
    }
    if (spec.min !== undefined && num < spec.min) {
      throw new UserError(`stcnet ${command}: flag --${name} must be at least ${spec.min}, got ${num}`);
    }
    return num;
  }
  if (spec.type === 'list') return value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (spec.choices && !spec.choices.includes(value)) {
    throw new UserError(`stcnet ${command}: flag --${name} expects one of ${spec.choices.join(', ')}, got "${value}"`);
  }
  return value;
}

export function helpText(command: CommandSpec): string {
  const lines = [`stcnet ${command.name}: ${command.summary}`, '', `usage: ${command.usage}`, ''];
  const entries = Object.entries(command.flags);
  if (entries.length > 0) lines.push('flags:');
  for (const [name, spec] of entries) {
    const def = spec.default !== undefined ? ` (default: ${String(spec.default)})` : '';
    const choices = spec.choices ? ` [${spec.choices.join('|')}]` : '';
    lines.push(`  --${name}${spec.type === 'boolean' ? '' : ' <' + spec.type + '>'}${choices}  ${spec.description}${def}`);
  }
  return lines.join('\n');
}
