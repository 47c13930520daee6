import { createHash } from 'node:crypto';
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { delimiter, resolve } from 'node:path';
import { execa } from 'execa';
import { killUntilGone, taggedProcesses } from './processTree.js';

/** A command run in the foreground that cannot outlive this process (where Linux allows). */
export interface GuardedCommand {
  readonly pid: number | undefined;
  /** Settles when it has exited: its exit code, or the signal that ended it. */
  readonly exited: Promise<{ exitCode: number | undefined; signal: string | undefined }>;
  /** Passes a signal on to it: to its process group, as a terminal would. */
  signal(signal: NodeJS.Signals): void;
  /** SIGKILLs it and everything started under its hold, and resolves once that is done. */
  killTree(): Promise<{ killed: number[]; survivors: number[] }>;
}

/**
 * What marks every process started under one holding of a lock (a lease epoch, a worker lock's
 * holder): the variable `name=value` in its environment. The name is the lock's own, so holds of
 * different locks nest (a `lock run` inside a `lease run` carries both).
 */
export interface HoldTag {
  name: string;
  value: string;
}

/** How long the processes of a hold may take to be gone after SIGKILL before they count as survivors. */
export const DEFAULT_CLEAR_WITHIN_MS = 5_000;

/**
 * The variable that tags the processes of holds of the lock at `lockPath` (an absolute path):
 * `WARDEN_HOLD_` and 16 hex digits of its SHA-256.
 * @example holdVariable('/srv/app/.warden/scheduler.lock') // 'WARDEN_HOLD_3F0A…'
 */
export function holdVariable(lockPath: string): string {
  return `WARDEN_HOLD_${createHash('sha256').update(lockPath).digest('hex').slice(0, 16).toUpperCase()}`;
}

/**
 * Kills what earlier holds of a lock left running — every process whose tag variable has a value
 * `isEarlier` accepts, and their process groups — and checks it is gone: a new holder calls this
 * before its own command starts, so nothing started under an earlier hold runs beside it.
 */
export function clearEarlierHolds(name: string, isEarlier: (value: string) => boolean, withinMs = DEFAULT_CLEAR_WITHIN_MS): Promise<{ killed: number[]; survivors: number[] }> {
  return killUntilGone(() => taggedProcesses(name, isEarlier), withinMs);
}

/**
 * Starts CMD (an argv, never a shell string) with inherited stdio, in a session and process group
 * of its own, tagged with `tag`, under a parent-death signal: if this process is SIGKILLed, CMD
 * is killed too and cannot carry on as if still guarded (by a lease, say). util-linux's setpriv
 * sets PR_SET_PDEATHSIG; if this process died between the fork and that setting, nothing would
 * come, so once it is set a tiny shell checks that its parent is still this process before it
 * execs CMD (the setting survives the exec). Where setpriv is missing, CMD runs without the
 * guard. The signal reaches CMD only; what CMD starts carries the tag (and stays in CMD's group
 * unless it leaves it), by which the next holder finds and kills it ({@link clearEarlierHolds}),
 * as does {@link GuardedCommand.killTree}.
 */
export function startGuardedCommand(command: string, args: readonly string[], env: Record<string, string>, tag: HoldTag): GuardedCommand {
  const [file, argv] = withParentDeathSignal(command, [...args]);
  const child = execa(file, argv, { stdio: 'inherit', reject: false, env: { ...env, [tag.name]: tag.value }, detached: true });
  const exited = child.then((result) => ({ exitCode: result.exitCode, signal: result.signal }));
  const pid = child.pid;
  return {
    pid,
    exited,
    signal: (signal) => {
      if (pid === undefined) return;
      try {
        process.kill(-pid, signal);
      } catch {
        // The group is gone (CMD exited, and with it everything it kept in its group).
      }
    },
    killTree: async () => {
      const result = await clearEarlierHolds(tag.name, (value) => value === tag.value);
      await exited;
      return result;
    },
  };
}

/**
 * `[file, argv]` that run `command args…` under a parent-death SIGKILL aimed at this process, or
 * unchanged where setpriv is missing. A command that cannot be run fails in the guard shell
 * (exit 127), not at the spawn: callers that report a missing command check with
 * {@link isExecutable} first.
 */
export function withParentDeathSignal(command: string, args: string[]): [string, string[]] {
  const setpriv = setprivPath();
  if (setpriv === null) return [command, args];
  const guard = '[ "$PPID" = "$1" ] || exit 125; shift; exec "$@"';
  return [setpriv, ['--pdeathsig', 'KILL', '--', '/bin/sh', '-c', guard, 'sh', String(process.pid), command, ...args]];
}

/**
 * Whether `command` names an executable regular file, as execvp(3) would look for it: as a path
 * (relative to `cwd`) if it has a slash, else in each directory of PATH.
 */
export function isExecutable(command: string, cwd: string, path: string | undefined): boolean {
  const candidates = command.includes('/') ? [resolve(cwd, command)] : (path ?? '').split(delimiter).map((dir) => resolve(cwd, dir === '' ? '.' : dir, command));
  return candidates.some((candidate) => {
    try {
      accessSync(candidate, constants.X_OK);
      return statSync(candidate).isFile();
    } catch {
      return false;
    }
  });
}

// Named by its full path: a job's PATH (filtered, or set by its config) may not lead to it.
let setprivFound: string | null | undefined;
function setprivPath(): string | null {
  if (setprivFound === undefined) setprivFound = process.platform === 'linux' ? (['/usr/bin/setpriv', '/bin/setpriv'].find((p) => existsSync(p)) ?? null) : null;
  return setprivFound;
}
