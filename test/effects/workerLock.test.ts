import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LockFormatError, LockHeldError, LockPathError } from '../../src/errors.js';
import { currentIdentity } from '../../src/effects/processIdentity.js';
import { tmuxProbe, wardenJobProbe } from '../../src/effects/sessionProbes.js';
import {
  acquireWorkerLock,
  checkWorkerLock,
  forceReleaseWorkerLock,
  ownerOf,
  readWorkerLock,
  releaseWorkerLock,
  workerLockStatus,
  type LockOwner,
} from '../../src/effects/workerLock.js';
import { useSleepers } from '../helpers/processes.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();
// Warden jobs, and tmux on a socket with no server behind it: every tmux session is gone.
const FAST = { graceMs: 1_000, probes: [wardenJobProbe(), tmuxProbe({ socket: `warden-test-none-${process.pid}` })] };

function worker(): { dir: string; lockPath: string; write: (content: unknown) => void; read: () => Record<string, unknown> } {
  const dir = join(tempDir(), 'worker');
  mkdirSync(join(dir, '.runtime'), { recursive: true });
  const lockPath = join(dir, '.runtime', 'agent.lock');
  return {
    dir,
    lockPath,
    write: (content) => writeFileSync(lockPath, typeof content === 'string' ? content : JSON.stringify(content)),
    read: () => JSON.parse(readFileSync(lockPath, 'utf8')) as Record<string, unknown>,
  };
}

/** A lock as gastown's Go code writes it: MarshalIndent, RFC 3339 with nanoseconds and a zone offset. */
function gastownLock(fields: Record<string, unknown> = {}): string {
  return JSON.stringify({ pid: 999_999_999, acquired_at: '2026-01-05T10:23:45.123456789-08:00', session_id: 'gt-town-polecat-ace', hostname: currentIdentity().hostname, ...fields }, null, '  ');
}

// Live processes other than us, to own locks; all killed after each test.

const liveProcess = useSleepers();

describe('the file format', () => {
  it('reads the files gastown writes (its four keys, nanosecond times with an offset, no Warden fields)', () => {
    const { dir, write } = worker();
    write(gastownLock({ pid: 4242 }));
    expect(readWorkerLock(dir)).toEqual({ pid: 4242, acquired_at: '2026-01-05T10:23:45.123456789-08:00', session_id: 'gt-town-polecat-ace', hostname: currentIdentity().hostname });
    // Go omits empty session_id and hostname.
    write({ pid: 4242, acquired_at: '2026-01-05T18:23:45Z' });
    expect(readWorkerLock(dir)).toEqual({ pid: 4242, acquired_at: '2026-01-05T18:23:45Z' });
  });

  it("writes gastown's four keys in gastown's formats, plus Warden's own", async () => {
    const { dir, read } = worker();
    const result = await acquireWorkerLock(dir, { session: '$3' }, FAST);
    const lock = read();
    expect(typeof lock.pid).toBe('number');
    expect(lock.pid).toBe(process.pid);
    // RFC 3339 as Go's time.Time parses it.
    expect(lock.acquired_at).toMatch(/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);
    expect(Math.abs(Date.parse(String(lock.acquired_at)) - Date.now())).toBeLessThan(60_000);
    expect(lock.session_id).toBe('$3');
    expect(lock.hostname).toBe(currentIdentity().hostname);
    expect(lock).toMatchObject({ pid_start_time: currentIdentity().pidStartTime, boot_id: currentIdentity().bootId, owner: 'warden' });
    expect(lock.lock_id).toEqual(expect.any(String));
    expect(result).toMatchObject({ kind: 'acquired', lock });
    // Whole: written beside and renamed into place, no temp files left.
    expect(readdirSync(join(dir, '.runtime')).sort()).toEqual(['agent.lock', 'agent.lock.flock']);
  });

  it('an unreadable lock is an error naming the file and the problem', () => {
    const { dir, write, lockPath } = worker();
    write('invalid json');
    expect(() => readWorkerLock(dir)).toThrow(LockFormatError);
    expect(() => readWorkerLock(dir)).toThrow(`${lockPath}: invalid lock file: not JSON`);
    write({ pid: 1, acquired_at: 'yesterday' });
    expect(() => readWorkerLock(dir)).toThrow(/acquired_at: not an RFC 3339 time/);
    write('x'.repeat(10 * 1024 * 1024));
    expect(() => readWorkerLock(dir)).toThrow(/10485760 bytes, too large for a lock/);
    const at = new Date().toISOString();
    for (const [content, reason] of [
      ['', 'empty'],
      [[1, 2], '(root): expected an object, got an array'],
      ['"a lock"', '(root): expected an object, got string'],
      [{ acquired_at: at }, 'pid: missing'],
      [{ pid: 1 }, 'acquired_at: expected a string, got nothing'],
      [{ pid: 1, acquired_at: 1767609825 }, 'acquired_at: expected a string, got number'],
      [{ pid: 1, acquired_at: '2026-01-05 10:23:45' }, 'acquired_at: not an RFC 3339 time'],
      [{ pid: 1, acquired_at: at, session_id: 7 }, 'session_id: expected a string, got number'],
      [{ pid: 1, acquired_at: at, hostname: null }, 'hostname: expected a string, got null'],
      [{ pid: 1, acquired_at: at, pid_start_time: 12 }, 'pid_start_time: expected a string or null, got number'],
      [{ pid: 1, acquired_at: at, boot_id: ['x'] }, 'boot_id: expected a string or null, got an array'],
    ] as const) {
      write(typeof content === 'string' ? content : JSON.stringify(content));
      expect(() => readWorkerLock(dir), JSON.stringify(content)).toThrow(`${lockPath}: invalid lock file: ${reason}`);
    }
    // Nullable Warden fields, and keys it does not know, are fine.
    write({ pid: 1, acquired_at: at, pid_start_time: null, boot_id: null, added_later: { x: 1 } });
    expect(readWorkerLock(dir)).toMatchObject({ pid: 1, added_later: { x: 1 } });
  });
});

