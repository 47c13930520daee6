/**
 * The defaults of the project config (DESIGN.md "Defaults from the seeds"), in one place so the
 * schema's docs, the loaders and the scheduler never repeat a number. Kept free of zod: short
 * commands read defaults without loading the schema. Job watchdog defaults are
 * DEFAULT_JOB_TIMEOUTS (store/events/job.events.ts).
 */

/** The agent a job runs when neither its file nor the config names a command; the prompt goes to stdin. */
export const DEFAULT_AGENT_COMMAND: readonly string[] = Object.freeze(['claude', '-p', '--output-format', 'stream-json', '--verbose']);

/** The bounds of `concurrencyCap`; `WARDEN_MAX_CONCURRENCY` is clamped to them. */
export const CONCURRENCY_CAP_RANGE = Object.freeze({ min: 1, max: 20 });

/** What each optional config key means when it is absent, shaped like the config itself. */
export const CONFIG_DEFAULTS = Object.freeze({
  concurrencyCap: 4,
  agent: Object.freeze({ command: DEFAULT_AGENT_COMMAND }),
  jobsDir: '.warden/jobs',
  requeueInterrupted: 1,
  blockedProbeMs: 2000,
});
