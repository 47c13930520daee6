import { watch } from 'node:fs';
import { hostname } from 'node:os';
import { join, resolve } from 'node:path';
import { BehaviorSubject, type Observable } from 'rxjs';
import { fromPromise } from 'xstate';
import { LeaseHeldError, LeaseLostError, UsageError } from '../errors.js';
import type { LeaseFileHooks, LeaseLock } from '../effects/leaseFile.js';
import { DEFAULT_LEASE_TIMINGS, LeaseOps, type LeaseTimings } from '../effects/leaseOps.js';
import { builtInMachines } from '../machines/catalogue.js';
import type { MachineDefinition } from '../machines/definition.js';
import type { FsyncMode } from '../store/logWriter.js';
import type { Clock } from '../effects/clock.js';
import { setLongTimeout } from '../effects/longTimer.js';
import { Runner, type EffectHandlers, type EffectInput } from './runner.js';

/** How to take the scheduler lease of a project dir. */
export interface AcquireLeaseOptions {
  /** The project dir; the lease lives in `<dir>/.warden/`. */
  dir: string;
  /** The owner key; the same key re-acquires after a restart. Default `<hostname>:<pid>`. */
  ownerId?: string;
  /** Wait (passively probing) while another live owner holds it. Default false: LeaseHeldError. */
  wait?: boolean;
  /** While waiting: how often to probe a holder that may have died. Default 1000 ms. */
  probeIntervalMs?: number;
  timings?: Partial<LeaseTimings>;
  /** Stops waiting (the promise rejects with the signal's reason). */
  signal?: AbortSignal;
  /** Called once per holder seen while waiting. */
  onBlocked?: (holder: LeaseLock | null, reason: string) => void;
  /** Release on normal exit, SIGINT, SIGTERM, SIGHUP and uncaught errors. Default true. */
  releaseOnExit?: boolean;
  /** Machines the project log may hold besides Warden's own. */
  machines?: readonly MachineDefinition[];
  fsync?: FsyncMode;
  /** Test hooks: points where a contender can be paused. */
  hooks?: LeaseFileHooks;
  /**
   * Fold (and verify) the project log before holding, so the holder carries on the actors of
   * earlier holdings (a scheduler's queue and jobs). Earlier holdings left unfinished (their
   * process died holding the lease) are closed with `lease.superseded`. Default false: only
   * actors of this holding are started.
   */
  resume?: boolean;
  /** Effect handlers for the holder's own machines, besides the lease's. */
  effects?: EffectHandlers;
  /** The runId this holding writes under. */
  runId?: string;
  clock?: Clock;
}

export type LeaseState = 'held' | 'renewing' | 'released' | 'lost';

/** A held lease. Everything the holder logs goes through `runner`, fenced by this lease. */
export interface LeaseHandle {
  readonly epoch: number;
  readonly lock: LeaseLock;
  readonly runner: Runner;
  /** The lease actor's id in the log: `lease:<epoch>`. */
  readonly actor: string;
  /** The lease's state over time; completes when it is released or lost. */
  readonly state$: Observable<LeaseState>;
  /** Settles if the lease is lost (taken over while we were paused, say): nothing more is logged. */
  readonly lost: Promise<LeaseLostError>;
  /** Logs the release, closes the log, then removes the lock (if it is still ours). */
  release(reason?: string): 'released' | 'not ours';
}

/**
 * Takes the scheduler lease of a project dir: exactly one live holder per dir. A stale lock
 * (owner dead, pid reused, another host's lease expired) or a corrupt one older than the grace
 * period is taken over; the epoch (fencing token) rises on every acquisition.
 *
 * @example
 * const lease = await acquireLease({ dir: '.', wait: true });
 * try { await work(lease.epoch); } finally { lease.release(); }
 */
