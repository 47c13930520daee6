/**
 * The project config, `<project>/.warden/config.json`: its schema. Strict, so a misspelt key is an
 * error naming it rather than a setting silently ignored. The `.describe()` texts and `default`
 * metadata are what docs/config.schema.json and docs/config.md are generated from (configDocs.ts).
 * Loading: configFile.ts.
 */
import { isAbsolute, posix } from 'node:path';
import { z } from 'zod';
import { CONCURRENCY_CAP_RANGE, CONFIG_DEFAULTS, DEFAULT_AGENT_COMMAND, FAILURE_DEFAULTS } from './configDefaults.js';
import { DEFAULT_JOB_TIMEOUTS, jobTimeoutsSchema, type JobTimeouts } from './events/job.events.js';

export { CONFIG_DEFAULTS, DEFAULT_AGENT_COMMAND, FAILURE_DEFAULTS } from './configDefaults.js';

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** `ms` in the largest unit that divides it: 3600000 → "1 h". */
function inWords(ms: number): string {
  for (const [unit, size] of [['d', DAY], ['h', HOUR], ['min', MINUTE], ['s', SECOND]] as const) {
    if (ms >= size && ms % size === 0) return `${ms / size} ${unit}`;
  }
  return `${ms} ms`;
}

/**
 * A whole number from `min` to `max`. Every numeric key is bounded by what makes sense for it, and
 * the bound is checked before integrality, so 1e300 is told the key's bound rather than zod's
 * safe-integer limit. The zod issue's path names the key.
 */
function intIn(min: number, max: number, unit = '') {
  const message = (issue: { input?: unknown }) => `expected an integer from ${min} to ${max}${unit}, got ${String(issue.input)}`;
  return z.number().min(min, { error: message }).max(max, { error: message }).int({ error: message });
}

/** A duration in whole milliseconds from `min` to `max` (which the message also gives in words). */
function msIn(min: number, max: number) {
  return intIn(min, max, ` ms (${inWords(max)})`);
}

/** A number (fractions allowed) from `min` to `max`. */
function numberIn(min: number, max: number) {
  const message = (issue: { input?: unknown }) => `expected a number from ${min} to ${max}, got ${String(issue.input)}`;
  return z.number().min(min, { error: message }).max(max, { error: message });
}

/** The bounds of the config's numbers, by what each one is for. */
const BOUNDS = {
  /** Polls, probes and checks: no longer apart than this. */
  intervalMs: DAY,
  /** A command or request waited on (meter, probe, notifier): given up by then at the latest. */
  commandMs: HOUR,
  /** Pauses, backoffs and windows. */
  waitMs: 7 * DAY,
  /** Counts of retries and requeues. */
  count: 100,
  /** Backoff factors. */
  factor: 10,
} as const;

/** Job watchdogs as the config sets them, each bounded (below 2^31 ms, the longest timer Node arms). */
const TIMEOUT_MAX_MS: Readonly<Record<keyof JobTimeouts, number>> = { maxDurationMs: 24 * DAY, postResultGraceMs: DAY, killAfterMs: HOUR, idleOutputMs: 7 * DAY };

/**
 * `jobsDir` must name a directory inside the project dir: relative, and not climbing out of it
 * with "..". (Job files' text goes to agents: a jobs dir elsewhere would run whatever is there.)
 */
const jobsDirPath = z
  .string()
  .min(1)
  .refine((path) => !isAbsolute(path), { error: (issue) => `${JSON.stringify(issue.input)} is an absolute path; give a path relative to the project dir, inside it` })
  .refine(
    (path) => {
      const normal = posix.normalize(path.replaceAll('\\', '/'));
      return normal !== '..' && !normal.startsWith('../');
    },
    { error: (issue) => `${JSON.stringify(issue.input)} leads out of the project dir; the jobs dir must be inside it` },
  );

const dirName = z.string().min(1).regex(/^[^/\0]+$/, 'a directory name, not a path');

const envPattern = z.string().min(1).regex(/^[A-Za-z0-9_*]+$/, 'a variable name, with * as a wildcard');

/** A job watchdog as the config sets it: the job schema's meaning, bounded here, optional, with its default for editors. */
function timeout(key: keyof JobTimeouts) {
  return msIn(1, TIMEOUT_MAX_MS[key])
    .describe(jobTimeoutsSchema.shape[key].description ?? key)
    .optional()
    .meta({ default: DEFAULT_JOB_TIMEOUTS[key] });
}

