/**
 * Loading the project config, `<project>/.warden/config.json`. The schema (config.ts, zod) is
 * loaded only when there is a file to check: short commands with no config start faster.
 */
import { closeSync, fstatSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import { openStateFile, stateFileError } from './stateFile.js';
import type { WardenConfig } from './config.js';
import { CONCURRENCY_CAP_RANGE, CONFIG_DEFAULTS } from './configDefaults.js';

export { CONCURRENCY_CAP_RANGE, CONFIG_DEFAULTS, DEFAULT_AGENT_COMMAND } from './configDefaults.js';

export function configPathOf(projectDir: string): string {
  return join(projectDir, '.warden', 'config.json');
}

/** The largest config file read: a config is a few hundred bytes; anything near this is not one. */
export const CONFIG_MAX_BYTES = 256 * 1024;

/**
 * The config of `projectDir`; `{}` when it has none. A file that is not JSON or breaks the schema
 * is a UsageError naming the file and the field.
 */
export async function loadConfig(projectDir: string): Promise<WardenConfig> {
  const path = configPathOf(projectDir);
  const text = readConfigText(path);
  if (text === undefined) return {};
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    // The parser quotes the text it choked on: shown with control characters escaped.
    const reason = (error as Error).message.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
    throw new UsageError(`${path}: not JSON: ${reason}`);
  }
  const [{ configSchema }, { describeIssue }] = await Promise.all([import('./config.js'), import('./catalogue.js')]);
  const parsed = configSchema.safeParse(json);
  if (!parsed.success) throw new UsageError(`${path}: ${describeIssue(parsed.error.issues[0])}`);
  return parsed.data;
}

/**
 * The config's text, or undefined if there is no file. Opened as every state file is (a regular
 * file, no symlink, never blocking) and read no further than the size bound, whatever fstat says.
 */
function readConfigText(path: string): string | undefined {
  let fd: number;
  try {
    fd = openStateFile(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
  try {
    const buffer = Buffer.allocUnsafe(CONFIG_MAX_BYTES + 1);
    let n = 0;
    for (let got = -1; got !== 0 && n < buffer.length; n += got) got = readSync(fd, buffer, n, buffer.length - n, n);
    if (n > CONFIG_MAX_BYTES) {
      throw new UsageError(`${path}: is ${fstatSync(fd).size} bytes, over the ${CONFIG_MAX_BYTES / 1024} KiB limit for a config file`);
    }
    return buffer.toString('utf8', 0, n);
  } catch (error) {
    throw error instanceof UsageError ? error : stateFileError(path, error);
  } finally {
    closeSync(fd);
  }
}

/**
 * How many jobs may run at once. `WARDEN_MAX_CONCURRENCY` wins over the config, clamped to 1..20
 * so an operator can turn it down to one or up to the limit in a hurry; junk in it is a
 * UsageError rather than a silent default, because a typo there should not run 4 agents.
 * @example concurrencyCapOf({ concurrencyCap: 2 }, { WARDEN_MAX_CONCURRENCY: '50' }) // 20
 */
export function concurrencyCapOf(config: WardenConfig, env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.WARDEN_MAX_CONCURRENCY;
  if (raw === undefined) return config.concurrencyCap ?? CONFIG_DEFAULTS.concurrencyCap;
  const value = raw.trim();
  if (!/^-?[0-9]+$/.test(value)) {
    throw new UsageError(`WARDEN_MAX_CONCURRENCY: expected an integer (clamped to ${CONCURRENCY_CAP_RANGE.min}..${CONCURRENCY_CAP_RANGE.max}), got ${JSON.stringify(raw)}`);
  }
  return Math.min(CONCURRENCY_CAP_RANGE.max, Math.max(CONCURRENCY_CAP_RANGE.min, Number(value)));
}
