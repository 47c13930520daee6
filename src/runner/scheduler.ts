/**
 * The scheduler: what `warden run` is. It takes the project lease (or waits for it), resumes the
 * project log — the queue and every job actor earlier runs left — recovers what a dead run left
 * running, reads the job files, and drives the queue until it drains (`once`) or it is stopped.
 *
 * Crash recovery, in log order: earlier lease holdings left open are closed (`lease.superseded`);
 * a job the queue counts as starting or running whose actor is not finished is sent
 * `job.interrupt` — a result line the dead run wrote to its output file but never logged is
 * logged first (`job.resultSeen`), its processes (by WARDEN_JOB_ID, and its pid if the start time
 * still matches) are killed (again, if the run that was killing them died too), and it ends
 * `interrupted` (requeued once, by default) or, with a successful result, `completed`; a job
 * whose actor finished but whose verdict the queue never heard gets it now; one whose actor was
 * never started is interrupted without one, which the queue requeues without counting. What the
 * dead run left is taken before the job files are read and recovered after. Nothing is guessed:
 * each step is an event in the log.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, watch, type FSWatcher } from 'node:fs';
import { join, resolve } from 'node:path';
import { systemClock, type Clock } from '../effects/clock.js';
import { serveControl, type ControlReply, type ControlRequest, type ControlServer } from '../effects/controlSocket.js';
import { jobEffects, resultInOutputLog } from '../effects/jobProcess.js';
import { queueEffects, scanJobs, type ScanResult } from '../effects/queueEffects.js';
import type { SessionProbe } from '../effects/sessionProbes.js';
import { LeaseLostError } from '../errors.js';
import { metaOf, type JobContext } from '../machines/job.machine.js';
import { heldByPause, isDrained, type Hold, type QueueContext, type QueueJob } from '../machines/queue.machine.js';
import { CONFIG_DEFAULTS, DEFAULT_AGENT_COMMAND, FAILURE_DEFAULTS, type WardenConfig } from '../store/config.js';
import { meterEffect } from '../effects/meter.js';
import { notifyEffect } from '../effects/notify.js';
import { supervisorEffects, type SupervisorHost } from '../effects/supervisorEffects.js';
import { fromPromise } from 'xstate';
import type { EffectInput } from './runner.js';
import { concurrencyCapOf, loadConfig } from '../store/configFile.js';
import { DEFAULT_JOB_TIMEOUTS, type JobInput } from '../store/events/job.events.js';
import type { FsyncMode } from '../store/logWriter.js';
import type { LogRecord } from '../store/record.js';
import { acquireLease, type LeaseHandle } from './leaseSession.js';
import type { Runner } from './runner.js';

export const QUEUE_ACTOR = 'queue';
export const POLL_ACTOR = 'poll';
export const SUPERVISOR_ACTOR = 'supervisor';

export interface SchedulerOptions {
  /** The project dir (default `.`). */
  dir?: string;
  /** The jobs dir (default: config `jobsDir`, else `.warden/jobs`), relative to the project dir. */
  jobsDir?: string;
  /** Exit once nothing is pending, blocked or running. */
  once?: boolean;
  /** While another scheduler holds the lease: how often to probe it (default 1000 ms). */
  probeIntervalMs?: number;
  /** The config (default: `.warden/config.json`). */
  config?: WardenConfig;
  /** Environment read for WARDEN_MAX_CONCURRENCY (default process.env). */
  env?: NodeJS.ProcessEnv;
  clock?: Clock;
  /** Stops the scheduler: running jobs are interrupted (and requeued next run), the lease released. */
  signal?: AbortSignal;
  /** Every record this scheduler appends, after it is written. */
  onRecord?: (record: LogRecord, scheduler: SchedulerView) => void;
  /** Called once while another live scheduler holds the lease. */
  onWaiting?: (reason: string) => void;
  /** Session probes for worker locks (default: Warden jobs and tmux). */
  probes?: readonly SessionProbe[];
  /** Serve `warden pause | resume | kick` on `.warden/control.sock` (default true). */
  control?: boolean;
  /** When the log is fsynced (default `batch`: at most every 50 ms). */
  fsync?: FsyncMode;
  /**
   * Stopping waits at most this long for interrupted jobs to reach their verdict (default
   * 10 s); whatever has not is left to the next run's recovery, and the scheduler stops anyway.
   */
  stopWithinMs?: number;
}

