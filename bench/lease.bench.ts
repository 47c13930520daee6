/**
 * Lease acquire+release cycles per second, single process, uncontended, each sample in a fresh
 * temp dir: Warden's `LeaseOps` (the bare fast path, no logging), proper-lockfile's
 * `lockSync` + release, and the floor — a bare `open(wx)` + write + close + unlink of a lock-sized
 * JSON. References beside them: the floor with an fsync, and the bare temp + link + unlinks that
 * whole-file appearance costs.
 *
 * Warden with logging (`acquireLease` + `release()`: the lease actor's records appended to the
 * project log, fenced, and the log closed — with its default fsync at close) runs beside them.
 */
import { randomUUID } from 'node:crypto';
import { closeSync, existsSync, fsyncSync, linkSync, mkdtempSync, openSync, readdirSync, readFileSync, rmSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import lockfile from 'proper-lockfile';
import type { LeaseLock } from '../src/effects/leaseFile.js';
import { LeaseOps } from '../src/effects/leaseOps.js';
import { acquireLease } from '../src/runner/leaseSession.js';
import { currentIdentity } from '../src/effects/processIdentity.js';
import { fmtPct, fmtRate, interleave, median, printTable, ratioSpread, verdict, type Bench, type Contender, type Result } from './stats.js';

const REPS = 7;
const WARMUP = 1;
/** Each sample runs as many cycles as take about this long (measured per contender before the rounds). */
const SAMPLE_SECONDS = 0.2;
const MIN_CYCLES = 20;
const MAX_CYCLES = 200_000;
/** Warden must do at least this many cycles per second for each of proper-lockfile's. */
const TARGET_SPEEDUP = 3;
/** Warden's time per cycle may be at most this many times the floor's. */
const TARGET_FLOOR_FACTOR = 2;

/** A lock as Warden writes it (same fields, same sizes), for the floor to write. */
const IDENTITY = currentIdentity(); // LeaseOps reads it once too

function sampleLock(epoch: number): LeaseLock {
  const at = new Date().toISOString();
  const { pid, pidStartTime, bootId, hostname } = IDENTITY;
  return { ownerId: 'bench', lockId: randomUUID(), pid, pidStartTime, bootId, hostname, acquiredAt: at, renewedAt: at, epoch };
}

const LOCK_TEXT = `${JSON.stringify(sampleLock(1))}\n`;

function freshDir(label: string): string {
  return mkdtempSync(join(tmpdir(), `warden-bench-lease-${label}-`));
}

/** Runs `cycles` cycles of a contender in a fresh dir, checks what is left, removes the dir. */
type CycleRunner = (dir: string, cycles: number) => void | Promise<void>;

function floorCycles(dir: string, cycles: number): void {
  const path = join(dir, 'scheduler.lock');
  for (let i = 0; i < cycles; i++) {
    const fd = openSync(path, 'wx', 0o600);
    writeSync(fd, LOCK_TEXT);
    closeSync(fd);
    unlinkSync(path);
  }
}

function floorFsyncCycles(dir: string, cycles: number): void {
  const path = join(dir, 'scheduler.lock');
  for (let i = 0; i < cycles; i++) {
    const fd = openSync(path, 'wx', 0o600);
    writeSync(fd, LOCK_TEXT);
    fsyncSync(fd);
    closeSync(fd);
    unlinkSync(path);
  }
}

/**
 * The least the whole-or-nothing appearance costs: the same lock written to a temp file
 * and linked to the lock name (which fails if the name exists), temp unlinked, lock unlinked at
 * release — no epoch, no check at release, no JSON built per cycle.
 */
function linkFloorCycles(dir: string, cycles: number): void {
  const path = join(dir, 'scheduler.lock');
  const temp = join(dir, '.scheduler.lock.tmp');
  for (let i = 0; i < cycles; i++) {
    const fd = openSync(temp, 'wx', 0o600);
    writeSync(fd, LOCK_TEXT);
    closeSync(fd);
    linkSync(temp, path);
    unlinkSync(temp);
    unlinkSync(path);
  }
}

function wardenCycles(dir: string, cycles: number): void {
  const ops = new LeaseOps(dir, 'bench');
  for (let i = 0; i < cycles; i++) {
    const a = ops.tryAcquire();
    if (a.kind !== 'acquired') throw new Error(`lease bench: uncontended tryAcquire gave ${a.kind}`);
    if (ops.release(a.lock) !== 'released') throw new Error('lease bench: release of our own lock gave "not ours"');
  }
  ops.close();
  const left = readdirSync(dir).filter((n) => n !== 'scheduler.epoch');
  if (left.length > 0) throw new Error(`lease bench: Warden left ${left.join(', ')}`);
}

async function wardenLoggedCycles(dir: string, cycles: number): Promise<void> {
  for (let i = 0; i < cycles; i++) {
    const lease = await acquireLease({ dir, ownerId: 'bench', releaseOnExit: false });
    if (lease.release() !== 'released') throw new Error('lease bench: logged release gave "not ours"');
  }
  const records = readFileSync(join(dir, '.warden', 'events.jsonl'), 'utf8').split('\n').length - 1;
  if (records < cycles * 5) throw new Error(`lease bench: ${cycles} logged cycles wrote only ${records} records`);
}

function properLockfileCycles(dir: string, cycles: number): void {
  const file = join(dir, 'scheduler');
  writeFileSync(file, '');
  for (let i = 0; i < cycles; i++) {
    const release = lockfile.lockSync(file, { realpath: false });
    release();
  }
  if (existsSync(`${file}.lock`)) throw new Error('lease bench: proper-lockfile left its lock directory');
}

function inFreshDir(label: string, run: CycleRunner, cycles: number): () => Promise<void> {
  return async () => {
    const dir = freshDir(label);
    try {
      await run(dir, cycles);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };
}

/** How many cycles take about SAMPLE_SECONDS: cycles are run, doubling, until a batch takes 20 ms. */
async function calibrate(label: string, run: CycleRunner): Promise<number> {
  for (let n = 4; ; n *= 2) {
    const dir = freshDir(`${label}-cal`);
    try {
      const start = process.hrtime.bigint();
      await run(dir, n);
      const seconds = Number(process.hrtime.bigint() - start) / 1e9;
      if (seconds >= 0.02 || n >= MAX_CYCLES) {
        return Math.min(MAX_CYCLES, Math.max(MIN_CYCLES, Math.round((SAMPLE_SECONDS * n) / seconds)));
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

const us = (seconds: number) => (seconds * 1e6).toFixed(1);

export const leaseBench: Bench = {
  name: 'lease',
  title: 'Lease acquire+release cycles/s: Warden vs proper-lockfile vs open(wx)+write+close+unlink',
  async run() {
    const runners: { label: string; short: string; run: CycleRunner }[] = [
      { label: 'floor: open(wx)+write+close+unlink', short: 'floor', run: floorCycles },
      { label: 'Warden LeaseOps (no logging)', short: 'Warden', run: wardenCycles },
      { label: 'proper-lockfile lockSync+release', short: 'proper-lockfile', run: properLockfileCycles },
      { label: 'ref: floor + fsync before close', short: 'floor+fsync', run: floorFsyncCycles },
      { label: 'Warden acquireLease+release (logged)', short: 'Warden logged', run: wardenLoggedCycles },
      { label: 'ref: temp+write+close+link+unlink temp+unlink', short: 'link floor', run: linkFloorCycles },
    ];
    const counts: number[] = [];
    for (const r of runners) counts.push(await calibrate(r.short, r.run));
    console.log(
      `  lock content ${Buffer.byteLength(LOCK_TEXT)} B; proper-lockfile: sync API (lockSync, realpath: false, default stale 10 s / update 5 s; ` +
        'its update timer is cleared by the release, none lingers); each sample in a fresh temp dir under ' +
        `${tmpdir()}, cycles per sample ~${SAMPLE_SECONDS * 1000} ms: ` +
        runners.map((r, i) => `${r.short} ${counts[i]!.toLocaleString('en-US')}`).join(', '),
    );

    const contenders: Contender[] = runners.map((r, i) => ({ label: r.label, fn: inFreshDir(r.short, r.run, counts[i]!) }));
    const samples = await interleave(contenders, REPS, WARMUP);
    // Seconds per cycle, per round.
    const perCycle = samples.map((s, i) => s.seconds.map((sec) => sec / counts[i]!));
    const [floorS, wardenS, properS] = perCycle as [number[], number[], number[], number[]];
    const med = perCycle.map((s) => median(s));
    const [floorMed, wardenMed, properMed, , loggedMed, linkFloorMed] = med as [number, number, number, number, number, number];

    printTable(
      `lease: acquire+release cycles, single process, uncontended, median of ${REPS}`,
      ['contender', 'cycles/sample', 'µs/cycle', 'cycles/s', 'µs/cycle range'],
      runners.map((r, i) => [
        r.label,
        counts[i]!.toLocaleString('en-US'),
        us(med[i]!),
        fmtRate(1 / med[i]!),
        `${us(Math.min(...perCycle[i]!))}–${us(Math.max(...perCycle[i]!))}`,
      ]),
    );

    const speedup = properMed / wardenMed;
    const [speedLo, speedHi] = ratioSpread(wardenS, properS);
    const floorFactor = wardenMed / floorMed;
    const [floorLo, floorHi] = ratioSpread(floorS, wardenS); // per round: Warden s/cycle ÷ floor s/cycle
    const speedPass = speedup >= TARGET_SPEEDUP;
    const floorPass = floorFactor <= TARGET_FLOOR_FACTOR;
    printTable(
      'lease: ratios (medians; range over the rounds, each round paired)',
      ['case', 'ratio', 'range', 'target', 'verdict'],
      [
        ['Warden cycles/s ÷ proper-lockfile cycles/s', `${speedup.toFixed(2)}x`, `${speedLo.toFixed(2)}x–${speedHi.toFixed(2)}x`, `>= ${TARGET_SPEEDUP}x`, verdict(speedPass)],
        ['Warden µs/cycle ÷ floor µs/cycle', `${floorFactor.toFixed(2)}x`, `${floorLo.toFixed(2)}x–${floorHi.toFixed(2)}x`, `<= ${TARGET_FLOOR_FACTOR}x`, verdict(floorPass)],
        ['ref: link floor µs/cycle ÷ floor µs/cycle', `${(linkFloorMed / floorMed).toFixed(2)}x`, '-', '-', 'info'],
        ['ref: Warden µs/cycle ÷ link floor µs/cycle', `${(wardenMed / linkFloorMed).toFixed(2)}x`, '-', '-', 'info'],
        ['ref: Warden µs/cycle ÷ floor+fsync µs/cycle', `${(wardenMed / med[3]!).toFixed(2)}x`, '-', '-', 'info'],
        ['Warden logged µs/cycle ÷ floor+fsync µs/cycle', `${(loggedMed / med[3]!).toFixed(2)}x`, '-', '-', 'info'],
      ],
    );

    const results: Result[] = [
      {
        bench: 'lease',
        case: 'Warden LeaseOps vs proper-lockfile',
        unit: 'cycles/s',
        floor: 1 / properMed,
        measured: 1 / wardenMed,
        ratio: speedup,
        target: `>= ${TARGET_SPEEDUP}x proper-lockfile`,
        pass: speedPass,
      },
      {
        bench: 'lease',
        case: 'Warden LeaseOps vs open(wx)+write+close+unlink',
        unit: 'cycles/s',
        floor: 1 / floorMed,
        measured: 1 / wardenMed,
        ratio: 1 / floorFactor,
        target: `<= ${TARGET_FLOOR_FACTOR}x floor µs/cycle (>= ${fmtPct(1 / TARGET_FLOOR_FACTOR)})`,
        pass: floorPass,
      },
      {
        bench: 'lease',
        case: 'Warden acquireLease (logged) vs proper-lockfile',
        unit: 'cycles/s',
        floor: 1 / properMed,
        measured: 1 / loggedMed,
        ratio: properMed / loggedMed,
      },
      {
        bench: 'lease',
        case: 'ref: Warden LeaseOps vs floor + fsync',
        unit: 'cycles/s',
        floor: 1 / med[3]!,
        measured: 1 / wardenMed,
        ratio: med[3]! / wardenMed,
      },
    ];
    return results;
  },
};
