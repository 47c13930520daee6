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
  workerLockGraceMs: 10_000,
  firePolicy: 'immediate' as const,
  utilizationThreshold: 90,
  offsetMinutes: 15,
  rateLimitMarginMs: 60_000,
  rateLimitPauseMs: 15 * 60_000,
  rateLimitMaxDeferrals: 5,
  resumeSuppressMs: 10 * 60_000,
  meter: Object.freeze({
    intervalMs: 60_000,
    timeoutMs: 10_000,
    // A meter 429 says the meter is busy, not that the account has room: treating it as
    // "utilization 0" (the seed's rule) fires exactly when the account is limited.
    on429: 'transient' as const,
    backoff: Object.freeze({ initialMs: 30_000, factor: 2, maxMs: 480_000 }),
    networkPauseAfterMs: 30 * 60_000,
  }),
});

/** What happens when jobs fail (docs/failures.md): the defaults of those config sections. */
export const FAILURE_DEFAULTS = Object.freeze({
  /** max 0: no retries unless asked for. */
  retries: Object.freeze({ max: 0, initialMs: 30_000, factor: 2, maxMs: 10 * 60_000 }),
  investigation: Object.freeze({ enabled: true, timeoutMs: 30 * 60_000 }),
  supervisor: Object.freeze({ intervalMs: 15 * 60_000, staleMs: 10 * 60_000, timeoutMs: 2 * 60_000, maxConcurrentProbes: 2 }),
  notify: Object.freeze({ timeoutMs: 10_000 }),
});
