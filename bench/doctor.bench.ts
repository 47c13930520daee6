/**
 * The worker lock scan, `warden doctor ROOT --json`, over a generated town of 1,000 workers (each
 * with a lock, some source, a `.git` clone, every third one with a heavy `node_modules`) against
 * GNU find with the same prunes printing the lock paths, and against the same doctor with no skips
 * (`--no-default-skips`). Every contender is a child process, spawned the same way, so process
 * startup is counted for all of them. References beside them: bare `node -e ''` startup, the
 * doctor on an empty directory (startup + modules + output), and `findAllLocks` in this process
 * (the walk alone, JIT warm).
 *
 * Every lock names PID 999999999 — a valid pid for Warden (< 2^31), above any kernel's pid_max,
 * so always dead — on this host and with no session, so each is judged stale without a session
 * probe (the doctor runs probes only when a lock has a session_id): exit 1, 1,000 stale findings.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEFAULT_SKIP_DIRS, findAllLocks } from '../src/effects/lockScan.js';
import { localHostname } from '../src/effects/processIdentity.js';
import { fmtMs, fmtPct, interleave, median, printTable, ratioSpread, verdict, type Bench, type Contender, type Result } from './stats.js';

const REPS = 7;
const WARMUP = 1;
/** The doctor's time per scan may be at most this many times find's. */
const TARGET_FIND_FACTOR = 1.2;

const RIGS = 10;
const WORKERS_PER_RIG = 100;
const WORKERS = RIGS * WORKERS_PER_RIG;
/** Valid for Warden (< 2^31) and above any pid_max (at most 2^22): never a live process. */
const DEAD_PID = 999_999_999;
/** Loose objects in each worker's `.git`, and in each rig's own `.git`. */
const WORKER_LOOSE_OBJECTS = 20;
const RIG_LOOSE_OBJECTS = 1_500;
/** Files in each package's `lib/`. */
const PACKAGE_LIB_FILES = 4;

const CLI = fileURLToPath(new URL('../../dist/cli/main.js', import.meta.url));
const REPO = fileURLToPath(new URL('../../', import.meta.url));

const PACKAGES = [
  'lodash', 'react', 'react-dom', 'typescript', 'zod', 'chalk', 'commander', 'debug', 'ms', 'semver', 'glob', 'minimatch',
  'yargs', 'execa', 'rxjs', 'tslib', 'uuid', '@types/node', '@types/react', '@babel/core', '@babel/parser', 'esbuild', 'vitest',
  'picocolors', 'ws',
];
const NESTED = ['ansi-styles', 'supports-color'];
const GIT_HOOKS = [
  'applypatch-msg', 'commit-msg', 'fsmonitor-watchman', 'post-update', 'pre-applypatch', 'pre-commit', 'pre-merge-commit',
  'pre-push', 'pre-rebase', 'pre-receive', 'prepare-commit-msg', 'push-to-checkout', 'sendemail-validate', 'update',
];

/** What was generated: entries are files + directories under the root, the root not counted. */
export interface Town {
  root: string;
  entries: number;
  dirs: number;
  files: number;
  /** Entries below a skipped directory (the default walk never lists them). */
  insideSkipped: number;
  /** Skipped directories the default walk meets (and does not enter). */
  skippedDirs: number;
  /** Directories outside any skipped one, the root included: what the default walk reads. */
  dirsWalked: number;
  /** Directories in all, the root included: what the walk with no skips reads. */
  dirsAll: number;
  locks: string[];
}

/** Builds the tree with sync calls, counting as it goes. */
class TownWriter {
  readonly town: Town;
  private objects = 0;

  constructor(root: string) {
    this.town = { root, entries: 0, dirs: 0, files: 0, insideSkipped: 0, skippedDirs: 0, dirsWalked: 1, dirsAll: 1, locks: [] };
  }

