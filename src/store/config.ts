/**
 * The project config, `<project>/.warden/config.json`. This module holds the parts that exist so
 * far; other keys are kept for the parts still to come. A file that is not JSON or breaks the
 * schema is a ConfigError naming the file and the field.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { UsageError } from '../errors.js';
import { describeIssue } from './catalogue.js';

const dirName = z.string().min(1).regex(/^[^/\0]+$/, 'a directory name, not a path');

export const configSchema = z.looseObject({
  /** The tmux server session probes ask, as `tmux -L NAME`; default tmux's own default server. */
  tmux: z.strictObject({ socket: z.string().min(1).optional() }).optional(),
  doctor: z
    .strictObject({
      /** Directory names the lock scan does not enter; replaces the default list. */
      skipDirs: z.array(dirName).optional(),
    })
    .optional(),
});
export type WardenConfig = z.infer<typeof configSchema>;

export function configPathOf(projectDir: string): string {
  return join(projectDir, '.warden', 'config.json');
}

/** The config of `projectDir`; `{}` when it has none. */
export function loadConfig(projectDir: string): WardenConfig {
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
  const parsed = configSchema.safeParse(json);
  if (!parsed.success) throw new UsageError(`${path}: ${describeIssue(parsed.error.issues[0])}`);
  return parsed.data;
}