/** What a display needs of a running scheduler. */
export interface SchedulerView {
  queue(): QueueContext;
  /** The job actor's context (output counts, first output …), when it is known. */
  job(actor: string): JobContext | undefined;
  runId: string;
  epoch: number;
}

export interface SchedulerResult {
  runId: string;
  epoch: number;
  queue: QueueContext;
  /** Every job file has a job, and every job completed. */
  allCompleted: boolean;
  /** Why it stopped: drained (once), paused (once: nothing runs, and a pause holds the rest), stopped (signal), or lost (the lease was taken over, or the runner halted). */
  stoppedBy: 'drained' | 'paused' | 'stopped' | 'lost';
  /** With `paused`: what holds the queue. */
  hold?: Hold;
  /** With `lost`: what halted it. */
  lostReason?: string;
}

/**
 * Runs the queue of a project dir under its lease.
 * @example const { allCompleted } = await runScheduler({ dir: '.', once: true });
 */
export async function runScheduler(options: SchedulerOptions = {}): Promise<SchedulerResult> {
  const dir = resolve(options.dir ?? '.');
  const config = options.config ?? (await loadConfig(dir));
  const cap = concurrencyCapOf(config, options.env ?? process.env);
  const jobsDir = resolve(dir, options.jobsDir ?? config.jobsDir ?? join('.warden', 'jobs'));
  const clock = options.clock ?? systemClock;
  const runId = `${new Date(clock.now()).toISOString().replace(/[:.]/g, '-')}-${randomUUID().slice(0, 8)}`;
  const runDir = join(dir, '.warden', 'runs', runId);

  let scan: ScanResult | undefined;
  let runner: Runner | undefined;
  let stopping = false;
  const host = {
    projectDir: dir,
    runDir,
    lastScan: () => scan,
    requestScan: () => rescan(),
    startJobActor: (actor: string, input: JobInput) => {
      // Stopping: not started; the queue holds it as starting, and the next run requeues it.
      if (stopping) return;
      runner!.start(actor, 'job', input);
      runner!.send(actor, { type: 'job.start' });
    },
    env: config.env?.set ?? {},
    probes: options.probes,
    blockedProbeMs: config.blockedProbeMs ?? 2_000,
    workerLockGraceMs: config.workerLockGraceMs,
    jobsDir,
    investigator: {
      command: config.investigation?.command ?? config.agent?.command ?? DEFAULT_AGENT_COMMAND,
      timeouts: { ...DEFAULT_JOB_TIMEOUTS, ...config.timeouts, maxDurationMs: config.investigation?.timeoutMs ?? FAILURE_DEFAULTS.investigation.timeoutMs },
    },
  };

  // When each job last showed life (spawned, or wrote): what the supervisor calls quiet.
  const lastActivity = new Map<string, number>();
  const supervisorHost = (command: readonly string[]): SupervisorHost => ({
    command,
    staleJobs: (staleMs, exclude) => {
      const now = clock.now();
      return Object.values((runner!.snapshot(QUEUE_ACTOR)!.context as QueueContext).jobs)
        .filter((j) => j.status === 'running' && j.actor && !exclude.includes(j.actor) && runner!.snapshot(j.actor)?.status === 'active')
        .filter((j) => now - (lastActivity.get(j.actor!) ?? now) >= staleMs)
        .map((j) => ({ actor: j.actor!, slug: j.slug, jobId: j.jobId!, lastOutputAt: lastActivity.has(j.actor!) ? new Date(lastActivity.get(j.actor!)!).toISOString() : null }));
    },
    job: (actor) => runner!.snapshot(actor)?.context as JobContext | undefined,
    sendToJob: (actor, event) => {
      if (runner!.snapshot(actor)?.status === 'active') runner!.send(actor, event);
    },
  });

  let waitedOnce = false;
  const lease: LeaseHandle = await acquireLease({
    dir,
    wait: true,
    probeIntervalMs: options.probeIntervalMs,
    signal: options.signal,
    resume: true,
    runId,
    clock,
    fsync: options.fsync,
    // The scheduler releases itself, after stopping its jobs.
    releaseOnExit: false,
    onBlocked: (_holder, reason) => {
      if (!waitedOnce) options.onWaiting?.(reason);
      waitedOnce = true;
    },
    effects: {
      ...jobEffects({
        env: { deny: config.env?.deny, allow: config.env?.allow },
        rateLimitPatterns: (config.rateLimitPatterns ?? []).map((p) => ({ name: p.name, regex: new RegExp(p.regex) })),
      }),
      ...queueEffects(host),
      ...(config.meter ? meterEffects(config.meter, () => runner!) : {}),
      ...(config.notify ? { notify: notifyEffect(config.notify) } : {}),
      ...(config.supervisor ? supervisorEffects(supervisorHost(config.supervisor.command)) : {}),
    },
  });
  runner = lease.runner;
  const live = runner;
  const view: SchedulerView = {
    queue: () => live.snapshot(QUEUE_ACTOR)!.context as QueueContext,
    job: (actor) => live.snapshot(actor)?.context as JobContext | undefined,
    runId,
    epoch: lease.epoch,
  };

  let finish: (how: SchedulerResult['stoppedBy']) => void = () => {};
  const finished = new Promise<SchedulerResult['stoppedBy']>((resolveFinish) => {
    finish = resolveFinish;
  });
  let scanned = false;
  const reported = new Set<string>();

  // A job actor's verdict goes to the queue: the only way a job's end reaches it.
  const report = (actor: string) => {
    if (actor.startsWith('investigation:')) return reportInvestigation(actor);
    if (reported.has(actor) || !actor.startsWith('job:')) return;
    const snapshot = live.snapshot(actor);
    if (snapshot?.status !== 'done') return;
    reported.add(actor);
    const queueJob = Object.values(view.queue().jobs).find((j) => j.actor === actor);
    if (!queueJob || (queueJob.status !== 'running' && queueJob.status !== 'starting')) return;
    const meta = metaOf(snapshot.context as JobContext);
    live.send(QUEUE_ACTOR, {
      type: 'queue.jobFinished',
      slug: queueJob.slug,
      actor,
      outcome: meta.outcome,
      reason: meta.reason,
      exitCode: meta.exitCode,
      signal: meta.signal,
      killedBy: meta.killedBy,
      startedAt: meta.startedAt,
      finishedAt: meta.finishedAt,
      costUsd: meta.costUsd,
      rateLimitResetsAt: meta.rateLimitResetsAt,
      at: new Date(clock.now()).toISOString(),
    });
  };

  // An investigator's verdict goes to the queue, and the jobs dir is read again (its fix plan runs).
  const reportInvestigation = (actor: string) => {
    if (reported.has(actor)) return;
    const snapshot = live.snapshot(actor);
    if (snapshot?.status !== 'done') return;
    reported.add(actor);
    const entry = Object.entries(view.queue().investigations).find(([, i]) => i.actor === actor);
    if (!entry) return;
    const meta = metaOf(snapshot.context as JobContext);
    const fixFile = join(jobsDir, `${entry[1].fixSlug}.md`);
    live.send(QUEUE_ACTOR, { type: 'queue.investigationFinished', slug: entry[0], actor, outcome: meta.outcome, reason: meta.reason, fixWritten: existsSync(fixFile) });
    rescan();
  };

  // Notifications in flight: a drained queue waits for them, so none is cut off by the exit.
  let notifying = 0;
  const unsubscribe = live.subscribe((record) => {
    if (record.type === 'job.spawned' || record.type === 'job.output' || record.type === 'job.firstOutput') lastActivity.set(record.actor, Date.parse(record.ts));
    report(record.actor);
    options.onRecord?.(record, view);
    if (record.actor !== QUEUE_ACTOR) return;
    for (const effect of record.effects ?? []) if (effect.type === 'notify') notifying++;
    if (record.type === 'queue.notified') notifying--;
    if (options.once && scanned && notifying === 0) onceCheck();
  });
  // --once: ends when nothing is left to do, or when nothing runs and a pause holds the rest.
  let hold: Hold | undefined;
  const onceCheck = () => {
    if (hold) return;
    if (isDrained(view.queue())) return finish('drained');
    const held = heldByPause(view.queue(), new Date(clock.now()).toISOString());
    if (!held) return;
    hold = held;
    finish('paused');
  };
  let lostReason: string | undefined;
  void lease.lost.then((error) => {
    lostReason = error.message;
    finish('lost');
  });
  const onAbort = () => finish('stopped');
  options.signal?.addEventListener('abort', onAbort, { once: true });

  let watcher: FSWatcher | undefined;
  let control: ControlServer | undefined;
  let rescanTimer: NodeJS.Timeout | undefined;
  function rescan(): void {
    if (!runner || stopping) return;
    const next = scanJobs({ projectDir: dir, jobsDir, defaultCommand: config.agent?.command ?? DEFAULT_AGENT_COMMAND, timeouts: config.timeouts, retries: config.retries });
    if (scan && next.fingerprint === scan.fingerprint) return;
    scan = next;
    live.send(QUEUE_ACTOR, { type: 'queue.scanned', jobs: next.specs, problems: next.problems });
  }
  try {
    if (!live.snapshot(QUEUE_ACTOR)) live.start(QUEUE_ACTOR, 'queue', {});
    live.send(QUEUE_ACTOR, {
      type: 'queue.configure',
      runId,
      cap,
      requeueInterrupted: config.requeueInterrupted ?? 1,
      rateLimitPauseMs: config.rateLimitPauseMs ?? CONFIG_DEFAULTS.rateLimitPauseMs,
      rateLimitMarginMs: config.rateLimitMarginMs ?? CONFIG_DEFAULTS.rateLimitMarginMs,
      rateLimitMaxDeferrals: config.rateLimitMaxDeferrals ?? CONFIG_DEFAULTS.rateLimitMaxDeferrals,
      firePolicy: config.firePolicy ?? CONFIG_DEFAULTS.firePolicy,
      utilizationThreshold: config.utilizationThreshold ?? CONFIG_DEFAULTS.utilizationThreshold,
      offsetMs: Math.round((config.offsetMinutes ?? CONFIG_DEFAULTS.offsetMinutes) * 60_000),
      resumeSuppressMs: config.resumeSuppressMs ?? CONFIG_DEFAULTS.resumeSuppressMs,
      usageMaxAgeMs: config.meter ? usageMaxAgeOf(config.meter) : 0,
      notify: config.notify !== undefined,
      investigate: config.investigation?.enabled ?? FAILURE_DEFAULTS.investigation.enabled,
      at: new Date(clock.now()).toISOString(),
    });
    if (config.supervisor) {
      const { command: _command, ...settings } = config.supervisor;
      if (!live.snapshot(SUPERVISOR_ACTOR)) live.start(SUPERVISOR_ACTOR, 'supervisor', {});
      live.send(SUPERVISOR_ACTOR, { type: 'supervisor.configure', ...FAILURE_DEFAULTS.supervisor, ...settings });
    } else if ((live.snapshot(SUPERVISOR_ACTOR)?.value ?? 'off') !== 'off') {
      live.send(SUPERVISOR_ACTOR, { type: 'supervisor.stop', reason: 'no supervisor in the config' });
    }
    if (config.meter) {
      if (!live.snapshot(POLL_ACTOR)) live.start(POLL_ACTOR, 'poll', {});
      live.send(POLL_ACTOR, pollConfigure(config.meter, new Date(clock.now()).toISOString()));
    } else if ((live.snapshot(POLL_ACTOR)?.value ?? 'stopped') !== 'stopped') {
      live.send(POLL_ACTOR, { type: 'poll.stop', reason: 'no meter in the config' });
    }
    // What the dead run left is taken before the job files are read, and recovered after: a
    // job recovery sends back to pending is picked at once, and a pick before the first scan
    // failed its start ("its job file changed") and spent a run number. Until its verdict,
    // what the dead run left holds its slot and cwd, so the scan's pick does not touch it.
    const leftBehind = view.queue();
    rescan();
    recover(live, leftBehind, report, new Date(clock.now()).toISOString());
    scanned = true;
    if (options.once && notifying === 0) onceCheck();
    try {
      watcher = watch(jobsDir, () => {
        clearTimeout(rescanTimer);
        rescanTimer = setTimeout(rescan, 50);
      });
    } catch {
      // No jobs dir (yet): nothing to watch; the queue runs what it has.
    }
    if (options.control ?? true) control = await serveControl(dir, (request) => controlRequest(live, request, clock));

    const stoppedBy = await finished;
    stopping = true;
    if (stoppedBy !== 'lost') {
      // Detached first: jobs interrupted by a stop go back to pending, not started again here,
      // and (unlike a crash) do not use up their requeues.
      if (config.meter) live.send(POLL_ACTOR, { type: 'poll.stop', reason: 'the scheduler is stopping' });
      if (config.supervisor) live.send(SUPERVISOR_ACTOR, { type: 'supervisor.stop', reason: 'the scheduler is stopping' });
      live.send(QUEUE_ACTOR, { type: 'queue.detached', reason: stoppedBy === 'drained' ? 'drained (--once)' : stoppedBy === 'paused' ? 'nothing can start: paused (--once)' : 'stopped', at: new Date(clock.now()).toISOString() });
      await interruptRunning(live, view, 'the scheduler is stopping', options.stopWithinMs ?? STOP_WITHIN_MS);
    }
    const queue = view.queue();
    return { runId, epoch: lease.epoch, queue, allCompleted: allCompleted(queue), stoppedBy, ...(lostReason ? { lostReason } : {}), ...(stoppedBy === 'paused' && hold ? { hold } : {}) };
  } finally {
    stopping = true;
    options.signal?.removeEventListener('abort', onAbort);
    clearTimeout(rescanTimer);
    watcher?.close();
    await control?.close();
    unsubscribe();
    lease.release('scheduler stopped');
  }
}

