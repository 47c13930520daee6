import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { firstValueFrom, filter } from 'rxjs';
import { describe, expect, it } from 'vitest';
import { LeaseHeldError, LeaseLostError } from '../../src/errors.js';
import { builtInMachines } from '../../src/machines/catalogue.js';
import { acquireLease } from '../../src/runner/leaseSession.js';
import { replayLog } from '../../src/runner/replay.js';
import { readLog } from '../../src/store/logReader.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();
const FAST = { leaseTtlMs: 300, graceMs: 200, claimTtlMs: 200 };

describe('acquireLease', () => {
  it('logs the holding from acquisition to release, then removes the lock', async () => {
    const dir = tempDir();
    const lease = await acquireLease({ dir, ownerId: 'one', releaseOnExit: false });
    expect([lease.epoch, lease.actor]).toEqual([1, 'lease:1']);
    expect(lease.release('done')).toBe('released');
    expect(existsSync(join(dir, '.warden', 'scheduler.lock'))).toBe(false);
    const log = join(dir, '.warden', 'events.jsonl');
    expect(readLog(log).records.map((r) => [r.actor, r.type, r.state ?? null, r.epoch])).toEqual([
      ['runner', 'run.started', null, 1],
      ['lease:1', 'actor.started', 'idle', 1],
      ['lease:1', 'lease.acquired', 'held', 1],
      ['lease:1', 'lease.release', 'released', 1],
      ['runner', 'run.stopped', null, 1],
    ]);
    expect(replayLog(log, builtInMachines, { verify: true }).actors.map((a) => a.snapshot.value)).toEqual(['released']);
  });

  it('refuses with LeaseHeldError naming the live holder when not asked to wait', async () => {
    const dir = tempDir();
    const first = await acquireLease({ dir, ownerId: 'first', releaseOnExit: false });
    const refused = acquireLease({ dir, ownerId: 'second', releaseOnExit: false });
    await expect(refused).rejects.toBeInstanceOf(LeaseHeldError);
    await expect(refused).rejects.toMatchObject({ exitCode: 75, holder: { ownerId: 'first', epoch: 1 } });
    // The refused attempt keeps nothing (its temp file is removed); the holder's temp file is the lock.
    expect(readdirSync(join(dir, '.warden')).filter((n) => n.endsWith('.tmp'))).toHaveLength(1);
    first.release();
    expect(readdirSync(join(dir, '.warden')).filter((n) => n.endsWith('.tmp') || n.startsWith('scheduler.lock'))).toEqual([]);
  });

  it('waits passively and takes the lease when the holder lets go, recording whom it waited behind', async () => {
    const dir = tempDir();
    const first = await acquireLease({ dir, ownerId: 'first', releaseOnExit: false });
    const seen: string[] = [];
    const second = acquireLease({ dir, ownerId: 'second', wait: true, probeIntervalMs: 10_000, releaseOnExit: false, onBlocked: (h) => seen.push(h?.ownerId ?? '?') });
    // The release is seen through the directory watch, long before the 10 s probe.
    await new Promise((resolve) => setImmediate(resolve));
    first.release();
    const lease = await second;
    expect(lease.epoch).toBe(2);
    expect(seen).toEqual(['first']);
    const acquired = readLog(join(dir, '.warden', 'events.jsonl')).records.find((r) => r.actor === 'lease:2' && r.type === 'lease.acquired');
    expect(acquired?.data).toMatchObject({ blockedBy: [{ ownerId: 'first', epoch: 1 }], predecessor: null });
    lease.release();
  });

  it('renews every third of the TTL, moving renewedAt on in the lock file', async () => {
    const dir = tempDir();
    const lease = await acquireLease({ dir, ownerId: 'one', timings: FAST, releaseOnExit: false });
    const before = JSON.parse(readFileSync(join(dir, '.warden', 'scheduler.lock'), 'utf8')).renewedAt;
    // Two renewals: renewing → held twice.
    await firstValueFrom(lease.state$.pipe(filter((s) => s === 'renewing')));
    await firstValueFrom(lease.state$.pipe(filter((s) => s === 'held')));
    await firstValueFrom(lease.state$.pipe(filter((s) => s === 'renewing')));
    await firstValueFrom(lease.state$.pipe(filter((s) => s === 'held')));
    const after = JSON.parse(readFileSync(join(dir, '.warden', 'scheduler.lock'), 'utf8')).renewedAt;
    expect(Date.parse(after)).toBeGreaterThan(Date.parse(before));
    lease.release();
    const renewed = readLog(join(dir, '.warden', 'events.jsonl')).records.filter((r) => r.type === 'lease.renewed');
    expect(renewed.length).toBeGreaterThanOrEqual(2);
  });

  it('when taken over, reports the loss and writes nothing more under its epoch', async () => {
    const dir = tempDir();
    const lease = await acquireLease({ dir, ownerId: 'one', timings: FAST, releaseOnExit: false });
    const lockPath = join(dir, '.warden', 'scheduler.lock');
    const log = join(dir, '.warden', 'events.jsonl');
    // Another holder's lock, as a takeover would leave it.
    const theirs = { ...JSON.parse(readFileSync(lockPath, 'utf8')), ownerId: 'usurper', lockId: 'theirs', epoch: 2 };
    writeFileSync(lockPath, JSON.stringify(theirs));
    const recordsAtTakeover = readLog(log).records.length;
    const error = await lease.lost;
    expect(error).toBeInstanceOf(LeaseLostError);
    expect(error.message).toContain('held by usurper');
    expect(readLog(log).records).toHaveLength(recordsAtTakeover);
    // A release afterwards leaves the usurper's lock alone and writes nothing.
    expect(lease.release()).toBe('not ours');
    expect(JSON.parse(readFileSync(lockPath, 'utf8')).lockId).toBe('theirs');
    expect(readLog(log).records).toHaveLength(recordsAtTakeover);
  });
});

describe('acquireLease on a project whose log is malformed', () => {
  it('gives the lease back and reports the log', async () => {
    const dir = tempDir();
    const { mkdirSync } = await import('node:fs');
    mkdirSync(join(dir, '.warden'));
    writeFileSync(join(dir, '.warden', 'events.jsonl'), 'not a record\n');
    await expect(acquireLease({ dir, releaseOnExit: false })).rejects.toThrow(/events\.jsonl:0: last record is not JSON/);
    expect(existsSync(join(dir, '.warden', 'scheduler.lock'))).toBe(false);
  });
});
