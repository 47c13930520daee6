/**
 * The queue (issue 6): 1,000 trivial jobs (`true`), cap 8, through `warden run --once`, against
 * execa spawning the same 1,000 commands 8 at a time. Target: Warden's time ≤ 1.5× the floor's.
 *
 * Contenders, each a child process started with spawnSync from this process, so each pays its
 * own node startup once per sample (timed from spawn to exit):
 * - floor: `node bench/fixtures/spawnMany.mjs DIRS 8`: a fresh node that imports execa and runs
 *   `await execa('true', [], { cwd })` for each of the 1,000 directories, 8 lanes at a time.
 * - floor with Warden's per-job guarantees: `node bench/fixtures/spawnGuarded.mjs DIRS 8 RUNS`: the
 *   same, plus per job exactly the work Warden must do by design and nothing else (no log, no state
 *   machines, no schema checks; it imports nothing from src/): the worker lock taken (mkdir
 *   `.runtime`, open `agent.lock.flock`, flock(1) on fd 3, `agent.lock` written by temp + rename),
 *   a prompt file written and given as stdin (`stdin: {file}`), an output log opened, the job run
 *   `detached`, one scan of /proc/<pid>/stat after its exit, a meta file by temp + rename, and the
 *   lock released (flock(1) again, unlink). Warden ÷ this floor is Warden's own bookkeeping; this
 *   floor ÷ the plain one is the cost of the guarantees themselves.
 * - Warden: `node dist/cli/main.js run --dir PROJECT --once` on a fresh project: 1,000 job files
 *   (`job0001.md` …, no `NN-` prefix, so all in group 99), each `command: ["true"]`, its own cwd
 *   `w/0001` … (so no two share a worker lock), prompt "go" (written to the job's stdin), and
 *   `.warden/config.json` `{"concurrencyCap": 8}`.
 * - ref: the fixed parts: `warden run --once` on a project with an empty jobs dir, and each floor
 *   script with an empty list (node + execa import).
 *
 * Each sample gets a freshly generated tree before its timer starts (a second run would find every
 * job completed). After each Warden sample, untimed: exit 0, "1000 of 1000 jobs completed" on
 * stdout, `warden status --dir PROJECT --json` lists 1,000 jobs all `completed`, every worker
 * lock released, and the job files' run ids noted so that the end can check /proc for leftovers.
 * After each guarded-floor sample: exit 0 ("N of N ran": every job exited 0 and its scan saw no
 * leftover), no `agent.lock` left, an `agent.lock.flock` in every cwd, a meta file per job.
 * The log of each sample is read for the per-job phase breakdown (record timestamps).
 *
 * Rounds are interleaved (order rotated each round) after one warm-up round on a small queue.
 * WARDEN_MAX_CONCURRENCY is removed from the children's environment: the cap comes from the config.
 *
 * Knobs for quick looks: WARDEN_BENCH_QUEUE_JOBS (default 1000), WARDEN_BENCH_QUEUE_REPS (default 5),
 * WARDEN_BENCH_QUEUE_WARMUP_JOBS (default 100; 0 = no warm-up). WARDEN_BENCH_CLI: the main.js
 * to run instead of dist/cli/main.js (a build frozen elsewhere); every sample checks that the
 * build dir did not change since the first (the tree is shared), and says so if it did.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readLog } from '../src/store/logReader.js';
import type { LogRecord } from '../src/store/record.js';
import { fmtMs, max, median, min, printTable, verdict, type Bench, type Result } from './stats.js';

const JOBS = Number(process.env.WARDEN_BENCH_QUEUE_JOBS ?? 1000);
const REPS = Number(process.env.WARDEN_BENCH_QUEUE_REPS ?? 5);
const WARMUP_JOBS = Number(process.env.WARDEN_BENCH_QUEUE_WARMUP_JOBS ?? 100);
const CAP = 8;
/** Warden's time may be at most this many times the floor's. */
const TARGET_FACTOR = 1.5;
/** A Warden sample that has not finished by then is killed and the bench fails. */
const SAMPLE_TIMEOUT_MS = 240_000;

const REPO = fileURLToPath(new URL('../../', import.meta.url));
/**
 * The CLI under test: dist/cli/main.js, or WARDEN_BENCH_CLI (a main.js built elsewhere, e.g. a
 * frozen build of one commit, for when dist/ is being rebuilt by someone else meanwhile).
 */