  dir(path: string, inSkipped: boolean): string {
    mkdirSync(path);
    this.count(inSkipped);
    this.town.dirs++;
    this.town.dirsAll++;
    if (!inSkipped) this.town.dirsWalked++;
    return path;
  }

  /** A directory skipped by name, met by the default walk: itself walked past, its contents inside. */
  skipped(path: string): string {
    mkdirSync(path);
    this.count(false);
    this.town.dirs++;
    this.town.dirsAll++;
    this.town.skippedDirs++;
    return path;
  }

  file(path: string, text: string, inSkipped: boolean): void {
    writeFileSync(path, text);
    this.count(inSkipped);
    this.town.files++;
  }

  /** A git object id, the same on every run. */
  nextObject(): string {
    return createHash('sha1').update(`object ${this.objects++}`).digest('hex');
  }

  private count(inSkipped: boolean): void {
    this.town.entries++;
    if (inSkipped) this.town.insideSkipped++;
  }
}

function writeGitDir(w: TownWriter, gitDir: string, looseObjects: number): void {
  w.skipped(gitDir);
  const f = (rel: string, text: string) => w.file(join(gitDir, rel), text, true);
  const d = (rel: string) => w.dir(join(gitDir, rel), true);
  f('HEAD', 'ref: refs/heads/main\n');
  f('config', '[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = false\n');
  f('description', 'Unnamed repository; edit this file to name it for gitweb.\n');
  f('index', 'DIRC');
  f('packed-refs', '# pack-refs with: peeled fully-peeled sorted\n');
  f('FETCH_HEAD', '');
  f('ORIG_HEAD', '');
  f('COMMIT_EDITMSG', 'wip\n');
  d('hooks');
  for (const hook of GIT_HOOKS) f(`hooks/${hook}.sample`, '#!/bin/sh\n');
  d('info');
  f('info/exclude', '# git ls-files --others --exclude-from=.git/info/exclude\n');
  d('logs');
  f('logs/HEAD', '');
  d('logs/refs');
  d('logs/refs/heads');
  f('logs/refs/heads/main', '');
  d('refs');
  d('refs/heads');
  f('refs/heads/main', `${w.nextObject()}\n`);
  d('refs/tags');
  d('refs/remotes');
  d('refs/remotes/origin');
  f('refs/remotes/origin/HEAD', 'ref: refs/remotes/origin/main\n');
  d('objects');
  d('objects/info');
  d('objects/pack');
  const pack = w.nextObject();
  for (const ext of ['idx', 'pack', 'rev']) f(`objects/pack/pack-${pack}.${ext}`, '');
  const fanout = new Set<string>();
  for (let i = 0; i < looseObjects; i++) {
    const id = w.nextObject();
    const prefix = id.slice(0, 2);
    if (!fanout.has(prefix)) {
      fanout.add(prefix);
      d(`objects/${prefix}`);
    }
    f(`objects/${prefix}/${id.slice(2)}`, 'x');
  }
}

function writePackage(w: TownWriter, dir: string, name: string, nested: boolean): void {
  w.dir(dir, true);
  w.file(join(dir, 'package.json'), `{"name":"${name}","version":"1.0.0","main":"index.js"}\n`, true);
  for (const file of ['README.md', 'LICENSE', 'index.js', 'index.d.ts']) w.file(join(dir, file), '', true);
  w.dir(join(dir, 'lib'), true);
  for (let i = 0; i < PACKAGE_LIB_FILES; i++) w.file(join(dir, 'lib', `part${i}.js`), '', true);
  if (!nested) return;
  // A nested node_modules inside a skipped one: inside, not met by the default walk.
  w.dir(join(dir, 'node_modules'), true);
  for (const dep of NESTED) writePackage(w, join(dir, 'node_modules', dep), dep, false);
}