export async function acquireLease(options: AcquireLeaseOptions): Promise<LeaseHandle> {
  const timings = { ...DEFAULT_LEASE_TIMINGS, ...options.timings };
  const probeIntervalMs = options.probeIntervalMs ?? 1_000;
  for (const [name, value] of Object.entries({ ...timings, probeIntervalMs })) {
    if (!Number.isInteger(value) || value < 1) throw new UsageError(`${name} must be a positive integer of ms, got ${value}`);
  }
  const wardenDir = join(resolve(options.dir), '.warden');
  const ownerId = options.ownerId ?? `${hostname()}:${process.pid}`;
  const ops = new LeaseOps(wardenDir, ownerId, timings, options.hooks);
  const started = Date.now();
  const blockedBy: Array<{ ownerId: string | null; pid: unknown; hostname: string | null; epoch: number | null }> = [];
  let lastHolder: string | undefined;

  try {
    return await acquireLoop();
  } catch (error) {
    // Not held (refused, aborted, or no log to hold it with): nothing of this attempt stays open.
    ops.close();
    throw error;
  }

  async function acquireLoop(): Promise<LeaseHandle> {
    for (;;) {
      options.signal?.throwIfAborted();
      const outcome = ops.tryAcquire();
      if (outcome.kind === 'acquired') {
        try {
          return hold(ops, outcome.lock, outcome.predecessor, { ...options, timings, wardenDir, waitedMs: Date.now() - started, blockedBy });
        } catch (error) {
          // No log to hold it with (a malformed log, say): give the lease back at once.
          ops.release(outcome.lock);
          throw error;
        }
      }
      if (outcome.kind === 'retry') {
        // Lost a race for a claim: let the winner finish before looking again.
        await new Promise((resolveTurn) => setImmediate(resolveTurn));
        continue;
      }
      const key = outcome.holder?.lockId ?? 'unreadable';
      if (key !== lastHolder) {
        lastHolder = key;
        const h = outcome.holder;
        blockedBy.push({ ownerId: h?.ownerId ?? null, pid: h?.pid ?? null, hostname: h?.hostname ?? null, epoch: h?.epoch ?? null });
        options.onBlocked?.(h, outcome.reason);
      }
      if (!options.wait) throw new LeaseHeldError(outcome.holder ?? undefined, resolve(options.dir));
      await lockMayHaveChanged(wardenDir, probeIntervalMs, options.signal);
    }
  }
}

/** Resolves when something changes in the lease dir (a release) or after one probe interval (a death). */
function lockMayHaveChanged(dir: string, probeIntervalMs: number, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolvePromise) => {
    const done = () => {
      timer.clear();
      watcher.close();
      signal?.removeEventListener('abort', done);
      resolvePromise();
    };
    const watcher = watch(dir, (_event, name) => {
      if (name === null || name === 'scheduler.lock') done();
    });
    const timer = setLongTimeout(done, probeIntervalMs);
    signal?.addEventListener('abort', done);
  });
}

interface HoldContext extends AcquireLeaseOptions {
  timings: LeaseTimings;
  wardenDir: string;
  waitedMs: number;
  blockedBy: Array<{ ownerId: string | null; pid: unknown; hostname: string | null; epoch: number | null }>;
}

