/**
 * The job lifecycle (issue 5), in three parts, each beside a floor run in the same rounds:
 *
 * 1. Result-seen latency: a child prints 1,000 `{"type":"result",…}` lines 3–5 ms apart, each
 *    stamped `sentAt` (performance.timeOrigin + performance.now()) just before its write. Run as a
 *    job through the Runner (jobEffects, the built-in machines, a log of its own, as runJob builds
 *    it), each `job.resultSeen` record is stamped as the runner's subscribers get it: after its
 *    commit, i.e. once it is in the log. The nth record is the nth line printed (checked against
 *    the line lengths). Floor: the same child read by a bare `stdout.on('data')` line splitter.
 *    fsync 'batch' (the default) is judged; 'always' is reported beside it.
 * 2. Supervisor CPU: 20 jobs that printed two lines and then nothing (the fake agent, `--lines 1
 *    --linger forever`), all in alive.running, one runner; `process.cpuUsage()` of this process
 *    over a window (WARDEN_BENCH_CPU_SECONDS, default 30) that starts once the first
 *    WARDEN_BENCH_CPU_SETTLE_SECONDS (default 10) after all are up have passed (reported too).
 *    Floor: the same 20 children spawned bare, their pipes read, over the same slices.
 * 3. Kill time: a tree of 10 processes (bench/fixtures/tree.mjs: the agent, plain children, a
 *    nested shell, a setsid'd sleep, a double-forked daemon), all ignoring SIGTERM, all carrying
 *    WARDEN_JOB_ID. From the SIGKILL stage until all 10 have exited (gone, or a zombie): in a real
 *    job (cancel → terminating → killAfterMs → killing; timed from the firing of the killAfter
 *    timer), and `signalJobProcesses(jobId, pid, 'SIGKILL')` called directly on a job spawned by
 *    jobEffects. Floor: `process.kill(-pgid, 'SIGKILL')` on a plain process group of 10 sleeps.
 *    Exits are watched from a worker thread, so a busy main thread does not delay seeing them.
 *    WARDEN_BENCH_KILL_BACKGROUND=N adds N idle sleeps to the machine first (a busier /proc).
 *
 * Quick looks: WARDEN_BENCH_JOB_PARTS=latency,cpu,kill (any of them), WARDEN_BENCH_LATENCY_ROUNDS
 * (default 3), WARDEN_BENCH_KILL_REPS (default 20).
 *
 * Nothing may be left running afterwards: every process started here carries WARDEN_JOB_ID of one
 * of this bench's runs, or BENCH_FLOOR_ID; /proc is checked for both at the end.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants as perfConstants, PerformanceObserver, type PerformanceEntry } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { AnyMachineSnapshot } from 'xstate';
import { systemClock, type Clock } from '../src/effects/clock.js';
import { jobEffects } from '../src/effects/jobProcess.js';
import { readStartTime } from '../src/effects/processIdentity.js';
import { signalJobProcesses } from '../src/effects/processTree.js';
import { builtInMachines } from '../src/machines/catalogue.js';
import type { JobContext } from '../src/machines/job.machine.js';
import { replayLog } from '../src/runner/replay.js';
import { readLog } from '../src/store/logReader.js';
import { Runner } from '../src/runner/runner.js';
import type { LogRecord } from '../src/store/record.js';
import type { JobInput, JobTimeouts } from '../src/store/events/job.events.js';
import { max, median, min, printTable, verdict, type Bench, type Result } from './stats.js';

/** Which parts run (comma list of latency, cpu, kill; default all): for quick looks at one part. */
const PARTS = (process.env.WARDEN_BENCH_JOB_PARTS ?? 'latency,cpu,kill').split(',');

const RESULTS = 1_000;
const GAPS_MS = '3,4,5';
const LATENCY_ROUNDS = Number(process.env.WARDEN_BENCH_LATENCY_ROUNDS ?? 3);
const TARGET_P99_MS = 20;

const CPU_JOBS = 20;
const CPU_SECONDS = Number(process.env.WARDEN_BENCH_CPU_SECONDS ?? 30);
const TARGET_CPU_PCT = 0.5;
/**
 * Before each window, once the children are up: measured, not judged. A node process that has just
 * allocated (here: spawned 20 children, or started 20 jobs) and then goes idle gets V8's memory
 * reducer: compacting GCs some 8–16 s later, 30–110 ms of CPU here, once.
 */
const CPU_SETTLE_MS = Number(process.env.WARDEN_BENCH_CPU_SETTLE_SECONDS ?? 10) * 1000;

const KILL_REPS = Number(process.env.WARDEN_BENCH_KILL_REPS ?? 20);
const KILL_WARMUP = 1;
const KILL_AFTER_MS = 300;
const TREE_SIZE = 10;
const TARGET_KILL_MS = 100;
/**
 * Idle processes (sleeps) started before the kill rounds, to stand for a busier machine: Warden's
 * kill stages read /proc for every process there is. Default 0 (the machine as it is).
 */
const KILL_BACKGROUND = Number(process.env.WARDEN_BENCH_KILL_BACKGROUND ?? 0);

const REPO = fileURLToPath(new URL('../../', import.meta.url));
const RESULTS_FIXTURE = join(REPO, 'bench', 'fixtures', 'results.mjs');
const TREE_FIXTURE = join(REPO, 'bench', 'fixtures', 'tree.mjs');
const AGENT = join(REPO, 'test', 'fixtures', 'agent', 'fake-agent.mjs');
const NODE = process.execPath;

/** Marks the bare (floor) children, so the final check finds them in /proc like the jobs' ones. */
const FLOOR_ID = `job-bench-${process.pid}-${randomUUID().slice(0, 8)}`;
const FLOOR_ENV = { ...process.env, BENCH_FLOOR_ID: FLOOR_ID };
/** The run ids of every runner opened here: their jobs' processes carry `WARDEN_JOB_ID=<runId>/<slug>`. */
const runIds: string[] = [];

const LONG = 60 * 60 * 1000;
const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));
const nowMs = () => performance.timeOrigin + performance.now();
const gc = (globalThis as { gc?: () => void }).gc;

// ---------------------------------------------------------------------------------------------
// /proc, read here directly (independent of the code under test)

interface ProcStat {
  state: string;
  ppid: number;
  pgid: number;
}

