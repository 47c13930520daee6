import { isAbsolute, relative, resolve } from 'node:path';
import { UsageError } from '../errors.js';

/** Runs an argument parse (node:util parseArgs), turning its errors into one-line usage errors. */
export function parsing<T>(command: string, parse: () => T): T {
  try {
    return parse();
  } catch (error) {
    const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
    throw new UsageError(`${command}: ${message}`);
  }
}

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
