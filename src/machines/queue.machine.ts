import { assign, enqueueActions, setup } from 'xstate';
import { queueEvents, queueInputSchema, type FirePolicy, type JobSpec, type PauseReason, type QueueEvent, type QueueInput, type Retries } from '../store/events/queue.events.js';
import type { KilledBy } from '../store/events/job.events.js';
import { hashText, stableHash } from '../store/stableJson.js';
import { defineMachine } from './definition.js';

export type QueueJobStatus = 'pending' | 'blocked' | 'starting' | 'running' | 'retrying' | 'completed' | 'failed' | 'cancelled' | 'interrupted';

/** Statuses of a job that is not finished (but see {@link isUnfinished}: blocked on a failed dependency is final). */
export const UNFINISHED: ReadonlySet<QueueJobStatus> = new Set(['pending', 'blocked', 'starting', 'running', 'retrying']);

/** Not finished: its group has not drained. A job blocked by a failed dependency is finished. */
export function isUnfinished(job: QueueJob): boolean {
  return UNFINISHED.has(job.status) && !(job.status === 'blocked' && job.blockedOn !== null);
}

/** Statuses whose job will never complete now (a dependant of it cannot run). */
const HOPELESS: ReadonlySet<QueueJobStatus> = new Set(['failed', 'cancelled', 'interrupted']);
/** Statuses that take a slot of the cap. */
export const OCCUPYING: ReadonlySet<QueueJobStatus> = new Set(['starting', 'running']);

/** One job as the queue knows it: where it is, and what its runs came to. */
export interface QueueJob {
  slug: string;
  title: string;
  file: string;
  hash: string;
  group: number;
  cwd: string;
  status: QueueJobStatus;
  /** Job actors started for it (`job:<slug>#<run>`), whatever they came to. */
  runs: number;
  /** Runs that came to a verdict of their own (completed or failed); deferrals and interruptions are not attempts. */
  attempts: number;
  interruptions: number;
  deferrals: number;
  /** Deferrals (rate limits) since its last verdict of its own: the rate-limit backoff's exponent. */
  deferralsInRow: number;
  actor: string | null;
  jobId: string | null;
  blockedBy: { pid: number | null; session: string | null; hostname: string | null; reason: string } | null;
  /** Slugs that must complete first. */
  dependsOn: string[];
  /** Blocked for good: a dependency (`slug`, through `via`) will never complete. */
  blockedOn: { slug: string; via: string; status: QueueJobStatus } | null;
  retries: Retries | null;
  /** Retrying: when its backoff ends. */
  retryAt: string | null;
  /** Its file is gone: it is not started again. */
  removed: boolean;
  /** The file was edited while the job ran: applied if the job goes back to pending. */
  editedSpec: Pick<JobSpec, 'hash' | 'title' | 'file' | 'group' | 'cwd' | 'dependsOn' | 'retries'> | null;
  reason: string | null;
  exitCode: number | null;
  signal: string | null;
  killedBy: KilledBy | null;
  startedAt: string | null;
  finishedAt: string | null;
  costUsd: number | null;
}

export interface QueuePause {
  reason: PauseReason;
  message: string;
  since: string;
  until: string | null;
  /** until − since, for the timer that ends it (the machine reads no clock). */
  delayMs: number;
}

/** The usage gate: whether the fire policy lets new jobs start now, and why. */
export interface UsageGate {
  open: boolean;
  reason: string;
  /** on-reset: when the gate opens (the window's reset plus the offset). */
  opensAt: string | null;
}

export interface QueueContext {
  runId: string | null;
  cap: number;
  requeueInterrupted: number;
  rateLimitPauseMs: number;
  rateLimitMarginMs: number;
  /** A job deferred more times in a row than this fails. */
  rateLimitMaxDeferrals: number;
  firePolicy: FirePolicy;
  utilizationThreshold: number;
  offsetMs: number;
  resumeSuppressMs: number;
  /** A usage reading older than this opens nothing (0: never stale). */
  usageMaxAgeMs: number;
  /** The last reading is older than usageMaxAgeMs: the gate is shut until the next one. */
  usageStale: boolean;
  /** Terminal states are sent to a notifier. */
  notify: boolean;
  /** Failed jobs are investigated. */
  investigate: boolean;
  /** By the failed job's slug: its latest investigation. */
  investigations: Record<string, Investigation>;
  /** The meter's last word. */
  usage: { utilization: number; resetsAt: string | null; at: string } | null;
  gate: UsageGate;
  /** After a manual resume, automatic pauses are ignored until then. */
  suppressAutoUntil: string | null;
  jobs: Record<string, QueueJob>;
  problems: Array<{ file: string; problem: string }>;
  paused: QueuePause | null;
  /** A kick is waiting to be used by the next pick. */
  kick: boolean;
}

/**
 * Which pending jobs start now — the batch rules:
 * - never more than `cap` jobs starting or running;
 * - the active group is the lowest group with an unfinished job (pending, blocked, starting or
 *   running); only its pending jobs start, lowest slug first, so a higher group waits until every
 *   lower one has drained;
 * - a late arrival (a job in a lower group than the one running) makes its group the active one
 *   and starts at once beside the running jobs, within the cap;
 * - two jobs of this queue never run in the same cwd at once (one agent per worker).
 */