function procStat(pid: number): ProcStat | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'latin1');
  } catch {
    return null;
  }
  const fields = text.slice(text.lastIndexOf(')') + 2).split(' ');
  return { state: fields[0]!, ppid: Number(fields[1]), pgid: Number(fields[2]) };
}

/** Exited: no such process, or a zombie (exited, not reaped yet). */
function hasExited(pid: number): boolean {
  const stat = procStat(pid);
  return stat === null || stat.state === 'Z' || stat.state === 'X';
}

interface ProcStatus {
  name: string;
  /** SIGTERM ignored (SIG_IGN) or caught by a handler. */
  termBlocked: boolean;
}

const TERM_BIT = 1n << 14n; // signal 15

function procStatus(pid: number): ProcStatus | null {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'latin1');
  } catch {
    return null;
  }
  const field = (name: string) => new RegExp(`^${name}:\\s*(\\S+)`, 'm').exec(text)?.[1] ?? '';
  const ign = BigInt(`0x${field('SigIgn') || '0'}`);
  const cgt = BigInt(`0x${field('SigCgt') || '0'}`);
  return { name: field('Name'), termBlocked: ((ign | cgt) & TERM_BIT) !== 0n };
}

function environOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'latin1');
  } catch {
    return '';
  }
}

/** Live (non-zombie) processes started by this bench: a job of one of its runs, or a floor child. */
function benchProcesses(): { pid: number; what: string }[] {
  const found: { pid: number; what: string }[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    if (pid === process.pid || hasExited(pid)) continue;
    const vars = environOf(pid).split('\0');
    const job = vars.find((v) => v.startsWith('WARDEN_JOB_ID=') && runIds.some((id) => v.startsWith(`WARDEN_JOB_ID=${id}/`)));
    if (job) found.push({ pid, what: job });
    else if (vars.includes(`BENCH_FLOOR_ID=${FLOOR_ID}`)) found.push({ pid, what: 'floor child' });
  }
  return found;
}

/** Resolves with the ms from `t0` (performance.now()) until every pid has exited; polls between turns of the event loop (see ExitWatcher for the timed kills). */
async function untilExited(pids: readonly number[], t0: number, what: string, timeoutMs = 10_000): Promise<number> {
  for (;;) {
    if (pids.every(hasExited)) return performance.now() - t0;
    if (performance.now() - t0 > timeoutMs) {
      throw new Error(`job bench: ${what}: ${pids.filter((p) => !hasExited(p)).join(', ')} still running ${timeoutMs} ms after SIGKILL`);
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
}

/**
 * Watches pids from a worker thread, so that when they exit is seen even while the main thread is
 * busy (a runner scanning /proc synchronously blocks this thread's event loop for as long). Every
 * ~0.5 ms the worker reads /proc/<pid>/stat of the first watched pid not seen exited yet (and on).
 */
class ExitWatcher {
  private readonly worker: Worker;
  private next = 0;
  private readonly pending = new Map<number, { resolve: (at: number) => void; reject: (e: Error) => void; what: string }>();
  /** performance.now() − hrtime in ms: both clocks are monotonic; the worker reports hrtime. */
  private readonly offset = performance.now() - Number(process.hrtime.bigint()) / 1e6;

  constructor() {
    this.worker = new Worker(EXIT_WATCHER_CODE, { eval: true });
    this.worker.on('message', (m: { id: number; at: string | null; left?: number[] }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.at === null) p.reject(new Error(`job bench: ${p.what}: ${String(m.left)} still running`));
      else p.resolve(Number(BigInt(m.at)) / 1e6 + this.offset);
    });
  }

  /** Starts watching now; resolves with the performance.now() at which all had exited. */
  watch(pids: readonly number[], what: string, timeoutMs = 10_000): Promise<number> {
    const id = this.next++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, what });
      this.worker.postMessage({ id, pids, timeoutMs });
    });
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

const EXIT_WATCHER_CODE = `
const { parentPort } = require('node:worker_threads');
const { readFileSync } = require('node:fs');
const exited = (pid) => {
  let t;
  try { t = readFileSync('/proc/' + pid + '/stat', 'latin1'); } catch { return true; }
  const state = t[t.lastIndexOf(')') + 2];
  return state === 'Z' || state === 'X';
};
const nap = new Int32Array(new SharedArrayBuffer(4));
parentPort.on('message', ({ id, pids, timeoutMs }) => {
  const start = process.hrtime.bigint();
  // An exited pid stays exited: each look reads only from the first one still running on.
  let i = 0;
  for (;;) {
    while (i < pids.length && exited(pids[i])) i++;
    if (i === pids.length) return parentPort.postMessage({ id, at: String(process.hrtime.bigint()) });
    if (Number(process.hrtime.bigint() - start) / 1e6 > timeoutMs) return parentPort.postMessage({ id, at: null, left: pids.filter((p) => !exited(p)) });
    Atomics.wait(nap, 0, 0, 0.5);
  }
});
`;

async function until<T>(what: string, timeoutMs: number, probe: () => T | undefined | null | false): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = probe();
    if (value) return value;
    if (performance.now() > deadline) throw new Error(`job bench: timed out (${timeoutMs} ms) waiting for ${what}`);
    await sleep(2);
  }
}

// ---------------------------------------------------------------------------------------------
// Jobs, built the way runJob builds them (src/runner/jobSession.ts)

interface JobRunner {
  runner: Runner;
  runId: string;
  runDir: string;
  log: string;
  input(slug: string, command: string[], timeouts: JobTimeouts): JobInput;
}

function openJobRunner(dir: string, fsync: 'always' | 'batch', clock: Clock = systemClock): JobRunner {
  const runId = `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomUUID().slice(0, 8)}`;
  runIds.push(runId);
  const runDir = join(dir, '.warden', 'runs', runId);
  mkdirSync(runDir, { recursive: true, mode: 0o700 });
  mkdirSync(join(dir, '.warden', 'exec'), { recursive: true, mode: 0o700 });
  const log = join(dir, '.warden', 'exec', `${runId}.jsonl`);
  const runner = Runner.open({ log, runId, machines: builtInMachines, clock, fsync, resume: false, effects: jobEffects() });
  return {
    runner,
    runId,
    runDir,
    log,
    input: (slug, command, timeouts) => ({
      jobId: `${runId}/${slug}`,
      slug,
      command,
      cwd: dir,
      prompt: null,
      outputLog: join(runDir, `${slug}.log`),
      metaPath: join(runDir, `${slug}.meta.json`),
      env: {},
      timeouts,
    }),
  };
}