function writeNodeModules(w: TownWriter, dir: string): void {
  w.skipped(dir);
  const scopes = new Set<string>();
  PACKAGES.forEach((name, i) => {
    const scope = name.startsWith('@') ? name.slice(0, name.indexOf('/')) : null;
    if (scope && !scopes.has(scope)) {
      scopes.add(scope);
      w.dir(join(dir, scope), true);
    }
    writePackage(w, join(dir, name), name, i % 4 === 0);
  });
  w.dir(join(dir, '.bin'), true);
  for (const bin of ['tsc', 'tsserver', 'esbuild', 'vitest', 'semver', 'glob']) w.file(join(dir, '.bin', bin), '', true);
}

/**
 * Generates the town under `root` (which must exist and be empty): RIGS rigs, each a clone with
 * its own `.git` and WORKERS_PER_RIG workers under `polecats/`. Every worker has a lock, some
 * source, a `.git`; every third one a `node_modules`; every fourth one a `dist/`. No lock is inside
 * a skipped directory, so the walk with no skips finds the same 1,000.
 */
export function makeTown(root: string): Town {
  const w = new TownWriter(root);
  const lock = `${JSON.stringify({ pid: DEAD_PID, acquired_at: '2026-11-23T10:00:00.000Z', hostname: localHostname() })}\n`;
  for (let r = 0; r < RIGS; r++) {
    const rig = w.dir(join(root, `rig${r}`), false);
    writeGitDir(w, join(rig, '.git'), RIG_LOOSE_OBJECTS);
    w.file(join(rig, 'README.md'), '# rig\n', false);
    w.dir(join(rig, 'mayor'), false);
    w.file(join(rig, 'mayor', 'state.json'), '{}\n', false);
    const polecats = w.dir(join(rig, 'polecats'), false);
    for (let i = 0; i < WORKERS_PER_RIG; i++) {
      const n = r * WORKERS_PER_RIG + i;
      const worker = w.dir(join(polecats, `w${String(i).padStart(3, '0')}`), false);
      w.dir(join(worker, '.runtime'), false);
      const lockPath = join(worker, '.runtime', 'agent.lock');
      w.file(lockPath, lock, false);
      w.town.locks.push(lockPath);
      for (const file of ['README.md', 'package.json', 'tsconfig.json']) w.file(join(worker, file), '{}\n', false);
      w.dir(join(worker, 'src'), false);
      for (const file of ['index.ts', 'cli.ts']) w.file(join(worker, 'src', file), '', false);
      w.dir(join(worker, 'src', 'lib'), false);
      for (const file of ['a.ts', 'b.ts', 'c.ts']) w.file(join(worker, 'src', 'lib', file), '', false);
      w.dir(join(worker, 'test'), false);
      w.file(join(worker, 'test', 'index.test.ts'), '', false);
      writeGitDir(w, join(worker, '.git'), WORKER_LOOSE_OBJECTS);
      if (n % 3 === 0) writeNodeModules(w, join(worker, 'node_modules'));
      if (n % 4 === 1) {
        const dist = w.skipped(join(worker, 'dist'));
        for (let k = 0; k < 10; k++) w.file(join(dist, `chunk${k}.js`), '', true);
      }
    }
  }
  return w.town;
}

