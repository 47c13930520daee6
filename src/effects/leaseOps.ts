import { randomUUID } from 'node:crypto';
import { LeaseFile, type LeaseFileHooks, type LeaseLock, type LockStamp, type LockState } from './leaseFile.js';
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
  // The lock this instance last wrote: which file it is, and when it was last renewed.
  private held: { lockId: string; stamp: LockStamp; renewedAtMs: number } | undefined;
  // The epoch mark as this instance last read or wrote it: a guess for the next acquisition,
  // which settle() checks against the mark itself once the lock is won.
  private knownEpoch: number | undefined;

  constructor(
    readonly wardenDir: string,
    readonly ownerId: string,
    readonly timings: LeaseTimings = DEFAULT_LEASE_TIMINGS,
    hooks?: LeaseFileHooks,
  ) {
    this.file = new LeaseFile(wardenDir, { claimTtlMs: timings.claimTtlMs, hooks });
  }

  tryAcquire(now = Date.now()): AcquireOutcome {
    // The common case first: the name is free, and creating is the whole of acquiring.
    this.knownEpoch ??= this.file.readEpoch();
    const fresh = this.newLock(this.knownEpoch + 1, now);
    const created = this.file.tryCreate(fresh);
    if (created !== 'exists') return this.settle(fresh, created, null);
    const state = this.file.read();
    if (state.kind === 'absent') return { kind: 'retry' };
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
    const { result, stamp } = this.file.transitionWithStamp(state.token, next);
    if (result === 'done') {
      this.held = { lockId: next.lockId, stamp: stamp!, renewedAtMs: now };
      return { kind: 'renewed', lock: next };
    }
    if (result === 'busy') return { kind: 'busy' };
    return { kind: 'lost', reason: describeOther(this.file.read()) };
  }

  /**
   * Removes the lock if it is ours; never touches another owner's. A holder that renewed less
   * than half a TTL ago cannot have been judged stale by anyone (on this host it is alive; on
   * others its lease has not run out), so nothing else can be changing the lock: it checks with
   * one lstat that the file is still the one it wrote, and unlinks it. Otherwise it releases
   * through a claim, like any other change of hands.
   */
  release(current: LeaseLock, now = Date.now()): 'released' | 'not ours' {
    const held = this.held?.lockId === current.lockId ? this.held : undefined;
    this.held = undefined;
    if (held && now - held.renewedAtMs < this.timings.leaseTtlMs / 2) {
      return this.file.removeIfStamp(held.stamp) === 'removed' ? 'released' : 'not ours';
    }
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
    // The lock this instance wrote: one lstat tells whether it is still that very file.
    if (this.held?.lockId === lockId) return this.file.hasStamp(this.held.stamp);
    const state = this.file.read();
    return state.kind === 'lock' && state.lock.lockId === lockId;
  }

  /** Who or what is at the lock path now, in words. */
  describeHolder(): string {
    return describeOther(this.file.read());
  }

  /** Closes the files this instance keeps open. */
  close(): void {
    this.file.close();
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
    const { result, stamp } = this.file.transitionWithStamp(state.token, lock);
    if (result !== 'done') return { kind: 'retry' };
    const outcome = this.settle(lock, stamp!, predecessor);
    // Claims left by processes that died mid-transition: only a takeover can follow one.
    if (outcome.kind === 'acquired') this.file.sweepClaims(this.currentToken());
    return outcome;
  }

  /**
   * Just won `lock`: makes its epoch exceed every epoch a holder ever had, then records it. The
   * epoch it was created with is a guess (the mark as last seen): another holder may have come
   * and gone since. Only now, holding the lock, is the mark stable to read; if the guess was
   * behind, the lock is rewritten with a higher epoch before anyone is told it was won.
   */
  private settle(lock: LeaseLock, stamp: LockStamp, predecessor: Predecessor | null): AcquireOutcome {
    let held = lock;
    let heldStamp = stamp;
    const highest = this.file.readEpoch();
    if (held.epoch <= highest) {
      const token = this.currentToken(held.lockId);
      if (token === undefined) return { kind: 'retry' };
      const raised = { ...held, epoch: highest + 1 };
      const { result, stamp: raisedStamp } = this.file.transitionWithStamp(token, raised);
      if (result !== 'done') return { kind: 'retry' };
      held = raised;
      heldStamp = raisedStamp!;
    }
    this.file.writeEpoch(held.epoch, highest);
    this.knownEpoch = held.epoch;
    this.held = { lockId: held.lockId, stamp: heldStamp, renewedAtMs: Date.parse(held.renewedAt) };
    return { kind: 'acquired', lock: held, predecessor };
  }

  /** The token of the lock now at the path (if it has this lockId, when one is given). */
  private currentToken(lockId?: string): string | undefined {
    const state = this.file.read();
    if (state.kind === 'absent') return undefined;
    if (lockId !== undefined && (state.kind !== 'lock' || state.lock.lockId !== lockId)) return undefined;
    return state.token;
  }

  private newLock(epoch: number, now: number): LeaseLock {
    const at = new Date(now).toISOString();
    const { pid, pidStartTime, bootId, hostname } = this.identity;
    return { ownerId: this.ownerId, lockId: randomUUID(), pid, pidStartTime, bootId, hostname, acquiredAt: at, renewedAt: at, epoch, ttlMs: this.timings.leaseTtlMs };
  }

  private isMine(lock: LeaseLock): boolean {
    const me = this.identity;
    return lock.ownerId === this.ownerId && lock.pid === me.pid && lock.hostname === me.hostname && lock.pidStartTime === me.pidStartTime;
  }

  private judge(lock: LeaseLock, now: number): OwnerLiveness {
    return judgeOwner(lock, { now, renewedAtMs: Date.parse(lock.renewedAt), ttlMs: ttlOf(lock, this.timings) });
  }
}

/**
 * The TTL a lock is judged by: the one its holder recorded (it renews by that, whatever the
 * judge's own). A lock written before the TTL was recorded is given the longer of the judge's own
 * TTL and the default, so a short `--ttl-ms` never takes a lease from an old holder that renews on
 * the default schedule.
 */
export function ttlOf(lock: Pick<LeaseLock, 'ttlMs'>, timings: Pick<LeaseTimings, 'leaseTtlMs'>): number {
  return lock.ttlMs ?? Math.max(timings.leaseTtlMs, DEFAULT_LEASE_TIMINGS.leaseTtlMs);
}

function describeOther(state: LockState): string {
  if (state.kind === 'absent') return 'the lock file is gone';
  if (state.kind === 'corrupt') return `the lock file is unreadable (${state.reason})`;
  return `the lock is now held by ${state.lock.ownerId} (pid ${String(state.lock.pid)} on ${state.lock.hostname}, epoch ${state.lock.epoch})`;
}