/** Every job whose file is there completed, and no file is broken. */
function allCompleted(queue: QueueContext): boolean {
  const jobs = Object.values(queue.jobs).filter((j) => !j.removed);
  return queue.problems.length === 0 && jobs.every((j) => j.status === 'completed');
}

/** What a dead run left (`queue`: the queue as the log left it, before this run's first pick): see the module comment. */
function recover(runner: Runner, queue: QueueContext, report: (actor: string) => void, at: string): void {
  for (const [slug, investigation] of Object.entries(queue.investigations)) {
    if (investigation.status === 'starting') runner.send(QUEUE_ACTOR, { type: 'queue.investigationSkipped', slug, reason: 'the run that was starting it ended first' });
    if (investigation.status !== 'running' || !investigation.actor) continue;
    const snapshot = runner.snapshot(investigation.actor);
    if (snapshot && snapshot.status !== 'done') runner.send(investigation.actor, { type: 'job.interrupt', reason: 'its scheduler ended while it ran' });
    else report(investigation.actor);
  }
  for (const job of Object.values(queue.jobs)) {
    if (job.status !== 'starting' && job.status !== 'running') continue;
    const snapshot = job.actor ? runner.snapshot(job.actor) : undefined;
    const previousRun = job.jobId?.split('/')[0] ?? 'unknown';
    if (!snapshot) runner.send(QUEUE_ACTOR, interruptedBeforeStart(job, `run ${previousRun} ended before the job started`, at));
    else if (snapshot.status !== 'done') {
      seenResult(runner, job.actor!, snapshot.context as JobContext);
      runner.send(job.actor!, { type: 'job.interrupt', reason: `its scheduler (run ${previousRun}) ended while it ran` });
    }
    // Finished, but the run died before telling the queue: tell it now.
    else report(job.actor!);
  }
}

