/**
 * Worker identity locks: `<worker>/.runtime/agent.lock`, one live agent per worker directory,
 * in a format gastown reads and writes too.
 *
 * File: JSON with gastown's four keys — `pid` (number), `acquired_at` (RFC 3339), `session_id`,
 * `hostname` — plus Warden's own, which gastown ignores: `pid_start_time` and `boot_id` (so a
 * reused PID or a reboot does not keep a dead lock alive), `lock_id` (a fresh nonce per
 * acquisition) and `owner: "warden"`. Files gastown wrote (no Warden fields) are read too; their
 * owners are judged by PID alone, and say so.
 *
 * Serialisation: every change — acquire, release, forceRelease, check, the doctor's cleaner —
 * happens while holding an exclusive flock on `<worker>/.runtime/agent.lock.flock`, the same
 * coordination file gastown's Acquire locks, and re-reads and re-judges the lock under it before
 * acting. So nothing deletes a lock it has not just proven stale, two acquirers cannot both win,
 * and Warden and gastown serialise against each other. The flock file is never deleted. A new
 * lock appears whole: it is written to a private temp file and renamed into place.
 *
 * Liveness: same host → the PID exists (EPERM counts as existing) and, when both are known, its
 * start time and the boot id match; a PID that is not a positive integer below 2^31 is dead and
 * never signalled. Another host → "foreign": never judged from here, never taken, never cleaned.
 * A lock whose PID is dead is still live while its session is (see sessionProbes.ts); when the
 * probe for its session cannot answer, it is "unknown" and kept.
 */