export function pickBatch(jobs: readonly QueueJob[], cap: number): string[] {
  let free = cap;
  let active = Number.POSITIVE_INFINITY;
  const busy = new Set<string>();
  const completed = new Set(jobs.filter((j) => j.status === 'completed').map((j) => j.slug));
  // A pending job still waiting for its dependencies holds no group: what it waits for may be in a higher one.
  const ready = (job: QueueJob) => job.dependsOn.every((dep) => completed.has(dep));
  for (const job of jobs) {
    if (OCCUPYING.has(job.status)) {
      free--;
      busy.add(job.cwd);
    }
    if (isUnfinished(job) && (job.status !== 'pending' || ready(job)) && job.group < active) active = job.group;
  }
  if (free <= 0) return [];
  const candidates = jobs.filter((j) => j.status === 'pending' && j.group === active && ready(j)).sort((a, b) => (a.slug < b.slug ? -1 : a.slug > b.slug ? 1 : 0));
  const picked: string[] = [];
  for (const job of candidates) {
    if (picked.length >= free) break;
    if (busy.has(job.cwd)) continue;
    busy.add(job.cwd);
    picked.push(job.slug);
  }
  return picked;
}

/** A job waiting for its rate limit's reset (or its deferral backoff), not for a failed attempt's retry. */
export function isRateLimitWait(job: QueueJob): boolean {
  return job.status === 'retrying' && job.deferralsInRow > 0;
}

/** Whether the queue has nothing left to do: no job pending, blocked, starting or running. */
export function isDrained(context: Pick<QueueContext, 'jobs'> & Partial<Pick<QueueContext, 'investigations'>>): boolean {
  const investigating = Object.values(context.investigations ?? {}).some((i) => i.status === 'starting' || i.status === 'running');
  return !investigating && Object.values(context.jobs).every((job) => !isUnfinished(job));
}

/** What holds a queue that has nothing running: a pause, or its jobs' own rate limits. */
export interface Hold {
  /** `rate_limit` for jobs that each wait for their own rate limit (the queue is not paused). */
  reason: PauseReason;
  /** Paused (the queue), or waiting (jobs for their own rate limits). */
  paused: boolean;
  message: string;
  /** When it ends by itself; null: only a `warden resume` (or, for auth and network, the meter) ends it. */
  until: string | null;
}

/**
 * Why nothing can start and nothing runs, as of `at` — what ends `warden run --once` with exit
 * 75: no job is starting or running (nor an investigation), some job is unfinished, and either
 * the queue is paused, or every unfinished job waits for its own rate limit. null otherwise,
 * and when the pause (or the earliest wait) is due by `at`: its timer is about to fire.
 */
export function heldByPause(context: Pick<QueueContext, 'jobs' | 'paused' | 'investigations'>, at: string): Hold | null {
  const jobs = Object.values(context.jobs);
  if (jobs.some((j) => OCCUPYING.has(j.status))) return null;
  if (Object.values(context.investigations).some((i) => i.status === 'starting' || i.status === 'running')) return null;
  const left = jobs.filter(isUnfinished);
  if (left.length === 0) return null;
  const now = Date.parse(at);
  const { paused } = context;
  if (paused) return paused.until !== null && Date.parse(paused.until) <= now ? null : { reason: paused.reason, paused: true, message: paused.message, until: paused.until };
  if (!left.every(isRateLimitWait)) return null;
  const first = left.reduce((a, b) => (Date.parse(b.retryAt!) < Date.parse(a.retryAt!) ? b : a));
  if (Date.parse(first.retryAt!) <= now) return null;
  return { reason: 'rate_limit', paused: false, message: `${first.slug}: ${first.reason ?? 'rate limited'}`, until: first.retryAt };
}

/** A fix plan's slug: `NN-fix-…` (its failure is not investigated: no recursion). */
export function isFixPlan(slug: string): boolean {
  return /^\d+-fix-/.test(slug);
}

/** The fix plan a failed job's investigation writes: `<NN>-fix-<base>`, NN its group (so the fix runs in the same group). */
export function fixSlugOf(slug: string, group: number): string {
  const prefixed = /^(\d+)-(.+)$/.exec(slug);
  return prefixed ? `${prefixed[1]}-fix-${prefixed[2]}` : `${String(group).padStart(2, '0')}-fix-${slug}`;
}

/** One investigation of a failed job. */
export interface Investigation {
  status: 'starting' | 'running' | 'done' | 'skipped';
  fixSlug: string;
  /** Investigations started for this job so far. */
  count: number;
  actor: string | null;
  outcome: string | null;
  reason: string | null;
  fixWritten: boolean | null;
}

/**
 * Dependency blocking, to a fixed point: a pending or retrying job whose dependency failed, was
 * cancelled or interrupted for good — or is itself blocked so — is `blocked` naming the root
 * cause; one whose cause is gone (the file was edited and it is pending again) is pending again.
 * Returns the table unchanged (the same object) when nothing changes.
 */
export function propagateDependencies(jobs: Record<string, QueueJob>): Record<string, QueueJob> {
  let table = jobs;
  for (let changed = true; changed; ) {
    changed = false;
    for (const job of Object.values(table)) {
      if (job.dependsOn.length === 0) continue;
      const canBlock = job.status === 'pending' || job.status === 'retrying' || (job.status === 'blocked' && job.blockedOn !== null);
      if (!canBlock) continue;
      let cause: QueueJob['blockedOn'] = null;
      for (const slug of job.dependsOn) {
        const dep = table[slug];
        if (!dep) continue;
        if (HOPELESS.has(dep.status)) cause = { slug, via: slug, status: dep.status };
        else if (dep.status === 'blocked' && dep.blockedOn) cause = { ...dep.blockedOn, via: slug };
        if (cause) break;
      }
      const current = job.blockedOn;
      if (cause && (current === null || current.slug !== cause.slug || current.via !== cause.via || current.status !== cause.status)) {
        table = { ...table, [job.slug]: { ...job, status: 'blocked', blockedOn: cause, blockedBy: null, retryAt: null, reason: `waits for ${cause.slug}, which ${cause.status === 'failed' ? 'failed' : `is ${cause.status}`}${cause.via !== cause.slug ? ` (through ${cause.via})` : ''}` } };
        changed = true;
      } else if (!cause && current !== null) {
        table = { ...table, [job.slug]: { ...job, status: 'pending', blockedOn: null, reason: null } };
        changed = true;
      }
    }
  }
  return table;
}

