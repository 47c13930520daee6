/**
 * Stress: the scheduler lease under SIGKILL chaos. Many processes loop acquire → critical section
 * → release on one project dir while a chaos loop SIGKILLs whoever holds the lease. Each critical
 * section appends "begin E PID" and "end E PID" to a shared file (one O_APPEND write per line), so
 * the file is the order in which sections really ran. Invariants checked on it afterwards:
 *
 * - no two sections overlap: a `begin` is followed by the `end` of the same epoch and pid, unless
 *   that holder was SIGKILLed by the chaos loop before the next `begin` was written (its section
 *   was cut short: the next holder took over from a dead one);
 * - epochs strictly increase from one `begin` to the next;
 * - each section's epoch is the one the project log records for that holder's `lease.acquired`
 *   (through the CLI: the section is written by CMD's child — warden's grandchild, which the
 *   parent-death signal does not reach — and its grandparent, written on every line, is the
 *   warden that acquired it unless that warden was SIGKILLed; a grandchild that outlived its
 *   warden into the next holder's section breaks the first invariant);
 * - the project log replays with verification, and its records' epochs never decrease (a deposed
 *   holder writing late would break that).
 */
import { spawn } from 'node:child_process';
import { closeSync, fstatSync, openSync, readFileSync, readSync, watch, writeFileSync, type FSWatcher } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { isZombie } from '../../src/effects/processIdentity.js';
import { builtInMachines } from '../../src/machines/catalogue.js';
import { replayLog } from '../../src/runner/replay.js';
import { readLog } from '../../src/store/logReader.js';
import { CLI } from '../helpers/cli.js';
import { processGone } from '../helpers/processes.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();
const WORKER = join(import.meta.dirname, '../fixtures/stress/libraryWorker.mjs');
const SECTION = join(import.meta.dirname, '../fixtures/stress/section.mjs');

// The library test: 16 workers, >= 2,000 sections, >= 20 holders killed.
const LIBRARY_WORKERS = 16;
const LIBRARY_SECTIONS = 2_000;
const LIBRARY_MIN_KILLS = 20;
const LIBRARY_SECTIONS_PER_KILL = 60;
// About a minute on an idle 2-core machine; the limit leaves room for a busy one.
const LIBRARY_RUN_LIMIT_MS = 400_000;
// The CLI test: 8 loops of `warden lease run --wait`, >= 200 sections. Each section is a whole
// warden run, about 0.7 s of CPU (mostly module loading) plus 0.1 s for CMD: on 2 cores 200
// sections (230 runs, with the killed ones) take 2.5–3 minutes whatever the concurrency.
const CLI_LOOPS = 8;
const CLI_SECTIONS = 200;
const CLI_MIN_KILLS = 10;
const CLI_SECTIONS_PER_KILL = 12;
const CLI_SECTIONS_PER_SECTION_KILL = 16;
const CLI_RUN_LIMIT_MS = 540_000;

