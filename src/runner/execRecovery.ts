/**
 * What a dead `warden exec` left: its job's processes, found from its log and killed, and the log
 * brought to a terminal state. A live exec holds an exclusive flock on its own log for as long as
 * it runs (the kernel drops it when the process dies, however it dies), so a log that lacks its
 * closing `run.stopped` and whose flock can be taken belongs to an exec that died. The one who
 * takes that flock — `warden doctor --fix`, the next `warden exec` or `warden run` in the dir —
 * resumes the log, interrupts the job (which kills its group, its descendants and everything
 * carrying its WARDEN_JOB_ID) and closes the log, all while holding the flock, so two cleaners
 * never write one log.
 */
import { closeSync, openSync, readdirSync, readSync, fstatSync } from 'node:fs';
import { join } from 'node:path';
import { takeFlock } from '../effects/flock.js';
import { jobEffects } from '../effects/jobProcess.js';
import { localHostname, readStartTime } from '../effects/processIdentity.js';
import { jobProcesses, killJobRemains } from '../effects/processTree.js';
import { builtInMachines } from '../machines/catalogue.js';
import type { JobContext } from '../machines/job.machine.js';
import { readLog } from '../store/logReader.js';
import { RUNNER_ACTOR } from '../store/runnerEvents.js';
import { replayLog } from './replay.js';
import { Runner } from './runner.js';

/** One job of a dead exec, as found (and, when recovered, how it ended). */
export interface DeadExecJob {
  actor: string;
  jobId: string;
  /** Its state in the log when found, dotted (`alive.running`). */
  state: string;
  /** Its processes still running when found. */
  leftovers: number[];
  /** Set once recovered: its final state, and the pids killed / still there after SIGKILL. */
  recovered?: { state: string; killed: number[]; survivors: number[] };
}

export interface DeadExec {
  log: string;
  /** The exec's pid, from the log's last `run.started`. */
  pid: number | null;
  jobs: DeadExecJob[];
  /** Set when the log could not be read: nothing was done with it. */
  problem?: string;
}

export interface ExecRecoveryOptions {
  /** Kill the leftovers and log the end of the job; otherwise only find them. */
  recover: boolean;
  /** Who recovers, for the log (`doctor`, `warden exec (pid N)`, …). */
  by: string;
  /** How long SIGKILLed leftovers may take to disappear. */
  reapWithinMs?: number;
}

/**
 * The execs under `dir/.warden/exec/` that died with their job unfinished; with `recover`, each
 * is cleaned up and its log ended (the job `interrupted`, the reason naming `by`).
 * @example for (const dead of await deadExecs('.', { recover: true, by: 'doctor' })) console.log(dead.log)
 */
export async function deadExecs(dir: string, options: ExecRecoveryOptions): Promise<DeadExec[]> {
  const execDir = join(dir, '.warden', 'exec');
  let names: string[];
  try {
    names = readdirSync(execDir).filter((name) => name.endsWith('.jsonl')).sort();
  } catch {
    return [];
  }
  const found: DeadExec[] = [];
  for (const name of names) {
    const log = join(execDir, name);
    // The common case, cheaply: a log that ends with run.stopped was closed by its exec.
    if (endsClosed(log)) continue;
    let held;
    try {
      held = await takeFlock(log, { timeoutMs: 0, mode: 0o600 });
    } catch (error) {
      found.push({ log, pid: null, jobs: [], problem: (error as Error).message });
      continue;
    }
    // Held: the exec is alive.
    if (!held) continue;
    try {
      const dead = await examine(log, options);
      if (dead) found.push(dead);
    } finally {
      held.release();
    }
  }
  return found;
}

