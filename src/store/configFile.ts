/**
 * Loading the project config, `<project>/.warden/config.json`. The schema (config.ts, zod) is
 * loaded only when there is a file to check: short commands with no config start faster.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import type { WardenConfig } from './config.js';
import { CONCURRENCY_CAP_RANGE, CONFIG_DEFAULTS } from './configDefaults.js';

export { CONCURRENCY_CAP_RANGE, CONFIG_DEFAULTS, DEFAULT_AGENT_COMMAND } from './configDefaults.js';

export function configPathOf(projectDir: string): string {
  return join(projectDir, '.warden', 'config.json');
}

/**
 * The config of `projectDir`; `{}` when it has none. A file that is not JSON or breaks the schema
 * is a UsageError naming the file and the field.
 */
export async function loadConfig(projectDir: string): Promise<WardenConfig> {
  const path = configPathOf(projectDir);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new UsageError(`${path}: cannot read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    throw new UsageError(`${path}: not JSON: ${(error as Error).message}`);
  }
  const [{ configSchema }, { describeIssue }] = await Promise.all([import('./config.js'), import('./catalogue.js')]);
  const parsed = configSchema.safeParse(json);
  if (!parsed.success) throw new UsageError(`${path}: ${describeIssue(parsed.error.issues[0])}`);
  return parsed.data;
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