describe('the scheduler lease under SIGKILL chaos', () => {
  it(
    `${LIBRARY_WORKERS} library workers: >= ${LIBRARY_SECTIONS} critical sections, none overlapping, epochs rising, while holders are SIGKILLed`,
    { timeout: 450_000 },
    async () => {
      const t0 = Date.now();
      const dir = tempDir();
      const shared = join(dir, 'sections.txt');
      writeFileSync(shared, '');
      const counter = new SectionCounter(shared);
      const live = new Map<number, Promise<void>>();
      const exits: Array<Promise<void>> = [];
      const started: number[] = [];
      // pid -> size of the shared file just before the SIGKILL was sent.
      const killedAt = new Map<number, number>();
      const unexpected: string[] = [];
      let chaosKills = 0;
      let ends = 0;
      let stopping = false;

      const spawnWorker = () => {
        const child = spawn(process.execPath, [WORKER, dir, shared], { stdio: ['ignore', 'ignore', 'pipe'] });
        let stderr = '';
        child.stderr.on('data', (chunk: Buffer) => {
          stderr = (stderr + chunk.toString()).slice(-4_000);
        });
        const exited = new Promise<void>((resolve) => {
          child.once('error', (error) => {
            unexpected.push(`a worker failed to start: ${error.message}`);
            resolve();
          });
          child.once('exit', (code, signal) => {
            if (child.pid !== undefined) live.delete(child.pid);
            if (child.pid === undefined || !killedAt.has(child.pid)) {
              unexpected.push(`worker ${child.pid} exited without being killed (code ${code}, signal ${signal}): ${stderr}`);
            }
            resolve();
          });
        });
        exits.push(exited);
        if (child.pid !== undefined) {
          started.push(child.pid);
          live.set(child.pid, exited);
        }
      };

      try {
        for (let i = 0; i < LIBRARY_WORKERS; i++) spawnWorker();
        // Kills at random moments (a tick every 20–80 ms, each firing with probability 1/4) while
        // behind one kill per 60 sections: paced by progress, not by the clock, so a slow machine
        // gets the same share of killed holdings as a fast one.
        const chaos = (async () => {
          while (!stopping) {
            await sleep(20 + Math.random() * 60);
            if (stopping) break;
            if (chaosKills >= counter.ends / LIBRARY_SECTIONS_PER_KILL || Math.random() >= 0.25) continue;
            const holder = readHolder(dir);
            // Only our own live workers: a pid from the lock may have been reused since.
            if (!holder || !live.has(holder.pid) || killedAt.has(holder.pid)) continue;
            killedAt.set(holder.pid, counter.size());
            process.kill(holder.pid, 'SIGKILL');
            chaosKills++;
            spawnWorker();
          }
        })();

        const deadline = Date.now() + LIBRARY_RUN_LIMIT_MS;
        while (counter.poll() < LIBRARY_SECTIONS && unexpected.length === 0 && Date.now() < deadline) await sleep(100);
        stopping = true;
        await chaos;
      } finally {
        stopping = true;
        const finalSize = counter.size();
        for (const pid of live.keys()) {
          if (!killedAt.has(pid)) killedAt.set(pid, finalSize);
          process.kill(pid, 'SIGKILL');
        }
        await Promise.all(exits);
        ends = counter.poll();
        counter.close();
      }
      const runMs = Date.now() - t0;
      console.log(`[lease stress, library] run over: ${ends} sections ended, ${chaosKills} holders killed, ${runMs} ms`);

      expect(unexpected).toEqual([]);
      expect(ends, `only ${ends} sections completed in ${runMs} ms`).toBeGreaterThanOrEqual(LIBRARY_SECTIONS);
      expect(live.size).toBe(0);
      expect(started.filter((pid) => leftOver(pid, dir))).toEqual([]);
      // Kills are judged by pid: a pid given to two workers of one run would make that ambiguous.
      expect(new Set(started).size).toBe(started.length);

      const lines = parseSections(readFileSync(shared, 'utf8'));
      const log = checkLog(join(dir, '.warden/events.jsonl'));
      const check = checkSections(lines.lines, (open, next) => {
        const at = killedAt.get(open.pid);
        return at !== undefined && (next === undefined || next.offset >= at);
      });
      // Each section ran under the holding the log records for its epoch, by the same process.
      const unlogged = lines.lines.filter((l) => l.kind === 'begin' && log.holderOf.get(l.epoch) !== l.pid).map(show);

      console.log(
        `[lease stress, library] ${check.completed} sections completed, ${check.cut.length} cut short by a SIGKILL, ` +
          `${chaosKills} holders SIGKILLed by the chaos loop, ${started.length} workers started; ` +
          `log: ${log.records} records, ${log.acquisitions} acquisitions, ${log.tornTails} torn tails repaired; ${runMs} ms`,
      );
      expect([...lines.problems, ...check.problems]).toEqual([]);
      expect(unlogged).toEqual([]);
      expect(log.problems).toEqual([]);
      expect(check.completed).toBeGreaterThanOrEqual(LIBRARY_SECTIONS);
      expect(chaosKills).toBeGreaterThanOrEqual(LIBRARY_MIN_KILLS);
    },
  );

  it(
    `${CLI_LOOPS} loops of \`warden lease run --wait -- CMD\`: >= ${CLI_SECTIONS} sections, none overlapping, while holding wardens are SIGKILLed`,
    { timeout: 600_000 },
    async () => {
      const t0 = Date.now();
      const dir = tempDir();
      const shared = join(dir, 'sections.txt');
      writeFileSync(shared, '');
      const counter = new SectionCounter(shared);
      const live = new Set<number>();
      const started: number[] = [];
      // epoch -> size of the shared file just before its warden was SIGKILLed. A warden holds one epoch.
      const killedEpochs = new Map<number, number>();
      const killedWardens = new Set<number>();
      const unexpected: string[] = [];
      let runs = 0;
      let ends = 0;
      let randomKills = 0;
      let sectionKills = 0;
      let watcher: FSWatcher | undefined;
      let stopping = false;

      const loop = async () => {
        while (!stopping) {
          // CMD is a shell; the section is its child's (warden's grandchild).
          const cmd = ['sh', '-c', 'node "$0" "$1" --grandchild; exit $?', SECTION, shared];
          const child = execa('node', [CLI, 'lease', 'run', '--wait', '--dir', dir, '--probe-ms', '25', '--ttl-ms', '5000', '--', ...cmd], {
            reject: false,
          });
          const pid = child.pid;
          if (pid !== undefined) {
            started.push(pid);
            live.add(pid);
            // At once on exit, before the output is drained: the pid may be reused from then on.
            child.once('exit', () => live.delete(pid));
          }
          const result = await child;
          runs++;
          const killed = pid !== undefined && killedWardens.has(pid);
          const fine = result.exitCode === 0 || (killed && result.signal === 'SIGKILL');
          if (!fine) {
            unexpected.push(`warden ${pid}${killed ? ' (killed)' : ''} ended with code ${result.exitCode}, signal ${result.signal}: ${String(result.stderr).slice(-2_000)}`);
          }
        }
      };

      const loops: Array<Promise<void>> = [];
      try {
        for (let i = 0; i < CLI_LOOPS; i++) loops.push(loop());
        const killHolder = (epoch?: number): boolean => {
          const holder = readHolder(dir);
          if (!holder || !live.has(holder.pid) || killedWardens.has(holder.pid)) return false;
          if (epoch !== undefined && holder.epoch !== epoch) return false;
          killedEpochs.set(holder.epoch, counter.size());
          killedWardens.add(holder.pid);
          process.kill(holder.pid, 'SIGKILL');
          return true;
        };
        // Kills the warden holding the lease at random moments (as above) while behind one kill per
        // 12 sections: mostly while it acquires, starts CMD or releases, since CMD's section is
        // a few ms of its run. Paced by progress: a warden run costs most of a second of CPU, so
        // by the clock a slow machine would lose most holdings to the chaos.
        const chaos = (async () => {
          while (!stopping) {
            await sleep(20 + Math.random() * 60);
            if (stopping) break;
            if (randomKills >= 1 + counter.ends / CLI_SECTIONS_PER_KILL || Math.random() >= 0.25) continue;
            if (killHolder()) randomKills++;
          }
        })();
        // And inside sections: on a `begin` line (seen through a watch on the shared file), now
        // and then the warden of that epoch is killed at once, while its CMD is in the section.
        counter.onLine = (line) => {
          if (stopping || !line.startsWith('begin ')) return;
          if (sectionKills >= 1 + counter.ends / CLI_SECTIONS_PER_SECTION_KILL || Math.random() >= 0.5) return;
          if (killHolder(Number(line.split(' ')[1]))) sectionKills++;
        };
        watcher = watch(shared, () => counter.poll());

        const deadline = Date.now() + CLI_RUN_LIMIT_MS;
        while (counter.poll() < CLI_SECTIONS && unexpected.length === 0 && Date.now() < deadline) await sleep(100);
        stopping = true;
        await chaos;
        // The loops finish the runs they started: every waiting warden gets the lease in turn.
        const drained = await Promise.race([Promise.all(loops).then(() => true), sleep(30_000).then(() => false)]);
        if (!drained) unexpected.push(`wardens still running 30 s after the chaos stopped: ${[...live].join(', ')}`);
      } finally {
        stopping = true;
        for (const pid of live) process.kill(pid, 'SIGKILL');
        watcher?.close();
        await Promise.all(loops);
        ends = counter.poll();
        counter.close();
      }
      const runMs = Date.now() - t0;
      console.log(`[lease stress, CLI] run over: ${ends} sections ended, ${killedWardens.size} holding wardens killed, ${runMs} ms`);

      expect(unexpected).toEqual([]);
      expect(ends, `only ${ends} sections completed in ${runMs} ms`).toBeGreaterThanOrEqual(CLI_SECTIONS);

      const lines = parseSections(readFileSync(shared, 'utf8'));
      const sectionPids = [...new Set(lines.lines.map((l) => l.pid))];
      expect(live.size).toBe(0);
      expect(started.filter((pid) => leftOver(pid, dir))).toEqual([]);
      expect(sectionPids.filter((pid) => leftOver(pid, dir))).toEqual([]);

      const log = checkLog(join(dir, '.warden/events.jsonl'));
      const check = checkSections(lines.lines, (open, next) => {
        const at = killedEpochs.get(open.epoch);
        return at !== undefined && (next === undefined || next.offset >= at);
      });
      // Every line was written by a grandchild of the warden the log records as the holder of
      // that epoch — unless that warden was SIGKILLed (then the line may come after its death,
      // but never after the next holder's begin: checkSections).
      const orphaned = lines.lines.filter((l) => !killedEpochs.has(l.epoch) && (l.ppid === undefined || log.holderOf.get(l.epoch) !== l.ppid)).map(show);

      const cutKills = check.cut.length;
      console.log(
        `[lease stress, CLI] ${check.completed} sections completed, ${cutKills} cut short by a SIGKILL, ` +
          `${killedWardens.size} holding wardens SIGKILLed (${randomKills} at random moments, ${sectionKills} right after a begin), ${runs} warden runs, ${sectionPids.length} CMD processes ` +
          `(${sectionPids.filter((pid) => isZombie(pid)).length} left as zombies of a non-reaping init); ` +
          `log: ${log.records} records, ${log.acquisitions} acquisitions, ${log.tornTails} torn tails repaired; ${runMs} ms`,
      );
      expect([...lines.problems, ...check.problems]).toEqual([]);
      expect(orphaned).toEqual([]);
      expect(log.problems).toEqual([]);
      expect(check.completed).toBeGreaterThanOrEqual(CLI_SECTIONS);
      expect(killedWardens.size).toBeGreaterThanOrEqual(CLI_MIN_KILLS);
    },
  );
});