/**
 * A result line the dead run wrote to the job's output file but died before logging: the agent
 * said it was done, so the job is judged by that result (a success is completed, not
 * interrupted). The file is whole: nothing writes to it once its run is dead.
 */
function seenResult(runner: Runner, actor: string, context: JobContext): void {
  if (context.result !== null) return;
  const result = resultInOutputLog(context.outputLog);
  if (result) runner.send(actor, { type: 'job.resultSeen', ...result });
}

function interruptedBeforeStart(job: QueueJob, reason: string, at: string) {
  return {
    type: 'queue.jobFinished',
    slug: job.slug,
    actor: job.actor ?? `job:${job.slug}#${job.runs}`,
    outcome: 'interrupted',
    reason,
    exitCode: null,
    signal: null,
    killedBy: 'interrupt',
    startedAt: null,
    finishedAt: null,
    costUsd: null,
    rateLimitResetsAt: null,
    at,
  };
}

/** How long a stopping scheduler waits for its interrupted jobs (a reap takes at most about 2 s). */
const STOP_WITHIN_MS = 10_000;

/**
 * Interrupts every running job and waits until each has its verdict (the queue requeues them),
 * or `withinMs` has passed: a stop ends in bounded time whatever state a job is in; what has no
 * verdict yet is recovered by the next run, as after a crash.
 */
