/**
 * Append throughput of LogWriter per fsync mode, against the floor of writing the very same
 * lines with one plain `fs.writeSync` per line to an O_APPEND file.
 */
import { closeSync, constants, fsyncSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { LogWriter, type FsyncMode } from '../src/store/logWriter.js';
import { chainSum, sumHex, type NewRecord } from '../src/store/record.js';
import {
  fmtMB,
  fmtPct,
  fmtRate,
  interleave,
  medianRate,
  printTable,
  ratioSpread,
  verdict,
  type Bench,
  type Contender,
  type Result,
} from './stats.js';

const RECORDS = 20_000; // never, batch
const RECORDS_ALWAYS = 400; // one fsync each
const BURST = 250; // records appended between two turns of the event loop (so batch timers can fire)
const REPS = 7;
const WARMUP = 1;
const TARGET_NEVER = 0.5;
// Records per group commit in the grouped cases: a drain of the runner's mailboxes under load.
const GROUP = 16;

const JOBS = ['07-fix-login', '12-add-search', '03-bump-deps', '21-flaky-e2e', '09-docs-cli', '15-perf-replay'];
const STATES = ['queued', { running: 'working' }, { running: 'waitingForResult' }, 'reviewing', 'done'];

/** A small deterministic PRNG, so every run writes the same bytes. */
function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

function hex16(next: () => number): string {
  let out = '';
  for (let i = 0; i < 16; i++) out += Math.floor(next() * 16).toString(16);
  return out;
}

/** Records shaped like a job supervisor's: envelope, a 100–200 byte data object, state, hash, a couple of effects. */
export function makeRecords(count: number): NewRecord[] {
  const next = prng(42);
  const runId = randomUUID();
  const t0 = Date.parse('2026-11-23T09:00:00.000Z');
  const records: NewRecord[] = [];
  for (let i = 0; i < count; i++) {
    const job = JOBS[i % JOBS.length]!;
    const actor = `job:${job}`;
    const attempt = 1 + (i % 3);
    const kind = i % 4;
    let type: string;
    let data: unknown;
    if (kind === 0) {
      type = 'job.resultSeen';
      data = {
        attempt,
        exitCode: next() < 0.8 ? 0 : 1,
        durationMs: Math.floor(next() * 600_000),
        summary: `Fixed ${job.slice(3)}: updated handler, added ${1 + Math.floor(next() * 9)} tests`,
        files: ['src/auth/login.ts', 'test/auth/login.test.ts'],
      };
    } else if (kind === 1) {
      type = 'process.stdout';
      data = { pid: 10_000 + Math.floor(next() * 50_000), line: `[agent] step ${i}: running npm test -- --reporter=dot (${attempt}/3)` };
    } else if (kind === 2) {
      type = 'process.exited';
      data = { pid: 10_000 + Math.floor(next() * 50_000), code: 0, signal: null, cpuMs: Math.floor(next() * 90_000), maxRssKb: 412_000 };
    } else {
      type = 'timer.fired';
      data = { id: 'xstate.after.heartbeat.job.running', armedSeq: Math.max(1, i - 3), event: { type: 'xstate.after.heartbeat.job.running' } };
    }
    records.push({
      ts: new Date(t0 + i * 37).toISOString(),
      runId,
      epoch: 3,
      actor,
      type,
      data,
      state: STATES[i % STATES.length]!,
      hash: hex16(next),
      effects: [
        { type: 'timer.cancel', params: { id: 'xstate.after.heartbeat.job.running' } },
        {
          type: 'timer.arm',
          params: {
            id: 'xstate.after.heartbeat.job.running',
            event: { type: 'xstate.after.heartbeat.job.running' },
            delayMs: 30_000,
            dueAt: t0 + i * 37 + 30_000,
          },
        },
      ],
    });
  }
  return records;
}

/**
 * The lines LogWriter writes for these records (seq from 1), newline included: each closed by its
 * chained sum, computed here once, so the floor writes the very same bytes without paying for it.
 */
function linesOf(records: readonly NewRecord[]): string[] {
  let sum = 0;
  return records.map((r, i) => {
    const ordered: Record<string, unknown> = { seq: i + 1, ts: r.ts, runId: r.runId, epoch: r.epoch, actor: r.actor, type: r.type, data: r.data };
    if (r.state !== undefined) ordered.state = r.state;
    if (r.hash !== undefined) ordered.hash = r.hash;
    if (r.effects !== undefined) ordered.effects = r.effects;
    const open = JSON.stringify(ordered).slice(0, -1);
    sum = chainSum(open, sum);
    return `${open},"sum":"${sumHex(sum)}"}\n`;
  });
}

const yieldToLoop = () => new Promise<void>((resolve) => setImmediate(resolve));

let fileNo = 0;

async function writeFloor(dir: string, lines: readonly string[], fsyncEach: boolean, keep = false): Promise<string> {
  const path = join(dir, `floor-${fileNo++}.jsonl`);
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND, 0o600);
  try {
    for (let i = 0; i < lines.length; i++) {
      writeSync(fd, lines[i]!);
      if (fsyncEach) fsyncSync(fd);
      if ((i + 1) % BURST === 0) await yieldToLoop();
    }
  } finally {
    closeSync(fd);
  }
  if (!keep) rmSync(path);
  return path;
}