const CLI = process.env.WARDEN_BENCH_CLI ? resolve(process.env.WARDEN_BENCH_CLI) : join(REPO, 'dist', 'cli', 'main.js');
/** The build dir that holds it (dist/ for the default). */
const DIST = dirname(dirname(CLI));
const FLOOR = join(REPO, 'bench', 'fixtures', 'spawnMany.mjs');
const GUARDED = join(REPO, 'bench', 'fixtures', 'spawnGuarded.mjs');
const NODE = process.execPath;

const CHILD_ENV: NodeJS.ProcessEnv = { ...process.env };
delete CHILD_ENV.WARDEN_MAX_CONCURRENCY;

/** Every run id of every Warden sample: their jobs' processes carry `WARDEN_JOB_ID=<runId>/<slug>`. */
const runIds: string[] = [];

// ---------------------------------------------------------------------------------------------
// Trees

interface Project {
  dir: string;
  /** The jobs' cwds, in job order. */
  cwds: string[];
  /** For the floor: the cwds, one a line. */
  dirsFile: string;
}

const pad = (i: number) => String(i).padStart(4, '0');

/** A fresh project dir with `jobs` job files (0 = an empty jobs dir) and one cwd per job. */
function makeProject(base: string, name: string, jobs: number): Project {
  const dir = join(base, name);
  mkdirSync(join(dir, '.warden', 'jobs'), { recursive: true });
  writeFileSync(join(dir, '.warden', 'config.json'), `${JSON.stringify({ concurrencyCap: CAP })}\n`);
  const cwds: string[] = [];
  mkdirSync(join(dir, 'w'));
  for (let i = 1; i <= jobs; i++) {
    const rel = `w/${pad(i)}`;
    const cwd = join(dir, rel);
    mkdirSync(cwd);
    cwds.push(cwd);
    writeFileSync(join(dir, '.warden', 'jobs', `job${pad(i)}.md`), `---\ncwd: ${rel}\ncommand: ["true"]\n---\ngo\n`);
  }
  const dirsFile = join(dir, 'dirs.txt');
  writeFileSync(dirsFile, cwds.map((c) => `${c}\n`).join(''));
  return { dir, cwds, dirsFile };
}

// ---------------------------------------------------------------------------------------------
// Child processes

interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function spawnRun(cwd: string, args: readonly string[], timeoutMs = SAMPLE_TIMEOUT_MS): Run {
  const r = spawnSync(NODE, args, { cwd, env: CHILD_ENV, encoding: 'utf8', maxBuffer: 256 * 2 ** 20, timeout: timeoutMs, killSignal: 'SIGKILL' });
  if (r.error) throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

function fail(what: string, run: Run, problem: string): never {
  throw new Error(`queue bench: ${what}: ${problem} (exit ${String(run.status)}${run.signal ? `, signal ${run.signal}` : ''}; stderr: ${run.stderr.trim().slice(0, 500) || 'none'})`);
}

const lastLine = (text: string) => text.trimEnd().split('\n').at(-1) ?? '';

function checkFloor(run: Run, jobs: number): void {
  if (run.status !== 0) fail('floor', run, 'expected exit 0');
  if (lastLine(run.stdout) !== `${jobs} of ${jobs} ran`) fail('floor', run, `stdout ends "${lastLine(run.stdout)}"`);
}

/** The guarded floor's sample: its stdout, and the traces its per-job work must have left. */
function checkGuarded(project: Project, run: Run, jobs: number): void {
  if (run.status !== 0) fail('guarded floor', run, 'expected exit 0');
  if (lastLine(run.stdout) !== `${jobs} of ${jobs} ran`) fail('guarded floor', run, `stdout ends "${lastLine(run.stdout)}"`);
  const held = project.cwds.filter((cwd) => existsSync(join(cwd, '.runtime', 'agent.lock')));
  if (held.length > 0) throw new Error(`queue bench: guarded floor: ${held.length} worker locks still there after the run, e.g. ${held[0]}`);
  const unflocked = project.cwds.filter((cwd) => !existsSync(join(cwd, '.runtime', 'agent.lock.flock')));
  if (unflocked.length > 0) throw new Error(`queue bench: guarded floor: ${unflocked.length} cwds without an agent.lock.flock, e.g. ${unflocked[0]}`);
  const files = jobs === 0 ? [] : readdirSync(guardedRuns(project));
  const metas = files.filter((f) => f.endsWith('.meta.json')).length;
  const temps = files.filter((f) => f.endsWith('.tmp')).length;
  if (metas !== jobs || temps > 0) throw new Error(`queue bench: guarded floor: ${metas} meta files (expected ${jobs}), ${temps} temp files left`);
}

const guardedRuns = (project: Project) => join(project.dir, 'guarded-runs');

interface StatusJson {
  cap: number;
  jobs: Array<{ slug: string; status: string; startedAt: string | null; finishedAt: string | null }>;
}

/** What one Warden sample's log and status say, read after the run (untimed). */
interface WardenCheck {
  statusSeconds: number;
  records: number;
  logBytes: number;
  byType: Map<string, number>;
  phases: Map<string, number[]>;
  /** Seconds from the first job picked to the last job finished (the log's view). */
  spanSeconds: number;
  /** Mean number of jobs between picked and finished, over that span. */
  meanInFlight: number;
  maxInFlight: number;
}

function checkWarden(project: Project, run: Run, jobs: number): WardenCheck {
  if (run.status !== 0) fail('warden run --once', run, 'expected exit 0');
  if (lastLine(run.stdout) !== `${jobs} of ${jobs} jobs completed`) fail('warden run --once', run, `stdout ends "${lastLine(run.stdout)}"`);
  const t = process.hrtime.bigint();
  const status = spawnRun(REPO, [CLI, 'status', '--dir', project.dir, '--json']);
  const statusSeconds = Number(process.hrtime.bigint() - t) / 1e9;
  if (status.status !== 0) fail('warden status --json', status, 'expected exit 0');
  const report = JSON.parse(status.stdout) as StatusJson;
  if (report.cap !== CAP) fail('warden status --json', status, `cap ${report.cap}, expected ${CAP}`);
  if (report.jobs.length !== jobs) fail('warden status --json', status, `${report.jobs.length} jobs listed, expected ${jobs}`);
  const notDone = report.jobs.filter((j) => j.status !== 'completed');
  if (notDone.length > 0) fail('warden status --json', status, `${notDone.length} jobs not completed, e.g. ${notDone[0]!.slug}: ${notDone[0]!.status}`);
  const held = project.cwds.filter((cwd) => existsSync(join(cwd, '.runtime', 'agent.lock')));
  if (held.length > 0) throw new Error(`queue bench: ${held.length} worker locks still there after the run, e.g. ${held[0]}`);
  runIds.push(...readdirSync(join(project.dir, '.warden', 'runs')));

  const log = join(project.dir, '.warden', 'events.jsonl');
  const { records } = readLog(log);
  return { statusSeconds, records: records.length, logBytes: statSync(log).size, ...phasesOf(records) };
}

/** Per job, the time between its records (ms, from the records' `ts`), and how many were in flight. */
function phasesOf(records: readonly LogRecord[]): Pick<WardenCheck, 'byType' | 'phases' | 'spanSeconds' | 'meanInFlight' | 'maxInFlight'> {
  const byType = new Map<string, number>();
  const at = new Map<string, Map<string, number>>(); // actor → mark → ms
  const mark = (actor: string, what: string, ts: string) => {
    let m = at.get(actor);
    if (!m) at.set(actor, (m = new Map()));
    if (!m.has(what)) m.set(what, Date.parse(ts));
  };
  for (const r of records) {
    const key = `${r.actor.startsWith('job:') ? 'job:*' : r.actor.replace(/:\d+$/, '')} ${r.type}`;
    byType.set(key, (byType.get(key) ?? 0) + 1);
    for (const e of r.effects ?? []) {
      if (e.type === 'startJob') mark((e.params as { actor: string }).actor, 'picked', r.ts);
    }
    const data = r.data as { actor?: string };
    if (r.type === 'queue.jobStarted' || r.type === 'queue.jobFinished') mark(data.actor!, r.type, r.ts);
    else if (r.actor.startsWith('job:')) mark(r.actor, r.type, r.ts);
  }
  const steps: Array<[string, string, string]> = [
    ['picked (queue step with startJob) → queue.jobStarted: worker lock (flock), prompt file', 'picked', 'queue.jobStarted'],
    ['queue.jobStarted → job.spawned: job actor started, execa spawn', 'queue.jobStarted', 'job.spawned'],
    ['job.spawned → job.exited: `true` runs, pipes drained', 'job.spawned', 'job.exited'],
    ['job.exited → job.reaped: /proc scan for leftovers', 'job.exited', 'job.reaped'],
    ['job.reaped → job.metaWritten: meta file (temp + rename)', 'job.reaped', 'job.metaWritten'],
    ['job.metaWritten → queue.jobFinished: verdict to the queue', 'job.metaWritten', 'queue.jobFinished'],
    ['picked → queue.jobFinished (a slot held)', 'picked', 'queue.jobFinished'],
  ];
  const phases = new Map<string, number[]>(steps.map(([label]) => [label, []]));
  const intervals: Array<[number, number]> = [];
  for (const m of at.values()) {
    for (const [label, from, to] of steps) {
      const a = m.get(from);
      const b = m.get(to);
      if (a !== undefined && b !== undefined) phases.get(label)!.push(b - a);
    }
    const a = m.get('picked');
    const b = m.get('queue.jobFinished');
    if (a !== undefined && b !== undefined) intervals.push([a, b]);
  }
  const first = Math.min(...intervals.map(([a]) => a));
  const last = Math.max(...intervals.map(([, b]) => b));
  const held = intervals.reduce((sum, [a, b]) => sum + (b - a), 0);
  // Max in flight: sweep over the starts and ends (an end at the same ms as a start goes first).
  const events = intervals.flatMap(([a, b]) => [[a, 1] as const, [b, -1] as const]).sort((x, y) => x[0] - y[0] || x[1] - y[1]);
  let now = 0;
  let maxInFlight = 0;
  for (const [, d] of events) maxInFlight = Math.max(maxInFlight, (now += d));
  return { byType, phases, spanSeconds: (last - first) / 1000, meanInFlight: held / Math.max(1, last - first), maxInFlight };
}

/** Live processes carrying a WARDEN_JOB_ID of one of this bench's runs. */
function leftovers(): string[] {
  const found: string[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    let stat: string;
    let environ: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      environ = readFileSync(`/proc/${entry}/environ`, 'latin1');
    } catch {
      continue;
    }
    if (stat[stat.lastIndexOf(')') + 2] === 'Z') continue;
    const job = environ.split('\0').find((v) => v.startsWith('WARDEN_JOB_ID=') && runIds.some((id) => v.startsWith(`WARDEN_JOB_ID=${id}/`)));
    if (job) found.push(`${entry} ${job}`);
  }
  return found;
}