/** The wait before retry n (n ≥ 1): initialMs · factor^(n−1), at most maxMs. */
export function retryDelay(retries: Retries, n: number): number {
  return Math.min(retries.maxMs, Math.round(retries.initialMs * retries.factor ** Math.max(0, n - 1)));
}

function newJob(spec: JobSpec): QueueJob {
  return {
    slug: spec.slug,
    title: spec.title,
    file: spec.file,
    hash: spec.hash,
    group: spec.group,
    cwd: spec.cwd,
    status: 'pending',
    runs: 0,
    attempts: 0,
    interruptions: 0,
    deferrals: 0,
    deferralsInRow: 0,
    actor: null,
    jobId: null,
    blockedBy: null,
    dependsOn: spec.dependsOn,
    blockedOn: null,
    retries: spec.retries,
    retryAt: null,
    removed: false,
    editedSpec: null,
    reason: null,
    exitCode: null,
    signal: null,
    killedBy: null,
    startedAt: null,
    finishedAt: null,
    costUsd: null,
  };
}

const specFields = (spec: JobSpec) => ({ hash: spec.hash, title: spec.title, file: spec.file, group: spec.group, cwd: spec.cwd, dependsOn: spec.dependsOn, retries: spec.retries });

/**
 * The new jobs table after a scan: new files → pending; an edited pending (or blocked) file →
 * updated; an edited file of a job that failed, was cancelled or interrupted → pending again; an
 * edited running job keeps running and takes its new file if it goes back to pending; a
 * completed job is never run again; a removed pending (or blocked) file → cancelled; a removed
 * file that comes back → pending.
 */
export function reconcile(jobs: Readonly<Record<string, QueueJob>>, specs: readonly JobSpec[]): Record<string, QueueJob> {
  const next: Record<string, QueueJob> = {};
  const seen = new Set<string>();
  for (const spec of specs) {
    seen.add(spec.slug);
    const job = jobs[spec.slug];
    if (!job) {
      next[spec.slug] = newJob(spec);
      continue;
    }
    const edited = job.hash !== spec.hash;
    switch (job.status) {
      case 'pending':
      case 'blocked':
      case 'retrying':
        next[spec.slug] = edited ? { ...job, ...specFields(spec), status: 'pending', blockedBy: null, removed: false } : job.removed ? { ...job, removed: false } : job;
        break;
      case 'starting':
      case 'running':
        next[spec.slug] = edited ? { ...job, editedSpec: specFields(spec), removed: false } : job.removed ? { ...job, removed: false } : job;
        break;
      case 'completed':
        next[spec.slug] = job.removed || edited ? { ...job, ...specFields(spec), removed: false } : job;
        break;
      case 'cancelled':
        // A removed file put back, or an edited one: the user wants it run.
        next[spec.slug] = job.removed || edited ? { ...job, ...specFields(spec), status: 'pending', removed: false, reason: null } : job;
        break;
      case 'failed':
      case 'interrupted':
        next[spec.slug] = edited ? { ...job, ...specFields(spec), status: 'pending', removed: false, reason: null } : job.removed ? { ...job, removed: false } : job;
        break;
    }
  }
  for (const [slug, job] of Object.entries(jobs)) {
    if (seen.has(slug)) continue;
    if (job.status === 'pending' || job.status === 'blocked' || job.status === 'retrying') next[slug] = { ...job, status: 'cancelled', removed: true, blockedBy: null, blockedOn: null, retryAt: null, reason: 'its job file was removed' };
    else next[slug] = job.removed ? job : { ...job, removed: true };
  }
  return next;
}

type FinishedEvent = Extract<QueueEvent, { type: 'queue.jobFinished' }>;

/** What a deferral (a rate limit) does to its job: wait until `until`, or fail past the count. */
interface Deferral {
  /** Deferrals in a row, this one included. */
  inRow: number;
  max: number;
  fails: boolean;
  /** When the job may run again: its reset plus the margin (or rateLimitPauseMs), and from the second deferral in a row at least rateLimitPauseMs · 2^(n−1) after it. */
  until: string;
  /** The queue's rate-limit pause, as of this step, lasts at least until then. */
  covered: boolean;
}

/** The rate-limit pause a deferral asks for: until its reset plus the margin, or rateLimitPauseMs from now. */
function rateLimitEnd(context: Pick<QueueContext, 'rateLimitMarginMs' | 'rateLimitPauseMs'>, event: FinishedEvent): string {
  return event.rateLimitResetsAt
    ? new Date(Date.parse(event.rateLimitResetsAt) + context.rateLimitMarginMs).toISOString()
    : new Date(Date.parse(event.at) + context.rateLimitPauseMs).toISOString();
}

/** The wait a job's n-th deferral in a row asks for at least (ms): none for the first, then rateLimitPauseMs · 2^(n−1). */
export function deferralBackoff(rateLimitPauseMs: number, n: number): number {
  return n < 2 ? 0 : rateLimitPauseMs * 2 ** (n - 1);
}

function deferralOf(context: QueueContext, job: QueueJob, event: FinishedEvent, pausesQueue: boolean): Deferral {
  const inRow = job.deferralsInRow + 1;
  const signalEnd = Date.parse(rateLimitEnd(context, event));
  const until = new Date(Math.max(signalEnd, Date.parse(event.at) + deferralBackoff(context.rateLimitPauseMs, inRow))).toISOString();
  const current = context.paused?.reason === 'rate_limit' && context.paused.until ? Date.parse(context.paused.until) : Number.NEGATIVE_INFINITY;
  const pauseEnd = pausesQueue ? Math.max(signalEnd, current) : Number.NEGATIVE_INFINITY;
  return { inRow, max: context.rateLimitMaxDeferrals, fails: inRow > context.rateLimitMaxDeferrals, until, covered: pauseEnd >= Date.parse(until) };
}