function hold(ops: LeaseOps, acquired: LeaseLock, predecessor: unknown, context: HoldContext): LeaseHandle {
  let lock = acquired;
  const actor = `lease:${lock.epoch}`;
  const state$ = new BehaviorSubject<LeaseState>('held');
  let settleLost: (error: LeaseLostError) => void = () => {};
  const lost = new Promise<LeaseLostError>((resolvePromise) => {
    settleLost = resolvePromise;
  });
  let finished = false;

  const runner = Runner.open({
    log: join(context.wardenDir, 'events.jsonl'),
    machines: [...builtInMachines, ...(context.machines ?? [])],
    epoch: lock.epoch,
    fsync: context.fsync,
    // By default only actors of this holding are started; a scheduler resumes its queue.
    resume: context.resume ?? false,
    runId: context.runId,
    clock: context.clock,
    // Fencing: nothing is written unless the lock file still holds this acquisition.
    fence: () => {
      if (!ops.holds(lock.lockId)) throw new LeaseLostError(lock.epoch, ops.describeHolder());
    },
    effects: {
      ...context.effects,
      renewLease: fromPromise(async ({ input }: { input: EffectInput }) => {
        const outcome = ops.renew(lock);
        if (outcome.kind === 'renewed') {
          lock = outcome.lock;
          input.send({ type: 'lease.renewed', renewedAt: lock.renewedAt });
        } else if (outcome.kind === 'busy') {
          input.send({ type: 'lease.renewBusy' });
        } else {
          runner.abort(new LeaseLostError(lock.epoch, outcome.reason));
        }
      }),
    },
  });

  const stopExitHandlers = context.releaseOnExit === false ? () => {} : installExitHandlers((reason) => release(reason));

  void runner.halted.then((reason) => {
    if (finished) return;
    finished = true;
    stopExitHandlers();
    const error = reason instanceof LeaseLostError ? reason : new LeaseLostError(lock.epoch, String((reason as Error)?.message ?? reason));
    ops.close();
    state$.next('lost');
    state$.complete();
    settleLost(error);
  });
  runner.subscribe((record) => {
    if (record.actor !== actor) return;
    const value = runner.state(actor);
    if (value === 'renewing' || value === 'renewPending') state$.next('renewing');
    else if (value === 'held') state$.next('held');
  });

  // Holdings the log shows unfinished belong to processes that died holding the lease (this one
  // holds it now): closed before anything of theirs, a renewal timer say, can fire.
  for (const earlier of runner.actors()) {
    if (earlier.machine === 'lease' && !earlier.done && earlier.id !== actor) runner.send(earlier.id, { type: 'lease.superseded', byEpoch: lock.epoch });
  }
  runner.start(actor, 'lease', {
    ownerId: lock.ownerId,
    renewEveryMs: Math.max(1, Math.floor(context.timings.leaseTtlMs / 3)),
    renewRetryMs: Math.max(1, Math.floor(context.timings.leaseTtlMs / 30)),
  });
  runner.send(actor, {
    type: 'lease.acquired',
    lockId: lock.lockId,
    epoch: lock.epoch,
    pid: process.pid,
    hostname: lock.hostname,
    acquiredAt: lock.acquiredAt,
    predecessor: predecessor ?? null,
    waitedMs: context.waitedMs,
    blockedBy: context.blockedBy,
  });

  function release(reason = 'released'): 'released' | 'not ours' {
    if (finished) return 'not ours';
    finished = true;
    stopExitHandlers();
    // The last records are written while the lock is still ours; only then is it removed.
    try {
      runner.send(actor, { type: 'lease.release', reason });
      runner.close(reason);
    } catch {
      // Fenced: the lease was already lost; the lock, if any, is someone else's now.
    }
    const outcome = ops.release(lock);
    ops.close();
    state$.next('released');
    state$.complete();
    return outcome;
  }

  return { epoch: lock.epoch, lock, runner, actor, state$: state$.asObservable(), lost, release };
}

const EXIT_SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

// Releases of the leases this process holds with releaseOnExit. The process-wide handlers stay
// installed once added: a signal that arrives while a lease is held but is dispatched after that
// lease's release must still end the process, not find its listener gone and be lost.
const heldReleases = new Set<(reason: string) => void>();
let handlersInstalled = false;

function releaseAll(reason: string): void {
  for (const release of [...heldReleases]) release(reason);
}

const onExit = () => releaseAll('process exit');
const onSignal = (signal: NodeJS.Signals) => {
  releaseAll(signal);
  // Then die of it, as the default action would have: with our listeners gone, it applies.
  removeHandlers();
  process.kill(process.pid, signal);
};
const onUncaught = (error: unknown) => {
  releaseAll(`uncaught error: ${error instanceof Error ? error.message : String(error)}`);
  removeHandlers();
  // Thrown again with this handler gone, Node reports it and exits as it would have.
  setImmediate(() => {
    throw error;
  });
};

function removeHandlers(): void {
  process.off('exit', onExit);
  for (const signal of EXIT_SIGNALS) process.off(signal, onSignal);
  process.off('uncaughtException', onUncaught);
  handlersInstalled = false;
}

/**
 * Releases on normal exit, on SIGINT/SIGTERM/SIGHUP (then dies of the same signal, as the
 * default action would) and on an uncaught error (then rethrows it). Returns the uninstaller for
 * this one lease; the process-wide handlers stay.
 */
function installExitHandlers(release: (reason: string) => void): () => void {
  heldReleases.add(release);
  if (!handlersInstalled) {
    handlersInstalled = true;
    process.on('exit', onExit);
    for (const signal of EXIT_SIGNALS) process.on(signal, onSignal);
    process.on('uncaughtException', onUncaught);
  }
  return () => heldReleases.delete(release);
}