async function waitForJob(jr: JobRunner, actor: string, what: string, predicate: (s: AnyMachineSnapshot) => boolean, timeoutMs: number): Promise<AnyMachineSnapshot> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      jr.runner.waitFor(actor, predicate),
      jr.runner.halted.then((reason) => Promise.reject(reason)),
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`job bench: ${actor}: timed out (${timeoutMs} ms) waiting for ${what}; state ${JSON.stringify(jr.runner.state(actor))}`)), timeoutMs);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

const isRunning = (s: AnyMachineSnapshot) => JSON.stringify(s.value) === '{"alive":"running"}';
const isDone = (s: AnyMachineSnapshot) => s.status === 'done';
const contextOf = (s: AnyMachineSnapshot) => s.context as JobContext;

/** An actor's records so far (type → state, time), for error messages. */
function trail(jr: JobRunner, actor: string): string {
  return readLog(jr.log)
    .records.filter((r) => r.actor === actor)
    .map((r) => `${r.type}${r.type === 'job.signalled' ? `(${(r.data as { signal: string }).signal})` : ''} → ${JSON.stringify(r.state)} @${r.ts.slice(11)}`)
    .join('; ');
}

function closeAndVerify(jr: JobRunner): void {
  jr.runner.close('bench done');
  // The log replays and verifies: what was measured is what the log holds.
  replayLog(jr.log, builtInMachines, { verify: true });
}

// ---------------------------------------------------------------------------------------------
// Statistics

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))]!;
}

interface Latencies {
  /** ms per result, from sentAt (wall clock in both processes). */
  ms: number[];
  /** The same from the shared monotonic clock, for a cross-check. */
  monoMs: number[];
}

interface LatencyRow {
  label: string;
  p50: number;
  p99: number;
  max: number;
  /** Largest |wall − monotonic| difference of one result's latency. */
  clockSkew: number;
}

function summarise(label: string, l: Latencies): LatencyRow {
  return {
    label,
    p50: percentile(l.ms, 0.5),
    p99: percentile(l.ms, 0.99),
    max: max(l.ms),
    clockSkew: max(l.ms.map((m, i) => Math.abs(m - l.monoMs[i]!))),
  };
}

const ms2 = (ms: number) => ms.toFixed(2);
const ms3 = (ms: number) => ms.toFixed(3);
const x2 = (r: number) => `${r.toFixed(2)}x`;

// ---------------------------------------------------------------------------------------------
// 1. Result-seen latency

interface Sent {
  sentAt: number;
  mono: bigint;
  bytes: number;
}

function parseSent(lines: readonly string[]): Sent[] {
  const sent: Sent[] = [];
  for (const line of lines) {
    if (!line.startsWith('{')) continue;
    const event = JSON.parse(line) as { type?: string; sentAt: number; mono: string };
    if (event.type !== 'result') continue;
    sent.push({ sentAt: event.sentAt, mono: BigInt(event.mono), bytes: Buffer.byteLength(line) });
  }
  return sent;
}

/** The floor: the child's stdout split into lines in this process, each stamped as it is split out. */
async function floorLatency(): Promise<Latencies> {
  const child = spawn(NODE, [RESULTS_FIXTURE, String(RESULTS), GAPS_MS], { stdio: ['ignore', 'pipe', 'pipe'], env: FLOOR_ENV });
  const arrived: { at: number; mono: bigint; line: string }[] = [];
  let carry = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk: string) => {
    let start = 0;
    for (let nl = chunk.indexOf('\n'); nl >= 0; nl = chunk.indexOf('\n', start)) {
      const at = nowMs();
      const mono = process.hrtime.bigint();
      arrived.push({ at, mono, line: carry + chunk.slice(start, nl) });
      carry = '';
      start = nl + 1;
    }
    carry += chunk.slice(start);
  });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`job bench: floor child exited ${String(code)}: ${stderr}`);
  const sent = parseSent(arrived.map((a) => a.line));
  if (sent.length !== RESULTS || arrived.length !== RESULTS) throw new Error(`job bench: floor read ${arrived.length} lines, ${sent.length} results`);
  return {
    ms: sent.map((s, i) => arrived[i]!.at - s.sentAt),
    monoMs: sent.map((s, i) => Number(arrived[i]!.mono - s.mono) / 1e6),
  };
}

/** The same child as a job: each job.resultSeen record stamped when the runner's subscribers get it (committed). */
async function wardenLatency(base: string, fsync: 'always' | 'batch'): Promise<Latencies & { records: number }> {
  const dir = mkdtempSync(join(base, `lat-${fsync}-`));
  const jr = openJobRunner(dir, fsync);
  const actor = 'job:lat';
  const seen: { at: number; mono: bigint; bytes: number }[] = [];
  let records = 0;
  const stop = jr.runner.subscribe((record: LogRecord) => {
    if (record.actor !== actor) return;
    records++;
    if (record.type !== 'job.resultSeen') return;
    const at = nowMs();
    const mono = process.hrtime.bigint();
    seen.push({ at, mono, bytes: (record.data as { bytes: number }).bytes });
  });
  const input = jr.input('lat', [NODE, RESULTS_FIXTURE, String(RESULTS), GAPS_MS], { maxDurationMs: LONG, postResultGraceMs: LONG, killAfterMs: 30_000, idleOutputMs: LONG });
  try {
    jr.runner.start(actor, 'job', input);
    jr.runner.send(actor, { type: 'job.start' });
    const done = await waitForJob(jr, actor, 'the end of the job', isDone, 120_000);
    const c = contextOf(done);
    if (c.outcome !== 'completed' || c.exit?.exitCode !== 0 || c.killedBy !== null) {
      throw new Error(`job bench: latency job ended ${c.outcome} (${c.reason}), exit ${String(c.exit?.exitCode)}`);
    }
  } finally {
    stop();
    closeAndVerify(jr);
  }
  const sent = parseSent(readFileSync(input.outputLog, 'utf8').split('\n'));
  if (sent.length !== RESULTS || seen.length !== RESULTS) throw new Error(`job bench: ${seen.length} job.resultSeen records for ${sent.length} results printed`);
  // The nth record is the nth line: their lengths agree (the lines' lengths vary with n and key order).
  const mismatch = sent.findIndex((s, i) => s.bytes !== seen[i]!.bytes);
  if (mismatch >= 0) throw new Error(`job bench: result ${mismatch}: line of ${sent[mismatch]!.bytes} B, record says ${seen[mismatch]!.bytes} B`);
  return {
    ms: sent.map((s, i) => seen[i]!.at - s.sentAt),
    monoMs: sent.map((s, i) => Number(seen[i]!.mono - s.mono) / 1e6),
    records,
  };
}