async function writeLog(dir: string, records: readonly NewRecord[], fsync: FsyncMode, keep = false): Promise<string> {
  const path = join(dir, `log-${fsync}-${fileNo++}.jsonl`);
  const writer = LogWriter.open(path, { fsync });
  try {
    for (let i = 0; i < records.length; i++) {
      writer.append(records[i]!);
      if ((i + 1) % BURST === 0) await yieldToLoop();
    }
  } finally {
    writer.close();
  }
  if (!keep) rmSync(path);
  return path;
}

/**
 * A reference, not a contender: the least a JSON-lines logger can do per record — JSON.stringify
 * and one writeSync, with no check and no seq bookkeeping. It shows how much of the floor is
 * out of reach for any writer that serialises per record.
 */
async function writeNaive(dir: string, records: readonly NewRecord[]): Promise<string> {
  const path = join(dir, `naive-${fileNo++}.jsonl`);
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_APPEND, 0o600);
  try {
    for (let i = 0; i < records.length; i++) {
      writeSync(fd, `${JSON.stringify({ seq: i + 1, ...records[i] })}\n`);
      if ((i + 1) % BURST === 0) await yieldToLoop();
    }
  } finally {
    closeSync(fd);
  }
  rmSync(path);
  return path;
}

/**
 * The runner's way: stage a group of records (one drain of the mailboxes), then commit them with
 * one write and, per mode, one fsync.
 */
async function writeLogGrouped(dir: string, records: readonly NewRecord[], fsync: FsyncMode, group: number): Promise<string> {
  const path = join(dir, `log-${fsync}-g${group}-${fileNo++}.jsonl`);
  const writer = LogWriter.open(path, { fsync });
  try {
    for (let i = 0; i < records.length; i++) {
      writer.stage(records[i]!);
      if ((i + 1) % group === 0) writer.commit();
      if ((i + 1) % BURST === 0) await yieldToLoop();
    }
  } finally {
    writer.close();
  }
  rmSync(path);
  return path;
}