async function interruptRunning(runner: Runner, view: SchedulerView, reason: string, withinMs: number): Promise<void> {
  const queue = view.queue();
  const actors = [
    ...Object.values(queue.jobs).filter((j) => j.status === 'running' || j.status === 'starting').map((j) => j.actor),
    ...Object.values(queue.investigations).filter((i) => i.status === 'running').map((i) => i.actor),
  ].filter((actor): actor is string => actor !== null && runner.snapshot(actor)?.status === 'active');
  for (const actor of actors) runner.send(actor, { type: 'job.interrupt', reason });
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    Promise.all(actors.map((actor) => runner.waitFor(actor, (s) => s.status === 'done'))),
    runner.halted,
    new Promise<void>((resolve) => (timer = setTimeout(resolve, withinMs))),
  ]);
  clearTimeout(timer);
}

function controlRequest(runner: Runner, request: ControlRequest, clock: Clock): ControlReply {
  const at = new Date(clock.now()).toISOString();
  try {
    applyControl(runner, request, at);
  } catch (error) {
    if (error instanceof LeaseLostError) return { ok: false, error: error.message };
    throw error;
  }
  const queue = runner.snapshot(QUEUE_ACTOR)!.context as QueueContext;
  return { ok: true, message: describeControl(request, queue), state: { paused: queue.paused } };
}