async function latencyPart(base: string): Promise<Result[]> {
  console.log(
    `\n  1. result-seen latency: ${RESULTS.toLocaleString('en-US')} result lines per run, ${GAPS_MS} ms apart (setTimeout), ` +
      `child: node ${RESULTS_FIXTURE.slice(REPO.length)}; ${LATENCY_ROUNDS} rounds, order rotated each round.`,
  );
  console.log('     latency = (timeOrigin + now() in this process when the line is split out / the record is committed) − sentAt in the child');
  const labels = ['floor: bare stdout line splitter', "Warden job, fsync 'batch' (default)", "Warden job, fsync 'always'"];
  const runs: (() => Promise<Latencies & { records?: number }>)[] = [floorLatency, () => wardenLatency(base, 'batch'), () => wardenLatency(base, 'always')];
  const rows: LatencyRow[][] = labels.map(() => []);
  const recordsPerRun: number[] = [];
  for (let r = 0; r < LATENCY_ROUNDS; r++) {
    for (let k = 0; k < runs.length; k++) {
      const i = (k + r) % runs.length;
      gc?.();
      const l = await runs[i]!();
      if (l.records !== undefined) recordsPerRun.push(l.records);
      rows[i]!.push(summarise(labels[i]!, l));
    }
  }
  printTable(
    `job 1: result-seen latency, ms, per round (${RESULTS.toLocaleString('en-US')} results each)`,
    ['contender', 'round', 'p50', 'p99', 'max', 'max |wall − mono|'],
    rows.flatMap((list) => list.map((row, r) => [row.label, String(r + 1), ms3(row.p50), ms3(row.p99), ms3(row.max), ms3(row.clockSkew)])),
  );
  const med = rows.map((list) => ({ p50: median(list.map((x) => x.p50)), p99: median(list.map((x) => x.p99)), max: max(list.map((x) => x.max)) }));
  const [floor, batch, always] = med as [(typeof med)[0], (typeof med)[0], (typeof med)[0]];
  // Paired per round: Warden ÷ floor.
  const pairs = (i: number, key: 'p50' | 'p99') => rows[i]!.map((row, r) => row[key] / rows[0]![r]![key]);
  const spread = (v: number[]) => `${x2(min(v))}–${x2(max(v))}`;
  const pass = batch.p99 < TARGET_P99_MS;
  console.log(`     ${min(recordsPerRun)}–${max(recordsPerRun)} records of the job's actor per Warden run (job.output is flushed before each job.resultSeen)`);
  printTable(
    'job 1: result-seen latency, medians over the rounds (max: over all), and Warden ÷ floor (range over the paired rounds)',
    ['contender', 'p50 ms', 'p99 ms', 'max ms', 'p50 ÷ floor', 'p99 ÷ floor', 'target', 'verdict'],
    [
      [labels[0]!, ms3(floor.p50), ms3(floor.p99), ms3(floor.max), '-', '-', '-', 'floor'],
      [labels[1]!, ms3(batch.p50), ms3(batch.p99), ms3(batch.max), `${x2(batch.p50 / floor.p50)} (${spread(pairs(1, 'p50'))})`, `${x2(batch.p99 / floor.p99)} (${spread(pairs(1, 'p99'))})`, `p99 < ${TARGET_P99_MS} ms`, verdict(pass)],
      [labels[2]!, ms3(always.p50), ms3(always.p99), ms3(always.max), `${x2(always.p50 / floor.p50)} (${spread(pairs(2, 'p50'))})`, `${x2(always.p99 / floor.p99)} (${spread(pairs(2, 'p99'))})`, '-', 'info'],
    ],
  );
  const us = (ms: number) => ms * 1000;
  return [
    { bench: 'job', case: "result-seen latency p99, fsync 'batch', vs bare line splitter", unit: 'µs', floor: us(floor.p99), measured: us(batch.p99), ratio: floor.p99 / batch.p99, target: `p99 < ${TARGET_P99_MS} ms`, pass },
    { bench: 'job', case: "result-seen latency p50, fsync 'batch', vs bare line splitter", unit: 'µs', floor: us(floor.p50), measured: us(batch.p50), ratio: floor.p50 / batch.p50 },
    { bench: 'job', case: "result-seen latency p99, fsync 'always', vs bare line splitter", unit: 'µs', floor: us(floor.p99), measured: us(always.p99), ratio: floor.p99 / always.p99 },
  ];
}

// ---------------------------------------------------------------------------------------------
// 2. Supervisor CPU with idle jobs

interface CpuSlice {
  seconds: number;
  userMs: number;
  systemMs: number;
  /** % of one core over the whole slice. */
  pct: number;
  /** CPU ms of each second of the slice: median and max (a one-off, a GC say, shows as the max). */
  secondMedianMs: number;
  secondMaxMs: number;
  /** Major (mark-compact) GCs that ended in the slice, and the main-thread ms of all GCs in it. */
  majorGcs: number;
  gcMs: number;
}

interface CpuWindow {
  /** The first CPU_SETTLE_MS after all children are up (not judged: V8's memory reducer tends to run its compacting GCs in it). */
  settle: CpuSlice;
  /** The CPU_SECONDS after that: what is judged. */
  window: CpuSlice;
}

/** CPU of this process over `ms`, read once a second (one timer wakeup per second, the same for every contender). */
async function cpuSlice(ms: number): Promise<CpuSlice> {
  const gcs: { kind: number; duration: number }[] = [];
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) gcs.push({ kind: (e as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind ?? 0, duration: e.duration });
  });
  observer.observe({ entryTypes: ['gc'] });
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  const perSecond: number[] = [];
  for (let left = ms; left > 0; left -= 1000) {
    const s0 = process.cpuUsage();
    const step = Math.min(1000, left);
    await sleep(step);
    const u = process.cpuUsage(s0);
    perSecond.push(((u.user + u.system) / 1000) * (1000 / step));
  }
  const used = process.cpuUsage(c0);
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  // GC entries are delivered asynchronously: let the last ones in.
  await new Promise((resolve) => setImmediate(resolve));
  observer.disconnect();
  return {
    seconds,
    userMs: used.user / 1000,
    systemMs: used.system / 1000,
    pct: ((used.user + used.system) / 1e6 / seconds) * 100,
    secondMedianMs: median(perSecond),
    secondMaxMs: max(perSecond),
    majorGcs: gcs.filter((g) => g.kind === perfConstants.NODE_PERFORMANCE_GC_MAJOR).length,
    gcMs: gcs.reduce((sum, g) => sum + g.duration, 0),
  };
}

