import { assign, setup } from 'xstate';
import {
  jobEvents,
  jobInputSchema,
  type JobEvent,
  type JobInput,
  type JobResult,
  type KilledBy,
} from '../store/events/job.events.js';
import { defineMachine } from './definition.js';

export type JobOutcome = 'completed' | 'failed' | 'deferred' | 'interrupted';

/** What the meta file of a job run holds: computed from the log alone, so the two agree. */
export interface JobMeta {
  jobId: string;
  slug: string;
  cwd: string;
  outcome: JobOutcome;
  reason: string;
  exitCode: number | null;
  signal: string | null;
  resultSubtype: string | null;
  isError: boolean | null;
  mappedFromSignal: boolean;
  startedAt: string | null;
  finishedAt: string | null;
  durationMs: number | null;
  killedBy: KilledBy | null;
  costUsd: number | null;
  usage: Record<string, unknown> | null;
  rateLimitResetsAt: string | null;
  leftovers: { killed: number[]; survivors: number[] } | null;
}

export interface JobContext extends JobInput {
  pid: number | null;
  /** The main process's /proc start time, so a later run can tell it from a reused pid. */
  pidStartTime: string | null;
  startedAt: string | null;
  firstOutputAt: string | null;
  outputLines: number;
  outputBytes: number;
  result: JobResult | null;
  rateLimit: { resetsAt: string | null; source: string } | null;
  killedBy: KilledBy | null;
  cancelReason: string | null;
  signalled: { SIGTERM: number[]; SIGKILL: number[] };
  exit: { exitCode: number | null; signal: string | null; at: string } | null;
  spawnError: { reason: string; at: string | null } | null;
  leftovers: { killed: number[]; survivors: number[] } | null;
  outcome: JobOutcome | null;
  reason: string | null;
  mappedFromSignal: boolean;
}

/**
 * One run of one agent process, from spawn to a verdict, with its watchdogs as timers:
 *
 *   pending → starting → alive.running ⇄ (output resets the idle timer)
 *                        alive.grace      (a result was seen: the process may exit by itself)
 *                      → terminating (SIGTERM to everything of the job) → killing (SIGKILL)
 *                      → exited (leftovers killed, survivors counted) → finishing (meta file)
 *                      → completed | failed | deferred
 *
 * maxDuration runs over the whole of `alive`; idleOutput only while running without a result;
 * postResultGrace once a result was seen; killAfter between SIGTERM and SIGKILL. A process
 * killed (by a signal, or 137/143) after a successful result is `completed` with
 * `mappedFromSignal`; a structured rate-limit signal without a successful result is `deferred`.
 */
