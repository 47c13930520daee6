/**
 * The project config, `<project>/.warden/config.json`: its schema. This module holds the parts
 * that exist so far; other keys are kept for the parts still to come. Loading: configFile.ts.
 */
import { z } from 'zod';

const dirName = z.string().min(1).regex(/^[^/\0]+$/, 'a directory name, not a path');

const ms = z.number().int().positive();
const envPattern = z.string().min(1).regex(/^[A-Za-z0-9_*]+$/, 'a variable name, with * as a wildcard');

export const configSchema = z.looseObject({
  /** Job watchdogs, in milliseconds (each job may override). */
  timeouts: z
    .strictObject({ maxDurationMs: ms.optional(), postResultGraceMs: ms.optional(), killAfterMs: ms.optional(), idleOutputMs: ms.optional() })
    .optional(),
  /** The child environment: deny and allow patterns (replacing the defaults), and variables to set. */
  env: z
    .strictObject({
      deny: z.array(envPattern).optional(),
      allow: z.array(envPattern).optional(),
      set: z.record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'a variable name'), z.string()).optional(),
    })
    .optional(),
  /** Extra rate-limit signals: regular expressions tested against output lines that are not JSON. */
  rateLimitPatterns: z
    .array(
      z.strictObject({
        name: z.string().min(1),
        regex: z.string().min(1).refine((source) => {
          try {
            new RegExp(source);
            return true;
          } catch {
            return false;
          }
        }, 'not a valid regular expression'),
      }),
    )
    .optional(),
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