/** A job's entry after its run's verdict. */
function afterFinish(job: QueueJob, event: FinishedEvent, requeueInterrupted: number, stopping: boolean, deferral: Deferral | null): QueueJob {
  const facts = {
    reason: event.reason,
    exitCode: event.exitCode,
    signal: event.signal,
    killedBy: event.killedBy,
    startedAt: event.startedAt,
    finishedAt: event.finishedAt,
    costUsd: event.costUsd,
  };
  const back = (changes: Partial<QueueJob>): QueueJob => {
    // Back to pending: a file edited meanwhile applies now; a removed one is not run again.
    if (job.removed) return { ...job, ...facts, ...changes, status: 'cancelled', reason: `${event.reason}; not run again: its job file was removed` };
    return { ...job, ...facts, ...changes, ...(job.editedSpec ?? {}), editedSpec: null, status: 'pending' };
  };
  switch (event.outcome) {
    case 'completed':
      return { ...job, ...facts, status: 'completed', attempts: job.attempts + 1, deferralsInRow: 0 };
    case 'failed': {
      const attempts = job.attempts + 1;
      // Retried while failed attempts are within retries.max (attempts counts the completed one too).
      if (job.retries && attempts <= job.retries.max && !job.removed) {
        const delay = retryDelay(job.retries, attempts);
        return { ...job, ...facts, ...(job.editedSpec ?? {}), editedSpec: null, status: 'retrying', attempts, deferralsInRow: 0, retryAt: new Date(Date.parse(event.at) + delay).toISOString() };
      }
      return { ...job, ...facts, status: 'failed', attempts, deferralsInRow: 0 };
    }
    case 'deferred': {
      const counts = { deferrals: job.deferrals + 1, deferralsInRow: deferral!.inRow };
      if (deferral!.fails) return { ...job, ...facts, ...counts, status: 'failed', attempts: job.attempts + 1, reason: `rate limited ${deferral!.inRow} times in a row, more than rateLimitMaxDeferrals (${deferral!.max}); last: ${event.reason}` };
      // The queue's rate-limit pause holds it at least as long: pending, so a resume or a kick can start it.
      if (deferral!.covered) return back(counts);
      const waiting = back(counts);
      return waiting.status === 'pending' ? { ...waiting, status: 'retrying', retryAt: deferral!.until } : waiting;
    }
    case 'interrupted':
      // Interrupted by a scheduler that is stopping (detached), or before it started (no
      // spawn was logged: the agent never ran): back to pending, not counted.
      if (stopping || event.startedAt === null) return back({});
      if (job.interruptions < requeueInterrupted) return back({ interruptions: job.interruptions + 1 });
      return { ...job, ...facts, status: 'interrupted', interruptions: job.interruptions + 1, reason: `${event.reason}; interrupted ${job.interruptions + 1} times, not run again (requeueInterrupted ${requeueInterrupted})` };
  }
}

/** A notice for each job that reached a terminal state in this step, if a notifier is configured. */
function notifyChanges(context: QueueContext, jobs: Record<string, QueueJob>, enqueue: (action: never) => void): void {
  if (context.notify) for (const notice of noticesBetween(context.jobs, jobs, context.runId)) enqueue(effect('notify', notice));
}

/**
 * A job that has just failed for good is investigated — unless investigations are off, it is
 * itself a fix plan (no recursion), or one is under way for it. (Whether its fix file exists
 * already is for the effect to see: then it is skipped.)
 */
function investigateIfFailed(context: QueueContext, job: QueueJob, enqueue: { assign: (v: Partial<QueueContext>) => void } & ((action: never) => void)): void {
  if (!context.investigate || job.status !== 'failed' || isFixPlan(job.slug) || job.jobId === null) return;
  const current = context.investigations[job.slug];
  if (current && (current.status === 'starting' || current.status === 'running')) return;
  const count = (current?.count ?? 0) + 1;
  const fixSlug = fixSlugOf(job.slug, job.group);
  const actor = `investigation:${job.slug}#${count}`;
  enqueue.assign({ investigations: { ...context.investigations, [job.slug]: { status: 'starting', fixSlug, count, actor, outcome: null, reason: null, fixWritten: null } } });
  enqueue(effect('investigate', { slug: job.slug, title: job.title, reason: job.reason ?? '', jobId: job.jobId, run: job.runs, cwd: job.cwd, group: job.group, fixSlug, actor }));
}

/** The queue's effects and their params: what the runner runs after logging the step. */
/** What a notifier is sent when a job reaches a terminal state. */
export interface JobNotice {
  slug: string;
  title: string;
  status: QueueJobStatus;
  reason: string | null;
  group: number;
  attempts: number;
  runs: number;
  exitCode: number | null;
  killedBy: KilledBy | null;
  startedAt: string | null;
  finishedAt: string | null;
  costUsd: number | null;
  blockedOn: string | null;
  runId: string | null;
}

/** Terminal states a notifier hears of (never a deferral, a retry or a requeue). */
const NOTIFIED: ReadonlySet<QueueJobStatus> = new Set(['completed', 'failed', 'cancelled', 'interrupted']);

/** The notices for jobs that reached a terminal state between two tables. */
export function noticesBetween(before: Readonly<Record<string, QueueJob>>, after: Readonly<Record<string, QueueJob>>, runId: string | null): JobNotice[] {
  const notices: JobNotice[] = [];
  for (const slug in after) {
    const job = after[slug]!;
    const was = before[slug];
    if (was === job) continue;
    const terminal = NOTIFIED.has(job.status) || (job.status === 'blocked' && job.blockedOn !== null);
    const wasTerminal = was !== undefined && (NOTIFIED.has(was.status) || (was.status === 'blocked' && was.blockedOn !== null)) && was.status === job.status;
    if (!terminal || wasTerminal) continue;
    notices.push({
      slug,
      title: job.title,
      status: job.status,
      reason: job.reason,
      group: job.group,
      attempts: job.attempts,
      runs: job.runs,
      exitCode: job.exitCode,
      killedBy: job.killedBy,
      startedAt: job.startedAt,
      finishedAt: job.finishedAt,
      costUsd: job.costUsd,
      blockedOn: job.blockedOn?.slug ?? null,
      runId,
    });
  }
  return notices;
}

