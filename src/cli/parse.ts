import { closeSync, constants, fstatSync, openSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { UsageError } from '../errors.js';
import { COMMANDS, usageOf, type CommandName, type CommandSpec, type OptionSpec } from './commandTable.js';

type Spec<N extends CommandName> = (typeof COMMANDS)[N]['options'];
type AllKeys<U> = U extends unknown ? keyof U : never;
type SpecAt<U, K extends PropertyKey> = U extends unknown ? (K extends keyof U ? U[K] : never) : never;
type ValueOf<S> = S extends { multiple: true } ? string[] : S extends { type: 'boolean' } ? boolean : string;
/** The values of a command's flags, typed from the table (for a union of commands, every flag of any). */
export type Values<N extends CommandName> = { [K in AllKeys<Spec<N>>]?: ValueOf<SpecAt<Spec<N>, K>> };

export interface Parsed<N extends CommandName> {
  values: Values<N>;
  /** The command's own positionals (before `--`). */
  positionals: string[];
  /** For a command that runs a command: CMD, everything after the first `--`. */
  command: string[];
}

/**
 * Parses a command's arguments by the table (node:util parseArgs splits them), with Warden's own
 * message for every mistake: an unknown flag (and the nearest known one), a missing value, a value
 * that looks like a flag, a missing or extra positional. The rule for commands that run a
 * command: CMD is everything after the first `--`, which it needs. Then each path the table marks
 * is checked: an existing directory, or an existing regular file (never opened blocking); and
 * what the command will read inside them, if it is there (`.warden/`, its log and config,
 * `WORKER/.runtime/agent.lock` and its `.flock`), is of the right kind.
 */
export function parseCommand<N extends CommandName>(name: N, argv: string[]): Parsed<N> {
  const spec: CommandSpec = COMMANDS[name];
  const dashes = argv.indexOf('--');
  const own = dashes < 0 ? argv : argv.slice(0, dashes);
  const after = dashes < 0 ? [] : argv.slice(dashes + 1);
  const { tokens } = parseArgs({
    args: own,
    options: Object.fromEntries(Object.entries(spec.options).map(([flag, o]) => [flag, { type: o.type, multiple: o.multiple ?? false }])),
    strict: false,
    allowPositionals: true,
    tokens: true,
  });
  const values: Record<string, string | boolean | string[]> = {};
  const positionals: string[] = [];
  for (const token of tokens) {
    if (token.kind === 'positional') {
      positionals.push(token.value);
      continue;
    }
    if (token.kind !== 'option') continue;
    const option: OptionSpec | undefined = spec.options[token.name];
    if (!option) throw new UsageError(unknownOption(name, token.rawName, Object.keys(spec.options)));
    const flag = `--${token.name}`;
    if (option.type === 'boolean') {
      if (token.value !== undefined) throw new UsageError(`${name}: ${flag} takes no value, got "${token.value}"`);
      values[token.name] = true;
      continue;
    }
    const value = token.value;
    if (value === undefined) throw new UsageError(`${name}: ${flag} needs a value (${flag} ${option.value ?? 'VALUE'})`);
    if (!token.inlineValue && value.length > 1 && value.startsWith('-')) {
      throw new UsageError(`${name}: ${flag} needs a value, and "${value}" looks like an option (write ${flag}=${value} if it is the value)`);
    }
    if (option.multiple) values[token.name] = [...((values[token.name] as string[] | undefined) ?? []), value];
    else values[token.name] = value;
  }

  const own_ = spec.positionals.filter((p) => !(spec.runsCommand && p.name === 'CMD…'));
  // A command that runs nothing takes `--` the usual way: what follows is positionals.
  if (!spec.runsCommand) positionals.push(...after);
  const shape = ['warden', name, ...own_.map((p) => p.name), '[options] -- CMD…'].join(' ');
  const required = own_.filter((p) => !p.optional);
  if (positionals.length < required.length) {
    throw new UsageError(`${name}: no ${required[positionals.length]!.name} given (${usageOf(name)})`);
  }
  if (positionals.length > own_.length) {
    const extra = positionals[own_.length]!;
    throw new UsageError(
      spec.runsCommand
        ? `${name}: unexpected argument "${extra}": the command to run goes after -- (${shape})`
        : `${name}: unexpected argument "${extra}" (${usageOf(name)})`,
    );
  }
  if (spec.runsCommand && after.length === 0) throw new UsageError(`${name}: no command given (${shape})`);

  for (const [flag, o] of Object.entries(spec.options)) {
    const value = values[flag];
    if (o.path === undefined || typeof value !== 'string') continue;
    const path = o.inProjectDir ? resolve((values.dir as string | undefined) ?? '.', value) : resolve(value);
    checkPath(`${name}: --${flag} ${value}`, path, o.path);
  }
  own_.forEach((p, i) => {
    const value = positionals[i];
    if (p.path === undefined || value === undefined) return;
    checkPath(`${name}: ${value}`, resolve(value), p.path, p.mayBeMissing);
  });
  // What the command reads inside the dirs it was given, if there: a FIFO would hang it, a directory fail it.
  const logFileGiven = own_[0]?.name === 'FILE' && positionals.length > 0;
  if ('dir' in spec.options && !logFileGiven) {
    const project = resolve((values.dir as string | undefined) ?? '.');
    checkPath(`${name}: ${join(project, '.warden')}`, join(project, '.warden'), 'dir', true);
    for (const file of ['events.jsonl', 'config.json']) checkPath(`${name}: ${join(project, '.warden', file)}`, join(project, '.warden', file), 'file', true);
  }
  own_.forEach((p, i) => {
    if (p.name !== 'WORKER' || positionals[i] === undefined) return;
    const runtime = join(resolve(positionals[i]), '.runtime');
    checkPath(`${name}: ${runtime}`, runtime, 'dir', true);
    for (const file of ['agent.lock', 'agent.lock.flock']) checkPath(`${name}: ${join(runtime, file)}`, join(runtime, file), 'file', true);
  });
  return { values: values as Values<N>, positionals, command: spec.runsCommand ? after : [] };
}

/**
 * Throws a one-line UsageError unless `path` is an existing directory (`dir`), or an existing
 * regular file that can be read (`file`). A file is opened non-blocking, so a FIFO cannot hang
 * the check, and judged by what was opened.
 */
export function checkPath(what: string, path: string, kind: 'dir' | 'file', mayBeMissing = false): void {
  let fd: number | undefined;
  try {
    if (kind === 'dir') {
      if (!statSync(path).isDirectory()) throw new UsageError(`${what}: not a directory`);
      return;
    }
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
    const stat = fstatSync(fd);
    if (stat.isDirectory()) throw new UsageError(`${what}: is a directory, expected a file`);
    if (!stat.isFile()) throw new UsageError(`${what}: not a regular file (${stat.isFIFO() ? 'a FIFO' : stat.isSocket() ? 'a socket' : 'a device'})`);
  } catch (error) {
    if (error instanceof UsageError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && mayBeMissing) return;
    const why: Record<string, string> = {
      ENOENT: kind === 'dir' ? 'no such directory' : 'no such file',
      ENOTDIR: 'a part of the path is not a directory',
      EACCES: 'permission denied',
      EPERM: 'permission denied',
      ELOOP: 'too many symbolic links',
      ENAMETOOLONG: 'name too long',
      ENXIO: 'not a regular file (a socket or device)',
    };
    throw new UsageError(`${what}: ${why[code ?? ''] ?? `cannot open (${code ?? String(error)})`}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** `unknown option --foo for warden X (did you mean --bar?)`; no suggestion when nothing is near. */
function unknownOption(command: string, raw: string, known: string[]): string {
  const typed = raw.replace(/^-+/, '');
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const flag of [...known, 'help']) {
    const d = editDistance(typed, flag);
    if (d < bestDistance) [best, bestDistance] = [flag, d];
  }
  // Near enough to be a typo: a third of the name (at least one edit), or the name's start.
  const near = best !== undefined && (bestDistance <= Math.max(1, Math.floor(best.length / 3)) || (typed.length >= 3 && best.startsWith(typed)));
  return `unknown option ${raw} for warden ${command} (${near ? `did you mean --${best}?` : `see warden ${command} --help`})`;
}

/** Levenshtein distance: insertions, deletions and substitutions, one row at a time. */
export function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) row.push(Math.min(previous[j]! + 1, row[j - 1]! + 1, previous[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1)));
    previous = row;
  }
  return previous[b.length]!;
}