import { randomUUID } from 'node:crypto';
import { closeSync, constants, lstatSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { LockFormatError, LockHeldError, LockPathError, UsageError } from '../errors.js';
import { CONFIG_DEFAULTS } from '../store/configDefaults.js';
import { withFlock } from './flock.js';
import { LOCK_NAME, RUNTIME_DIR, inspectLockFile, lockPathOf, type WorkerLockInfo } from './workerLockFile.js';
import { currentIdentity, isValidPid, judgeOwner, localHostname, probePid, readStartTime, type OwnerLiveness } from './processIdentity.js';
import { defaultProbes, sessionVerdict, takeSnapshots, type SessionProbe, type SessionSnapshot, type SessionVerdict } from './sessionProbes.js';

export { LOCK_NAME, RUNTIME_DIR, inspectLockFile, lockPathOf, parseWorkerLock, type LockFileState, type WorkerLockInfo } from './workerLockFile.js';

/** The process a lock is taken for. */
export interface LockOwner {
  pid: number;
  pidStartTime: string | null;
  bootId: string | null;
  hostname: string;
}

/** How a lock's owner is judged now. */
export type LockState = 'live' | 'stale' | 'orphaned' | 'foreign' | 'unknown';

export interface LockJudgement {
  state: LockState;
  /** The PID's side: alive (and on what basis) or why not. */
  pid: OwnerLiveness | { alive: false; reason: 'foreign-host' };
  /** The session's side, when the lock names one. */
  session: { id: string; probe: string; verdict: SessionVerdict } | null;
  /** One line: why this state. */
  reason: string;
}

export interface WorkerLockOptions {
  /** Session probes; default {@link defaultProbes} (Warden jobs, and tmux's default server). */
  probes?: readonly SessionProbe[];
  /** An unreadable lock younger than this counts as held (default 10 s). */
  graceMs?: number;
  /** How long to wait for the coordination flock (default 10 s). */
  flockTimeoutMs?: number;
}

const DEFAULT_GRACE_MS = CONFIG_DEFAULTS.workerLockGraceMs;

/**
 * The owner identity of a live process: its pid, start time and boot, on this host.
 * @example ownerOf(process.ppid) // the shell that ran warden
 */
export function ownerOf(pid: number): LockOwner {
  if (!isValidPid(pid)) throw new UsageError(`not a pid: ${String(pid)}`);
  if (probePid(pid) === 'dead') throw new UsageError(`no process with pid ${pid}`);
  const me = currentIdentity();
  return { pid, pidStartTime: readStartTime(pid), bootId: me.bootId, hostname: me.hostname };
}

/**
 * The lock of `worker`, or null when unlocked. An unreadable lock is a LockFormatError naming the
 * file and what is wrong.
 */
export function readWorkerLock(worker: string): WorkerLockInfo | null {
  const path = lockPathOf(worker);
  const state = inspectLockFile(path);
  if (state.kind === 'absent') return null;
  if (state.kind === 'corrupt') throw new LockFormatError(path, state.reason);
  return state.info;
}

/** Whether `info` was written for `owner` (same pid on this host, and same start time when both are known). */
export function isOwnedBy(info: WorkerLockInfo, owner: LockOwner): boolean {
  if ((info.hostname ?? owner.hostname) !== owner.hostname) return false;
  if (info.pid !== owner.pid) return false;
  const recorded = info.pid_start_time ?? null;
  return recorded === null || owner.pidStartTime === null || recorded === owner.pidStartTime;
}

/**
 * Judges a lock: its PID (same host only) and its session, from snapshots of `probes`.
 * live: PID alive and session not known gone — or PID dead but session alive; orphaned: PID alive,
 * session gone; stale: PID dead (or reused, or malformed) and no session or session gone;
 * unknown: PID dead and the session probe could not answer; foreign: written on another host.
 */
export function judgeLock(
  info: WorkerLockInfo,
  probes: readonly SessionProbe[],
  snapshots: ReadonlyMap<string, SessionSnapshot>,
  context: { lockUid?: number } = {},
): LockJudgement {
  const session = info.session_id ? { id: info.session_id, ...sessionVerdict(info.session_id, probes, snapshots, context) } : null;
  const here = localHostname();
  if (info.hostname !== undefined && info.hostname !== '' && info.hostname !== here) {
    return { state: 'foreign', pid: { alive: false, reason: 'foreign-host' }, session, reason: `written on host ${info.hostname}; not judged from ${here}` };
  }
  const pid = judgeOwner(
    { pid: info.pid, pidStartTime: info.pid_start_time ?? null, bootId: info.boot_id ?? null, hostname: here },
    { now: 0, renewedAtMs: 0, ttlMs: 0 },
  );
  const sessionWords = session ? `session ${session.id} ${session.verdict.kind === 'unknown' ? `unknown (${session.verdict.reason})` : session.verdict.kind}` : 'no session';
  if (pid.alive) {
    if (session?.verdict.kind === 'gone') return { state: 'orphaned', pid, session, reason: `PID ${String(info.pid)} alive, but ${sessionWords}` };
    return { state: 'live', pid, session, reason: `PID ${String(info.pid)} alive (${pid.basis})` };
  }
  const pidWords = `PID ${String(info.pid)} ${pid.reason === 'malformed-pid' ? 'malformed' : pid.reason === 'pid-reused' ? 'reused by another process' : pid.reason}`;
  if (session?.verdict.kind === 'alive') return { state: 'live', pid, session, reason: `${pidWords}, but ${sessionWords}` };
  if (session?.verdict.kind === 'unknown') return { state: 'unknown', pid, session, reason: `${pidWords}; ${sessionWords}` };
  return { state: 'stale', pid, session, reason: `${pidWords}; ${sessionWords}` };
}

export type AcquireResult =
  | { kind: 'acquired'; lock: WorkerLockInfo }
  | { kind: 'refreshed'; lock: WorkerLockInfo; previous: WorkerLockInfo }
  | { kind: 'took-over'; lock: WorkerLockInfo; previous: WorkerLockInfo; judgement: LockJudgement }
  | { kind: 'replaced-corrupt'; lock: WorkerLockInfo; reason: string; keptAs: string };

/**
 * Takes `worker`'s identity lock for `owner` (default: this process). The same owner refreshes
 * it (new session, new time); a stale lock is taken over; another live, orphaned, unknown or
 * foreign owner → LockHeldError with its pid, session, hostname and acquired time. An unreadable
 * lock older than the grace period is moved aside (kept as `agent.lock.corrupt-<time>`), not
 * deleted; a younger one counts as held.
 */
export async function acquireWorkerLock(
  worker: string,
  request: { owner?: LockOwner; session?: string } = {},
  options: WorkerLockOptions = {},
): Promise<AcquireResult> {
  const owner = request.owner ?? currentIdentity();
  const runtime = ensureRuntimeDir(worker);
  const lockPath = join(runtime, LOCK_NAME);
  return serialised(lockPath, options, async () => {
    const state = inspectLockFile(lockPath);
    if (state.kind === 'absent') return { kind: 'acquired', lock: writeLock(lockPath, owner, request.session) };
    if (state.kind === 'corrupt') {
      if (!corruptLockExpired({ state: 'corrupt', corruptSinceMs: state.mtimeMs }, Date.now(), options.graceMs)) {
        throw new LockHeldError(worker, null, `the lock file is unreadable (${state.reason}) and younger than the grace period`);
      }
      const keptAs = moveAside(lockPath);
      return { kind: 'replaced-corrupt', lock: writeLock(lockPath, owner, request.session), reason: state.reason, keptAs };
    }
    const previous = state.info;
    if (isOwnedBy(previous, owner)) return { kind: 'refreshed', lock: writeLock(lockPath, owner, request.session), previous };
    const judgement = await judgeNow(previous, options.probes ?? defaultProbes(), state.uid, true);
    if (judgement.state !== 'stale') throw heldError(worker, previous, judgement);
    return { kind: 'took-over', lock: writeLock(lockPath, owner, request.session), previous, judgement };
  });
}

/** Removes `worker`'s lock if `owner` (default: this process) holds it; never another's. */
export async function releaseWorkerLock(
  worker: string,
  request: { owner?: LockOwner } = {},
  options: WorkerLockOptions = {},
): Promise<'released' | 'unlocked' | 'not ours'> {
  const owner = request.owner ?? currentIdentity();
  const lockPath = lockPathOf(worker);
  if (!runtimeDirExists(worker)) return 'unlocked';
  return serialised(lockPath, options, () => {
    const state = inspectLockFile(lockPath);
    if (state.kind === 'absent') return 'unlocked';
    if (state.kind === 'corrupt' || !isOwnedBy(state.info, owner)) return 'not ours';
    unlinkSync(lockPath);
    return 'released';
  });
}

/**
 * Removes `worker`'s lock whoever holds it (repair). An unreadable lock file is moved aside
 * (kept as `agent.lock.corrupt-<time>`) rather than deleted.
 */
export async function forceReleaseWorkerLock(
  worker: string,
  options: WorkerLockOptions = {},
): Promise<{ kind: 'unlocked' } | { kind: 'released'; previous: WorkerLockInfo } | { kind: 'moved-aside'; reason: string; keptAs: string }> {
  const lockPath = lockPathOf(worker);
  if (!runtimeDirExists(worker)) return { kind: 'unlocked' };
  return serialised(lockPath, options, () => {
    const state = inspectLockFile(lockPath);
    if (state.kind === 'absent') return { kind: 'unlocked' } as const;
    if (state.kind === 'corrupt') return { kind: 'moved-aside', reason: state.reason, keptAs: moveAside(lockPath) } as const;
    unlinkSync(lockPath);
    return { kind: 'released', previous: state.info } as const;
  });
}

export type CheckResult =
  | { kind: 'unlocked' }
  | { kind: 'ours'; lock: WorkerLockInfo }
  | { kind: 'cleaned'; previous: WorkerLockInfo; judgement: LockJudgement };

/**
 * gastown's Check: fine if unlocked or held by `owner`; a stale lock is removed (under the
 * flock, just re-judged); another live owner → LockHeldError; an unreadable lock → LockFormatError.
 */
export async function checkWorkerLock(worker: string, request: { owner?: LockOwner } = {}, options: WorkerLockOptions = {}): Promise<CheckResult> {
  const owner = request.owner ?? currentIdentity();
  const lockPath = lockPathOf(worker);
  const first = inspectLockFile(lockPath);
  if (first.kind === 'absent') return { kind: 'unlocked' };
  if (first.kind === 'corrupt') throw new LockFormatError(lockPath, first.reason);
  if (isOwnedBy(first.info, owner)) return { kind: 'ours', lock: first.info };
  return serialised(lockPath, options, async () => {
    const state = inspectLockFile(lockPath);
    if (state.kind === 'absent') return { kind: 'unlocked' } as const;
    if (state.kind === 'corrupt') throw new LockFormatError(lockPath, state.reason);
    if (isOwnedBy(state.info, owner)) return { kind: 'ours', lock: state.info } as const;
    const judgement = await judgeNow(state.info, options.probes ?? defaultProbes(), state.uid, true);
    if (judgement.state !== 'stale') throw heldError(worker, state.info, judgement);
    unlinkSync(lockPath);
    return { kind: 'cleaned', previous: state.info, judgement } as const;
  });
}

export interface WorkerLockStatus {
  /** gastown's words: "unlocked", "stale (dead PID N)", "locked (by us)", "locked by PID N (session: S)". */
  status: string;
  state: 'unlocked' | 'ours' | LockState | 'corrupt';
  lock: WorkerLockInfo | null;
  judgement: LockJudgement | null;
  /** What is wrong with an unreadable lock file. */
  corrupt?: string;
  /** An unreadable lock file's mtime (ms since the epoch): past the grace period, acquire takes it. */
  corruptSinceMs?: number;
}

/**
 * Whether an acquire now would take a corrupt lock (its file is older than the grace period)
 * rather than count it as held.
 */
export function corruptLockExpired(status: Pick<WorkerLockStatus, 'state' | 'corruptSinceMs'>, now: number, graceMs: number = DEFAULT_GRACE_MS): boolean {
  return status.state === 'corrupt' && status.corruptSinceMs !== undefined && now - status.corruptSinceMs >= graceMs;
}

/** The lock's state in gastown's status strings, with the judgement behind it. Reads only. */
export async function workerLockStatus(worker: string, request: { owner?: LockOwner } = {}, options: WorkerLockOptions = {}): Promise<WorkerLockStatus> {
  const owner = request.owner ?? currentIdentity();
  const lockPath = lockPathOf(worker);
  const state = inspectLockFile(lockPath);
  if (state.kind === 'absent') return { status: 'unlocked', state: 'unlocked', lock: null, judgement: null };
  if (state.kind === 'corrupt') return { status: `error: ${lockPath}: invalid lock file: ${state.reason}`, state: 'corrupt', lock: null, judgement: null, corrupt: state.reason, corruptSinceMs: state.mtimeMs };
  const { info } = state;
  if (isOwnedBy(info, owner)) return { status: 'locked (by us)', state: 'ours', lock: info, judgement: null };
  const judgement = await judgeNow(info, options.probes ?? defaultProbes(), state.uid);
  const status = judgement.state === 'stale' ? `stale (dead PID ${String(info.pid)})` : `locked by PID ${String(info.pid)} (session: ${info.session_id ?? ''})`;
  return { status, state: judgement.state, lock: info, judgement };
}

/**
 * Removes `lockPath`'s lock if, under the flock, it is still exactly `expectedBytes` and is stale
 * when judged again now. The doctor's cleaner; 'changed' when the lock moved on meanwhile.
 */
export async function removeIfStillStale(
  lockPath: string,
  expectedBytes: string,
  options: WorkerLockOptions = {},
): Promise<{ kind: 'removed'; judgement: LockJudgement } | { kind: 'changed' } | { kind: 'kept'; judgement: LockJudgement }> {
  return serialised(lockPath, options, async () => {
    const state = inspectLockFile(lockPath);
    if (state.kind !== 'lock' || state.bytes !== expectedBytes) return { kind: 'changed' } as const;
    const judgement = await judgeNow(state.info, options.probes ?? defaultProbes(), state.uid, true);
    if (judgement.state !== 'stale') return { kind: 'kept', judgement } as const;
    unlinkSync(lockPath);
    return { kind: 'removed', judgement } as const;
  });
}

/**
 * Judges `info` with fresh snapshots of the probes its session needs (none if it has no
 * session). `staleOnly`: the caller only asks "stale or not" (acquire, check, the cleaner), so a
 * lock whose PID is alive is held whatever its session, and no probe is run — probes run under
 * the flock, and a tmux query there would hold up every other contender.
 */
async function judgeNow(info: WorkerLockInfo, probes: readonly SessionProbe[], lockUid: number, staleOnly = false): Promise<LockJudgement> {
  let needed = info.session_id ? probes.filter((p) => p.handles(info.session_id!)).slice(0, 1) : [];
  if (staleOnly && needed.length > 0) {
    const withoutSessions = judgeLock(info, [], new Map(), { lockUid });
    if (withoutSessions.pid.alive || withoutSessions.state === 'foreign') needed = [];
  }
  return judgeLock(info, needed.length > 0 ? probes : [], await takeSnapshots(needed), { lockUid });
}

function heldError(worker: string, info: WorkerLockInfo, judgement: LockJudgement): LockHeldError {
  return new LockHeldError(worker, { pid: info.pid, session_id: info.session_id, hostname: info.hostname, acquired_at: info.acquired_at }, `${judgement.state}: ${judgement.reason}`);
}

function serialised<T>(lockPath: string, options: WorkerLockOptions, fn: () => T | Promise<T>): Promise<T> {
  return withFlock(`${lockPath}.flock`, fn, { timeoutMs: options.flockTimeoutMs });
}

/** `<worker>/.runtime`, created if missing (0755, as gastown does); a symlink there is refused. */
function ensureRuntimeDir(worker: string): string {
  const runtime = join(worker, RUNTIME_DIR);
  try {
    const stat = lstatSync(worker);
    if (!stat.isDirectory()) throw new LockPathError(worker, 'is not a directory');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') throw new LockPathError(worker, 'no such worker directory');
    throw error;
  }
  mkdirSync(runtime, { recursive: true, mode: 0o755 });
  if (!lstatSync(runtime).isDirectory()) throw new LockPathError(runtime, 'is not a directory (a symbolic link is not followed)');
  return runtime;
}

function runtimeDirExists(worker: string): boolean {
  const runtime = join(worker, RUNTIME_DIR);
  try {
    const stat = lstatSync(runtime);
    if (!stat.isDirectory()) throw new LockPathError(runtime, 'is not a directory (a symbolic link is not followed)');
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw error;
  }
}

/** Writes a new lock for `owner` whole (temp file, then rename) and returns it. Only under the flock. */
function writeLock(lockPath: string, owner: LockOwner, session: string | undefined): WorkerLockInfo {
  const info: WorkerLockInfo = {
    pid: owner.pid,
    acquired_at: new Date().toISOString(),
    ...(session ? { session_id: session } : {}),
    hostname: owner.hostname,
    pid_start_time: owner.pidStartTime,
    boot_id: owner.bootId,
    lock_id: randomUUID(),
    owner: 'warden',
  };
  const temp = `${lockPath}.warden-${process.pid}.tmp`;
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  let fd: number;
  try {
    fd = openSync(temp, flags, 0o644);
  } catch (error) {
    // Left by a dead process with our pid: under the flock nobody else can be using it.
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    unlinkSync(temp);
    fd = openSync(temp, flags, 0o644);
  }
  try {
    writeSync(fd, `${JSON.stringify(info, null, 2)}\n`);
  } catch (error) {
    closeSync(fd);
    unlinkSync(temp);
    throw error;
  }
  closeSync(fd);
  renameSync(temp, lockPath);
  return info;
}

/** Renames an unreadable lock out of the way, keeping it for whoever wants to look; returns the new name. */
function moveAside(lockPath: string): string {
  const keptAs = `${lockPath}.corrupt-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  renameSync(lockPath, keptAs);
  return keptAs;
}