// ---------------------------------------------------------------------------------------------
// The build under test. The tree is shared: another process may rebuild dist/ while the bench
// runs, and a sample started after that would run other code. Each sample checks the stamp.

/** The newest mtime under the build dir (dist/) and how many files it holds. */
function distStamp(): string {
  let newest = 0;
  let files = 0;
  const walk = (dir: string) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else {
        files++;
        newest = Math.max(newest, statSync(path).mtimeMs);
      }
    }
  };
  walk(DIST);
  return `${files} files, newest ${new Date(newest).toISOString()}`;
}

/** HEAD and the count of files changed under src/ (read-only git calls; '?' without git). */
function gitState(): string {
  const git = (args: string[]) => spawnSync('git', args, { cwd: REPO, encoding: 'utf8' });
  const head = git(['rev-parse', '--short', 'HEAD']);
  if (head.status !== 0) return '?';
  const dirty = git(['status', '--porcelain', '--', 'src']).stdout.split('\n').filter((l) => l !== '').length;
  return `HEAD ${head.stdout.trim()}${dirty > 0 ? `, ${dirty} file(s) under src/ differ from HEAD` : ', src/ clean'}`;
}

// ---------------------------------------------------------------------------------------------
// Rounds

interface Contender {
  label: string;
  /** Untimed: a fresh tree for the sample; returns the args of the child to time. */
  prepare(): { cwd: string; args: string[]; project: Project };
  /** Untimed: checks the sample's result, then removes its tree. */
  check(project: Project, run: Run): void;
}

const count = (n: number) => n.toLocaleString('en-US');
const sec = (s: number) => `${s.toFixed(1)} s`;

