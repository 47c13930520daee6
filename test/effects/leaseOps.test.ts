import { existsSync, linkSync, mkdirSync, readFileSync, readdirSync, statSync, symlinkSync, unlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { LockPathError } from '../../src/errors.js';
import { LeaseOps, type LeaseTimings } from '../../src/effects/leaseOps.js';
import { currentIdentity } from '../../src/effects/processIdentity.js';
import { processGone } from '../helpers/processes.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();
const TIMINGS: LeaseTimings = { leaseTtlMs: 3_000, graceMs: 1_000, claimTtlMs: 1_000 };
const CONTENDER = join(import.meta.dirname, '../fixtures/lease/contender.mjs');

function setup() {
  const dir = join(tempDir(), '.warden');
  const ops = (ownerId = 'me') => new LeaseOps(dir, ownerId, TIMINGS);
  const lockPath = join(dir, 'scheduler.lock');
  const readLock = () => JSON.parse(readFileSync(lockPath, 'utf8'));
  return { dir, ops, lockPath, readLock };
}

/** A lock as another process would have written it. */
function foreignLock(fields: Record<string, unknown> = {}) {
  const at = new Date().toISOString();
  return { ownerId: 'other', lockId: 'l-1', pid: 999_999, pidStartTime: '1', bootId: currentIdentity().bootId, hostname: currentIdentity().hostname, acquiredAt: at, renewedAt: at, epoch: 7, ...fields };
}

function age(path: string, ms: number) {
  const then = new Date(Date.now() - ms);
  utimesSync(path, then, then);
}

describe('acquiring and releasing', () => {
  it('creates the lock whole, with epoch 1, and removes it on release', () => {
    const { ops, readLock, lockPath } = setup();
    const a = ops().tryAcquire();
    expect(a).toMatchObject({ kind: 'acquired', predecessor: null, lock: { ownerId: 'me', pid: process.pid, epoch: 1 } });
    expect(readLock()).toEqual(a.kind === 'acquired' && a.lock);
    expect(ops().release(a.kind === 'acquired' ? a.lock : (undefined as never))).toBe('released');
    expect(existsSync(lockPath)).toBe(false);
  });

  it('raises the epoch on every acquisition, across releases', () => {
    const { ops } = setup();
    const epochs: number[] = [];
    for (let i = 0; i < 3; i++) {
      const a = ops(`owner-${i}`).tryAcquire();
      if (a.kind !== 'acquired') throw new Error(a.kind);
      epochs.push(a.lock.epoch);
      ops(`owner-${i}`).release(a.lock);
    }
    expect(epochs).toEqual([1, 2, 3]);
  });

  it('is blocked by a live holder, and says who it is', () => {
    const { dir, ops } = setup();
    mkdirSync(dir, { recursive: true });
    const first = ops('first').tryAcquire();
    expect(first.kind).toBe('acquired');
    // Same process, another owner id: the holder (this pid, right start time) is alive.
    expect(ops('second').tryAcquire()).toMatchObject({ kind: 'blocked', holder: { ownerId: 'first' }, reason: 'held (pid+starttime)' });
  });

  it('answers again for a lock it already holds, without a new epoch', () => {
    const { ops } = setup();
    const a = ops().tryAcquire();
    const b = ops().tryAcquire();
    expect(b).toMatchObject({ kind: 'acquired', alreadyHeld: true, lock: { epoch: 1 } });
    expect(a.kind === 'acquired' && b.kind === 'acquired' && a.lock.lockId === b.lock.lockId).toBe(true);
  });

  it('never removes a lock that is not its own (another lockId)', () => {
    const { ops, readLock } = setup();
    const mine = ops('me').tryAcquire();
    if (mine.kind !== 'acquired') throw new Error(mine.kind);
    expect(ops('me').release({ ...mine.lock, lockId: 'someone-elses' })).toBe('not ours');
    expect(readLock().lockId).toBe(mine.lock.lockId);
  });
});

describe('recovering a stale lock', () => {
  it.each<[string, Record<string, unknown>, string]>([
    ['a dead pid', { pid: 999_999 }, 'dead'],
    ['a live pid whose start time differs (reused)', { pid: process.pid, pidStartTime: '1' }, 'pid-reused'],
    ['a boot id from before a reboot', { pid: process.pid, bootId: 'not-this-boot' }, 'rebooted'],
    ...[0, -1, 1.5, '12', 2 ** 31].map((pid): [string, Record<string, unknown>, string] => [`malformed pid ${JSON.stringify(pid)}`, { pid }, 'malformed-pid']),
  ])('takes over from %s at the next epoch', (_what, fields, reason) => {
    const { dir, ops, lockPath, readLock } = setup();
    mkdirSync(dir, { recursive: true });
    writeFileSync(lockPath, JSON.stringify(foreignLock(fields)));
    const a = ops().tryAcquire();
    expect(a).toMatchObject({ kind: 'acquired', lock: { epoch: 8 }, predecessor: { ownerId: 'other', epoch: 7, reason } });
    expect(readLock()).toMatchObject({ ownerId: 'me', pid: process.pid, epoch: 8 });
  });

  it('lets the same owner id re-acquire after a restart, writing the new pid', () => {
    const { dir, ops, lockPath, readLock } = setup();
    mkdirSync(dir, { recursive: true });
    writeFileSync(lockPath, JSON.stringify(foreignLock({ ownerId: 'me', pid: 999_999 })));
    expect(ops('me').tryAcquire()).toMatchObject({ kind: 'acquired', predecessor: { reason: 'resumed by the same owner; dead' } });
    expect(readLock()).toMatchObject({ ownerId: 'me', pid: process.pid });
  });

  it('judges a lock from another host by its lease: not taken before the TTL, taken after', () => {
    const { dir, ops, lockPath } = setup();
    mkdirSync(dir, { recursive: true });
    // Another host, and a pid that is alive here: the local probe must not be consulted.
    const renewed = Date.now() - 2_000;
    writeFileSync(lockPath, JSON.stringify(foreignLock({ hostname: 'elsewhere', pid: 1, renewedAt: new Date(renewed).toISOString(), ttlMs: TIMINGS.leaseTtlMs })));
    expect(ops().tryAcquire(renewed + TIMINGS.leaseTtlMs - 1)).toMatchObject({ kind: 'blocked', reason: 'held (lease-ttl)' });
    expect(ops().tryAcquire(renewed + TIMINGS.leaseTtlMs)).toMatchObject({ kind: 'acquired', predecessor: { reason: 'lease-expired' } });
  });

  it("judges a holder on another host by the holder's recorded TTL, never the waiter's shorter one", () => {
    const { dir, readLock } = setup();
    const holder = new LeaseOps(dir, 'holder', { ...TIMINGS, leaseTtlMs: 30_000 });
    const now = Date.now();
    expect(holder.tryAcquire(now)).toMatchObject({ kind: 'acquired' });
    expect(readLock().ttlMs).toBe(30_000);
    const saved = process.env.WARDEN_HOSTNAME;
    process.env.WARDEN_HOSTNAME = 'other-host';
    try {
      const waiter = new LeaseOps(dir, 'waiter', TIMINGS); // --ttl-ms 3000
      expect(waiter.tryAcquire(now + 3_500)).toMatchObject({ kind: 'blocked', reason: 'held (lease-ttl)' });
      expect(waiter.tryAcquire(now + 29_999)).toMatchObject({ kind: 'blocked', reason: 'held (lease-ttl)' });
      expect(waiter.status(now + 3_500)).toMatchObject({ held: true, live: true, basis: 'lease-ttl' });
      expect(waiter.tryAcquire(now + 30_000)).toMatchObject({ kind: 'acquired', predecessor: { ownerId: 'holder', reason: 'lease-expired' } });
      expect(readLock()).toMatchObject({ ownerId: 'waiter', ttlMs: TIMINGS.leaseTtlMs });
      waiter.close();
    } finally {
      if (saved === undefined) delete process.env.WARDEN_HOSTNAME;
      else process.env.WARDEN_HOSTNAME = saved;
      holder.close();
    }
  });

  it('a lock from another host that records no TTL (an older Warden) is judged by the longer of the waiter\'s TTL and the 60 s default', () => {
    const { dir, ops, lockPath } = setup();
    mkdirSync(dir, { recursive: true });
    const renewed = Date.now() - 5_000;
    writeFileSync(lockPath, JSON.stringify(foreignLock({ hostname: 'elsewhere', renewedAt: new Date(renewed).toISOString() })));
    expect(ops().tryAcquire(renewed + 59_999)).toMatchObject({ kind: 'blocked', reason: 'held (lease-ttl)' });
    expect(ops().tryAcquire(renewed + 60_000)).toMatchObject({ kind: 'acquired', predecessor: { reason: 'lease-expired' } });
  });

  it.each([
    ['empty', (p: string) => writeFileSync(p, '')],
    ['not JSON', (p: string) => writeFileSync(p, '{"ownerId": ')],
    ['of the wrong types', (p: string) => writeFileSync(p, JSON.stringify(foreignLock({ epoch: 'seven' })))],
    ['10 MB of garbage', (p: string) => writeFileSync(p, Buffer.alloc(10 * 1024 * 1024, 0x5a))],
    ['a directory', (p: string) => mkdirSync(p)],
  ])('treats a lock that is %s as held while young and recovers it once older than the grace period', (_what, make) => {
    const { dir, ops, lockPath, readLock } = setup();
    mkdirSync(dir, { recursive: true });
    make(lockPath);
    expect(ops().tryAcquire()).toMatchObject({ kind: 'blocked', holder: null });
    age(lockPath, TIMINGS.graceMs + 1);
    expect(ops().tryAcquire()).toMatchObject({ kind: 'acquired', lock: { epoch: 1 }, predecessor: { reason: expect.stringMatching(/^corrupt: /) } });
    expect(readLock().ownerId).toBe('me');
  });

  it('refuses a symlink at the lock path and writes nothing through it', () => {
    const { dir, ops, lockPath } = setup();
    mkdirSync(dir, { recursive: true });
    const target = join(dir, '..', 'precious.txt');
    writeFileSync(target, 'do not touch');
    symlinkSync(target, lockPath);
    expect(() => ops().tryAcquire()).toThrow(LockPathError);
    expect(() => ops().tryAcquire()).toThrow(/is a symbolic link; refusing to follow it/);
    expect(readFileSync(target, 'utf8')).toBe('do not touch');
  });

  it('leaves no claim files behind after takeovers', () => {
    const { dir, ops, lockPath } = setup();
    mkdirSync(dir, { recursive: true });
    writeFileSync(lockPath, JSON.stringify(foreignLock()));
    const taker = ops();
    const a = taker.tryAcquire();
    if (a.kind !== 'acquired') throw new Error(a.kind);
    const renewer = ops();
    renewer.renew(a.lock);
    expect(readdirSync(dir).filter((n) => n.includes('claim'))).toEqual([]);
    // Each instance keeps one temp file of its own (see "the pinned temp file") until closed.
    taker.close();
    renewer.close();
    expect(readdirSync(dir).filter((n) => n.includes('claim') || n.endsWith('.tmp'))).toEqual([]);
  });
});

describe('renewing', () => {
  it('moves renewedAt on while the lock is ours, and reports it lost once it is not', () => {
    const { dir, ops, lockPath, readLock } = setup();
    const a = ops().tryAcquire(Date.parse('2026-11-23T09:00:00.000Z'));
    if (a.kind !== 'acquired') throw new Error(a.kind);
    const r = ops().renew(a.lock, Date.parse('2026-11-23T09:00:20.000Z'));
    expect(r).toMatchObject({ kind: 'renewed', lock: { renewedAt: '2026-11-23T09:00:20.000Z', lockId: a.lock.lockId } });
    writeFileSync(lockPath, JSON.stringify(foreignLock({ pid: process.pid, pidStartTime: currentIdentity().pidStartTime })));
    expect(ops().renew(a.lock)).toMatchObject({ kind: 'lost', reason: expect.stringContaining('held by other') });
    expect(readLock().ownerId).toBe('other');
    expect(dir).toBeTruthy();
  });
});

describe('races with a paused contender', () => {
  async function pausedContender(dir: string, pauseAt: string) {
    const child = execa('node', [CONTENDER, dir, 'paused-one', pauseAt], { reject: false });
    const lines: string[] = [];
    const seen = new Promise<void>((resolve) =>
      child.stdout!.on('data', (chunk: Buffer) => {
        lines.push(...chunk.toString().split('\n').filter(Boolean));
        if (lines.includes('paused')) resolve();
      }),
    );
    await seen;
    // "paused" is printed just before the SIGSTOP: wait until the kernel shows it stopped, or a
    // SIGCONT sent too early would be lost and the contender would sleep forever.
    const stat = () => readFileSync(`/proc/${child.pid}/stat`, 'utf8');
    for (let i = 0; i < 2_000 && stat()[stat().lastIndexOf(')') + 2] !== 'T'; i++) await new Promise((r) => setTimeout(r, 5));
    expect(stat()[stat().lastIndexOf(')') + 2]).toBe('T');
    return { child, lines };
  }

  it('a contender paused between judging a lock stale and acting does not become a second holder', async () => {
    const { dir, ops, lockPath, readLock } = setup();
    mkdirSync(dir, { recursive: true });
    writeFileSync(lockPath, JSON.stringify(foreignLock()));
    const { child, lines } = await pausedContender(dir, 'afterStaleDecision');
    // While it is stopped, another process recovers the same stale lock first.
    const winner = ops('winner').tryAcquire();
    expect(winner).toMatchObject({ kind: 'acquired', lock: { ownerId: 'winner', epoch: 8 } });
    child.kill('SIGCONT');
    await child;
    expect(lines.slice(1).map((l) => JSON.parse(l))).toEqual([
      { kind: 'retry', ownerId: null, epoch: null },
      { kind: 'blocked', ownerId: 'winner', epoch: null },
    ]);
    expect(readLock()).toMatchObject({ ownerId: 'winner', epoch: 8 });
    expect(processGone(child.pid!)).toBe(true);
  });

  it('a contender paused between creating and filling its lock is invisible until whole: others are never misled', async () => {
    const { dir, ops, readLock } = setup();
    const { child, lines } = await pausedContender(dir, 'afterTempCreated');
    // Its half-made lock is a private temp file: the lock name is free, and the next one takes it.
    const winner = ops('winner').tryAcquire();
    expect(winner).toMatchObject({ kind: 'acquired', lock: { ownerId: 'winner', epoch: 1 } });
    child.kill('SIGCONT');
    await child;
    // Its link then fails on the taken name, and it finds the winner holding the lease.
    expect(lines.slice(1).map((l) => JSON.parse(l))).toEqual([{ kind: 'blocked', ownerId: 'winner', epoch: null }]);
    expect(readLock().ownerId).toBe('winner');
  });
});

describe('a temp file left behind by a dead process with our pid', () => {
  it('is never rewritten in place: it may be the inode of the live lock', () => {
    const { ops, lockPath, readLock } = setup();
    const holder = ops('holder').tryAcquire();
    if (holder.kind !== 'acquired') throw new Error(holder.kind);
    // A process with this pid, SIGKILLed while holding, leaves its temp: a second name of the
    // lock file itself — under the name the next instance here will use.
    const other = ops('other');
    linkSync(lockPath, other.file.tempPath);
    // Another owner in this process (same pid) tries, and must not touch the holder's lock.
    expect(other.tryAcquire()).toMatchObject({ kind: 'blocked', holder: { ownerId: 'holder' } });
    expect(readLock()).toEqual(holder.lock);
  });
});

describe('the pinned temp file (reused between acquisitions)', () => {
  const cycle = (o: LeaseOps) => {
    const a = o.tryAcquire();
    if (a.kind !== 'acquired') throw new Error(a.kind);
    return a.lock;
  };

  it('is rewritten in place only once the lock is no longer a second name of it', () => {
    const { dir, ops, lockPath, readLock } = setup();
    const me = ops();
    const first = cycle(me);
    const pinnedIno = statSync(me.file.tempPath).ino;
    expect(statSync(lockPath).ino).toBe(pinnedIno);
    // Asking again while holding: the temp is the lock now, so it is not rewritten.
    expect(me.tryAcquire()).toMatchObject({ kind: 'acquired', alreadyHeld: true, lock: first });
    expect(readLock()).toEqual(first);
    expect(me.release(first)).toBe('released');
    // Released: the temp file waiting for the next lock (a fresh one, since the temp that was the
    // lock got dropped when asked again) carries it, rewritten whole before it is linked.
    const waiting = statSync(me.file.tempPath).ino;
    expect(waiting).not.toBe(pinnedIno);
    const second = cycle(me);
    expect(statSync(lockPath).ino).toBe(waiting);
    expect(readLock()).toEqual(second);
    expect(second.epoch).toBe(first.epoch + 1);
    me.release(second);
    me.close();
    expect(readdirSync(dir).sort()).toEqual(['scheduler.epoch']);
  });

  it('never rewrites the lock when it was taken over or renewed away from it', () => {
    const { ops, lockPath, readLock } = setup();
    const me = ops();
    const mine = cycle(me);
    // The lock (a second name of my temp) is removed behind my back and another owner takes it.
    unlinkSync(lockPath);
    const other = ops('other');
    const theirs = cycle(other);
    expect(me.release(mine)).toBe('not ours');
    expect(me.tryAcquire()).toMatchObject({ kind: 'blocked', holder: { ownerId: 'other' } });
    expect(readLock()).toEqual(theirs);
    // The other holder renews (its lock moves to a fresh file), releases, and I take the name:
    // my pinned temp was never the lock after all this, and neither file is touched twice.
    const renewed = other.renew(theirs);
    if (renewed.kind !== 'renewed') throw new Error(renewed.kind);
    expect(statSync(lockPath).ino).not.toBe(statSync(other.file.tempPath).ino);
    expect(other.release(renewed.lock)).toBe('released');
    const again = cycle(me);
    expect(readLock()).toEqual(again);
    // A renewal of mine leaves my pinned temp free: the next acquisition there is whole again.
    const renewedMine = me.renew(again);
    if (renewedMine.kind !== 'renewed') throw new Error(renewedMine.kind);
    const lockIno = statSync(lockPath).ino;
    expect(me.release(renewedMine.lock)).toBe('released');
    const last = cycle(me);
    expect(readLock()).toEqual(last);
    expect(statSync(lockPath).ino).not.toBe(lockIno);
    me.close();
    other.close();
    // Closing removes only the temp names: the lock stays.
    expect(readLock()).toEqual(last);
  });
});