export const appendBench: Bench = {
  name: 'append',
  title: 'Append throughput per fsync mode vs plain writeSync of the same lines',
  async run() {
    const dir = mkdtempSync(join(tmpdir(), 'warden-bench-append-'));
    const results: Result[] = [];
    try {
      const records = makeRecords(RECORDS);
      const lines = linesOf(records);
      const bytes = lines.reduce((n, l) => n + Buffer.byteLength(l), 0);

      // The floor must write exactly the bytes the writer writes.
      const a = await writeFloor(dir, lines.slice(0, 500), false, true);
      const b = await writeLog(dir, records.slice(0, 500), 'never', true);
      if (!readFileSync(a).equals(readFileSync(b))) throw new Error('append bench: floor lines differ from LogWriter lines');
      rmSync(a);
      rmSync(b);
      console.log(
        `  ${RECORDS.toLocaleString('en-US')} records, ${(bytes / 1e6).toFixed(2)} MB, ` +
          `${Math.round(bytes / RECORDS)} B/record; appended in bursts of ${BURST} with a setImmediate between bursts`,
      );

      const contenders: Contender[] = [
        { label: 'floor', fn: () => writeFloor(dir, lines, false) },
        { label: 'never', fn: () => writeLog(dir, records, 'never') },
        { label: 'batch', fn: () => writeLog(dir, records, 'batch') },
        { label: 'never/g', fn: () => writeLogGrouped(dir, records, 'never', GROUP) },
        { label: 'naive', fn: () => writeNaive(dir, records) },
      ];
      const main = await interleave(contenders, REPS, WARMUP);

      const fewRecords = records.slice(0, RECORDS_ALWAYS);
      const fewLines = lines.slice(0, RECORDS_ALWAYS);
      const fewBytes = fewLines.reduce((n, l) => n + Buffer.byteLength(l), 0);
      const always = await interleave(
        [
          { label: 'floor', fn: () => writeFloor(dir, fewLines, false) },
          { label: 'always', fn: () => writeLog(dir, fewRecords, 'always') },
          { label: 'floor+fsync', fn: () => writeFloor(dir, fewLines, true) },
          { label: 'always/g', fn: () => writeLogGrouped(dir, fewRecords, 'always', GROUP) },
        ],
        5,
        1,
      );

      const rows: string[][] = [];
      const add = (
        mode: string,
        floorLabel: string,
        floorSeconds: number[],
        seconds: number[],
        n: number,
        size: number,
        target?: number,
      ) => {
        const floor = medianRate(floorSeconds, n);
        const measured = medianRate(seconds, n);
        const ratio = measured / floor;
        const [lo, hi] = ratioSpread(seconds, floorSeconds);
        const pass = target === undefined ? undefined : ratio >= target;
        rows.push([
          mode,
          n.toLocaleString('en-US'),
          floorLabel,
          fmtRate(floor),
          fmtMB(medianRate(floorSeconds, size)),
          fmtRate(measured),
          fmtMB(medianRate(seconds, size)),
          fmtPct(ratio),
          `${fmtPct(lo)}–${fmtPct(hi)}`,
          target === undefined ? '-' : `>= ${fmtPct(target)}`,
          verdict(pass),
        ]);
        results.push({
          bench: 'append',
          case: `${mode} vs ${floorLabel}`,
          unit: 'records/s',
          floor,
          measured,
          ratio,
          ...(target === undefined ? {} : { target: `>= ${fmtPct(target)} of floor`, pass }),
        });
      };
      const [floorMain, never, batch, neverGrouped, naive] = main;
      const [floorFew, alwaysS, floorFsync, alwaysGrouped] = always;
      add('never, 1 record/commit', 'writeSync', floorMain!.seconds, never!.seconds, RECORDS, bytes, TARGET_NEVER);
      add(`never, ${GROUP} records/commit`, 'writeSync', floorMain!.seconds, neverGrouped!.seconds, RECORDS, bytes, TARGET_NEVER);
      add('ref: stringify+writeSync, no checks', 'writeSync', floorMain!.seconds, naive!.seconds, RECORDS, bytes);
      add('batch (50 ms)', 'writeSync', floorMain!.seconds, batch!.seconds, RECORDS, bytes);
      add('always', 'writeSync', floorFew!.seconds, alwaysS!.seconds, RECORDS_ALWAYS, fewBytes);
      add('always', 'writeSync+fsync', floorFsync!.seconds, alwaysS!.seconds, RECORDS_ALWAYS, fewBytes);
      add(`always, ${GROUP} records/commit`, 'writeSync+fsync', floorFsync!.seconds, alwaysGrouped!.seconds, RECORDS_ALWAYS, fewBytes);
      printTable(
        `append: median of ${REPS} (always: 5), ratio = mode records/s / floor records/s`,
        ['mode', 'records', 'floor', 'floor rec/s', 'floor MB/s', 'rec/s', 'MB/s', 'ratio', 'ratio range', 'target', 'verdict'],
        rows,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    return results;
  },
};
