/**
 * Finding and killing everything a job started. A process-group kill misses what left the group
 * (setsid, double fork); Warden also follows parent links from the job's main process and, since
 * every job's environment carries `WARDEN_JOB_ID`, finds any process still carrying that id —
 * wherever it was reparented to. Linux /proc; where it is missing, the group alone is signalled.
 */
import { readdirSync, readFileSync } from 'node:fs';

export interface ProcessInfo {
  pid: number;
  ppid: number;
  pgid: number;
  /** One-letter state from /proc/<pid>/stat: R, S, D, Z, T … */
  state: string;
  /** Field 22: clock ticks after boot when it started. */
  startTime: number;
}

/** Every process /proc shows now (pid, parent, group, state); empty without /proc. */
export function listProcesses(): ProcessInfo[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  const out: ProcessInfo[] = [];
  for (const entry of entries) {
    const c = entry.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
    } catch {
      continue; // gone meanwhile
    }
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    out.push({ pid: Number(entry), state: fields[0]!, ppid: Number(fields[1]), pgid: Number(fields[2]), startTime: Number(fields[19]) });
  }
  return out;
}

/** Whether `pid`'s environment holds `WARDEN_JOB_ID=<jobId>` (false if unreadable or gone). */
export function carriesJobId(pid: number, jobId: string): boolean {
  let environ: string;
  try {
    environ = readFileSync(`/proc/${pid}/environ`, 'latin1');
  } catch {
    return false;
  }
  const needle = `WARDEN_JOB_ID=${jobId}`;
  let at = environ.indexOf(needle);
  while (at >= 0) {
    const end = at + needle.length;
    if ((at === 0 || environ.charCodeAt(at - 1) === 0) && (end === environ.length || environ.charCodeAt(end) === 0)) return true;
    at = environ.indexOf(needle, end);
  }
  return false;
}

/** Where a job's process tree starts: its main process, and when that started (ticks after boot). */
export interface JobRoot {
  pid: number | null;
  /** Processes that started before this cannot carry the job's id: their environment is not read. */
  startTime?: number | null;
}

/**
 * The live (non-zombie) processes of a job: its main process and descendants, its process group,
 * and every process carrying its WARDEN_JOB_ID.
 */
export function jobProcesses(jobId: string, root: JobRoot | number | null): number[] {
  const { pid: rootPid, startTime: rootStart = null } = typeof root === 'object' && root !== null ? root : { pid: root };
  const all = listProcesses();
  const children = new Map<number, number[]>();
  for (const p of all) {
    const list = children.get(p.ppid);
    if (list) list.push(p.pid);
    else children.set(p.ppid, [p.pid]);
  }
  const found = new Set<number>();
  if (rootPid !== null) {
    const stack = [rootPid];
    while (stack.length > 0) {
      const pid = stack.pop()!;
      if (found.has(pid)) continue;
      found.add(pid);
      for (const child of children.get(pid) ?? []) stack.push(child);
    }
  }
  const self = process.pid;
  const live = new Map(all.map((p) => [p.pid, p]));
  for (const p of all) {
    if (p.pid === self) continue;
    if (rootPid !== null && p.pgid === rootPid) found.add(p.pid);
    // Reading an environment is the costly part of a scan: only for processes the job could have started.
    else if ((rootStart === null || p.startTime >= rootStart) && carriesJobId(p.pid, jobId)) found.add(p.pid);
  }
  // Only what is there and alive: a zombie has exited (its parent has yet to reap it).
  return [...found].filter((pid) => pid !== self && live.has(pid) && live.get(pid)!.state !== 'Z').sort((a, b) => a - b);
}

/**
 * Sends `signal` to the job's process group and to every process of the job (see
 * {@link jobProcesses}); returns the pids signalled.
 */
export function signalJobProcesses(jobId: string, root: JobRoot | number | null, signal: NodeJS.Signals): number[] {
  const rootPid = typeof root === 'object' && root !== null ? root.pid : root;
  // Listed first: once signalled, the group's members die at once and would not be listed.
  const pids = jobProcesses(jobId, root);
  if (rootPid !== null) trySignal(-rootPid, signal);
  for (const pid of pids) trySignal(pid, signal);
  return pids;
}

