/**
 * The project config, `<project>/.warden/config.json`: its schema. Strict, so a misspelt key is an
 * error naming it rather than a setting silently ignored. The `.describe()` texts and `default`
 * metadata are what docs/config.schema.json and docs/config.md are generated from (configDocs.ts).
 * Loading: configFile.ts.
 */
import { z } from 'zod';
import { CONCURRENCY_CAP_RANGE, CONFIG_DEFAULTS, DEFAULT_AGENT_COMMAND } from './configDefaults.js';
import { DEFAULT_JOB_TIMEOUTS, jobTimeoutsSchema, type JobTimeouts } from './events/job.events.js';

export { CONFIG_DEFAULTS, DEFAULT_AGENT_COMMAND } from './configDefaults.js';

const dirName = z.string().min(1).regex(/^[^/\0]+$/, 'a directory name, not a path');

const envPattern = z.string().min(1).regex(/^[A-Za-z0-9_*]+$/, 'a variable name, with * as a wildcard');

/** A job watchdog as the config sets it: the job schema's field, optional, with its default for editors. */
function timeout(key: keyof JobTimeouts) {
  return jobTimeoutsSchema.shape[key].optional().meta({ default: DEFAULT_JOB_TIMEOUTS[key] });
}

const regexSource = z
  .string()
  .min(1)
  .refine((source) => {
    try {
      new RegExp(source);
      return true;
    } catch {
      return false;
    }
  }, 'not a valid regular expression');

export const configSchema = z
  .strictObject({
    $schema: z.string().optional().describe('the JSON Schema an editor checks this file with (docs/config.schema.json); ignored by Warden'),
    concurrencyCap: z
      .number()
      .int()
      .min(CONCURRENCY_CAP_RANGE.min)
      .max(CONCURRENCY_CAP_RANGE.max)
      .optional()
      .describe('at most this many jobs run at once; the environment variable WARDEN_MAX_CONCURRENCY overrides it (clamped to 1..20)')
      .meta({ default: CONFIG_DEFAULTS.concurrencyCap }),
    agent: z
      .strictObject({
        command: z
          .array(z.string())
          .min(1)
          .describe('argv of the agent a job runs when its file names no command; the prompt goes to stdin, or replaces {prompt}')
          .meta({ default: [...DEFAULT_AGENT_COMMAND] }),
      })
      .optional()
      .describe('the agent jobs run by default'),
    jobsDir: z
      .string()
      .min(1)
      .optional()
      .describe('the directory of job files, relative to the project dir')
      .meta({ default: CONFIG_DEFAULTS.jobsDir }),
    requeueInterrupted: z
      .number()
      .int()
      .nonnegative()
      .optional()
      .describe('how many times a job interrupted by a scheduler crash is put back in the queue before it counts as failed')
      .meta({ default: CONFIG_DEFAULTS.requeueInterrupted }),
    blockedProbeMs: z
      .number()
      .int()
      .positive()
      .optional()
      .describe("how often, in ms, a job waiting for a worker lock held by another agent checks whether it is free")
      .meta({ default: CONFIG_DEFAULTS.blockedProbeMs }),
    timeouts: z
      .strictObject({
        maxDurationMs: timeout('maxDurationMs'),
        postResultGraceMs: timeout('postResultGraceMs'),
        killAfterMs: timeout('killAfterMs'),
        idleOutputMs: timeout('idleOutputMs'),
      })
      .optional()
      .describe('job watchdogs, in milliseconds; a job file may override each'),
    env: z
      .strictObject({
        deny: z.array(envPattern).optional().describe('variables removed from the child environment (* is a wildcard); replaces the default list (docs/jobs.md, "The environment")'),
        allow: z.array(envPattern).optional().describe('variables kept even where a deny pattern matches; replaces the default list (docs/jobs.md, "The environment")'),
        set: z
          .record(z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'a variable name'), z.string())
          .optional()
          .describe('variables set in every job (logged)'),
      })
      .optional()
      .describe("the child environment: Warden's own, minus the deny list, except the allow list, plus set"),
    rateLimitPatterns: z
      .array(
        z.strictObject({
          name: z.string().min(1).describe('what the signal is called in the log'),
          regex: regexSource.describe('a JavaScript regular expression'),
        }),
      )
      .optional()
      .describe('extra rate-limit signals: regular expressions tested against output lines that are not JSON'),
    tmux: z
      .strictObject({ socket: z.string().min(1).optional().describe("the server session probes ask, as tmux -L NAME; default tmux's own") })
      .optional()
      .describe('the tmux server whose sessions count as live lock owners'),
    doctor: z
      .strictObject({
        skipDirs: z.array(dirName).optional().describe('directory names the lock scan does not enter; replaces the default list (docs/cli.md, warden doctor)'),
      })
      .optional()
      .describe('warden doctor: the scan for worker locks'),
  })
  .meta({ title: 'Warden project config (.warden/config.json)' });
export type WardenConfig = z.infer<typeof configSchema>;