describe('acquire, release, refresh, take over', () => {
  it('acquire, read and release round-trip; release leaves the coordination file', async () => {
    const { dir, lockPath } = worker();
    await acquireWorkerLock(dir, { session: 'test-session' }, FAST);
    expect(readWorkerLock(dir)).toMatchObject({ pid: process.pid, session_id: 'test-session' });
    expect(await releaseWorkerLock(dir, {}, FAST)).toBe('released');
    expect(readWorkerLock(dir)).toBeNull();
    expect(existsSync(`${lockPath}.flock`)).toBe(true);
    expect(await releaseWorkerLock(dir, {}, FAST)).toBe('unlocked');
  });

  it('the same owner re-acquiring with a new session refreshes the session', async () => {
    const { dir } = worker();
    await acquireWorkerLock(dir, { session: 'session-1' }, FAST);
    const again = await acquireWorkerLock(dir, { session: 'session-2' }, FAST);
    expect(again).toMatchObject({ kind: 'refreshed', previous: { session_id: 'session-1' }, lock: { session_id: 'session-2' } });
    expect(readWorkerLock(dir)?.session_id).toBe('session-2');
  });

  it('another live owner → LockHeldError with pid, session, hostname and acquired time; the lock is untouched', async () => {
    const { dir, read } = worker();
    const other = ownerOf(liveProcess().pid);
    await acquireWorkerLock(dir, { owner: other, session: 'theirs' }, FAST);
    const before = read();
    const refused = acquireWorkerLock(dir, { session: 'mine' }, FAST);
    await expect(refused).rejects.toBeInstanceOf(LockHeldError);
    await expect(refused).rejects.toMatchObject({
      exitCode: 75,
      holder: { pid: other.pid, session_id: 'theirs', hostname: other.hostname, acquired_at: before.acquired_at },
    });
    // Not ours to release either.
    expect(await releaseWorkerLock(dir, {}, FAST)).toBe('not ours');
    expect(read()).toEqual(before);
  });

  it('takes over a stale lock: dead PIDs 0, -1, 999999999 and malformed 2^40, 1.5, "12"', async () => {
    for (const pid of [0, -1, 999_999_999, 2 ** 40, 1.5, '12']) {
      const { dir, write } = worker();
      write(gastownLock({ pid, session_id: undefined }));
      const result = await acquireWorkerLock(dir, { session: 'new-session' }, FAST);
      expect(result, `pid ${JSON.stringify(pid)}`).toMatchObject({ kind: 'took-over', previous: { pid } });
      expect(readWorkerLock(dir)).toMatchObject({ pid: process.pid, session_id: 'new-session' });
    }
  });

  it('a live PID whose start time differs (a reused PID) is stale', async () => {
    const { dir, write } = worker();
    const { pid } = liveProcess();
    write({ pid, acquired_at: new Date().toISOString(), hostname: currentIdentity().hostname, pid_start_time: '1', boot_id: currentIdentity().bootId });
    expect(await workerLockStatus(dir, {}, FAST)).toMatchObject({ status: `stale (dead PID ${pid})`, state: 'stale', judgement: { pid: { reason: 'pid-reused' } } });
    expect(await acquireWorkerLock(dir, {}, FAST)).toMatchObject({ kind: 'took-over' });
  });

  it('EPERM from the probe means alive: a root-owned process is not stale to anyone', async () => {
    const { dir, write } = worker();
    // PID 1 always exists; for a non-root test run the probe answers EPERM.
    write({ pid: 1, acquired_at: new Date().toISOString(), hostname: currentIdentity().hostname });
    expect(await workerLockStatus(dir, {}, FAST)).toMatchObject({ state: 'live', status: 'locked by PID 1 (session: )' });
    await expect(acquireWorkerLock(dir, {}, FAST)).rejects.toBeInstanceOf(LockHeldError);
  });

  it('a lock from another host is never taken or cleaned from here', async () => {
    const { dir, write, read } = worker();
    write(gastownLock({ pid: 999_999_999, hostname: 'elsewhere' }));
    const before = read();
    await expect(acquireWorkerLock(dir, {}, FAST)).rejects.toThrow(/foreign: written on host elsewhere/);
    await expect(checkWorkerLock(dir, {}, FAST)).rejects.toBeInstanceOf(LockHeldError);
    expect(await workerLockStatus(dir, {}, FAST)).toMatchObject({ state: 'foreign' });
    expect(read()).toEqual(before);
  });

  it('an unreadable lock younger than the grace period is held; older, it is moved aside (kept), not deleted', async () => {
    const { dir, write, lockPath } = worker();
    write('{"pid": 12');
    await expect(acquireWorkerLock(dir, {}, FAST)).rejects.toThrow(/unreadable \(not JSON\) and younger than the grace period/);
    const old = new Date(Date.now() - 5_000);
    utimesSync(lockPath, old, old);
    const result = await acquireWorkerLock(dir, {}, FAST);
    if (result.kind !== 'replaced-corrupt') throw new Error(result.kind);
    expect(readFileSync(result.keptAs, 'utf8')).toBe('{"pid": 12');
    expect(readWorkerLock(dir)?.pid).toBe(process.pid);
  });

  it('refuses a symlink at the lock path and writes nothing through it', async () => {
    const { dir, lockPath } = worker();
    const target = join(dir, 'precious.txt');
    writeFileSync(target, 'do not touch');
    symlinkSync(target, lockPath);
    await expect(acquireWorkerLock(dir, {}, FAST)).rejects.toBeInstanceOf(LockPathError);
    await expect(forceReleaseWorkerLock(dir, FAST)).rejects.toThrow(/is a symbolic link; refusing to follow it/);
    expect(readFileSync(target, 'utf8')).toBe('do not touch');
  });

  it('refuses a .runtime that is a symlink', async () => {
    const dir = join(tempDir(), 'worker');
    mkdirSync(join(dir, '..', 'elsewhere'), { recursive: true });
    mkdirSync(dir);
    symlinkSync(join(dir, '..', 'elsewhere'), join(dir, '.runtime'));
    await expect(acquireWorkerLock(dir, {}, FAST)).rejects.toThrow(/\.runtime: is not a directory \(a symbolic link is not followed\)/);
    expect(readdirSync(join(dir, '..', 'elsewhere'))).toEqual([]);
  });

  it('forceRelease removes whoever holds it; an unreadable lock is moved aside', async () => {
    const { dir, write } = worker();
    const other = ownerOf(liveProcess().pid);
    await acquireWorkerLock(dir, { owner: other }, FAST);
    expect(await forceReleaseWorkerLock(dir, FAST)).toMatchObject({ kind: 'released', previous: { pid: other.pid } });
    expect(readWorkerLock(dir)).toBeNull();
    write('garbage');
    const moved = await forceReleaseWorkerLock(dir, FAST);
    expect(moved).toMatchObject({ kind: 'moved-aside', reason: 'not JSON' });
    expect(await forceReleaseWorkerLock(dir, FAST)).toEqual({ kind: 'unlocked' });
  });
});