export const jobMachine = setup({
  types: {
    input: {} as JobInput,
    context: {} as JobContext,
    events: {} as JobEvent,
  },
  actions: {
    recordSpawn: assign(({ event }) => (event.type === 'job.spawned' ? { pid: event.pid, startedAt: event.startedAt, pidStartTime: event.pidStartTime ?? null } : {})),
    recordSpawnError: assign(({ event }) => {
      if (event.type === 'job.spawnFailed') return { spawnError: { reason: event.reason, at: event.at } };
      if (event.type === 'effect.failed') return { spawnError: { reason: event.message, at: null } };
      return {};
    }),
    recordFirstOutput: assign(({ context, event }) => (event.type === 'job.firstOutput' && context.firstOutputAt === null ? { firstOutputAt: event.at } : {})),
    countOutput: assign(({ context, event }) =>
      event.type === 'job.output' ? { outputLines: context.outputLines + event.lines, outputBytes: context.outputBytes + event.bytes } : {},
    ),
    recordResult: assign(({ event }) => {
      if (event.type !== 'job.resultSeen') return {};
      const { type: _type, ...result } = event;
      return { result };
    }),
    recordRateLimit: assign(({ event }) => (event.type === 'job.rateLimited' ? { rateLimit: { resetsAt: event.resetsAt, source: event.source } } : {})),
    recordSignalled: assign(({ context, event }) =>
      event.type === 'job.signalled' ? { signalled: { ...context.signalled, [event.signal]: event.pids } } : {},
    ),
    recordExit: assign(({ event }) => (event.type === 'job.exited' ? { exit: { exitCode: event.exitCode, signal: event.signal, at: event.at } } : {})),
    recordLeftovers: assign(({ event }) => (event.type === 'job.reaped' ? { leftovers: { killed: event.killed, survivors: event.survivors } } : {})),
    killedByMaxDuration: assign({ killedBy: () => 'maxDuration' as const }),
    killedByIdle: assign({ killedBy: () => 'idle' as const }),
    killedByPostResult: assign({ killedBy: () => 'postResult' as const }),
    killedByUser: assign(({ event }) => ({ killedBy: 'user' as const, cancelReason: event.type === 'job.cancel' ? event.reason : null })),
    interrupted: assign(({ event }) => ({ killedBy: 'interrupt' as const, cancelReason: event.type === 'job.interrupt' ? event.reason : null })),
    judge: assign(({ context }) => verdict(context)),
    // Declarations only: the runner maps these to effects.
    spawnJob: (_, _params: Pick<JobInput, 'jobId' | 'command' | 'cwd' | 'prompt' | 'outputLog' | 'env'> & { idleOutputMs: number }) => {},
    signalJob: (_, _params: { jobId: string; signal: 'SIGTERM' | 'SIGKILL' }) => {},
    reapJob: (_, _params: { jobId: string; root?: { pid: number; pidStartTime: string | null } | null }) => {},
    writeMeta: (_, _params: { path: string; meta: JobMeta }) => {},
  },
  guards: {
    cancelledWhileStarting: ({ context }) => context.killedBy === 'user',
    isCompleted: ({ context }) => context.outcome === 'completed',
    isDeferred: ({ context }) => context.outcome === 'deferred',
    isInterrupted: ({ context }) => context.outcome === 'interrupted',
  },
  delays: {
    maxDuration: ({ context }) => context.timeouts.maxDurationMs,
    idleOutput: ({ context }) => context.timeouts.idleOutputMs,
    postResultGrace: ({ context }) => context.timeouts.postResultGraceMs,
    killAfter: ({ context }) => context.timeouts.killAfterMs,
  },
}).createMachine({
  id: 'job',
  context: ({ input }) => ({
    ...input,
    pid: null,
    pidStartTime: null,
    startedAt: null,
    firstOutputAt: null,
    outputLines: 0,
    outputBytes: 0,
    result: null,
    rateLimit: null,
    killedBy: null,
    cancelReason: null,
    signalled: { SIGTERM: [], SIGKILL: [] },
    exit: null,
    spawnError: null,
    leftovers: null,
    outcome: null,
    reason: null,
    mappedFromSignal: false,
  }),
  initial: 'pending',
  // What the process reports is recorded in whichever state it arrives.
  on: {
    'job.firstOutput': { actions: 'recordFirstOutput' },
    'job.output': { actions: 'countOutput' },
    'job.resultSeen': { actions: 'recordResult' },
    'job.rateLimited': { actions: 'recordRateLimit' },
    'job.signalled': { actions: 'recordSignalled' },
  },
  states: {
    pending: {
      on: {
        'job.start': 'starting',
        'job.cancel': { target: 'finishing', actions: ['killedByUser', 'judge'] },
        'job.interrupt': { target: 'finishing', actions: ['interrupted', 'judge'] },
      },
    },
    starting: {
      entry: {
        type: 'spawnJob',
        params: ({ context }) => ({
          jobId: context.jobId,
          command: context.command,
          cwd: context.cwd,
          prompt: context.prompt,
          outputLog: context.outputLog,
          env: context.env,
          idleOutputMs: context.timeouts.idleOutputMs,
        }),
      },
      on: {
        'job.spawned': [
          { guard: 'cancelledWhileStarting', target: 'terminating', actions: 'recordSpawn' },
          { target: 'alive', actions: 'recordSpawn' },
        ],
        'job.spawnFailed': { target: 'finishing', actions: ['recordSpawnError', 'judge'] },
        'effect.failed': { target: 'finishing', actions: ['recordSpawnError', 'judge'] },
        'job.cancel': { actions: 'killedByUser' },
        'job.interrupt': { target: 'interrupting', actions: 'interrupted' },
      },
    },
    alive: {
      initial: 'running',
      after: { maxDuration: { target: 'terminating', actions: 'killedByMaxDuration' } },
      on: {
        'job.exited': { target: 'exited', actions: 'recordExit' },
        'job.cancel': { target: 'terminating', actions: 'killedByUser' },
        'job.interrupt': { target: 'interrupting', actions: 'interrupted' },
      },
      states: {
        running: {
          after: { idleOutput: { target: '#job.terminating', actions: 'killedByIdle' } },
          on: {
            // Output re-enters running: its idle timer starts over.
            'job.output': { target: 'running', reenter: true, actions: 'countOutput' },
            'job.resultSeen': { target: 'grace', actions: 'recordResult' },
          },
        },
        grace: {
          after: { postResultGrace: { target: '#job.terminating', actions: 'killedByPostResult' } },
        },
      },
    },
    terminating: {
      entry: { type: 'signalJob', params: ({ context }) => ({ jobId: context.jobId, signal: 'SIGTERM' as const }) },
      after: { killAfter: 'killing' },
      on: { 'job.exited': { target: 'exited', actions: 'recordExit' }, 'job.interrupt': { target: 'interrupting', actions: 'interrupted' } },
    },
    killing: {
      entry: { type: 'signalJob', params: ({ context }) => ({ jobId: context.jobId, signal: 'SIGKILL' as const }) },
      // A process still there killAfter later (uninterruptible sleep, say) is sent SIGKILL again.
      after: { killAfter: { target: 'killing', reenter: true } },
      on: { 'job.exited': { target: 'exited', actions: 'recordExit' }, 'job.interrupt': { target: 'interrupting', actions: 'interrupted' } },
    },
    exited: {
      // Whatever the job left running (background shells, daemons) is killed and counted.
      entry: { type: 'reapJob', params: ({ context }) => ({ jobId: context.jobId }) },
      on: {
        'job.reaped': { target: 'finishing', actions: ['recordLeftovers', 'judge'] },
        'effect.failed': { target: 'finishing', actions: 'judge' },
        // The process had exited, but the run that saw it died before reaping: reap again.
        'job.interrupt': { target: 'exited', reenter: true },
      },
    },
    // Supervision ended first (the scheduler died or is stopping): kill everything of the job —
    // its group, its descendants, whatever carries its WARDEN_JOB_ID, and its main process if
    // the pid still belongs to it (same start time) — then judge what the log saw.
    interrupting: {
      entry: {
        type: 'reapJob',
        params: ({ context }) => ({ jobId: context.jobId, root: context.pid === null ? null : { pid: context.pid, pidStartTime: context.pidStartTime } }),
      },
      on: {
        'job.reaped': { target: 'finishing', actions: ['recordLeftovers', 'judge'] },
        'effect.failed': { target: 'finishing', actions: 'judge' },
        'job.exited': { actions: 'recordExit' },
        // Spawned (in this run) after the reap looked: look again.
        'job.spawned': { target: 'interrupting', reenter: true, actions: 'recordSpawn' },
        // The run that was reaping died before job.reaped: reap again (as `exited` does), or
        // the job would hold its slot for good and no later run could end it.
        'job.interrupt': { target: 'interrupting', reenter: true },
      },
    },
    finishing: {
      entry: { type: 'writeMeta', params: ({ context }) => ({ path: context.metaPath, meta: metaOf(context) }) },
      on: {
        'job.metaWritten': [
          { guard: 'isCompleted', target: 'completed' },
          { guard: 'isDeferred', target: 'deferred' },
          { guard: 'isInterrupted', target: 'interrupted' },
          { target: 'failed' },
        ],
        'effect.failed': [
          { guard: 'isCompleted', target: 'completed' },
          { guard: 'isDeferred', target: 'deferred' },
          { guard: 'isInterrupted', target: 'interrupted' },
          { target: 'failed' },
        ],
        // The run writing the meta file died first: write it again.
        'job.interrupt': { target: 'finishing', reenter: true },
      },
    },
    completed: { type: 'final' },
    interrupted: { type: 'final' },
    failed: { type: 'final' },
    deferred: { type: 'final' },
  },
});

