/**
 * Small helpers shared by the effects that run a helper command (a notifier, a supervisor probe)
 * or show an agent's log: a command run with its input, bounded by a timeout, killed with
 * everything it started (it runs in a process group of its own and its processes carry a
 * WARDEN_JOB_ID of their own, as a job's do); and the tail of a file.
 */
import { randomUUID } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readSync } from 'node:fs';
import { execa } from 'execa';
import { setLongTimeout } from './longTimer.js';
import { killJobRemains } from './processTree.js';

export type BoundedResult = { ok: true; stdout: string } | { ok: false; timedOut: boolean; reason: string };

/**
 * Runs `command` with `input` on stdin; the result once it and all it started are gone.
 * `kind` names it in the id its processes carry (`<kind>:<uuid>`) and in nothing else.
 */
export async function runBounded(command: readonly string[], options: { kind: string; input: string; timeoutMs: number; maxBuffer?: number }): Promise<BoundedResult> {
  const id = `${options.kind}:${randomUUID()}`;
  const child = execa(command[0]!, command.slice(1), {
    input: options.input,
    detached: true,
    reject: false,
    cleanup: false,
    env: { WARDEN_JOB_ID: id },
    maxBuffer: options.maxBuffer ?? 1024 * 1024,
  });
  // Not execa's `timeout`: Node clamps 2^31 ms or more to 1 ms (longTimer.ts).
  let timedOut = false;
  const timer = setLongTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, options.timeoutMs);
  const result = await child;
  timer.clear();
  // Nothing it started may outlive it.
  await killJobRemains(id, child.pid ?? null, 2_000);
  if (timedOut) return { ok: false, timedOut: true, reason: `did not finish within ${options.timeoutMs} ms; killed` };
  if (result.failed && result.exitCode === undefined) return { ok: false, timedOut: false, reason: result.shortMessage ?? 'could not run' };
  if (result.exitCode !== 0) return { ok: false, timedOut: false, reason: `exited ${result.exitCode ?? result.signal}` };
  return { ok: true, stdout: String(result.stdout) };
}

/** The last `bytes` of a file as text ('' if it cannot be read); never follows a symlink. */
export function fileTail(path: string, bytes: number): string {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch {
    return '';
  }
  try {
    const size = fstatSync(fd).size;
    const buffer = Buffer.alloc(Math.min(size, bytes));
    readSync(fd, buffer, 0, buffer.length, size - buffer.length);
    return buffer.toString('utf8');
  } finally {
    closeSync(fd);
  }
}