export interface QueueEffects {
  notify: JobNotice;
  investigate: { slug: string; title: string; reason: string; jobId: string; run: number; cwd: string; group: number; fixSlug: string; actor: string };
  startJob: { slug: string; hash: string; run: number; actor: string; jobId: string; cwd: string };
  watchWorker: { slug: string; cwd: string };
  releaseWorker: { slug: string; cwd: string; jobId: string };
}

/** An effect enqueued from inside an action (typed here; xstate cannot type actions of the same setup). */
function effect<K extends keyof QueueEffects>(type: K, params: QueueEffects[K]): never {
  return { type, params } as never;
}

/**
 * Whether a job's verdict pauses the queue for a rate limit: a deferral of the run the queue
 * counts as running, unless the queue is paused by hand or the user resumed by hand within
 * resumeSuppressMs (then only the job waits for its reset).
 */
function pausesForRateLimit(context: QueueContext, event: FinishedEvent): boolean {
  if (event.outcome !== 'deferred' || context.paused?.reason === 'manual' || suppressed(context, event.at)) return false;
  const job = context.jobs[event.slug];
  return job !== undefined && job.actor === event.actor && OCCUPYING.has(job.status);
}

/** Whether an automatic pause at `at` is ignored because the user resumed by hand just before. */
function suppressed(context: QueueContext, at: string): boolean {
  return context.suppressAutoUntil !== null && Date.parse(at) < Date.parse(context.suppressAutoUntil);
}

/** The gate after a usage report, by fire policy; `arm`: the on-reset timer to (re)start, in ms. */
export function gateAfterUsage(context: Pick<QueueContext, 'firePolicy' | 'utilizationThreshold' | 'offsetMs' | 'gate'>, usage: { utilization: number; resetsAt: string | null; at: string }): { gate: UsageGate; armMs: number | null } {
  const over = usage.utilization >= context.utilizationThreshold;
  const level = `utilization ${usage.utilization}% ${over ? '≥' : '<'} ${context.utilizationThreshold}%`;
  switch (context.firePolicy) {
    case 'immediate':
      return { gate: { open: true, reason: 'fire policy immediate', opensAt: null }, armMs: null };
    case 'when-available':
      return { gate: { open: !over, reason: `when-available: ${level}`, opensAt: null }, armMs: null };
    case 'on-reset': {
      // Open from the reset (plus the offset) until utilization reaches the threshold again.
      if (context.gate.open && !over) return { gate: { ...context.gate, reason: `on-reset: ${level}` }, armMs: null };
      if (usage.resetsAt === null) return { gate: { open: false, reason: `on-reset: ${level}; the meter gave no reset time`, opensAt: null }, armMs: null };
      const opensAt = new Date(Date.parse(usage.resetsAt) + context.offsetMs).toISOString();
      if (!context.gate.open && context.gate.opensAt === opensAt) return { gate: context.gate, armMs: null };
      return { gate: { open: false, reason: `on-reset: waiting for the window to reset (${level})`, opensAt }, armMs: Math.max(0, Date.parse(opensAt) - Date.parse(usage.at)) };
    }
  }
}

/** In how many ms a reading taken at `readAt` goes stale, as of `at` (≤ 0: it is; null: never). */
function staleIn(maxAgeMs: number, readAt: string, at: string): number | null {
  return maxAgeMs > 0 ? maxAgeMs - (Date.parse(at) - Date.parse(readAt)) : null;
}

/**
 * The usage gate as it stands: the fire policy's verdict, shut while the last reading is stale
 * (older than usageMaxAgeMs — from a meter that stopped answering, or from a run long gone);
 * with `at`, also if the reading is older than that as of `at`.
 */
export function usageGate(context: Pick<QueueContext, 'gate' | 'firePolicy' | 'usage' | 'usageStale' | 'usageMaxAgeMs'>, at?: string): UsageGate {
  if (context.firePolicy === 'immediate' || context.usage === null) return context.gate;
  // `at`: judged as of then too (a status read long after the last run stopped).
  const stale = context.usageStale || (at !== undefined && (staleIn(context.usageMaxAgeMs ?? 0, context.usage.at, at) ?? 1) <= 0);
  if (!stale) return context.gate;
  return { open: false, reason: `${context.firePolicy}: the last usage reading (${context.usage.at}) is older than ${context.usageMaxAgeMs} ms; waiting for the usage meter`, opensAt: context.gate.opensAt };
}

/** A pause as of `at`: its timer (if it has an end) runs from `at` to `until`. */
function pauseOf(reason: PauseReason, message: string, since: string, until: string | null, at: string): QueuePause {
  return { reason, message, since, until, delayMs: until === null ? 0 : Math.max(0, Date.parse(until) - Date.parse(at)) };
}

/**
 * The queue of a project: job files reconciled into jobs, batches started by the rules of
 * {@link pickBatch}, verdicts recorded, pauses and resumes. Every input is an event in the log,
 * so what ran, in which order and why can be replayed and verified.
 *
 *   active ⇄ paused (manual, auth, network: until resumed)
 *          ⇄ pausedUntil (rate_limit: resumes by itself at its reset time)
 *
 * Each step that can free a slot or add work picks a batch; the mailbox serialises steps, so no
 * job is ever picked twice. A picked job is `starting` (it holds a slot) until its worker lock
 * is taken and its actor started (`running`), or the lock is held by another live agent
 * (`blocked`, naming it, until the lock is free).
 */
