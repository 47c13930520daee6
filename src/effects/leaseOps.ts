import { randomUUID } from 'node:crypto';
import { LeaseFile, type LeaseFileHooks, type LeaseLock, type LockState } from './leaseFile.js';
import { currentIdentity, judgeOwner, type OwnerLiveness } from './processIdentity.js';

/** Timing of the lease; all in milliseconds so tests can run them fast. */
export interface LeaseTimings {
  /** A holder on another host is alive until its renewedAt plus this; holders renew every third of it. */
  leaseTtlMs: number;
  /** An unreadable lock younger than this is held (being written by a non-Warden writer, say), not corrupt. */
  graceMs: number;
  /** A claimant on another host is alive this long without proof (claims live for milliseconds). */
  claimTtlMs: number;
}

export const DEFAULT_LEASE_TIMINGS: LeaseTimings = { leaseTtlMs: 60_000, graceMs: 10_000, claimTtlMs: 30_000 };

/** Who had the lock before a takeover, and why they were judged gone. */
export interface Predecessor {
  ownerId: string | null;
  pid: unknown;
  hostname: string | null;
  epoch: number | null;
  reason: string;
}

export type AcquireOutcome =
  | { kind: 'acquired'; lock: LeaseLock; predecessor: Predecessor | null; alreadyHeld?: boolean }
  | { kind: 'blocked'; holder: LeaseLock | null; reason: string }
  | { kind: 'retry' };

export type RenewOutcome = { kind: 'renewed'; lock: LeaseLock } | { kind: 'lost'; reason: string } | { kind: 'busy' };

export interface LeaseStatus {
  held: boolean;
  live: boolean;
  owner: Pick<LeaseLock, 'ownerId' | 'pid' | 'hostname' | 'acquiredAt' | 'renewedAt' | 'epoch'> | null;
  /** How liveness was judged: 'pid+starttime', 'pid-only' (no /proc), 'lease-ttl' (another host), or why it is stale. */
  basis: string;
  corrupt?: string;
}

/**
 * The lease's decisions over the lock file, one synchronous attempt at a time: acquire (create,
 * or take over a stale or corrupt lock), renew, release, status. No timers and no logging — the
 * lease machine and `acquireLease` drive these; the benchmark calls them bare.
 */
export class LeaseOps {
  readonly file: LeaseFile;
  private readonly identity = currentIdentity();

  constructor(
    readonly wardenDir: string,
    readonly ownerId: string,
    readonly timings: LeaseTimings = DEFAULT_LEASE_TIMINGS,
    hooks?: LeaseFileHooks,
  ) {
    this.file = new LeaseFile(wardenDir, { claimTtlMs: timings.claimTtlMs, hooks });
  }

  tryAcquire(now = Date.now()): AcquireOutcome {
    const state = this.file.read();
    if (state.kind === 'absent') {
      const lock = this.newLock(this.file.readEpoch() + 1, now);
      return this.file.tryCreate(lock) === 'created' ? this.settle(lock, null) : { kind: 'retry' };
    }
    if (state.kind === 'corrupt') {
      if (now - state.mtimeMs < this.timings.graceMs) return { kind: 'blocked', holder: null, reason: `unreadable lock (${state.reason}), younger than the grace period` };
      return this.takeOver(state, this.file.readEpoch(), { ownerId: null, pid: null, hostname: null, epoch: null, reason: `corrupt: ${state.reason}` }, now);
    }
    const { lock } = state;
    if (this.isMine(lock)) return { kind: 'acquired', lock, predecessor: null, alreadyHeld: true };
    const liveness = this.judge(lock, now);
    if (liveness.alive) return { kind: 'blocked', holder: lock, reason: `held (${liveness.basis})` };
    const resumed = lock.ownerId === this.ownerId ? 'resumed by the same owner; ' : '';
    const predecessor = { ownerId: lock.ownerId, pid: lock.pid, hostname: lock.hostname, epoch: lock.epoch, reason: `${resumed}${liveness.reason}` };
    return this.takeOver(state, Math.max(lock.epoch, this.file.readEpoch()), predecessor, now);
  }

  /** Rewrites our lock with a fresh renewedAt, if the file still holds our lockId. */
  renew(current: LeaseLock, now = Date.now()): RenewOutcome {
    const state = this.file.read();
    if (state.kind !== 'lock' || state.lock.lockId !== current.lockId) return { kind: 'lost', reason: describeOther(state) };
    const next = { ...state.lock, renewedAt: new Date(now).toISOString() };
    const result = this.file.transition(state.token, next);
    if (result === 'done') return { kind: 'renewed', lock: next };
    if (result === 'busy') return { kind: 'busy' };
    return { kind: 'lost', reason: describeOther(this.file.read()) };
  }