/** One line of the shared file: `begin|end EPOCH PID [PPID]`, with its byte offset. */
interface SectionLine {
  kind: 'begin' | 'end';
  epoch: number;
  pid: number;
  ppid: number | undefined;
  offset: number;
  index: number;
  text: string;
}

function parseSections(text: string): { lines: SectionLine[]; problems: string[] } {
  const lines: SectionLine[] = [];
  const problems: string[] = [];
  if (text !== '' && !text.endsWith('\n')) problems.push(`the shared file ends in a partial line: ${JSON.stringify(text.slice(-60))}`);
  let offset = 0;
  for (const raw of text.split('\n')) {
    const match = /^(begin|end) (\d+) (\d+)(?: (\d+))?$/.exec(raw);
    if (match) {
      lines.push({
        kind: match[1] as 'begin' | 'end',
        epoch: Number(match[2]),
        pid: Number(match[3]),
        ppid: match[4] === undefined ? undefined : Number(match[4]),
        offset,
        index: lines.length,
        text: raw,
      });
    } else if (raw !== '') {
      problems.push(`malformed line at byte ${offset}: ${JSON.stringify(raw)}`);
    }
    offset += Buffer.byteLength(raw) + 1;
  }
  return { lines, problems };
}

/**
 * Walks the sections in file order. `mayBeCut(open, next)` says whether the open section's holder
 * was SIGKILLed before `next` (the `begin` that followed; undefined at the end of the file) was
 * written — only then may a section lack its `end`.
 */