export const queueMachine = setup({
  types: {
    input: {} as QueueInput,
    context: {} as QueueContext,
    events: {} as QueueEvent,
  },
  actions: {
    configure: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'queue.configure') return;
      // A new run: jobs that waited for a worker lock are tried again.
      const jobs = Object.fromEntries(Object.entries(context.jobs).map(([slug, job]) => [slug, job.status === 'blocked' ? { ...job, status: 'pending' as const, blockedBy: null } : job]));
      const policyChanged = event.firePolicy !== context.firePolicy;
      const gate: UsageGate = event.firePolicy === 'immediate' ? { open: true, reason: 'fire policy immediate', opensAt: null } : policyChanged || context.usage === null ? { open: false, reason: `${event.firePolicy}: waiting for the usage meter`, opensAt: null } : context.gate;
      // A reading the last run left opens nothing once it is older than usageMaxAgeMs.
      const staleInMs = event.firePolicy === 'immediate' || context.usage === null ? null : staleIn(event.usageMaxAgeMs, context.usage.at, event.at);
      enqueue.cancel('usageStale');
      if (staleInMs !== null && staleInMs > 0) enqueue.raise({ type: 'queue.usageStale' }, { delay: staleInMs, id: 'usageStale' });
      enqueue.assign({
        runId: event.runId,
        cap: event.cap,
        requeueInterrupted: event.requeueInterrupted,
        rateLimitPauseMs: event.rateLimitPauseMs,
        rateLimitMarginMs: event.rateLimitMarginMs,
        rateLimitMaxDeferrals: event.rateLimitMaxDeferrals,
        firePolicy: event.firePolicy,
        utilizationThreshold: event.utilizationThreshold,
        offsetMs: event.offsetMs,
        resumeSuppressMs: event.resumeSuppressMs,
        usageMaxAgeMs: event.usageMaxAgeMs,
        usageStale: staleInMs !== null && staleInMs <= 0,
        notify: event.notify,
        investigate: event.investigate,
        gate,
        jobs,
      });
    }),
    detach: assign({ runId: () => null }),
    reconcile: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'queue.scanned') return;
      const jobs = propagateDependencies(reconcile(context.jobs, event.jobs));
      enqueue.assign({ jobs, problems: event.problems });
      notifyChanges(context, jobs, enqueue as never);
    }),
    retryDue: assign(({ context, event }) => {
      if (event.type !== 'queue.retryDue') return {};
      const job = context.jobs[event.slug];
      if (!job || job.status !== 'retrying') return {};
      return { jobs: { ...context.jobs, [event.slug]: { ...job, status: 'pending' as const, retryAt: null } } };
    }),
    markStarted: assign(({ context, event }) => {
      if (event.type !== 'queue.jobStarted') return {};
      const job = context.jobs[event.slug];
      if (!job || job.status !== 'starting') return {};
      return { jobs: { ...context.jobs, [event.slug]: { ...job, status: 'running' as const, actor: event.actor, jobId: event.jobId, startedAt: event.at } } };
    }),
    markStartFailed: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'queue.startFailed') return;
      const job = context.jobs[event.slug];
      if (!job || job.status !== 'starting') return;
      const status = event.retry ? ('pending' as const) : ('failed' as const);
      const jobs = propagateDependencies({ ...context.jobs, [event.slug]: { ...job, status, reason: event.reason, attempts: event.retry ? job.attempts : job.attempts + 1 } });
      enqueue.assign({ jobs });
      notifyChanges(context, jobs, enqueue as never);
      investigateIfFailed(context, jobs[event.slug]!, enqueue as never);
    }),
    markBlocked: assign(({ context, event }) => {
      if (event.type !== 'queue.jobBlocked') return {};
      const job = context.jobs[event.slug];
      if (!job || job.status !== 'starting') return {};
      return { jobs: { ...context.jobs, [event.slug]: { ...job, status: 'blocked' as const, blockedBy: event.holder } } };
    }),
    markFree: assign(({ context, event }) => {
      if (event.type !== 'queue.workerFree') return {};
      const job = context.jobs[event.slug];
      if (!job || job.status !== 'blocked') return {};
      return { jobs: { ...context.jobs, [event.slug]: { ...job, status: 'pending' as const, blockedBy: null } } };
    }),
    recordFinished: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'queue.jobFinished') return;
      const job = context.jobs[event.slug];
      if (!job || job.actor !== event.actor || !OCCUPYING.has(job.status)) return;
      const deferral = event.outcome === 'deferred' ? deferralOf(context, job, event, pausesForRateLimit(context, event)) : null;
      const next = afterFinish(job, event, context.requeueInterrupted, context.runId === null, deferral);
      const jobs = propagateDependencies({ ...context.jobs, [event.slug]: next });
      enqueue.assign({ jobs });
      enqueue(effect('releaseWorker', { slug: job.slug, cwd: job.cwd, jobId: job.jobId ?? '' }));
      notifyChanges(context, jobs, enqueue as never);
      // A job that failed of rate limits is not investigated: nothing in its code is at fault.
      if (!deferral) investigateIfFailed(context, next, enqueue as never);
      if (next.status === 'retrying' && next.retryAt) {
        enqueue.raise({ type: 'queue.retryDue', slug: next.slug }, { delay: Math.max(0, Date.parse(next.retryAt) - Date.parse(event.at)), id: `retry:${next.slug}` });
      }
    }),
    watchBlocked: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'queue.jobBlocked') return;
      const job = context.jobs[event.slug];
      if (job?.status === 'blocked') enqueue(effect('watchWorker', { slug: job.slug, cwd: job.cwd }));
    }),
    pauseForRateLimit: assign(({ context, event }) => {
      if (event.type !== 'queue.jobFinished' || event.outcome !== 'deferred') return {};
      // (The guard has checked this step pauses: recordFinished, before it, has moved the job on.)
      if (context.paused?.reason === 'manual' || suppressed(context, event.at)) return {};
      const until = rateLimitEnd(context, event);
      // A later reset than the pause in force extends it; an earlier one does not shorten it
      // (its timer, started over by this step, runs to the same end).
      const current = context.paused;
      if (current?.until && Date.parse(current.until) >= Date.parse(until)) return { paused: pauseOf(current.reason, current.message, current.since, current.until, event.at) };
      return { paused: pauseOf('rate_limit', `${event.slug}: ${event.reason}`, event.at, until, event.at) };
    }),
    setPause: assign(({ context, event }) => {
      if (event.type !== 'queue.pause') return {};
      // A manual pause is not replaced by an automatic one; nor does one follow a manual resume too soon.
      if (event.reason !== 'manual' && (context.paused?.reason === 'manual' || suppressed(context, event.at))) return {};
      return { paused: pauseOf(event.reason, event.message, event.at, event.until, event.at) };
    }),
    clearPause: assign({ paused: () => null }),
    /** A manual resume: jobs waiting for their own rate limit's reset may run (once) now. */
    releaseDeferred: enqueueActions(({ context, enqueue }) => {
      let jobs = context.jobs;
      for (const job of Object.values(context.jobs)) {
        if (!isRateLimitWait(job)) continue;
        enqueue.cancel(`retry:${job.slug}`);
        jobs = { ...jobs, [job.slug]: { ...job, status: 'pending', retryAt: null } };
      }
      if (jobs !== context.jobs) enqueue.assign({ jobs });
    }),
    resumedByHand: assign(({ context, event }) =>
      event.type === 'queue.resume' && context.resumeSuppressMs > 0 ? { suppressAutoUntil: new Date(Date.parse(event.at) + context.resumeSuppressMs).toISOString() } : {},
    ),
    recordUsage: enqueueActions(({ context, event, enqueue }) => {
      if (event.type !== 'queue.usage') return;
      const usage = { utilization: event.utilization, resetsAt: event.resetsAt, at: event.at };
      const { gate, armMs } = gateAfterUsage(context, usage);
      enqueue.assign({ usage, gate, usageStale: false });
      if (context.firePolicy !== 'immediate' && context.usageMaxAgeMs > 0) {
        enqueue.cancel('usageStale');
        enqueue.raise({ type: 'queue.usageStale' }, { delay: context.usageMaxAgeMs, id: 'usageStale' });
      }
      if (armMs !== null) {
        enqueue.cancel('windowReset');
        enqueue.raise({ type: 'queue.windowReset' }, { delay: armMs, id: 'windowReset' });
      }
    }),
    windowReset: assign(({ context }) => ({ gate: { open: true, reason: `on-reset: the window reset${context.gate.opensAt ? ` (opened ${context.gate.opensAt})` : ''}`, opensAt: null } })),
    usageStale: assign({ usageStale: () => true }),
    armKick: assign({ kick: () => true }),
    /** Picks a batch (if the gate is open) and starts it: the jobs hold their slots from here. */
    pick: enqueueActions(({ context, enqueue }) => {
      // A kick opens the usage gate and automatic pauses once; a manual pause holds.
      const bypass = context.kick && context.paused?.reason !== 'manual';
      if (context.kick) enqueue.assign({ kick: false });
      if ((context.paused || !usageGate(context).open) && !bypass) return;
      if (context.runId === null) return;
      const picked = pickBatch(Object.values(context.jobs), context.cap);
      if (picked.length === 0) return;
      const jobs = { ...context.jobs };
      for (const slug of picked) {
        const job = jobs[slug]!;
        const run = job.runs + 1;
        const actor = `job:${slug}#${run}`;
        const jobId = `${context.runId}/${slug}#${run}`;
        jobs[slug] = { ...job, status: 'starting', runs: run, actor, jobId, blockedBy: null };
        enqueue(effect('startJob', { slug, hash: job.hash, run, actor, jobId, cwd: job.cwd }));
      }
      enqueue.assign({ jobs });
    }),
    // Declarations only: the runner maps these to effects.
    startJob: (_, _params: QueueEffects['startJob']) => {},
    watchWorker: (_, _params: QueueEffects['watchWorker']) => {},
    releaseWorker: (_, _params: QueueEffects['releaseWorker']) => {},
    notify: (_, _params: QueueEffects['notify']) => {},
    investigate: (_, _params: QueueEffects['investigate']) => {},
    investigationStarted: assign(({ context, event }) => {
      if (event.type !== 'queue.investigationStarted') return {};
      const current = context.investigations[event.slug];
      if (!current || current.status !== 'starting') return {};
      return { investigations: { ...context.investigations, [event.slug]: { ...current, status: 'running' as const, actor: event.actor } } };
    }),
    investigationSkipped: assign(({ context, event }) => {
      if (event.type !== 'queue.investigationSkipped') return {};
      const current = context.investigations[event.slug];
      if (!current || current.status !== 'starting') return {};
      return { investigations: { ...context.investigations, [event.slug]: { ...current, status: 'skipped' as const, reason: event.reason } } };
    }),
    investigationFinished: assign(({ context, event }) => {
      if (event.type !== 'queue.investigationFinished') return {};
      const current = context.investigations[event.slug];
      if (!current || current.actor !== event.actor) return {};
      return { investigations: { ...context.investigations, [event.slug]: { ...current, status: 'done' as const, outcome: event.outcome, reason: event.reason, fixWritten: event.fixWritten } } };
    }),
  },
  guards: {
    clearsCurrentPause: ({ context, event }) => event.type === 'queue.clearPause' && context.paused?.reason === event.reason,
    pausesUntil: ({ event }) => event.type === 'queue.pause' && event.until !== null,
    pauseIgnored: ({ context, event }) => event.type === 'queue.pause' && event.reason !== 'manual' && (context.paused?.reason === 'manual' || suppressed(context, event.at)),
    rateLimited: ({ context, event }) => event.type === 'queue.jobFinished' && pausesForRateLimit(context, event),
  },
  delays: {
    pauseEnds: ({ context }) => context.paused?.delayMs ?? 0,
  },
}).createMachine({
  id: 'queue',
  context: () => ({
    runId: null,
    cap: 1,
    requeueInterrupted: 1,
    rateLimitPauseMs: 15 * 60_000,
    rateLimitMarginMs: 0,
    rateLimitMaxDeferrals: 5,
    firePolicy: 'immediate' as FirePolicy,
    utilizationThreshold: 90,
    offsetMs: 15 * 60_000,
    resumeSuppressMs: 0,
    usageMaxAgeMs: 0,
    usageStale: false,
    notify: false,
    investigate: false,
    investigations: {},
    usage: null,
    gate: { open: true, reason: 'fire policy immediate', opensAt: null },
    suppressAutoUntil: null,
    jobs: {},
    problems: [],
    paused: null,
    kick: false,
  }),
  initial: 'active',
  on: {
    // No pick yet: the run reads the job files first (its scan picks).
    'queue.configure': { actions: 'configure' },
    'queue.detached': { actions: 'detach' },
    'queue.scanned': { actions: ['reconcile', 'pick'] },
    'queue.jobStarted': { actions: 'markStarted' },
    'queue.startFailed': { actions: ['markStartFailed', 'pick'] },
    'queue.jobBlocked': { actions: ['markBlocked', 'watchBlocked', 'pick'] },
    'queue.workerFree': { actions: ['markFree', 'pick'] },
    'queue.kick': { actions: ['armKick', 'pick'] },
    'queue.usage': { actions: ['recordUsage', 'pick'] },
    'queue.windowReset': { actions: ['windowReset', 'pick'] },
    'queue.usageStale': { actions: 'usageStale' },
    'queue.retryDue': { actions: ['retryDue', 'pick'] },
    'queue.investigationStarted': { actions: 'investigationStarted' },
    'queue.investigationSkipped': { actions: 'investigationSkipped' },
    'queue.investigationFinished': { actions: 'investigationFinished' },
  },
  states: {
    active: {
      on: {
        'queue.resume': { actions: ['releaseDeferred', 'pick'] },
        'queue.jobFinished': [
          { guard: 'rateLimited', target: 'pausedUntil', actions: ['recordFinished', 'pauseForRateLimit', 'pick'] },
          { actions: ['recordFinished', 'pick'] },
        ],
        'queue.pause': [
          { guard: 'pauseIgnored' },
          { guard: 'pausesUntil', target: 'pausedUntil', actions: 'setPause' },
          { target: 'paused', actions: 'setPause' },
        ],
      },
    },
    paused: {
      on: {
        'queue.jobFinished': { actions: ['recordFinished', 'pick'] },
        'queue.pause': [
          { guard: 'pauseIgnored' },
          { guard: 'pausesUntil', target: 'pausedUntil', actions: 'setPause' },
          { target: 'paused', reenter: true, actions: 'setPause' },
        ],
        'queue.resume': { target: 'active', actions: ['clearPause', 'resumedByHand', 'releaseDeferred', 'pick'] },
        'queue.clearPause': { guard: 'clearsCurrentPause', target: 'active', actions: ['clearPause', 'pick'] },
      },
    },
    pausedUntil: {
      after: { pauseEnds: { target: 'active', actions: ['clearPause', 'pick'] } },
      on: {
        // A later reset extends the pause (the timer starts over); an earlier one changes nothing.
        'queue.jobFinished': [
          { guard: 'rateLimited', target: 'pausedUntil', reenter: true, actions: ['recordFinished', 'pauseForRateLimit', 'pick'] },
          { actions: ['recordFinished', 'pick'] },
        ],
        'queue.pause': [
          { guard: 'pauseIgnored' },
          { guard: 'pausesUntil', target: 'pausedUntil', reenter: true, actions: 'setPause' },
          { target: 'paused', actions: 'setPause' },
        ],
        'queue.resume': { target: 'active', actions: ['clearPause', 'resumedByHand', 'releaseDeferred', 'pick'] },
        'queue.clearPause': { guard: 'clearsCurrentPause', target: 'active', actions: ['clearPause', 'pick'] },
      },
    },
  },
});