/**
 * SIGKILLs what is left of a job until nothing is (or `withinMs` has passed) and returns what was
 * killed and what survived. There is no exit event for processes that are not our children, so
 * this looks again every few milliseconds.
 */
export async function killJobRemains(jobId: string, root: JobRoot | number | null, withinMs = 2_000): Promise<{ killed: number[]; survivors: number[] }> {
  const rootPid = typeof root === 'object' && root !== null ? root.pid : root;
  const killed = new Set<number>();
  const deadline = Date.now() + withinMs;
  for (;;) {
    const left = jobProcesses(jobId, root);
    if (left.length === 0) return { killed: [...killed].sort((a, b) => a - b), survivors: [] };
    if (Date.now() > deadline) return { killed: [...killed].sort((a, b) => a - b), survivors: left };
    if (rootPid !== null) trySignal(-rootPid, 'SIGKILL');
    for (const pid of left) {
      trySignal(pid, 'SIGKILL');
      killed.add(pid);
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function trySignal(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code !== 'ESRCH' && code !== 'EPERM') throw error;
  }
}

/** `pid`'s environment as /proc shows it (NUL-separated), or null if it is gone or not ours to read. */
export function readEnviron(pid: number): string | null {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'latin1');
  } catch {
    return null;
  }
}

/** The value of `name` in an environment read by {@link readEnviron} (the first, as getenv finds it). */
export function environValue(environ: string, name: string): string | undefined {
  const needle = `${name}=`;
  let at = environ.indexOf(needle);
  while (at >= 0) {
    if (at === 0 || environ.charCodeAt(at - 1) === 0) {
      const end = environ.indexOf('\0', at);
      return environ.slice(at + needle.length, end < 0 ? environ.length : end);
    }
    at = environ.indexOf(needle, at + 1);
  }
  return undefined;
}

/** A process as found at one moment: its pid and start time together name it (a pid alone may be reused). */
export interface FoundProcess {
  pid: number;
  startTime: number;
}

/**
 * The live (non-zombie) processes whose environment carries `name` with a value `select` accepts,
 * and every process in the process group of one of them. Each group is of their making (a
 * tagged command runs in a session of its own), so a member that dropped the variable from its
 * environment is found by its group. This process is never listed.
 */
export function taggedProcesses(name: string, select: (value: string) => boolean): FoundProcess[] {
  // Environments first, one file per process: in the common case no process is tagged, and the
  // stat files (groups, states, start times) are not needed at all.
  const tagged = new Set<number>();
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return [];
  }
  for (const entry of entries) {
    const c = entry.charCodeAt(0);
    if (c < 48 || c > 57) continue;
    const environ = readEnviron(Number(entry));
    const value = environ === null ? undefined : environValue(environ, name);
    if (value !== undefined && select(value)) tagged.add(Number(entry));
  }
  tagged.delete(process.pid);
  if (tagged.size === 0) return [];
  const all = listProcesses().filter((p) => p.state !== 'Z' && p.pid !== process.pid);
  const groups = new Set(all.filter((p) => tagged.has(p.pid)).map((p) => p.pgid));
  return all.filter((p) => tagged.has(p.pid) || groups.has(p.pgid)).map((p) => ({ pid: p.pid, startTime: p.startTime }));
}

/**
 * SIGKILLs every process `find` lists, again and again, until a look finds none (or `withinMs`
 * has passed); returns the pids killed and those still there. A process is signalled only if its
 * pid still has the start time it was found with, so a pid reused meanwhile is never killed (the
 * remaining window, between that check and the kill, is a few microseconds against the kernel
 * handing the same pid out again after a full turn of pid_max).
 */
export async function killUntilGone(find: () => FoundProcess[], withinMs: number): Promise<{ killed: number[]; survivors: number[] }> {
  const killed = new Set<number>();
  const deadline = Date.now() + withinMs;
  for (;;) {
    const left = find();
    if (left.length === 0) return { killed: [...killed].sort((a, b) => a - b), survivors: [] };
    if (Date.now() > deadline) return { killed: [...killed].sort((a, b) => a - b), survivors: left.map((p) => p.pid) };
    for (const p of left) {
      if (startTimeOf(p.pid) !== p.startTime) continue;
      trySignal(p.pid, 'SIGKILL');
      killed.add(p.pid);
    }
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

function startTimeOf(pid: number): number | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19]);
  } catch {
    return null;
  }
}