function checkSections(
  lines: SectionLine[],
  mayBeCut: (open: SectionLine, next: SectionLine | undefined) => boolean,
): { completed: number; cut: SectionLine[]; problems: string[] } {
  let completed = 0;
  const cut: SectionLine[] = [];
  const problems: string[] = [];
  const around = (line: SectionLine) =>
    lines
      .slice(Math.max(0, line.index - 4), line.index + 3)
      .map((l) => `${l === line ? '>' : ' '} @${l.offset} ${l.text}`)
      .join('\n');
  let open: SectionLine | undefined;
  let lastBegin: SectionLine | undefined;
  for (const line of lines) {
    if (line.kind === 'begin') {
      if (open) {
        if (mayBeCut(open, line)) cut.push(open);
        else problems.push(`overlap: "${open.text}" was still open, its holder not killed, at "${line.text}"\n${around(line)}`);
      }
      if (lastBegin && line.epoch <= lastBegin.epoch) problems.push(`epoch did not increase: "${lastBegin.text}" then "${line.text}"\n${around(line)}`);
      open = line;
      lastBegin = line;
    } else {
      if (!open) problems.push(`an end with no open section: "${line.text}"\n${around(line)}`);
      else if (open.epoch !== line.epoch || open.pid !== line.pid) problems.push(`"${line.text}" does not close the open "${open.text}"\n${around(line)}`);
      else completed++;
      open = undefined;
    }
  }
  if (open) {
    if (mayBeCut(open, undefined)) cut.push(open);
    else problems.push(`the last section "${open.text}" never ended and its holder was not killed`);
  }
  return { completed, cut, problems };
}