/** The meter's timing keys, shared by its URL and command forms. */
function meterTimings() {
  const d = CONFIG_DEFAULTS.meter;
  return {
    intervalMs: msIn(1, BOUNDS.intervalMs).optional().describe('between polls while the meter is healthy').meta({ default: d.intervalMs }),
    timeoutMs: msIn(1, BOUNDS.commandMs).optional().describe('a poll not answered by then is abandoned; a command is killed with all it started').meta({ default: d.timeoutMs }),
    on429: z.enum(['safe', 'transient']).optional().describe('what a 429 from the meter means: transient (a failure that backs off, never counted toward the network pause) or safe (utilization 0)').meta({ default: d.on429 }),
    backoff: z
      .strictObject({ initialMs: msIn(1, BOUNDS.waitMs), factor: numberIn(1, BOUNDS.factor), maxMs: msIn(1, BOUNDS.waitMs) })
      .optional()
      .describe('after a failed poll: wait initialMs, times factor after each further failure, at most maxMs')
      .meta({ default: { ...d.backoff } }),
    networkPauseAfterMs: msIn(1, BOUNDS.waitMs).optional().describe('failures other than 429 for this long pause the queue as network').meta({ default: d.networkPauseAfterMs }),
  };
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
    concurrencyCap: intIn(CONCURRENCY_CAP_RANGE.min, CONCURRENCY_CAP_RANGE.max)
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
    jobsDir: jobsDirPath
      .optional()
      .describe('the directory of job files, relative to the project dir and inside it')
      .meta({ default: CONFIG_DEFAULTS.jobsDir }),
    requeueInterrupted: intIn(0, BOUNDS.count)
      .optional()
      .describe('how many times a job interrupted by a scheduler crash is put back in the queue before it counts as failed')
      .meta({ default: CONFIG_DEFAULTS.requeueInterrupted }),
    blockedProbeMs: msIn(1, HOUR)
      .optional()
      .describe("how often, in ms, a job waiting for a worker lock held by another agent checks whether it is free")
      .meta({ default: CONFIG_DEFAULTS.blockedProbeMs }),
    workerLockGraceMs: msIn(1, DAY)
      .optional()
      .describe("an unreadable worker lock (empty, not JSON, a directory) younger than this counts as held; older, it is moved aside and taken (docs/worker-locks.md)")
      .meta({ default: CONFIG_DEFAULTS.workerLockGraceMs }),
    firePolicy: z
      .enum(['immediate', 'when-available', 'on-reset'])
      .optional()
      .describe('when new jobs may start: immediate (no meter needed); when-available: while the meter says utilization < utilizationThreshold; on-reset: from offsetMinutes after the usage window resets until utilization reaches the threshold (docs/usage.md)')
      .meta({ default: CONFIG_DEFAULTS.firePolicy }),
    utilizationThreshold: numberIn(0, 100).optional().describe('percent of the usage window; at or above it, when-available and on-reset hold new jobs').meta({ default: CONFIG_DEFAULTS.utilizationThreshold }),
    offsetMinutes: numberIn(0, 24 * 60).optional().describe('on-reset: how long after the window resets jobs start').meta({ default: CONFIG_DEFAULTS.offsetMinutes }),
    rateLimitMarginMs: msIn(0, DAY).optional().describe("a job's rate limit pauses the queue until its reset time plus this").meta({ default: CONFIG_DEFAULTS.rateLimitMarginMs }),
    rateLimitPauseMs: msIn(1, BOUNDS.waitMs).optional().describe('how long a rate limit that names no reset time pauses the queue').meta({ default: CONFIG_DEFAULTS.rateLimitPauseMs }),
    rateLimitMaxDeferrals: intIn(0, 1000).optional().describe('a job rate limited more times in a row than this fails, naming the rate limit; from the second deferral in a row on, it waits at least rateLimitPauseMs · 2^(n−1) before it runs again (docs/usage.md)').meta({ default: CONFIG_DEFAULTS.rateLimitMaxDeferrals }),
    resumeSuppressMs: msIn(0, DAY).optional().describe('after a manual `warden resume`, automatic pauses (rate limit, auth, network) are ignored this long; a job rate limited meanwhile still waits for its own reset').meta({ default: CONFIG_DEFAULTS.resumeSuppressMs }),
    meter: z
      .union([
        z.strictObject({ url: z.url().describe('GET, answering JSON'), headers: z.record(z.string(), z.string()).optional().describe('request headers (their values are never logged)'), ...meterTimings() }),
        z.strictObject({ command: z.array(z.string()).min(1).describe('argv; prints the JSON answer on stdout'), ...meterTimings() }),
      ])
      .optional()
      .describe('the usage meter: a URL or a command answering {"utilization": 0-100, "resetsAt": ISO time or epoch seconds}'),
    supervisor: z
      .strictObject({
        command: z.array(z.string()).min(1).describe('argv of the probe: gets {job, processTree, logTail} as JSON on stdin, answers {verdict: ok|stuck, action: none|kill-descendant|kill-job, targetPid, reason}'),
        intervalMs: msIn(1, BOUNDS.intervalMs).optional().describe('how often running jobs are looked at').meta({ default: FAILURE_DEFAULTS.supervisor.intervalMs }),
        staleMs: msIn(1, BOUNDS.waitMs).optional().describe('a job whose last output is older than this is probed').meta({ default: FAILURE_DEFAULTS.supervisor.staleMs }),
        timeoutMs: msIn(1, BOUNDS.commandMs).optional().describe('a probe not done by then is killed (nothing changes)').meta({ default: FAILURE_DEFAULTS.supervisor.timeoutMs }),
        maxConcurrentProbes: intIn(1, CONCURRENCY_CAP_RANGE.max).optional().describe('probes at once (never two for one job)').meta({ default: FAILURE_DEFAULTS.supervisor.maxConcurrentProbes }),
      })
      .optional()
      .describe('probes of running jobs that have gone quiet: a command judges whether a job is stuck and what to kill'),
    investigation: z
      .strictObject({
        enabled: z.boolean().optional().describe('investigate failed jobs').meta({ default: FAILURE_DEFAULTS.investigation.enabled }),
        command: z.array(z.string()).min(1).optional().describe('argv of the investigator; default agent.command'),
        timeoutMs: msIn(1, TIMEOUT_MAX_MS.maxDurationMs).optional().describe('the investigator is killed past this').meta({ default: FAILURE_DEFAULTS.investigation.timeoutMs }),
      })
      .optional()
      .describe('when a job fails for good (and is not itself a fix plan, NN-fix-…), an agent looks for the root cause and writes a fix-plan job NN-fix-<base>.md into the jobs dir, which then runs; skipped if that file exists'),
    notify: z
      .strictObject({
        command: z.array(z.string()).min(1).optional().describe('argv; gets the job summary as JSON on stdin'),
        url: z.url().optional().describe('gets the job summary as the JSON body of a POST'),
        timeoutMs: msIn(1, BOUNDS.commandMs).optional().describe('a notifier not done by then is given up (a command is killed)').meta({ default: FAILURE_DEFAULTS.notify.timeoutMs }),
      })
      .refine((n) => n.command !== undefined || n.url !== undefined, 'give a command, a url, or both')
      .optional()
      .describe('told once per terminal state of a job (completed, failed, blocked, cancelled, interrupted), never of a deferral; a failing notifier is logged and never stops the queue'),
    retries: z
      .strictObject({
        max: intIn(0, BOUNDS.count).optional().describe('failed attempts retried at most this often'),
        initialMs: msIn(0, BOUNDS.waitMs).optional().describe('the wait before the first retry'),
        factor: numberIn(1, BOUNDS.factor).optional().describe('each further retry waits this many times longer'),
        maxMs: msIn(0, BOUNDS.waitMs).optional().describe('no wait is longer than this'),
      })
      .optional()
      .describe('retry a failed attempt: at most max times, waiting initialMs, times factor each time, at most maxMs; a job file may override each (default: no retries)')
      .meta({ default: { ...FAILURE_DEFAULTS.retries } }),
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
  .refine((config) => (config.firePolicy ?? 'immediate') === 'immediate' || config.meter !== undefined, { message: 'firePolicy when-available and on-reset need a meter', path: ['firePolicy'] })
  .meta({ title: 'Warden project config (.warden/config.json)' });
export type WardenConfig = z.infer<typeof configSchema>;