async function cpuWindow(): Promise<CpuWindow> {
  const settle = await cpuSlice(CPU_SETTLE_MS);
  const window = await cpuSlice(CPU_SECONDS * 1000);
  return { settle, window };
}

const AGENT_ARGS = [AGENT, '--lines', '1', '--linger', 'forever'];

async function floorCpu(): Promise<CpuWindow> {
  const children: ChildProcess[] = [];
  const exits: Promise<unknown>[] = [];
  try {
    const ready: Promise<unknown>[] = [];
    for (let i = 0; i < CPU_JOBS; i++) {
      const child = spawn(NODE, AGENT_ARGS, { stdio: ['ignore', 'pipe', 'pipe'], env: FLOOR_ENV });
      children.push(child);
      exits.push(new Promise((resolve) => child.once('exit', resolve)));
      let lines = 0;
      ready.push(
        new Promise<void>((resolve) => {
          child.stdout!.on('data', (chunk: Buffer) => {
            for (const byte of chunk) if (byte === 0x0a) lines++;
            if (lines >= 2) resolve();
          });
        }),
      );
      child.stderr!.on('data', () => {});
    }
    await Promise.all(ready);
    const window = await cpuWindow();
    const dead = children.filter((c) => c.exitCode !== null || c.signalCode !== null);
    if (dead.length > 0) throw new Error(`job bench: ${dead.length} bare children exited during the window`);
    return window;
  } finally {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await Promise.all(exits);
  }
}

async function wardenCpu(base: string): Promise<CpuWindow & { records: number; recordsSettling: number; cancelMs: number }> {
  const dir = mkdtempSync(join(base, 'cpu-'));
  const jr = openJobRunner(dir, 'batch');
  const actors = Array.from({ length: CPU_JOBS }, (_, i) => `job:cpu-${String(i).padStart(2, '0')}`);
  let records = 0;
  const stop = jr.runner.subscribe(() => void records++);
  try {
    for (const actor of actors) {
      const slug = actor.slice(4);
      jr.runner.start(actor, 'job', jr.input(slug, [NODE, ...AGENT_ARGS], { maxDurationMs: LONG, postResultGraceMs: LONG, killAfterMs: 5_000, idleOutputMs: LONG }));
    }
    for (const actor of actors) jr.runner.send(actor, { type: 'job.start' });
    // Running, and both its lines (init + one assistant line) seen and counted.
    await Promise.all(actors.map((a) => waitForJob(jr, a, 'alive.running with 2 lines', (s) => isRunning(s) && contextOf(s).outputLines >= 2, 30_000)));
    const before = records;
    const settle = await cpuSlice(CPU_SETTLE_MS);
    const between = records;
    const window = await cpuSlice(CPU_SECONDS * 1000);
    const during = records - between;
    const notRunning = actors.filter((a) => JSON.stringify(jr.runner.state(a)) !== '{"alive":"running"}');
    if (notRunning.length > 0) throw new Error(`job bench: ${notRunning.join(', ')} left alive.running during the window`);
    const t0 = performance.now();
    for (const actor of actors) jr.runner.send(actor, { type: 'job.cancel', reason: 'bench: cpu window over' });
    const done = await Promise.all(actors.map((a) => waitForJob(jr, a, 'the end of the cancelled job', isDone, 30_000)));
    const cancelMs = performance.now() - t0;
    for (const s of done) {
      const c = contextOf(s);
      if (c.killedBy !== 'user' || (c.leftovers?.survivors.length ?? 0) > 0) throw new Error(`job bench: cancelled job ${c.jobId}: killedBy ${String(c.killedBy)}, ${c.reason}`);
    }
    const left = benchProcesses().filter((p) => p.what.startsWith(`WARDEN_JOB_ID=${jr.runId}/`));
    if (left.length > 0) throw new Error(`job bench: after cancelling the ${CPU_JOBS} jobs, still running: ${left.map((p) => `${p.pid} (${p.what})`).join(', ')}`);
    return { settle, window, records: during, recordsSettling: between - before, cancelMs };
  } finally {
    stop();
    closeAndVerify(jr);
  }
}

async function cpuPart(base: string): Promise<Result[]> {
  console.log(
    `\n  2. supervisor CPU: ${CPU_JOBS} children of node ${AGENT.slice(REPO.length)} ${AGENT_ARGS.slice(1).join(' ')} ` +
      `(2 lines, then silent), process.cpuUsage() of this process: ${CPU_SETTLE_MS / 1000} s settling once all are up (reported), ` +
      `then the ${CPU_SECONDS} s window (judged); floor first, then Warden.`,
  );
  const floor = await floorCpu();
  const warden = await wardenCpu(base);
  const pass = warden.window.pct < TARGET_CPU_PCT;
  const row = (label: string, slice: CpuSlice, records: string, target: string, verdictText: string) => [
    label,
    slice.seconds.toFixed(1),
    ms2(slice.userMs),
    ms2(slice.systemMs),
    `${slice.pct.toFixed(4)}%`,
    `${ms2(slice.secondMedianMs)} / ${ms2(slice.secondMaxMs)}`,
    `${slice.majorGcs} / ${ms2(slice.gcMs)}`,
    records,
    target,
    verdictText,
  ];
  printTable(
    `job 2: CPU of this process with ${CPU_JOBS} silent children`,
    ['contender', 'slice s', 'user ms', 'system ms', '% of one core', 'ms/s median / max', 'major GCs / GC ms', 'records', 'target', 'verdict'],
    [
      row(`floor: ${CPU_JOBS} bare children, pipes read — settling`, floor.settle, '-', '-', 'info'),
      row(`floor: ${CPU_JOBS} bare children, pipes read — window`, floor.window, '-', '-', 'floor'),
      row(`Warden: ${CPU_JOBS} jobs in alive.running, one runner — settling`, warden.settle, String(warden.recordsSettling), '-', 'info'),
      row(`Warden: ${CPU_JOBS} jobs in alive.running, one runner — window`, warden.window, String(warden.records), `< ${TARGET_CPU_PCT}%`, verdict(pass)),
    ],
  );
  console.log(
    `     window: Warden − floor ${(warden.window.pct - floor.window.pct).toFixed(4)} percentage points; Warden ÷ floor ${x2(warden.window.pct / floor.window.pct)}. ` +
      `Cancelling all ${CPU_JOBS} (SIGTERM; the agent exits) until every job was done: ${warden.cancelMs.toFixed(0)} ms; nothing of them left in /proc.`,
  );
  console.log(
    `     steady state (median CPU ms of the window's seconds, % of a core): floor ${(floor.window.secondMedianMs / 10).toFixed(4)}%, ` +
      `Warden ${(warden.window.secondMedianMs / 10).toFixed(4)}%; GC ms: main-thread pauses only (V8's helper threads count in the CPU but not here).`,
  );
  // µs of CPU per second of wall time (1% of a core = 10,000).
  const perSecond = (slice: CpuSlice) => slice.pct * 10_000;
  return [
    {
      bench: 'job',
      case: `supervisor CPU, ${CPU_JOBS} silent jobs, vs ${CPU_JOBS} bare children`,
      unit: 'µs CPU/s',
      floor: perSecond(floor.window),
      measured: perSecond(warden.window),
      ratio: floor.window.pct / warden.window.pct,
      target: `< ${TARGET_CPU_PCT}% of a core (${(TARGET_CPU_PCT * 10_000).toLocaleString('en-US')} µs/s)`,
      pass,
    },
    { bench: 'job', case: `ref: the same, first ${CPU_SETTLE_MS / 1000} s after all are up`, unit: 'µs CPU/s', floor: perSecond(floor.settle), measured: perSecond(warden.settle), ratio: floor.settle.pct / warden.settle.pct },
  ];
}

