import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join, relative, resolve } from 'node:path';
import { CommandNotFoundError, UsageError } from '../errors.js';

/** The log a command reads: FILE if given, else `<dir>/.warden/events.jsonl` (dir defaults to the cwd). */
export function logPathOf(command: string, dir: string | undefined, positionals: string[]): string {
  if (positionals.length > 1) throw new UsageError(`${command}: expected at most one FILE, got ${positionals.length}`);
  const file = positionals[0];
  if (file !== undefined && dir !== undefined) throw new UsageError(`${command}: give --dir or FILE, not both`);
  if (file !== undefined) return resolve(file);
  return resolve(dir ?? '.', '.warden', 'events.jsonl');
}

/** A positive integer option, or a usage error naming the option and the value. */
export function positiveInteger(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^[1-9][0-9]*$/.test(value)) throw new UsageError(`--${name}: expected a positive integer, got "${value}"`);
  return Number(value);
}

/** A path as the user would like to read it: relative to the cwd when it is inside it. */
export function displayPath(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel !== '' && !rel.startsWith('..') && !isAbsolute(rel) ? rel : path;
}

/**
 * A duration option: milliseconds (`1500`), or a number with a unit (`90s`, `20m`, `2h`, `500ms`).
 * @example duration('idle', '20m') // 1_200_000
 */
export function duration(name: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const match = /^([1-9][0-9]*)(ms|s|m|h)?$/.exec(value);
  if (!match) throw new UsageError(`--${name}: expected milliseconds or a duration like 90s, 20m, 2h; got "${value}"`);
  const unit = { ms: 1, s: 1_000, m: 60_000, h: 3_600_000 }[match[2] ?? 'ms']!;
  const ms = Number(match[1]) * unit;
  if (!Number.isSafeInteger(ms)) throw new UsageError(`--${name}: "${value}" is too long`);
  return ms;
}

/**
 * Checks, before anything is taken, that CMD can be run the way the guard shell will `exec` it:
 * a name with a slash must be an executable file; a bare name must be one on $PATH. Otherwise a
 * one-line error naming it, exit 127 (not found) or 126 (not executable), as a shell would.
 */
export function findCommand(command: string, name: string): string {
  const executable = (path: string): 'yes' | 'missing' | 'not executable' => {
    try {
      if (!statSync(path).isFile()) return 'not executable';
    } catch {
      return 'missing';
    }
    try {
      accessSync(path, constants.X_OK);
      return 'yes';
    } catch {
      return 'not executable';
    }
  };
  if (name.includes('/')) {
    const found = executable(resolve(name));
    if (found === 'yes') return name;
    throw new CommandNotFoundError(name, found === 'missing' ? 127 : 126, `${command}: ${name}: ${found === 'missing' ? 'no such file' : 'not an executable file'}`);
  }
  let seen = false;
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    const found = executable(join(dir === '' ? '.' : dir, name));
    if (found === 'yes') return name;
    seen ||= found === 'not executable';
  }
  if (name !== '' && seen) throw new CommandNotFoundError(name, 126, `${command}: ${name}: not an executable file`);
  throw new CommandNotFoundError(name, 127, `${command}: ${name}: command not found on PATH`);
}