export const queueBench: Bench = {
  name: 'queue',
  title: `${count(JOBS)} trivial jobs (\`true\`), cap ${CAP}: \`warden run --once\` vs execa ${CAP} at a time in a fresh node, bare and with Warden's per-job guarantees`,
  async run() {
    for (const file of [CLI, FLOOR, GUARDED]) if (!existsSync(file)) throw new Error(`queue bench: ${file} is missing${file === CLI ? '; run `npm run build` first' : ''}`);
    const stale = ['runner/scheduler', 'effects/queueEffects', 'effects/jobProcess', 'cli/runCommand', 'machines/queue.machine'].filter((p) => {
      const src = join(REPO, 'src', `${p}.ts`);
      const out = join(DIST, `${p}.js`);
      return DIST === join(REPO, 'dist') && existsSync(src) && existsSync(out) && statSync(src).mtimeMs > statSync(out).mtimeMs;
    });
    if (stale.length > 0) console.log(`  WARNING: dist/ is older than src/ for ${stale.join(', ')}: run \`npm run build\` first`);
    const stamp = distStamp();
    console.log(`  build under test: ${DIST}: ${stamp}; the repo: ${gitState()}`);
    const rebuilt: string[] = [];
    const base = mkdtempSync(join(tmpdir(), 'warden-bench-queue-'));
    console.log(`  trees under ${base} (one fresh tree per sample, removed after its checks); node ${NODE}`);
    console.log(`  every contender is a child node process started with spawnSync and timed from spawn to exit; ${REPS} rounds, order rotated, warm-up: one round of ${WARMUP_JOBS} jobs`);
    let serial = 0;
    const checks: WardenCheck[] = [];
    const fresh = (jobs: number) => makeProject(base, `p${String(serial++).padStart(3, '0')}`, jobs);
    const contenders = (jobs: number): Contender[] => [
      {
        label: `floor: node spawnMany.mjs — ${count(jobs)} × await execa('true', [], {cwd}), ${CAP} lanes`,
        prepare: () => {
          const project = fresh(jobs);
          return { cwd: base, args: [FLOOR, project.dirsFile, String(CAP)], project };
        },
        check: (_project, run) => checkFloor(run, jobs),
      },
      {
        label: `floor with Warden's per-job guarantees: node spawnGuarded.mjs — lock, prompt, log, execa detached, /proc scan, meta, unlock; ${CAP} lanes`,
        prepare: () => {
          const project = fresh(jobs);
          return { cwd: base, args: [GUARDED, project.dirsFile, String(CAP), guardedRuns(project)], project };
        },
        check: (project, run) => checkGuarded(project, run, jobs),
      },
      {
        label: `warden run --once, ${count(jobs)} jobs, cap ${CAP}`,
        prepare: () => {
          const project = fresh(jobs);
          return { cwd: base, args: [CLI, 'run', '--dir', project.dir, '--once'], project };
        },
        check: (project, run) => void checks.push(checkWarden(project, run, jobs)),
      },
      {
        label: 'ref: warden run --once, empty jobs dir',
        prepare: () => {
          const project = fresh(0);
          return { cwd: base, args: [CLI, 'run', '--dir', project.dir, '--once'], project };
        },
        check: (_project, run) => {
          if (run.status !== 0) fail('warden run --once (empty)', run, 'expected exit 0');
          if (lastLine(run.stdout) !== '0 of 0 jobs completed') fail('warden run --once (empty)', run, `stdout ends "${lastLine(run.stdout)}"`);
        },
      },
      {
        label: 'ref: floor script, empty list (node + execa import)',
        prepare: () => {
          const project = fresh(0);
          return { cwd: base, args: [FLOOR, project.dirsFile, String(CAP)], project };
        },
        check: (_project, run) => checkFloor(run, 0),
      },
      {
        label: 'ref: guarded floor script, empty list',
        prepare: () => {
          const project = fresh(0);
          return { cwd: base, args: [GUARDED, project.dirsFile, String(CAP), guardedRuns(project)], project };
        },
        check: (project, run) => checkGuarded(project, run, 0),
      },
    ];
    const sample = (c: Contender): number => {
      const { cwd, args, project } = c.prepare();
      const t = process.hrtime.bigint();
      const run = spawnRun(cwd, args);
      const seconds = Number(process.hrtime.bigint() - t) / 1e9;
      const now = distStamp();
      if (now !== stamp) {
        rebuilt.push(`${c.label} (dist/ now ${now})`);
        console.log(`  WARNING: the build (${DIST}) changed during or before this sample (${c.label}): now ${now}, was ${stamp}`);
      }
      try {
        c.check(project, run);
      } finally {
        rmSync(project.dir, { recursive: true, force: true });
      }
      return seconds;
    };

    try {
      if (WARMUP_JOBS > 0) {
        const t = process.hrtime.bigint();
        for (const c of contenders(WARMUP_JOBS)) sample(c);
        checks.length = 0;
        console.log(`  warm-up round (${WARMUP_JOBS} jobs): ${sec(Number(process.hrtime.bigint() - t) / 1e9)}`);
      }
      const timed = contenders(JOBS);
      const seconds = timed.map(() => [] as number[]);
      for (let r = 0; r < REPS; r++) {
        const t = process.hrtime.bigint();
        const line: string[] = [];
        for (let k = 0; k < timed.length; k++) {
          const i = (k + r) % timed.length;
          const s = sample(timed[i]!);
          seconds[i]!.push(s);
          line.push(`${['floor', 'guarded', 'warden', 'warden-empty', 'floor-empty', 'guarded-empty'][i]} ${fmtMs(s)} ms`);
        }
        console.log(`  round ${r + 1}/${REPS} (${sec(Number(process.hrtime.bigint() - t) / 1e9)} with trees and checks): ${line.join(', ')}`);
      }
      const left = leftovers();
      if (left.length > 0) throw new Error(`queue bench: LEFT RUNNING: ${left.join('; ')}`);

      const [floorS, guardedS, wardenS, wardenEmptyS, floorEmptyS, guardedEmptyS] = seconds as [number[], number[], number[], number[], number[], number[]];
      const [floorMed, guardedMed, wardenMed, wardenEmptyMed, floorEmptyMed, guardedEmptyMed] = seconds.map((s) => median(s)) as [number, number, number, number, number, number];
      printTable(
        `queue: ${count(JOBS)} jobs, cap ${CAP}, child processes, median of ${REPS}`,
        ['contender', 'ms', 'ms range', '÷ floor', '÷ guarded floor'],
        timed.map((c, i) => [
          c.label,
          fmtMs(median(seconds[i]!)),
          `${fmtMs(min(seconds[i]!))}–${fmtMs(max(seconds[i]!))}`,
          `${(median(seconds[i]!) / floorMed).toFixed(2)}x`,
          `${(median(seconds[i]!) / guardedMed).toFixed(2)}x`,
        ]),
      );

      const factor = wardenMed / floorMed;
      const perRound = wardenS.map((s, i) => s / floorS[i]!);
      const overheadMs = ((wardenMed - floorMed) / JOBS) * 1000;
      const perRoundOverhead = wardenS.map((s, i) => ((s - floorS[i]!) / JOBS) * 1000);
      const netWarden = wardenS.map((s, i) => s - wardenEmptyS[i]!);
      const netFloor = floorS.map((s, i) => s - floorEmptyS[i]!);
      const netOverhead = netWarden.map((s, i) => ((s - netFloor[i]!) / JOBS) * 1000);
      const netFactor = netWarden.map((s, i) => s / netFloor[i]!);
      // Against the floor with the same per-job guarantees (each round paired).
      const vsGuarded = wardenS.map((s, i) => s / guardedS[i]!);
      const guardedVsFloor = guardedS.map((s, i) => s / floorS[i]!);
      const overGuardedMs = wardenS.map((s, i) => ((s - guardedS[i]!) / JOBS) * 1000);
      const guaranteesMs = guardedS.map((s, i) => ((s - floorS[i]!) / JOBS) * 1000);
      const netGuarded = guardedS.map((s, i) => s - guardedEmptyS[i]!);
      const netVsGuarded = netWarden.map((s, i) => s / netGuarded[i]!);
      const netOverGuardedMs = netWarden.map((s, i) => ((s - netGuarded[i]!) / JOBS) * 1000);
      // Of Warden's overhead over the plain floor, the share the guarantees account for.
      const guaranteesShare = wardenS.map((s, i) => (guardedS[i]! - floorS[i]!) / (s - floorS[i]!));
      const pass = factor <= TARGET_FACTOR;
      printTable(
        'queue: ratios and overhead (medians; range over the rounds, each round paired)',
        ['case', 'value', 'range', 'target', 'verdict'],
        [
          ['warden ms ÷ floor ms', `${factor.toFixed(2)}x`, `${min(perRound).toFixed(2)}x–${max(perRound).toFixed(2)}x`, `<= ${TARGET_FACTOR}x`, verdict(pass)],
          [`overhead per job: (warden − floor) / ${count(JOBS)}, ms`, overheadMs.toFixed(2), `${min(perRoundOverhead).toFixed(2)}–${max(perRoundOverhead).toFixed(2)}`, '-', 'info'],
          ['fixed startup: warden run --once, empty jobs dir, ms', fmtMs(wardenEmptyMed), `${fmtMs(min(wardenEmptyS))}–${fmtMs(max(wardenEmptyS))}`, '-', 'info'],
          ['fixed startup: floor script, empty list, ms', fmtMs(floorEmptyMed), `${fmtMs(min(floorEmptyS))}–${fmtMs(max(floorEmptyS))}`, '-', 'info'],
          [
            `overhead per job without startup: ((warden − empty) − (floor − empty)) / ${count(JOBS)}, ms`,
            median(netOverhead).toFixed(2),
            `${min(netOverhead).toFixed(2)}–${max(netOverhead).toFixed(2)}`,
            '-',
            'info',
          ],
          ['same, as a ratio: (warden − empty) ÷ (floor − empty)', `${median(netFactor).toFixed(2)}x`, `${min(netFactor).toFixed(2)}x–${max(netFactor).toFixed(2)}x`, '-', 'info'],
          ['ms per job: warden / floor (each ÷ jobs)', `${fmtMs(wardenMed / JOBS)} / ${fmtMs(floorMed / JOBS)}`, '-', '-', 'info'],
        ],
      );
      const rangeX = (v: number[]) => `${min(v).toFixed(2)}x–${max(v).toFixed(2)}x`;
      const rangeN = (v: number[]) => `${min(v).toFixed(2)}–${max(v).toFixed(2)}`;
      printTable(
        "queue: against the floor with Warden's per-job guarantees (medians; range over the rounds, each round paired)",
        ['case', 'value', 'range', 'target', 'verdict'],
        [
          ['warden ms ÷ guarded floor ms (Warden\'s own bookkeeping)', `${(wardenMed / guardedMed).toFixed(2)}x`, rangeX(vsGuarded), '-', 'info'],
          ['guarded floor ms ÷ floor ms (the guarantees themselves)', `${(guardedMed / floorMed).toFixed(2)}x`, rangeX(guardedVsFloor), '-', 'info'],
          [`overhead per job over the guarded floor: (warden − guarded) / ${count(JOBS)}, ms`, (((wardenMed - guardedMed) / JOBS) * 1000).toFixed(2), rangeN(overGuardedMs), '-', 'info'],
          [`cost of the guarantees per job: (guarded − floor) / ${count(JOBS)}, ms`, (((guardedMed - floorMed) / JOBS) * 1000).toFixed(2), rangeN(guaranteesMs), '-', 'info'],
          ['share of warden − floor that the guarantees account for: (guarded − floor) ÷ (warden − floor)', `${(median(guaranteesShare) * 100).toFixed(0)}%`, `${(min(guaranteesShare) * 100).toFixed(0)}%–${(max(guaranteesShare) * 100).toFixed(0)}%`, '-', 'info'],
          ['fixed startup: guarded floor script, empty list, ms', fmtMs(guardedEmptyMed), `${fmtMs(min(guardedEmptyS))}–${fmtMs(max(guardedEmptyS))}`, '-', 'info'],
          ['without startup: (warden − empty) ÷ (guarded − empty)', `${median(netVsGuarded).toFixed(2)}x`, rangeX(netVsGuarded), '-', 'info'],
          [`without startup: ((warden − empty) − (guarded − empty)) / ${count(JOBS)}, ms`, median(netOverGuardedMs).toFixed(2), rangeN(netOverGuardedMs), '-', 'info'],
          ['ms per job: warden / guarded floor / floor (each ÷ jobs)', `${fmtMs(wardenMed / JOBS)} / ${fmtMs(guardedMed / JOBS)} / ${fmtMs(floorMed / JOBS)}`, '-', '-', 'info'],
        ],
      );

      // What the logs of the timed Warden samples say (read after each run).
      const phaseLabels = [...checks[0]!.phases.keys()];
      printTable(
        `queue: per job, from the log's record timestamps (ms; median over the ${count(JOBS)} jobs of each sample, then median and range over the ${checks.length} samples)`,
        ['phase', 'median', 'p90', 'range of medians'],
        phaseLabels.map((label) => {
          const meds = checks.map((c) => median(c.phases.get(label)!));
          const p90s = checks.map((c) => {
            const v = [...c.phases.get(label)!].sort((a, b) => a - b);
            return v[Math.floor(0.9 * (v.length - 1))]!;
          });
          return [label, median(meds).toFixed(1), median(p90s).toFixed(1), `${min(meds).toFixed(1)}–${max(meds).toFixed(1)}`];
        }),
      );
      const c0 = checks[0]!;
      printTable(
        'queue: what each Warden sample wrote and kept in flight (median and range over the samples)',
        ['what', 'median', 'range'],
        [
          ['records in the log', count(median(checks.map((c) => c.records))), `${count(min(checks.map((c) => c.records)))}–${count(max(checks.map((c) => c.records)))}`],
          ['records per job', (median(checks.map((c) => c.records)) / JOBS).toFixed(2), '-'],
          ['log bytes per record', (median(checks.map((c) => c.logBytes / c.records))).toFixed(0), '-'],
          ['mean jobs in flight (picked → jobFinished), of cap 8', median(checks.map((c) => c.meanInFlight)).toFixed(2), `${min(checks.map((c) => c.meanInFlight)).toFixed(2)}–${max(checks.map((c) => c.meanInFlight)).toFixed(2)}`],
          ['max jobs in flight', String(median(checks.map((c) => c.maxInFlight))), `${min(checks.map((c) => c.maxInFlight))}–${max(checks.map((c) => c.maxInFlight))}`],
          ['span first picked → last finished, s', median(checks.map((c) => c.spanSeconds)).toFixed(1), `${min(checks.map((c) => c.spanSeconds)).toFixed(1)}–${max(checks.map((c) => c.spanSeconds)).toFixed(1)}`],
          ['ref (untimed): warden status --json afterwards, s', median(checks.map((c) => c.statusSeconds)).toFixed(1), `${min(checks.map((c) => c.statusSeconds)).toFixed(1)}–${max(checks.map((c) => c.statusSeconds)).toFixed(1)}`],
        ],
      );
      console.log(`  records by actor and type (first sample): ${[...c0.byType].map(([k, n]) => `${k} ${n}`).join(', ')}`);
      if (rebuilt.length > 0) console.log(`  WARNING: the build (${DIST}) was rebuilt during the bench; ${rebuilt.length} sample(s) ran other code: ${rebuilt.join('; ')}`);
      else console.log(`  the build (${DIST}) unchanged from the first sample to the last (${stamp}); the repo at the end: ${gitState()}`);
      console.log(`  after the bench: no process of its ${runIds.length} Warden runs is running (checked in /proc); every worker lock was released`);

      const results: Result[] = [
        {
          bench: 'queue',
          case: `warden run --once, ${count(JOBS)} × true, cap ${CAP}, vs execa ${CAP} at a time (fresh node)`,
          unit: 'jobs/s',
          floor: JOBS / floorMed,
          measured: JOBS / wardenMed,
          ratio: floorMed / wardenMed,
          target: `<= ${TARGET_FACTOR}x floor's time (>= ${((1 / TARGET_FACTOR) * 100).toFixed(1)}%)`,
          pass,
        },
        {
          bench: 'queue',
          case: 'same, each minus its empty run (startup removed)',
          unit: 'jobs/s',
          floor: JOBS / median(netFloor),
          measured: JOBS / median(netWarden),
          ratio: median(netFloor) / median(netWarden),
        },
        {
          bench: 'queue',
          case: `same, vs a floor with Warden's per-job guarantees (lock, prompt, log, detached, /proc scan, meta, unlock)`,
          unit: 'jobs/s',
          floor: JOBS / guardedMed,
          measured: JOBS / wardenMed,
          ratio: guardedMed / wardenMed,
        },
      ];
      return results;
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  },
};