// ---------------------------------------------------------------------------------------------
// 3. Kill time of a tree of 10

interface Tree {
  agent: number;
  plain: number[];
  nested: number[];
  setsid: number;
  daemon: number;
}

const treePids = (t: Tree) => [t.agent, ...t.plain, ...t.nested, t.setsid, t.daemon];

/** The tree is complete: 10 distinct live processes, each past its exec, each with SIGTERM ignored or caught, each carrying the job id. */
function treeReady(t: Tree, jobId: string): boolean {
  const pids = treePids(t);
  if (new Set(pids).size !== TREE_SIZE) throw new Error(`job bench: tree of ${new Set(pids).size} distinct pids: ${JSON.stringify(t)}`);
  return pids.every((pid, i) => {
    const status = procStatus(pid);
    if (!status || hasExited(pid) || !status.termBlocked) return false;
    const name = i === 0 ? 'node' : pid === t.nested[0] ? 'sh' : 'sleep';
    return status.name === name && environOf(pid).split('\0').includes(`WARDEN_JOB_ID=${jobId}`);
  });
}

/** Starts a tree job and waits until it is alive.running with its 10 processes ready. */
async function startTree(jr: JobRunner, slug: string, killAfterMs: number): Promise<{ actor: string; jobId: string; pids: number[]; rootPid: number }> {
  const actor = `job:${slug}`;
  const pidsFile = join(jr.runDir, `${slug}.pids.json`);
  const input = jr.input(slug, [NODE, TREE_FIXTURE, pidsFile], { maxDurationMs: LONG, postResultGraceMs: LONG, killAfterMs, idleOutputMs: LONG });
  jr.runner.start(actor, 'job', input);
  jr.runner.send(actor, { type: 'job.start' });
  const running = await waitForJob(jr, actor, 'alive.running', isRunning, 10_000);
  const tree = await until(`${slug}'s pids file`, 10_000, () => existsSync(pidsFile) && (JSON.parse(readFileSync(pidsFile, 'utf8')) as Tree));
  await until(`${slug}'s tree of ${TREE_SIZE}`, 10_000, () => treeReady(tree, input.jobId));
  const rootPid = contextOf(running).pid!;
  if (rootPid !== tree.agent) throw new Error(`job bench: job pid ${rootPid}, tree says ${tree.agent}`);
  return { actor, jobId: input.jobId, pids: treePids(tree), rootPid };
}

interface KillSample {
  /** SIGKILL stage → all 10 exited. */
  ms: number;
  /** SIGKILL stage → the SIGKILLs sent (the call returned / the killing record reached its subscribers). */
  signalMs: number;
  /** SIGKILL stage → the job done (job.reaped and meta written); NaN for the floor. */
  doneMs: number;
  /** Job only: job.cancel sent → the job.signalled SIGTERM record (the SIGTERM stage's scan and signals); NaN otherwise. */
  termMs?: number;
  /** Entries in /proc just before the kill (zombies included): what Warden's scan reads. */
  procs: number;
}

function listPids(): number[] {
  return readdirSync('/proc')
    .filter((e) => /^\d+$/.test(e))
    .map(Number);
}

/** `count` idle sleeps in a process group of their own (plus its leader), there for the whole kill part. */
async function startBackground(count: number): Promise<{ stop: () => Promise<void> }> {
  const leader = spawn('sh', ['-c', `i=0; while [ $i -lt ${count} ]; do sleep 1000 & i=$((i+1)); done; exec sleep 1000`], { detached: true, stdio: 'ignore', env: FLOOR_ENV });
  const exit = new Promise((resolve) => leader.once('exit', resolve));
  const pgid = leader.pid!;
  const members = () => listPids().filter((pid) => procStat(pid)?.pgid === pgid && !hasExited(pid));
  await until(`${count} background sleeps`, 60_000, () => members().length === count + 1);
  console.log(`     background: ${count + 1} idle sleeps started (process group ${pgid}); ${listPids().length} processes in /proc now`);
  return {
    stop: async () => {
      const pids = members();
      process.kill(-pgid, 'SIGKILL');
      await untilExited(pids, performance.now(), 'background sleeps', 30_000);
      await exit;
    },
  };
}