// Job entries are replaced, never changed in place (every assign builds a new one), so an
// entry's hash can be kept for as long as the entry object lives.
const entryHashes = new WeakMap<QueueJob, string>();
function entryHash(job: QueueJob): string {
  let hash = entryHashes.get(job);
  if (hash === undefined) {
    hash = stableHash(job);
    entryHashes.set(job, hash);
  }
  return hash;
}

/**
 * The queue's state hash: the stable JSON of the state value and the context, with the jobs
 * table replaced by a hash of its entries' hashes. It covers every field as the plain hash
 * does, but a step that changes one job of a thousand hashes one entry and a list of hashes,
 * not the whole table.
 */
export function queueHash(snapshot: { value: unknown; context: QueueContext }): string {
  // In the table's own key order: the log's events fix it, so a replay builds the same one.
  // Slugs hold no newline or NUL, and entry hashes are hex: the text is unambiguous.
  let text = '';
  for (const slug in snapshot.context.jobs) text += `${slug}\u0000${entryHash(snapshot.context.jobs[slug]!)}\n`;
  return stableHash({ value: snapshot.value, context: { ...snapshot.context, jobs: hashText(text) } });
}

export const queueDefinition = defineMachine({
  name: 'queue',
  machine: queueMachine,
  input: queueInputSchema,
  events: queueEvents,
  hash: (snapshot) => queueHash(snapshot as unknown as { value: unknown; context: QueueContext }),
});
