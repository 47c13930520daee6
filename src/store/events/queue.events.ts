import { z } from 'zod';
import { jobTimeoutsSchema, killedBySchema } from './job.events.js';

/**
 * The queue's events. The queue is one actor (`queue`) per project log; it never reads files or
 * clocks: job files reach it as `queue.scanned` (what the jobs dir holds, already parsed), time
 * as `at` fields, and job verdicts as `queue.jobFinished` (from each job actor's final state).
 */

const iso = z.iso.datetime();

export const retriesSchema = z.strictObject({
  max: z.number().int().nonnegative().describe('failed attempts retried at most this often (0: none)'),
  initialMs: z.number().int().nonnegative().describe('the wait before the first retry'),
  factor: z.number().min(1).describe('each further retry waits this many times longer'),
  maxMs: z.number().int().nonnegative().describe('no wait is longer than this'),
});
export type Retries = z.infer<typeof retriesSchema>;

/** One job file as the scheduler read it: what the queue needs to order it, and what it runs. */
export const jobSpecSchema = z.strictObject({
  slug: z.string().min(1),
  file: z.string().min(1).describe('the job file'),
  hash: z.string().min(1).describe("sha256 of the file's bytes: a changed hash is an edited file"),
  title: z.string(),
  group: z.number().int().nonnegative().describe('parallelGroup: from the frontmatter, else an NN- file name prefix, else 99'),
  cwd: z.string().min(1).describe('absolute'),
  command: z.array(z.string()).min(1).describe('argv, with the config default applied'),
  timeouts: jobTimeoutsSchema.describe('with the config defaults applied'),
  estimateMinutes: z.number().nullable(),
  promptBytes: z.number().int().nonnegative(),
  dependsOn: z.array(z.string().min(1)).default([]).describe('slugs that must complete first'),
  retries: retriesSchema.nullable().default(null).describe('with the config default applied; null: a failure is final'),
});
export type JobSpec = z.infer<typeof jobSpecSchema>;

export const pauseReasonSchema = z.enum(['manual', 'rate_limit', 'auth', 'network']);
export type PauseReason = z.infer<typeof pauseReasonSchema>;

export const holderSchema = z.strictObject({
  pid: z.number().nullable(),
  session: z.string().nullable(),
  hostname: z.string().nullable(),
  reason: z.string().describe('why the holder counts as live'),
});

export const firePolicySchema = z
  .enum(['immediate', 'when-available', 'on-reset'])
  .describe('immediate: no usage gate; when-available: start jobs while the meter says utilization < utilizationThreshold; on-reset: start jobs from offsetMinutes after the usage window resets until utilization reaches the threshold');
export type FirePolicy = z.infer<typeof firePolicySchema>;

export const finishedOutcomeSchema = z.enum(['completed', 'failed', 'deferred', 'interrupted']);