/** The floor: a plain process group of 10 sleeps, killed with one kill(-pgid). */
async function floorKill(watcher: ExitWatcher): Promise<KillSample> {
  const leader = spawn('sh', ['-c', "trap '' TERM; for i in 1 2 3 4 5 6 7 8 9; do sleep 1000 & done; exec sleep 1000"], { detached: true, stdio: 'ignore', env: FLOOR_ENV });
  const exit = new Promise((resolve) => leader.once('exit', resolve));
  const pgid = leader.pid!;
  const pids = await until('the floor group of 10 sleeps', 10_000, () => {
    const group = listPids().filter((pid) => procStat(pid)?.pgid === pgid && !hasExited(pid));
    return group.length === TREE_SIZE && group.every((pid) => procStatus(pid)?.name === 'sleep' && procStatus(pid)?.termBlocked) && group;
  });
  const procs = listPids().length;
  const gone = watcher.watch(pids, 'floor group');
  const t0 = performance.now();
  process.kill(-pgid, 'SIGKILL');
  const signalMs = performance.now() - t0;
  const ms = (await gone) - t0;
  await exit;
  return { ms, signalMs, doneMs: Number.NaN, procs };
}

/** signalJobProcesses(jobId, {pid, startTime}, 'SIGKILL') called directly on a running tree job (spawned by jobEffects). */
async function directKill(jr: JobRunner, watcher: ExitWatcher, slug: string): Promise<KillSample> {
  const { actor, jobId, pids, rootPid } = await startTree(jr, slug, 30_000);
  const procs = listPids().length;
  const gone = watcher.watch(pids, `${slug} (direct)`);
  // As the job's effects call it: with the root's start time, so older processes' environments are not read.
  const startTime = readStartTime(rootPid);
  const t0 = performance.now();
  const signalled = signalJobProcesses(jobId, { pid: rootPid, startTime: startTime === null ? null : Number(startTime) }, 'SIGKILL');
  const signalMs = performance.now() - t0;
  const ms = (await gone) - t0;
  const missed = pids.filter((p) => !signalled.includes(p));
  if (missed.length > 0) throw new Error(`job bench: signalJobProcesses missed ${missed.join(', ')} of ${slug}`);
  const done = await waitForJob(jr, actor, 'the end of the killed job', isDone, 10_000);
  const doneMs = performance.now() - t0;
  const c = contextOf(done);
  if (c.exit?.signal !== 'SIGKILL' || (c.leftovers?.survivors.length ?? 0) > 0) throw new Error(`job bench: ${slug}: ${c.reason}; survivors ${String(c.leftovers?.survivors)}`);
  return { ms, signalMs, doneMs, procs };
}

/** The runner's clock for the kill part: notes when a timer fires, after letting a probe look first. */
interface TimerProbe {
  /** performance.now() when the last timer fired, just before its callback. */
  fired: number;
  /** Runs when a timer fires, before `fired` is taken (so its cost is not timed). */
  beforeFire?: () => void;
}

/** A real job: cancel → terminating (SIGTERM, ignored by all 10) → killAfterMs → killing (SIGKILL); timed from the killAfter timer firing. */
async function jobKill(jr: JobRunner, watcher: ExitWatcher, probe: TimerProbe, slug: string): Promise<KillSample> {
  const { actor, pids } = await startTree(jr, slug, KILL_AFTER_MS);
  let killing: { t0: number; notified: number } | undefined;
  let atFire: { exited: number[]; state: string } | undefined;
  let cancelAt = 0;
  let termMs = Number.NaN;
  const stop = jr.runner.subscribe((record) => {
    if (record.actor !== actor) return;
    if (record.type === 'job.signalled' && (record.data as { signal: string }).signal === 'SIGTERM') termMs = performance.now() - cancelAt;
    if (record.type === 'timer.fired' && record.state === 'killing' && !killing) killing = { t0: probe.fired, notified: performance.now() };
  });
  // The only timer of this runner left to fire is the job's killAfter (one job at a time here).
  probe.beforeFire = () => {
    atFire = { exited: pids.filter(hasExited), state: JSON.stringify(jr.runner.state(actor)) };
  };
  try {
    const procs = listPids().length;
    const gone = watcher.watch(pids, `${slug} (job)`, 30_000);
    cancelAt = performance.now();
    jr.runner.send(actor, { type: 'job.cancel', reason: 'bench: kill time' });
    const k = await until(`${slug}'s killing record`, 30_000, () => killing);
    // When the killAfter timer fired, all 10 had survived the SIGTERM stage.
    if (!atFire || atFire.state !== '"terminating"' || atFire.exited.length > 0) {
      throw new Error(`job bench: ${slug}: at the SIGKILL stage: ${JSON.stringify(atFire)} (expected terminating, none exited); ${trail(jr, actor)}`);
    }
    const ms = (await gone) - k.t0;
    const done = await waitForJob(jr, actor, 'the end of the killed job', isDone, 10_000);
    const doneMs = performance.now() - k.t0;
    const c = contextOf(done);
    const missed = pids.filter((p) => !c.signalled.SIGKILL.includes(p));
    if (missed.length > 0) throw new Error(`job bench: ${slug}: the SIGKILL stage missed ${missed.join(', ')}`);
    if (c.killedBy !== 'user' || c.exit?.signal !== 'SIGKILL' || (c.leftovers?.survivors.length ?? 0) > 0) throw new Error(`job bench: ${slug}: ${c.reason}; survivors ${String(c.leftovers?.survivors)}`);
    return { ms, signalMs: k.notified - k.t0, doneMs, termMs, procs };
  } finally {
    probe.beforeFire = undefined;
    stop();
  }
}

