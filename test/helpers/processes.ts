import { readdirSync, readFileSync } from 'node:fs';
import { execa, type ResultPromise } from 'execa';
import { afterEach, expect } from 'vitest';

/** Whether no process with this PID exists any more (signal 0 probes without signalling). */
export function processGone(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return false;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/**
 * Live processes (not zombies) whose environment holds `NAME=value` exactly, read straight from
 * /proc — independent of the code under test.
 */
export function processesWithEnv(name: string, value: string): number[] {
  const found: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      if (stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z') continue;
      if (readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0').includes(`${name}=${value}`)) found.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

/** Whether `pid` has exited: gone, or a zombie nothing has reaped yet. */
export function exited(pid: number): boolean {
  if (processGone(pid)) return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z';
  } catch {
    return true;
  }
}

/**
 * Live stand-in processes (`sleep 1000`) for a test file — owners of locks, say. Each is
 * SIGKILLed after every test, which then checks that none is left.
 * @example const sleeper = useSleepers(); const { pid } = sleeper({ WARDEN_JOB_ID: 'x' });
 */
export function useSleepers(): (env?: Record<string, string>) => { pid: number; child: ResultPromise } {
  const children: ResultPromise[] = [];
  afterEach(async () => {
    const pids = children.map((c) => c.pid!);
    for (const child of children.splice(0)) {
      child.kill('SIGKILL');
      await child;
    }
    expect(pids.filter((pid) => !processGone(pid))).toEqual([]);
  });
  return (env = {}) => {
    const child = execa('sleep', ['1000'], { reject: false, env });
    children.push(child);
    return { pid: child.pid!, child };
  };
}