/** Data of each event the queue machine accepts, by event type. */
export const queueEvents = {
  'queue.configure': z
    .strictObject({
      runId: z.string().min(1),
      cap: z.number().int().min(1).max(20).describe('concurrencyCap (WARDEN_MAX_CONCURRENCY overrides it)'),
      requeueInterrupted: z.number().int().nonnegative().describe('how often a job interrupted by a dead scheduler is run again'),
      rateLimitPauseMs: z.number().int().positive().describe('how long a rate limit with no reset time pauses the queue'),
      rateLimitMarginMs: z.number().int().nonnegative().default(0).describe('added to a rate limit\'s reset time before the queue resumes'),
      rateLimitMaxDeferrals: z.number().int().nonnegative().default(5).describe('a job deferred more times in a row than this fails'),
      firePolicy: firePolicySchema.default('immediate'),
      utilizationThreshold: z.number().min(0).max(100).default(90),
      offsetMs: z.number().int().nonnegative().default(15 * 60_000).describe('on-reset: how long after the window resets jobs start'),
      resumeSuppressMs: z.number().int().nonnegative().default(0).describe('after a manual resume, automatic pauses are ignored this long'),
      usageMaxAgeMs: z.number().int().nonnegative().default(0).describe('a usage reading older than this opens no gate (0: readings never go stale)'),
      notify: z.boolean().default(false).describe('a notifier is configured: each terminal state of a job is sent to it'),
      investigate: z.boolean().default(false).describe('a failed job (not itself a fix plan) is investigated'),
      at: iso,
    })
    .describe('A scheduler run starts driving the queue: its settings. Jobs left blocked are tried again.'),
  'queue.detached': z
    .strictObject({ reason: z.string(), at: iso })
    .describe('No scheduler run drives the queue any more (it stopped, or a control command found it gone): nothing starts until the next run.'),
  'queue.scanned': z
    .strictObject({
      jobs: z.array(jobSpecSchema).describe('every readable job file, by slug'),
      problems: z.array(z.strictObject({ file: z.string(), problem: z.string() })).describe('files that are not jobs, and why'),
    })
    .describe('The jobs dir was read: new files become pending, edited pending ones are updated, removed pending ones cancelled.'),
  'queue.jobStarted': z
    .strictObject({ slug: z.string().min(1), actor: z.string().min(1), jobId: z.string().min(1), at: iso })
    .describe("The job's worker lock is held and its job actor started."),
  'queue.startFailed': z
    .strictObject({ slug: z.string().min(1), reason: z.string(), retry: z.boolean().describe('true: back to pending (the file changed); false: the job fails') })
    .describe('A job could not be started (its prompt could not be copied, its worker lock is unreadable …).'),
  'queue.jobBlocked': z
    .strictObject({ slug: z.string().min(1), holder: holderSchema })
    .describe("Another live agent holds the worker lock of the job's cwd: the job waits, naming it."),
  'queue.workerFree': z.strictObject({ slug: z.string().min(1) }).describe('The worker lock a blocked job waits for is free (or stale) now.'),
  'queue.jobFinished': z
    .strictObject({
      slug: z.string().min(1),
      actor: z.string().min(1),
      outcome: finishedOutcomeSchema,
      reason: z.string(),
      exitCode: z.number().int().nullable(),
      signal: z.string().nullable(),
      killedBy: killedBySchema.nullable(),
      startedAt: iso.nullable(),
      finishedAt: iso.nullable(),
      costUsd: z.number().nullable(),
      rateLimitResetsAt: iso.nullable(),
      at: iso,
    })
    .describe('A job actor reached its verdict.'),
  'queue.pause': z
    .strictObject({ reason: pauseReasonSchema, message: z.string(), at: iso, until: iso.nullable().describe('resume by itself then (null: until resumed)') })
    .describe('Nothing new starts; running jobs go on.'),
  'queue.resume': z.strictObject({ at: iso, message: z.string() }).describe('A paused queue starts jobs again.'),
  'queue.usage': z
    .strictObject({ utilization: z.number().min(0).max(100), resetsAt: iso.nullable(), at: iso })
    .describe('What the usage meter said: the fire policy gates new starts on it.'),
  'queue.clearPause': z
    .strictObject({ reason: pauseReasonSchema, at: iso })
    .describe('The cause of an automatic pause is gone (the meter answers again): the pause ends if it is still that one.'),
  'queue.windowReset': z.strictObject({}).describe('on-reset: offsetMinutes have passed since the usage window reset (a timer of the queue).'),
  'queue.usageStale': z.strictObject({}).describe("The meter's last reading is older than usageMaxAgeMs: it opens nothing until the next one (a timer of the queue)."),
  'queue.notified': z
    .strictObject({ slug: z.string().min(1), status: z.string(), ok: z.boolean(), via: z.string().describe('url, command, or both'), reason: z.string().nullable().describe('why it failed') })
    .describe('The notifier was called for a job\'s terminal state (a failure is logged here and changes nothing else).'),
  'queue.investigationStarted': z
    .strictObject({ slug: z.string().min(1), actor: z.string().min(1), fixFile: z.string().min(1), at: iso })
    .describe('An investigator runs for a failed job: it is to write a fix-plan job file (and not to fix anything).'),
  'queue.investigationSkipped': z
    .strictObject({ slug: z.string().min(1), reason: z.string() })
    .describe('No investigation: its fix file exists already (or it could not be started).'),
  'queue.investigationFinished': z
    .strictObject({ slug: z.string().min(1), actor: z.string().min(1), outcome: z.string(), reason: z.string(), fixWritten: z.boolean() })
    .describe("An investigator's run ended; the jobs dir is read again, so a fix plan it wrote runs."),
  'queue.retryDue': z.strictObject({ slug: z.string().min(1) }).describe("A failed job's backoff is over: it may be retried (a timer of the queue)."),
  'queue.kick': z
    .strictObject({ at: iso })
    .describe('Start what may start now, bypassing an automatic pause (rate limit, auth, network) once; a manual pause holds.'),
} as const;

export type QueueEvent =
  | ({ type: 'queue.configure' } & z.infer<(typeof queueEvents)['queue.configure']>)
  | ({ type: 'queue.detached' } & z.infer<(typeof queueEvents)['queue.detached']>)
  | ({ type: 'queue.scanned' } & z.infer<(typeof queueEvents)['queue.scanned']>)
  | ({ type: 'queue.jobStarted' } & z.infer<(typeof queueEvents)['queue.jobStarted']>)
  | ({ type: 'queue.startFailed' } & z.infer<(typeof queueEvents)['queue.startFailed']>)
  | ({ type: 'queue.jobBlocked' } & z.infer<(typeof queueEvents)['queue.jobBlocked']>)
  | ({ type: 'queue.workerFree' } & z.infer<(typeof queueEvents)['queue.workerFree']>)
  | ({ type: 'queue.jobFinished' } & z.infer<(typeof queueEvents)['queue.jobFinished']>)
  | ({ type: 'queue.pause' } & z.infer<(typeof queueEvents)['queue.pause']>)
  | ({ type: 'queue.resume' } & z.infer<(typeof queueEvents)['queue.resume']>)
  | ({ type: 'queue.kick' } & z.infer<(typeof queueEvents)['queue.kick']>)
  | ({ type: 'queue.usage' } & z.infer<(typeof queueEvents)['queue.usage']>)
  | ({ type: 'queue.clearPause' } & z.infer<(typeof queueEvents)['queue.clearPause']>)
  | { type: 'queue.windowReset' }
  | { type: 'queue.usageStale' }
  | { type: 'queue.retryDue'; slug: string }
  | ({ type: 'queue.investigationStarted' } & z.infer<(typeof queueEvents)['queue.investigationStarted']>)
  | ({ type: 'queue.investigationSkipped' } & z.infer<(typeof queueEvents)['queue.investigationSkipped']>)
  | ({ type: 'queue.investigationFinished' } & z.infer<(typeof queueEvents)['queue.investigationFinished']>)
  | ({ type: 'queue.notified' } & z.infer<(typeof queueEvents)['queue.notified']>)
  | { type: 'effect.failed'; effect: string; causeSeq: number; message: string };

/** The queue actor takes no input: everything it knows arrives as events. */
export const queueInputSchema = z.strictObject({});
export type QueueInput = z.infer<typeof queueInputSchema>;