async function killPart(base: string): Promise<Result[]> {
  console.log(
    `\n  3. kill time: tree of ${TREE_SIZE} (node ${TREE_FIXTURE.slice(REPO.length)}: agent, 4 plain sleeps, a shell with 2 sleeps, a setsid'd sleep, ` +
      `a double-forked daemon sleep; all ignore SIGTERM); exited = gone from /proc or a zombie; ${KILL_REPS} rounds after ${KILL_WARMUP} warm-up, order rotated.`,
  );
  console.log(
    `     job: killAfterMs ${KILL_AFTER_MS}; timed from the killAfter timer's callback (the runner's clock) to all ${TREE_SIZE} exited. ` +
      'Exits are watched from a worker thread (a /proc/<pid>/stat read every ~0.5 ms), not blocked by the runner. ' +
      `${listPids().length} processes in /proc before the rounds.`,
  );
  const probe: TimerProbe = { fired: 0 };
  const clock: Clock = {
    now: () => Date.now(),
    setTimeout: (fn, ms) =>
      setTimeout(() => {
        probe.beforeFire?.();
        probe.fired = performance.now();
        fn();
      }, ms),
    clearTimeout: (handle) => clearTimeout(handle as NodeJS.Timeout),
  };
  const background = KILL_BACKGROUND > 0 ? await startBackground(KILL_BACKGROUND) : undefined;
  const dir = mkdtempSync(join(base, 'kill-'));
  const jr = openJobRunner(dir, 'batch', clock);
  const labels = ['floor: kill(-pgid, SIGKILL), group of 10 sleeps', 'Warden: signalJobProcesses(SIGKILL), called directly', 'Warden job: killing stage (after cancel + killAfterMs)'];
  const samples: KillSample[][] = labels.map(() => []);
  let n = 0;
  const slug = (kind: string) => `kill-${kind}-${String(n++).padStart(3, '0')}`;
  const watcher = new ExitWatcher();
  const contenders: (() => Promise<KillSample>)[] = [() => floorKill(watcher), () => directKill(jr, watcher, slug('direct')), () => jobKill(jr, watcher, probe, slug('job'))];
  try {
    for (let r = -KILL_WARMUP; r < KILL_REPS; r++) {
      for (let k = 0; k < contenders.length; k++) {
        const i = (k + Math.max(0, r)) % contenders.length;
        const sample = await contenders[i]!();
        if (r >= 0) samples[i]!.push(sample);
      }
    }
  } finally {
    await watcher.close();
    closeAndVerify(jr);
    await background?.stop();
  }
  const med = samples.map((s) => ({
    ms: median(s.map((x) => x.ms)),
    signalMs: median(s.map((x) => x.signalMs)),
    doneMs: median(s.map((x) => x.doneMs)),
    lo: min(s.map((x) => x.ms)),
    hi: max(s.map((x) => x.ms)),
    procs: `${min(s.map((x) => x.procs))}–${max(s.map((x) => x.procs))}`,
  }));
  const [floor, direct, job] = med as [(typeof med)[0], (typeof med)[0], (typeof med)[0]];
  const paired = (i: number) => samples[i]!.map((s, r) => s.ms / samples[0]![r]!.ms);
  const passJob = job.ms < TARGET_KILL_MS;
  const passDirect = direct.ms < TARGET_KILL_MS;
  printTable(
    `job 3: SIGKILL stage → all ${TREE_SIZE} processes exited, ms, median of ${KILL_REPS} (range min–max)`,
    ['contender', 'ms to all exited', 'range', 'ms to signals sent', 'ms to job done', '÷ floor (paired range)', '/proc entries', 'target', 'verdict'],
    [
      [labels[0]!, ms3(floor.ms), `${ms3(floor.lo)}–${ms3(floor.hi)}`, ms3(floor.signalMs), '-', '-', floor.procs, '-', 'floor'],
      [labels[1]!, ms3(direct.ms), `${ms3(direct.lo)}–${ms3(direct.hi)}`, ms3(direct.signalMs), ms2(direct.doneMs), `${x2(direct.ms / floor.ms)} (${x2(min(paired(1)))}–${x2(max(paired(1)))})`, direct.procs, `< ${TARGET_KILL_MS} ms`, verdict(passDirect)],
      [labels[2]!, ms3(job.ms), `${ms3(job.lo)}–${ms3(job.hi)}`, ms3(job.signalMs), ms2(job.doneMs), `${x2(job.ms / floor.ms)} (${x2(min(paired(2)))}–${x2(max(paired(2)))})`, job.procs, `< ${TARGET_KILL_MS} ms`, verdict(passJob)],
    ],
  );
  console.log('     ms to signals sent: floor/direct: the kill call returned; job: the killing record reached the subscribers (its SIGKILL effect has run by then).');
  console.log('     ms to job done: until the job actor is final (exited → reaped → meta written).');
  const term = samples[2]!.map((x) => x.termMs ?? Number.NaN);
  console.log(
    `     job: cancel → its SIGTERM stage's signals sent (the job.signalled record; the /proc scan runs on the event loop): median ${ms3(median(term))} ms, ` +
      `range ${ms3(min(term))}–${ms3(max(term))} ms.`,
  );
  return [
    { bench: 'job', case: `kill: job's SIGKILL stage → tree of ${TREE_SIZE} exited, vs kill(-pgid)`, unit: 'ms', floor: floor.ms, measured: job.ms, ratio: floor.ms / job.ms, target: `< ${TARGET_KILL_MS} ms`, pass: passJob },
    { bench: 'job', case: `kill: signalJobProcesses direct → tree of ${TREE_SIZE} exited, vs kill(-pgid)`, unit: 'ms', floor: floor.ms, measured: direct.ms, ratio: floor.ms / direct.ms, target: `< ${TARGET_KILL_MS} ms`, pass: passDirect },
  ];
}

// ---------------------------------------------------------------------------------------------

export const jobBench: Bench = {
  name: 'job',
  title: 'Job lifecycle: result-seen latency, supervisor CPU with silent jobs, SIGKILL of a tree of 10',
  async run() {
    for (const file of [RESULTS_FIXTURE, TREE_FIXTURE, AGENT]) if (!existsSync(file)) throw new Error(`job bench: ${file} is missing`);
    const base = mkdtempSync(join(tmpdir(), 'warden-bench-job-'));
    const zombiesBefore = countZombies();
    console.log(`  logs and job files under ${base} (removed afterwards); node ${NODE}; zombies on the machine before: ${zombiesBefore}`);
    const results: Result[] = [];
    let failure: unknown;
    try {
      if (PARTS.includes('latency')) results.push(...(await latencyPart(base)));
      if (PARTS.includes('cpu')) results.push(...(await cpuPart(base)));
      if (PARTS.includes('kill')) results.push(...(await killPart(base)));
    } catch (error) {
      failure = error;
    }
    // Whatever happened, nothing may be left running.
    await sleep(200);
    const left = benchProcesses();
    for (const p of left) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // gone meanwhile
      }
    }
    rmSync(base, { recursive: true, force: true });
    if (left.length > 0) {
      if (failure) console.error(failure);
      throw new Error(`job bench: LEFT BEHIND (now SIGKILLed): ${left.map((p) => `${p.pid} ${p.what}`).join('; ')}`);
    }
    if (failure) throw failure;
    console.log(`\n  after the bench: no process of its ${runIds.length} runs or its floors is running (checked in /proc); zombies on the machine: ${countZombies()}`);
    return results;
  },
};

function countZombies(): number {
  let n = 0;
  for (const entry of readdirSync('/proc')) if (/^\d+$/.test(entry) && procStat(Number(entry))?.state === 'Z') n++;
  return n;
}