const KILL_CODES = new Set([137, 143]);

/** The verdict on a finished job, from what the log recorded about it. */
export function verdict(c: JobContext): { outcome: JobOutcome; reason: string; mappedFromSignal: boolean } {
  if (c.killedBy === 'interrupt') {
    if (c.result !== null && !c.result.isError) return { outcome: 'completed', reason: `result: success; then interrupted (${c.cancelReason ?? ''}), mapped to completed`, mappedFromSignal: true };
    return { outcome: 'interrupted', reason: `interrupted: ${c.cancelReason ?? ''}`, mappedFromSignal: false };
  }
  if (c.spawnError) return { outcome: 'failed', reason: `spawn failed: ${c.spawnError.reason}`, mappedFromSignal: false };
  if (!c.exit) return { outcome: 'failed', reason: c.killedBy === 'user' ? `cancelled before it started: ${c.cancelReason ?? ''}` : 'never ran', mappedFromSignal: false };
  const { exitCode, signal } = c.exit;
  const success = c.result !== null && !c.result.isError;
  const killed = signal !== null || (exitCode !== null && KILL_CODES.has(exitCode));
  if (success && exitCode === 0) return { outcome: 'completed', reason: 'result: success, exit 0', mappedFromSignal: false };
  if (success && killed) {
    return { outcome: 'completed', reason: `result: success; then ${signal ?? `exit ${exitCode}`}${c.killedBy ? ` (killed: ${c.killedBy})` : ''}, mapped to completed`, mappedFromSignal: true };
  }
  if (!success && (c.rateLimit || c.result?.apiErrorStatus === 429)) {
    return { outcome: 'deferred', reason: `rate limited (${c.rateLimit?.source ?? 'result api_error_status 429'})${c.rateLimit?.resetsAt ? ` until ${c.rateLimit.resetsAt}` : ''}`, mappedFromSignal: false };
  }
  if (c.result === null && exitCode === 0 && c.killedBy === null) return { outcome: 'completed', reason: 'exit 0', mappedFromSignal: false };
  const how = signal ? `killed by ${signal}` : `exit ${exitCode}`;
  const why = c.killedBy ? `; killed: ${describeKill(c)}` : '';
  const result = c.result ? `result: ${c.result.subtype ?? 'error'}${c.result.isError ? ' (error)' : ''}; ` : '';
  return { outcome: 'failed', reason: `${result}${how}${why}`, mappedFromSignal: false };
}