async function examine(log: string, options: ExecRecoveryOptions): Promise<DeadExec | undefined> {
  let pid: number | null = null;
  let jobs: DeadExecJob[];
  try {
    const started = readLog(log).records.filter((r) => r.actor === RUNNER_ACTOR && r.type === 'run.started').at(-1);
    const data = started?.data as { pid?: number; hostname?: string } | undefined;
    // Another host's processes are not ours to see or kill.
    if (data?.hostname !== undefined && data.hostname !== localHostname()) return undefined;
    pid = data?.pid ?? null;
    jobs = replayLog(log, builtInMachines)
      .actors.filter((a) => a.machine === 'job' && a.snapshot.status !== 'done')
      .map((a) => {
        const context = a.snapshot.context as JobContext;
        return { actor: a.id, jobId: context.jobId, state: dotted(a.snapshot.value), leftovers: jobProcesses(context.jobId, rootOf(context)) };
      });
  } catch (error) {
    return { log, pid, jobs: [], problem: (error as Error).message };
  }
  if (jobs.length === 0) return undefined;
  if (options.recover) {
    try {
      await recover(log, pid, jobs, options);
    } catch (error) {
      return { log, pid, jobs, problem: `recovery failed: ${(error as Error).message}` };
    }
  }
  return { log, pid, jobs };
}

/** Resumes the log, interrupts each unfinished job, waits for it to end, and closes the log. */
async function recover(log: string, pid: number | null, jobs: DeadExecJob[], options: ExecRecoveryOptions): Promise<void> {
  const reapWithinMs = options.reapWithinMs ?? 2_000;
  const runner = Runner.open({ log, machines: builtInMachines, effects: jobEffects({ reapWithinMs }), resume: true });
  try {
    const reason = `warden exec${pid === null ? '' : ` (pid ${pid})`} died; recovered by ${options.by}`;
    for (const job of jobs) {
      let reaped = { killed: [] as number[], survivors: [] as number[] };
      const stop = runner.subscribe((record) => {
        if (record.actor === job.actor && record.type === 'job.reaped') reaped = record.data as typeof reaped;
      });
      try {
        if (job.state === 'interrupting') {
          // A recovery that died mid-reap left it here, where an interrupt is not heard: reap it
          // directly and tell the machine, as the reap effect would.
          const context = runner.snapshot(job.actor)!.context as JobContext;
          runner.send(job.actor, { type: 'job.reaped', ...(await killJobRemains(job.jobId, rootOf(context), reapWithinMs)) });
        } else {
          runner.send(job.actor, { type: 'job.interrupt', reason });
        }
        const done = await Promise.race([runner.waitFor(job.actor, (s) => s.status === 'done'), runner.halted.then((why) => Promise.reject(why))]);
        job.recovered = { state: dotted(done.value), ...reaped };
      } finally {
        stop();
      }
    }
  } finally {
    runner.close(`recovered by ${options.by}`);
  }
}

/** The job's main process, only while its pid still has the start time the log recorded. */
function rootOf(context: JobContext): { pid: number; startTime: number } | null {
  if (context.pid === null || context.pidStartTime === null) return null;
  const now = readStartTime(context.pid);
  return now !== null && now === context.pidStartTime ? { pid: context.pid, startTime: Number(now) } : null;
}

function dotted(value: unknown): string {
  if (typeof value === 'string') return value;
  const [key, inner] = Object.entries(value as Record<string, unknown>)[0] ?? ['?', ''];
  return inner === undefined || inner === '' ? key : `${key}.${dotted(inner)}`;
}

/** Whether the last complete line of the log is the runner's `run.stopped`. */
function endsClosed(log: string): boolean {
  let fd: number;
  try {
    fd = openSync(log, 'r');
  } catch {
    return false;
  }
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, 64 * 1024);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    const lines = buffer.toString('utf8').split('\n');
    // A complete log ends with a newline: the last element is empty.
    const last = lines.at(-1) === '' ? lines.at(-2) : undefined;
    if (!last) return false;
    const record = JSON.parse(last) as { actor?: unknown; type?: unknown };
    return record.actor === RUNNER_ACTOR && record.type === 'run.stopped';
  } catch {
    return false;
  } finally {
    closeSync(fd);
  }
}
