/**
 * Who a process is, and whether the owner a lock file records is still alive. A PID alone is
 * not an identity: PIDs are reused, so on Linux the start time and the boot ID pin it down; a
 * lock from another host is never judged by PID, only by its lease (DESIGN.md "Effects").
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { UsageError } from '../errors.js';

/** What a lock records about the process that holds it. */
export interface ProcessIdentity {
  pid: number;
  /** Linux: field 22 of /proc/<pid>/stat (clock ticks since boot), as a decimal string; null where unavailable. */
  pidStartTime: string | null;
  /** Linux: /proc/sys/kernel/random/boot_id; null where unavailable. */
  bootId: string | null;
  hostname: string;
}

/** Why a recorded owner is, or is not, taken to be alive. */
export type OwnerLiveness =
  | { alive: true; basis: 'pid+starttime' | 'pid-only' | 'lease-ttl' }
  | { alive: false; reason: 'malformed-pid' | 'dead' | 'pid-reused' | 'rebooted' | 'lease-expired' };

// pid_t is a signed 32-bit int, so nothing at or above this names a process.
const PID_LIMIT = 2 ** 31;

/**
 * A positive safe integer below 2**31. 0 and negative numbers are excluded because
 * `process.kill(0 | -1, 0)` addresses a group or every process and would read as alive.
 * @example isValidPid(process.pid) // true; isValidPid('12') // false
 */
export function isValidPid(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value > 0 && value < PID_LIMIT;
}

/**
 * This host's name: `os.hostname()`, unless `WARDEN_HOSTNAME` is set — a test hook that lets a
 * test pose as another host. An empty `WARDEN_HOSTNAME` is a UsageError, not a silent fallback.
 * @example localHostname() // 'build-01'
 */
export function localHostname(): string {
  const override = process.env['WARDEN_HOSTNAME'];
  // Asked once per process (a uname(2) each time otherwise: thousands in a doctor run).
  if (override === undefined) return (systemHostname ??= hostname());
  if (override === '') throw new UsageError('WARDEN_HOSTNAME is set but empty; unset it or name a host');
  return override;
}

let systemHostname: string | undefined;

/**
 * The start time of `pid` (field 22 of /proc/<pid>/stat), or null if the file is missing,
 * unreadable or garbled (no /proc, the process is gone, or hidden by `hidepid`).
 * @example readStartTime(process.pid) // '255590'
 */
export function readStartTime(pid: number): string | null {
  if (!isValidPid(pid)) return null;
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return null;
  }
  // comm (field 2) is in parentheses and may itself hold spaces and ')': only the last ')' ends it.
  const commEnd = stat.lastIndexOf(')');
  if (commEnd < 0) return null;
  // After "<comm>) " the fields start at 3 (state), so field 22 sits at index 19.
  const startTime = stat.slice(commEnd + 2).split(' ')[19];
  return startTime !== undefined && /^\d+$/.test(startTime) ? startTime : null;
}

/** Whether /proc says the process has exited and awaits reaping (state Z or X). */
export function isZombie(pid: number): boolean {
  let stat: string;
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  } catch {
    return false;
  }
  // Field 3, the state, is the first character after "<comm>) ".
  const state = stat[stat.lastIndexOf(')') + 2];
  return state === 'Z' || state === 'X';
}

/**
 * This boot's ID (/proc/sys/kernel/random/boot_id), or null where the kernel does not offer one.
 * @example readBootId() // '8a52f578-ede9-4a6a-a328-8b53456cfd8e'
 */
export function readBootId(): string | null {
  try {
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    return bootId === '' ? null : bootId;
  } catch {
    return null;
  }
}

let cached: Omit<ProcessIdentity, 'hostname'> | undefined;

/**
 * This process's identity. PID, start time and boot ID cannot change while it runs, so they are
 * read once; the hostname is read on every call so `WARDEN_HOSTNAME` takes effect in tests.
 * @example writeLock({ ...currentIdentity(), epoch })
 */
export function currentIdentity(): ProcessIdentity {
  cached ??= { pid: process.pid, pidStartTime: readStartTime(process.pid), bootId: readBootId() };
  return { ...cached, hostname: localHostname() };
}

/**
 * Signal-0 probe: 'alive' (also on EPERM: the process exists but is not ours), 'dead' (ESRCH).
 * Throws a UsageError on an invalid pid — never signals 0, -1 or a non-integer
 * (`process.kill(0, 0)` and `process.kill(-1, 0)` succeed in Node and would read as alive).
 * @example probePid(process.pid) // 'alive'
 */
export function probePid(pid: number): 'alive' | 'dead' {
  if (!isValidPid(pid)) throw new UsageError(`not a pid: ${String(pid)}`);
  try {
    process.kill(pid, 0);
    return 'alive';
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ESRCH') return 'dead';
    if (code === 'EPERM') return 'alive';
    throw error;
  }
}

/**
 * Judges a recorded owner. Same host (recorded hostname === localHostname()): a malformed pid is
 * not alive ('malformed-pid', never signalled); a recorded bootId that differs from this boot's is
 * 'rebooted'; then the signal-0 probe; then if both the recorded and the current start time are
 * known and differ, 'pid-reused'; if either start time is unknown the answer rests on the pid
 * alone ('pid-only', so callers can say so). Another host: never probed locally; alive while
 * now < renewedAtMs + ttlMs ('lease-ttl'), else 'lease-expired'.
 * @example
 * judgeOwner(lock.owner, { now: clock.now(), renewedAtMs: lock.renewedAtMs, ttlMs: 30_000 })
 * // { alive: false, reason: 'pid-reused' }
 */
export function judgeOwner(
  owner: { pid: unknown; pidStartTime?: string | null; bootId?: string | null; hostname: string },
  options: { now: number; renewedAtMs: number; ttlMs: number },
): OwnerLiveness {
  if (owner.hostname !== localHostname()) {
    // A PID from another host names nothing here; only the lease can vouch for its owner.
    return options.now < options.renewedAtMs + options.ttlMs
      ? { alive: true, basis: 'lease-ttl' }
      : { alive: false, reason: 'lease-expired' };
  }
  const { pid } = owner;
  if (!isValidPid(pid)) return { alive: false, reason: 'malformed-pid' };
  const bootId = currentIdentity().bootId;
  // Every PID recorded before a reboot is stale, even if a process now holds the same number.
  if (owner.bootId != null && bootId !== null && owner.bootId !== bootId) {
    return { alive: false, reason: 'rebooted' };
  }
  if (probePid(pid) === 'dead') return { alive: false, reason: 'dead' };
  // A zombie answers signal 0 until its parent reaps it, and where nothing reaps (a container
  // without an init) that is forever: it has exited all the same.
  if (isZombie(pid)) return { alive: false, reason: 'dead' };
  const recorded = owner.pidStartTime ?? null;
  const current = readStartTime(pid);
  if (recorded !== null && current !== null) {
    return recorded === current ? { alive: true, basis: 'pid+starttime' } : { alive: false, reason: 'pid-reused' };
  }
  // The stat file may be missing because the process exited after the probe: ask once more.
  if (current === null && probePid(pid) === 'dead') return { alive: false, reason: 'dead' };
  return { alive: true, basis: 'pid-only' };
}