function describeKill(c: JobContext): string {
  switch (c.killedBy) {
    case 'maxDuration':
      return `ran past maxDurationMs ${c.timeouts.maxDurationMs}`;
    case 'idle':
      return `no output for idleOutputMs ${c.timeouts.idleOutputMs}`;
    case 'postResult':
      return `still running postResultGraceMs ${c.timeouts.postResultGraceMs} after its result`;
    case 'user':
      return `cancelled: ${c.cancelReason ?? ''}`;
    case 'interrupt':
      return `interrupted: ${c.cancelReason ?? ''}`;
    default:
      return '';
  }
}

/** The meta record of a finished job: the same facts the log holds. */
export function metaOf(c: JobContext): JobMeta {
  const finishedAt = c.exit?.at ?? c.spawnError?.at ?? null;
  return {
    jobId: c.jobId,
    slug: c.slug,
    cwd: c.cwd,
    outcome: c.outcome ?? 'failed',
    reason: c.reason ?? '',
    exitCode: c.exit?.exitCode ?? null,
    signal: c.exit?.signal ?? null,
    resultSubtype: c.result?.subtype ?? null,
    isError: c.result ? c.result.isError : null,
    mappedFromSignal: c.mappedFromSignal,
    startedAt: c.startedAt,
    finishedAt,
    durationMs: c.startedAt && finishedAt ? Date.parse(finishedAt) - Date.parse(c.startedAt) : null,
    killedBy: c.killedBy,
    costUsd: c.result?.costUsd ?? null,
    usage: c.result?.usage ?? null,
    rateLimitResetsAt: c.rateLimit?.resetsAt ?? null,
    leftovers: c.leftovers,
  };
}

export const jobDefinition = defineMachine({
  name: 'job',
  machine: jobMachine,
  input: jobInputSchema,
  events: jobEvents,
});
