/**
 * Reading one worker lock file, `<worker>/.runtime/agent.lock` (the format: workerLock.ts and
 * docs/worker-locks.md). Kept free of any library: the doctor reads thousands of these in a
 * process whose run time is mostly its own startup, and loading a schema library costs more than
 * the whole walk (bench/RESULTS.md, "worker lock scan"). The checks are few and written out here.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { LockPathError } from '../errors.js';

export const RUNTIME_DIR = '.runtime';
export const LOCK_NAME = 'agent.lock';
/** Larger than any lock anyone writes; a bigger file is reported as corrupt, and only this much is read. */
const READ_CAP = 64 * 1024;

/** RFC 3339 date-time, as Go's time.Time marshals it (any fraction, Z or an offset). */
const RFC3339 = /^\d{4}-\d{2}-\d{2}[Tt]\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:[Zz]|[+-]\d{2}:\d{2})$/;

/**
 * A worker lock as read: gastown's keys and Warden's. `pid` is kept unknown — a malformed pid is
 * a dead owner, not a corrupt file. Unknown keys are kept (a newer gastown may add some).
 */
export interface WorkerLockInfo {
  pid: unknown;
  /** RFC 3339. */
  acquired_at: string;
  session_id?: string;
  hostname?: string;
  /** Warden: /proc/<pid>/stat field 22 of the owner. */
  pid_start_time?: string | null;
  /** Warden: the boot the owner ran in. */
  boot_id?: string | null;
  /** Warden: a fresh nonce per acquisition. */
  lock_id?: string;
  /** Warden: "warden". */
  owner?: string;
  [key: string]: unknown;
}

/** What is at a worker's lock path. */
export type LockFileState =
  | { kind: 'absent' }
  | { kind: 'lock'; info: WorkerLockInfo; bytes: string; uid: number; mtimeMs: number }
  | { kind: 'corrupt'; reason: string; uid: number; mtimeMs: number; directory: boolean };

export function lockPathOf(worker: string): string {
  return join(worker, RUNTIME_DIR, LOCK_NAME);
}

const OPTIONAL_STRINGS = ['session_id', 'hostname', 'lock_id', 'owner'] as const;
const NULLABLE_STRINGS = ['pid_start_time', 'boot_id'] as const;

/**
 * Checks parsed JSON as a worker lock: the lock, or what is wrong with it (naming the field).
 * @example parseWorkerLock({ pid: 1, acquired_at: 'now' }) // { ok: false, reason: 'acquired_at: not an RFC 3339 time' }
 */
export function parseWorkerLock(json: unknown): { ok: true; info: WorkerLockInfo } | { ok: false; reason: string } {
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    return { ok: false, reason: `(root): expected an object, got ${json === null ? 'null' : Array.isArray(json) ? 'an array' : typeof json}` };
  }
  const lock = json as Record<string, unknown>;
  if (!('pid' in lock)) return { ok: false, reason: 'pid: missing' };
  const at = lock.acquired_at;
  if (typeof at !== 'string') return { ok: false, reason: `acquired_at: expected a string, got ${describe(at)}` };
  if (!RFC3339.test(at)) return { ok: false, reason: 'acquired_at: not an RFC 3339 time' };
  for (const key of OPTIONAL_STRINGS) {
    if (key in lock && typeof lock[key] !== 'string') return { ok: false, reason: `${key}: expected a string, got ${describe(lock[key])}` };
  }
  for (const key of NULLABLE_STRINGS) {
    if (key in lock && lock[key] !== null && typeof lock[key] !== 'string') return { ok: false, reason: `${key}: expected a string or null, got ${describe(lock[key])}` };
  }
  return { ok: true, info: lock as WorkerLockInfo };
}

function describe(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (value === null) return 'null';
  return Array.isArray(value) ? 'an array' : typeof value;
}

/** What is at `lockPath` now, without throwing for a corrupt lock. A symlink is refused, never followed. */
export function inspectLockFile(lockPath: string): LockFileState {
  let fd: number;
  try {
    fd = openSync(lockPath, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { kind: 'absent' };
    if (code === 'ELOOP') throw new LockPathError(lockPath, 'is a symbolic link; refusing to follow it');
    if (code === 'EISDIR') {
      const stat = lstatSync(lockPath);
      return { kind: 'corrupt', reason: 'a directory', uid: stat.uid, mtimeMs: stat.mtimeMs, directory: true };
    }
    throw error;
  }
  try {
    const stat = fstatSync(fd);
    const base = { uid: stat.uid, mtimeMs: stat.mtimeMs, directory: stat.isDirectory() };
    if (stat.isDirectory()) return { kind: 'corrupt', reason: 'a directory', ...base };
    if (!stat.isFile()) return { kind: 'corrupt', reason: 'not a regular file', ...base };
    if (stat.size > READ_CAP) return { kind: 'corrupt', reason: `${stat.size} bytes, too large for a lock`, ...base };
    const buffer = Buffer.alloc(stat.size);
    const bytes = buffer.toString('utf8', 0, readSync(fd, buffer, 0, buffer.length, 0));
    let json: unknown;
    try {
      json = JSON.parse(bytes);
    } catch {
      return { kind: 'corrupt', reason: stat.size === 0 ? 'empty' : 'not JSON', ...base };
    }
    const parsed = parseWorkerLock(json);
    if (!parsed.ok) return { kind: 'corrupt', reason: parsed.reason, ...base };
    return { kind: 'lock', info: parsed.info, bytes, uid: stat.uid, mtimeMs: stat.mtimeMs };
  } finally {
    closeSync(fd);
  }
}