describe('check and status (gastown semantics)', () => {
  it('check: fine when unlocked or ours; cleans a stale lock; refuses a live other owner', async () => {
    const { dir, write, lockPath } = worker();
    expect(await checkWorkerLock(dir, {}, FAST)).toEqual({ kind: 'unlocked' });
    await acquireWorkerLock(dir, { session: 'test' }, FAST);
    expect(await checkWorkerLock(dir, {}, FAST)).toMatchObject({ kind: 'ours' });
    write(gastownLock({ session_id: undefined }));
    expect(await checkWorkerLock(dir, {}, FAST)).toMatchObject({ kind: 'cleaned', previous: { pid: 999_999_999 } });
    expect(existsSync(lockPath)).toBe(false);
    await acquireWorkerLock(dir, { owner: ownerOf(liveProcess().pid), session: 'other-session' }, FAST);
    await expect(checkWorkerLock(dir, {}, FAST)).rejects.toThrow(/locked by PID \d+ \(session: other-session/);
    write('not json');
    await expect(checkWorkerLock(dir, {}, FAST)).rejects.toBeInstanceOf(LockFormatError);
  });

  it("status speaks gastown's strings", async () => {
    const { dir, write } = worker();
    expect((await workerLockStatus(dir, {}, FAST)).status).toBe('unlocked');
    await acquireWorkerLock(dir, { session: 'test' }, FAST);
    expect((await workerLockStatus(dir, {}, FAST)).status).toBe('locked (by us)');
    write(gastownLock({ session_id: 'dead' }));
    expect((await workerLockStatus(dir, {}, FAST)).status).toBe('stale (dead PID 999999999)');
    const { pid } = liveProcess();
    write({ pid, acquired_at: new Date().toISOString(), session_id: 'warden-job:x', hostname: currentIdentity().hostname });
    expect((await workerLockStatus(dir, {}, FAST)).status).toBe(`locked by PID ${pid} (session: warden-job:x)`);
  });
});

describe('sessions: a dead PID with a live session is a live agent', () => {
  it('is kept while its Warden job session lives, and taken once it is gone', async () => {
    const { dir, write } = worker();
    const job = randomUUID();
    // The agent outlived the process that took the lock: that pid is dead, the job runs on.
    const { child } = liveProcess({ WARDEN_JOB_ID: job });
    write({ pid: 999_999_999, acquired_at: new Date().toISOString(), session_id: `warden-job:${job}`, hostname: currentIdentity().hostname });
    expect(await workerLockStatus(dir, {}, FAST)).toMatchObject({ state: 'live', judgement: { session: { verdict: { kind: 'alive' } } } });
    await expect(acquireWorkerLock(dir, {}, FAST)).rejects.toThrow(/live: PID 999999999 dead, but session warden-job:\S+ alive/);
    await expect(checkWorkerLock(dir, {}, FAST)).rejects.toBeInstanceOf(LockHeldError);
    child.kill('SIGKILL');
    await child;
    expect(await acquireWorkerLock(dir, {}, FAST)).toMatchObject({ kind: 'took-over', judgement: { state: 'stale' } });
  });

  it('a probe that cannot answer makes nothing stale', async () => {
    const { dir, write, read } = worker();
    write({ pid: 999_999_999, acquired_at: new Date().toISOString(), session_id: 'warden-job:gone', hostname: currentIdentity().hostname });
    const before = read();
    const blind = { ...FAST, probes: [wardenJobProbe({ procDir: join(dir, 'no-proc-here') })] };
    expect(await workerLockStatus(dir, {}, blind)).toMatchObject({ state: 'unknown', judgement: { reason: expect.stringContaining('probe failed') } });
    await expect(acquireWorkerLock(dir, {}, blind)).rejects.toThrow(/unknown: PID 999999999 dead; session warden-job:gone unknown/);
    await expect(checkWorkerLock(dir, {}, blind)).rejects.toBeInstanceOf(LockHeldError);
    expect(read()).toEqual(before);
    // With no probe for that kind of session at all, likewise.
    await expect(acquireWorkerLock(dir, {}, { ...FAST, probes: [] })).rejects.toThrow(/no session probe answers/);
  });

  it('a live PID whose session is gone is orphaned, and still held', async () => {
    const { dir } = worker();
    const owner: LockOwner = ownerOf(liveProcess().pid);
    await acquireWorkerLock(dir, { owner, session: 'warden-job:never-started' }, FAST);
    expect(await workerLockStatus(dir, {}, FAST)).toMatchObject({ state: 'orphaned' });
    // Held all the same: acquire asks no session probe while the PID lives.
    await expect(acquireWorkerLock(dir, {}, FAST)).rejects.toThrow(/live: PID \d+ alive/);
    expect(statSync(join(dir, '.runtime', 'agent.lock')).isFile()).toBe(true);
  });
});
