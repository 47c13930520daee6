/**
 * The project config, `<project>/.warden/config.json`: its schema. This module holds the parts
 * that exist so far; other keys are kept for the parts still to come. Loading: configFile.ts.
 */
import { z } from 'zod';

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

