/**
 * Loading the project config, `<project>/.warden/config.json`. The schema (config.ts, zod) is
 * loaded only when there is a file to check: short commands with no config start faster.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { UsageError } from '../errors.js';
import type { WardenConfig } from './config.js';

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