/** Replays the project log with verification and checks its epochs; who held each epoch. */
function checkLog(path: string) {
  const replay = replayLog(path, builtInMachines, { verify: true });
  const { records } = readLog(path);
  const problems: string[] = [];
  const holderOf = new Map<number, number>();
  let acquisitions = 0;
  let lastEpoch = 0;
  let lastAcquired = 0;
  for (const record of records) {
    if (record.epoch < lastEpoch) problems.push(`seq ${record.seq} (${record.type}) has epoch ${record.epoch} after epoch ${lastEpoch}`);
    lastEpoch = Math.max(lastEpoch, record.epoch);
    if (record.type === 'lease.acquired') {
      const data = record.data as { epoch: number; pid: number };
      acquisitions++;
      if (data.epoch !== record.epoch) problems.push(`seq ${record.seq}: lease.acquired of epoch ${data.epoch} written under epoch ${record.epoch}`);
      if (data.epoch <= lastAcquired) problems.push(`seq ${record.seq}: epoch ${data.epoch} acquired after epoch ${lastAcquired}`);
      lastAcquired = Math.max(lastAcquired, data.epoch);
      holderOf.set(data.epoch, data.pid);
    }
  }
  if (replay.records !== records.length) problems.push(`replay folded ${replay.records} records, the reader read ${records.length}`);
  return { records: records.length, acquisitions, tornTails: records.filter((r) => r.type === 'log.tornTail').length, holderOf, problems };
}

/** The lease holder's pid and epoch from `.warden/scheduler.lock`, if it can be read just now. */
function readHolder(dir: string): { pid: number; epoch: number } | undefined {
  try {
    const lock = JSON.parse(readFileSync(join(dir, '.warden/scheduler.lock'), 'utf8')) as { pid?: unknown; epoch?: unknown };
    if (typeof lock.pid === 'number' && Number.isInteger(lock.pid) && typeof lock.epoch === 'number') return { pid: lock.pid, epoch: lock.epoch };
  } catch {
    // Absent (between holders) or not ours to judge: no one to kill this time.
  }
  return undefined;
}

/**
 * Whether a process of this test is still running. A zombie has exited (orphaned CMDs are
 * reparented to an init that may never reap them), and a pid now naming a process whose command
 * line does not mention the test's dir was reused by someone else (pids wrap quickly).
 */
function leftOver(pid: number, marker: string): boolean {
  if (processGone(pid) || isZombie(pid)) return false;
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes(marker);
  } catch {
    return !processGone(pid);
  }
}

function show(line: SectionLine): string {
  return `@${line.offset} ${line.text}`;
}

/** Counts the `end` lines of the shared file as it grows, reading only what was appended. */
class SectionCounter {
  ends = 0;
  /** Called with each whole line as it is read. */
  onLine: ((line: string) => void) | undefined;
  private readonly fd: number;
  private offset = 0;
  private partial = '';
  private readonly buffer = Buffer.alloc(64 * 1024);

  constructor(path: string) {
    this.fd = openSync(path, 'r');
  }

  poll(): number {
    for (;;) {
      const n = readSync(this.fd, this.buffer, 0, this.buffer.length, this.offset);
      if (n === 0) return this.ends;
      this.offset += n;
      const lines = (this.partial + this.buffer.toString('latin1', 0, n)).split('\n');
      this.partial = lines.pop() ?? '';
      for (const line of lines) {
        if (line.startsWith('end ')) this.ends++;
        this.onLine?.(line);
      }
    }
  }

  size(): number {
    return fstatSync(this.fd).size;
  }

  close(): void {
    closeSync(this.fd);
  }
}