/** One child process run: its exit status and output, kept to be checked after the rounds. */
interface Run {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function spawnRun(cwd: string, command: string, args: readonly string[]): Run {
  const r: SpawnSyncReturns<string> = spawnSync(command, args, { cwd, encoding: 'utf8', maxBuffer: 256 * 2 ** 20 });
  if (r.error) throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
}

interface DoctorJson {
  locks: Array<{ worker: string; state: string }>;
  findings: Array<{ kind: string }>;
  probes: unknown[];
  scanned: { dirs: number; skipped: number };
}

function fail(what: string, run: Run, problem: string): never {
  throw new Error(`doctor bench: ${what}: ${problem} (exit ${String(run.status)}${run.signal ? `, signal ${run.signal}` : ''}; stderr: ${run.stderr.trim().slice(0, 500) || 'none'})`);
}

function checkDoctor(what: string, run: Run, town: Town, expect: { locks: number; dirs: number; skipped: number; status: number }): DoctorJson {
  if (run.status !== expect.status) fail(what, run, `expected exit ${expect.status}`);
  let report: DoctorJson;
  try {
    report = JSON.parse(run.stdout) as DoctorJson;
  } catch {
    fail(what, run, `stdout is not one JSON report: ${run.stdout.slice(0, 200)}`);
  }
  if (report.locks.length !== expect.locks) fail(what, run, `${report.locks.length} locks reported, expected ${expect.locks}`);
  const stale = report.locks.filter((l) => l.state === 'stale').length;
  if (stale !== expect.locks) fail(what, run, `${stale} of ${report.locks.length} locks judged stale, expected all`);
  const findings = report.findings.filter((f) => f.kind === 'stale').length;
  if (findings !== report.findings.length || findings !== expect.locks) fail(what, run, `findings ${report.findings.map((f) => f.kind).join(',')}`);
  if (report.probes.length !== 0) fail(what, run, `${report.probes.length} session probes taken, expected none`);
  if (report.scanned.dirs !== expect.dirs) fail(what, run, `${report.scanned.dirs} directories read, the tree has ${expect.dirs} to read`);
  if (report.scanned.skipped !== expect.skipped) fail(what, run, `${report.scanned.skipped} directories skipped, expected ${expect.skipped}`);
  if (expect.locks > 0) {
    const workers = new Set(report.locks.map((l) => l.worker));
    const missing = town.locks.filter((p) => !workers.has(p.slice(0, -'/.runtime/agent.lock'.length)));
    if (missing.length > 0) fail(what, run, `${missing.length} locks not reported, e.g. ${missing[0]}`);
  }
  return report;
}

function checkFind(run: Run, town: Town): void {
  if (run.status !== 0) fail('find', run, 'expected exit 0');
  const lines = run.stdout.split('\n').filter((l) => l !== '');
  if (lines.length !== town.locks.length) fail('find', run, `${lines.length} paths printed, expected ${town.locks.length}`);
  const printed = new Set(lines);
  const missing = town.locks.filter((p) => !printed.has(p));
  if (missing.length > 0) fail('find', run, `${missing.length} locks not printed, e.g. ${missing[0]}`);
}

/** Warns when the built CLI is older than the sources it is built from. */
function staleBuildNote(): string | null {
  const pairs = ['effects/lockScan', 'effects/doctor', 'effects/workerLock', 'cli/doctorCommand', 'cli/main'];
  const stale = pairs.filter((p) => {
    const src = join(REPO, 'src', `${p}.ts`);
    const out = join(REPO, 'dist', `${p}.js`);
    return existsSync(src) && existsSync(out) && statSync(src).mtimeMs > statSync(out).mtimeMs;
  });
  return stale.length > 0 ? `  WARNING: dist/ is older than src/ for ${stale.join(', ')}: run \`npm run build\` first` : null;
}

const count = (n: number) => n.toLocaleString('en-US');

export const doctorBench: Bench = {
  name: 'doctor',
  title: "Worker lock scan: `warden doctor --json` vs GNU find with the same prunes vs the doctor with no skips",
  async run() {
    if (!existsSync(CLI)) throw new Error(`doctor bench: ${CLI} is missing; run \`npm run build\` first`);
    const note = staleBuildNote();
    if (note) console.log(note);
    const base = mkdtempSync(join(tmpdir(), 'warden-bench-doctor-'));
    try {
      const root = join(base, 'town');
      mkdirSync(root);
      // An empty directory beside the town, for the startup reference; the cwd of every child
      // (no .warden/config.json there, so the doctor's default skips apply).
      const empty = join(base, 'empty');
      mkdirSync(empty);
      const t0 = process.hrtime.bigint();
      const town = makeTown(root);
      const genSeconds = Number(process.hrtime.bigint() - t0) / 1e9;
      if (town.entries < 200_000) throw new Error(`doctor bench: only ${town.entries} entries generated, the issue asks for >= 200,000`);
      console.log(
        `  tree under ${root}, generated in ${genSeconds.toFixed(1)} s: ${count(town.entries)} entries (${count(town.dirs)} dirs, ` +
          `${count(town.files)} files); ${count(town.insideSkipped)} (${fmtPct(town.insideSkipped / town.entries)}) inside ` +
          `${count(town.skippedDirs)} skipped dirs (.git, node_modules, dist); ${count(town.entries - town.insideSkipped)} seen by the default walk ` +
          `(${count(town.dirsWalked)} dirs read); ${count(WORKERS)} workers in ${RIGS} rigs, each with .runtime/agent.lock (PID ${DEAD_PID}, no session)`,
      );

      const node = process.execPath;
      const findArgs = [root, '(', ...DEFAULT_SKIP_DIRS.flatMap((name, i) => (i === 0 ? ['-name', name] : ['-o', '-name', name])), ')', '-prune', '-o', '-path', '*/.runtime/agent.lock', '-print'];
      const findVersion = spawnRun(base, 'find', ['--version']).stdout.split('\n')[0] ?? 'find';
      console.log(`  ${findVersion}: find ROOT ( -name ${DEFAULT_SKIP_DIRS.join(' -o -name ')} ) -prune -o -path '*/.runtime/agent.lock' -print`);
      console.log('  find lists names only: it neither opens nor parses the lock files, nor judges their owners; the doctor does both.');
      console.log(`  every contender is spawned with spawnSync from this process (cwd ${base}); outputs are checked after the rounds.`);

      const runs: Run[][] = [];
      const spawned = (label: string, command: string, args: readonly string[]): Contender => {
        const mine: Run[] = [];
        runs.push(mine);
        return { label, fn: () => void mine.push(spawnRun(base, command, args)) };
      };
      const expectDoctor = { locks: WORKERS, dirs: town.dirsWalked, skipped: town.skippedDirs, status: 1 };
      const expectNoSkips = { locks: WORKERS, dirs: town.dirsAll, skipped: 0, status: 1 };
      const expectEmpty = { locks: 0, dirs: 1, skipped: 0, status: 0 };
      let inProcess = 0;
      const contenders: Contender[] = [
        spawned('find, same prunes (-print lock paths)', 'find', findArgs),
        spawned('warden doctor ROOT --json', node, [CLI, 'doctor', root, '--json']),
        spawned('warden doctor ROOT --json --no-default-skips', node, [CLI, 'doctor', root, '--json', '--no-default-skips']),
        spawned("ref: node -e ''", node, ['-e', '']),
        spawned('ref: warden doctor EMPTY --json', node, [CLI, 'doctor', empty, '--json']),
        {
          label: 'ref: findAllLocks(ROOT) in this process',
          fn: () => {
            inProcess = findAllLocks(root).locks.size;
          },
        },
      ];
      // One checked run each before timing, so a wrong result fails before the rounds.
      for (const c of contenders) await c.fn();
      const first = checkDoctor('doctor', runs[1]![0]!, town, expectDoctor);
      console.log(`  doctor report: ${count(first.locks.length)} locks, all stale; ${count(first.scanned.dirs)} dirs read, ${count(first.scanned.skipped)} skipped by name; ${count(Buffer.byteLength(runs[1]![0]!.stdout))} B of JSON`);

      const samples = await interleave(contenders, REPS, WARMUP);

      for (const run of runs[0]!) checkFind(run, town);
      for (const run of runs[1]!) checkDoctor('doctor', run, town, expectDoctor);
      for (const run of runs[2]!) checkDoctor('doctor --no-default-skips', run, town, expectNoSkips);
      for (const run of runs[3]!) if (run.status !== 0) fail("node -e ''", run, 'expected exit 0');
      for (const run of runs[4]!) checkDoctor('doctor EMPTY', run, town, expectEmpty);
      if (inProcess !== WORKERS) throw new Error(`doctor bench: findAllLocks found ${inProcess} locks, expected ${WORKERS}`);

      const seconds = samples.map((s) => s.seconds);
      const med = seconds.map((s) => median(s));
      const [findS, doctorS, noSkipsS, nodeS] = seconds as [number[], number[], number[], number[]];
      const [findMed, doctorMed, noSkipsMed, nodeMed, emptyMed] = med as [number, number, number, number, number];
      printTable(
        `doctor: one scan of ${count(town.entries)} entries (${count(WORKERS)} locks), child processes, median of ${REPS}`,
        ['contender', 'ms/scan', 'ms range', '÷ find'],
        samples.map((s, i) => [s.label, fmtMs(med[i]!), `${fmtMs(Math.min(...s.seconds))}–${fmtMs(Math.max(...s.seconds))}`, `${(med[i]! / findMed).toFixed(2)}x`]),
      );

      const findFactor = doctorMed / findMed;
      const [findLo, findHi] = ratioSpread(findS, doctorS); // per round: doctor s ÷ find s
      const speedup = noSkipsMed / doctorMed;
      const [speedLo, speedHi] = ratioSpread(doctorS, noSkipsS); // per round: no-skips s ÷ doctor s
      const [nodeLo, nodeHi] = ratioSpread(findS, nodeS);
      const pass = findFactor <= TARGET_FIND_FACTOR;
      printTable(
        'doctor: ratios (medians; range over the rounds, each round paired)',
        ['case', 'ratio', 'range', 'target', 'verdict'],
        [
          ['doctor ms/scan ÷ find ms/scan', `${findFactor.toFixed(2)}x`, `${findLo.toFixed(2)}x–${findHi.toFixed(2)}x`, `<= ${TARGET_FIND_FACTOR}x`, verdict(pass)],
          ['no-skips ms/scan ÷ doctor ms/scan (speedup of the skips)', `${speedup.toFixed(2)}x`, `${speedLo.toFixed(2)}x–${speedHi.toFixed(2)}x`, '-', 'info'],
          ["ref: node -e '' ms ÷ find ms", `${(nodeMed / findMed).toFixed(2)}x`, `${nodeLo.toFixed(2)}x–${nodeHi.toFixed(2)}x`, '-', 'info'],
          [
            'ref: same, scan alone (each minus doctor EMPTY)',
            `${((noSkipsMed - emptyMed) / (doctorMed - emptyMed)).toFixed(2)}x`,
            '-',
            '-',
            'info',
          ],
          ["ref: doctor − node -e '' (ms)", fmtMs(doctorMed - nodeMed), '-', '-', 'info'],
          ['ref: doctor − doctor EMPTY (ms)', fmtMs(doctorMed - emptyMed), '-', '-', 'info'],
        ],
      );

      const results: Result[] = [
        {
          bench: 'doctor',
          case: 'warden doctor --json vs find, same prunes',
          unit: 'scans/s',
          floor: 1 / findMed,
          measured: 1 / doctorMed,
          ratio: findMed / doctorMed,
          target: `<= ${TARGET_FIND_FACTOR}x find's time (>= ${fmtPct(1 / TARGET_FIND_FACTOR)})`,
          pass,
        },
        {
          bench: 'doctor',
          case: 'warden doctor --json vs --no-default-skips',
          unit: 'scans/s',
          floor: 1 / noSkipsMed,
          measured: 1 / doctorMed,
          ratio: speedup,
        },
        {
          bench: 'doctor',
          case: "ref: node -e '' vs find",
          unit: 'runs/s',
          floor: 1 / findMed,
          measured: 1 / nodeMed,
          ratio: findMed / nodeMed,
        },
      ];
      return results;
    } finally {
      rmSync(base, { recursive: true, force: true });
    }
  },
};