/** Sends the queue the event for a control request. */
export function applyControl(runner: Runner, request: ControlRequest, at: string): void {
  if (request.command === 'pause') runner.send(QUEUE_ACTOR, { type: 'queue.pause', reason: 'manual', message: request.reason ?? 'paused by hand', at, until: null });
  else if (request.command === 'resume') runner.send(QUEUE_ACTOR, { type: 'queue.resume', at, message: 'resumed by hand' });
  else runner.send(QUEUE_ACTOR, { type: 'queue.kick', at });
}

export function describeControl(request: ControlRequest, queue: QueueContext): string {
  if (request.command === 'pause') return queue.paused?.reason === 'manual' ? 'paused' : `not paused: ${queue.paused?.reason ?? 'unknown'}`;
  if (request.command === 'resume') return queue.paused ? `still paused (${queue.paused.reason})` : 'resumed';
  const starting = Object.values(queue.jobs).filter((j) => j.status === 'starting').length;
  return `kicked: ${starting} job(s) starting`;
}

type MeterSettings = NonNullable<WardenConfig['meter']>;

/** How old a usage reading may be and still open the gate: three poll intervals plus a poll's timeout (docs/usage.md). */
export function usageMaxAgeOf(meter: MeterSettings): number {
  const d = CONFIG_DEFAULTS.meter;
  return 3 * (meter.intervalMs ?? d.intervalMs) + (meter.timeoutMs ?? d.timeoutMs);
}

/** The poll actor's settings as logged: header values are never written to the log. */
export function pollConfigure(meter: MeterSettings, at: string) {
  const d = CONFIG_DEFAULTS.meter;
  const target = 'url' in meter ? { url: meter.url, ...(meter.headers ? { headers: Object.fromEntries(Object.keys(meter.headers).map((k) => [k, '…'])) } : {}) } : { command: meter.command };
  return {
    type: 'poll.configure',
    target,
    intervalMs: meter.intervalMs ?? d.intervalMs,
    timeoutMs: meter.timeoutMs ?? d.timeoutMs,
    backoff: meter.backoff ?? { ...d.backoff },
    networkPauseAfterMs: meter.networkPauseAfterMs ?? d.networkPauseAfterMs,
    on429: meter.on429 ?? d.on429,
    at,
  };
}

/** The poll machine's effects: the meter itself, and what it tells the queue. */
export function meterEffects(meter: MeterSettings, runner: () => Runner) {
  const toQueue = <P>(event: (params: P) => { type: string } & Record<string, unknown>) =>
    fromPromise(async ({ input }: { input: EffectInput<P> }) => {
      runner().send(QUEUE_ACTOR, event(input.params));
    });
  return {
    pollMeter: meterEffect('url' in meter ? { url: meter.url, headers: meter.headers } : { command: meter.command }),
    reportUsage: toQueue((p: { utilization: number; resetsAt: string | null; at: string }) => ({ type: 'queue.usage', ...p })),
    pauseQueue: toQueue((p: { reason: 'auth' | 'network'; message: string; at: string }) => ({ type: 'queue.pause', ...p, until: null })),
    clearQueuePause: toQueue((p: { reason: 'auth' | 'network'; at: string }) => ({ type: 'queue.clearPause', ...p })),
  };
}