  /** Removes the lock if it is ours; never touches another owner's. */
  release(current: LeaseLock): 'released' | 'not ours' {
    for (let attempt = 0; attempt < 100; attempt++) {
      const state = this.file.read();
      if (state.kind !== 'lock' || state.lock.lockId !== current.lockId) return 'not ours';
      if (this.file.transition(state.token, null) === 'done') return 'released';
      // Someone judged us stale and is claiming our lock: let them finish, then look again.
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 2);
    }
    return 'not ours';
  }

  /** Whether the lock file holds this acquisition now (the fencing check before every log write). */
  holds(lockId: string): boolean {
    const state = this.file.read();
    return state.kind === 'lock' && state.lock.lockId === lockId;
  }

  /** Who or what is at the lock path now, in words. */
  describeHolder(): string {
    return describeOther(this.file.read());
  }

  status(now = Date.now()): LeaseStatus {
    const state = this.file.read();
    if (state.kind === 'absent') return { held: false, live: false, owner: null, basis: 'no lock file' };
    if (state.kind === 'corrupt') {
      const young = now - state.mtimeMs < this.timings.graceMs;
      return { held: young, live: false, owner: null, basis: young ? 'unreadable and young: counted as held' : 'unreadable: recoverable', corrupt: state.reason };
    }
    const { ownerId, pid, hostname, acquiredAt, renewedAt, epoch } = state.lock;
    const liveness = this.judge(state.lock, now);
    return { held: true, live: liveness.alive, owner: { ownerId, pid, hostname, acquiredAt, renewedAt, epoch }, basis: liveness.alive ? liveness.basis : liveness.reason };
  }

  private takeOver(state: Exclude<LockState, { kind: 'absent' }>, lastEpoch: number, predecessor: Predecessor, now: number): AcquireOutcome {
    this.file.hooks.afterStaleDecision?.();
    const lock = this.newLock(lastEpoch + 1, now);
    return this.file.transition(state.token, lock) === 'done' ? this.settle(lock, predecessor) : { kind: 'retry' };
  }

  /**
   * Just won `lock`: makes its epoch exceed every epoch a holder ever had, then records it. A
   * contender that read the epoch high-water mark before another holder came and went would
   * otherwise reuse that holder's epoch; only now, holding the lock, is the mark stable to read.
   */
  private settle(lock: LeaseLock, predecessor: Predecessor | null): AcquireOutcome {
    let held = lock;
    const highest = this.file.readEpoch();
    if (held.epoch <= highest) {
      const state = this.file.read();
      if (state.kind !== 'lock' || state.lock.lockId !== held.lockId) return { kind: 'retry' };
      const raised = { ...held, epoch: highest + 1 };
      if (this.file.transition(state.token, raised) !== 'done') return { kind: 'retry' };
      held = raised;
    }
    this.file.writeEpoch(held.epoch);
    const after = this.file.read();
    this.file.sweepClaims(after.kind === 'lock' ? after.token : undefined);
    return { kind: 'acquired', lock: held, predecessor };
  }

  private newLock(epoch: number, now: number): LeaseLock {
    const at = new Date(now).toISOString();
    const { pid, pidStartTime, bootId, hostname } = this.identity;
    return { ownerId: this.ownerId, lockId: randomUUID(), pid, pidStartTime, bootId, hostname, acquiredAt: at, renewedAt: at, epoch };
  }

  private isMine(lock: LeaseLock): boolean {
    const me = this.identity;
    return lock.ownerId === this.ownerId && lock.pid === me.pid && lock.hostname === me.hostname && lock.pidStartTime === me.pidStartTime;
  }

  private judge(lock: LeaseLock, now: number): OwnerLiveness {
    return judgeOwner(lock, { now, renewedAtMs: Date.parse(lock.renewedAt), ttlMs: this.timings.leaseTtlMs });
  }
}

function describeOther(state: LockState): string {
  if (state.kind === 'absent') return 'the lock file is gone';
  if (state.kind === 'corrupt') return `the lock file is unreadable (${state.reason})`;
  return `the lock is now held by ${state.lock.ownerId} (pid ${String(state.lock.pid)} on ${state.lock.hostname}, epoch ${state.lock.epoch})`;
}
