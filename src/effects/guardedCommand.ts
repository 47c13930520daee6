import { existsSync } from 'node:fs';
import { execa } from 'execa';
import treeKill from 'tree-kill';

/** A command run in the foreground that cannot outlive this process (where Linux allows). */
export interface GuardedCommand {
  readonly pid: number | undefined;
  /** Settles when it has exited: its exit code, or the signal that ended it. */
  readonly exited: Promise<{ exitCode: number | undefined; signal: string | undefined }>;
  /** Passes a signal on to it. */
  signal(signal: NodeJS.Signals): void;
  /** SIGKILLs it and every descendant, and resolves once that is done. */
  killTree(): Promise<void>;
}

/**
 * Starts CMD (an argv, never a shell string) with inherited stdio, under a parent-death signal:
 * if this process is SIGKILLed, CMD is killed too and cannot carry on as if still guarded (by
 * a lease, say). util-linux's setpriv sets PR_SET_PDEATHSIG; if this process died between the
 * fork and that setting, nothing would come, so once it is set a tiny shell checks that its
 * parent is still this process before it execs CMD (the setting survives the exec). Where
 * setpriv is missing, CMD runs without the guard. The signal reaches CMD only, not processes
 * CMD starts itself.
 */
export function startGuardedCommand(command: string, args: readonly string[], env: Record<string, string>): GuardedCommand {
  const [file, argv] = withParentDeathSignal(command, [...args]);
  const child = execa(file, argv, { stdio: 'inherit', reject: false, env });
  const exited = child.then((result) => ({ exitCode: result.exitCode, signal: result.signal }));
  return {
    pid: child.pid,
    exited,
    signal: (signal) => void child.kill(signal),
    killTree: () =>
      new Promise<void>((resolve) => {
        if (child.pid === undefined) return resolve();
        treeKill(child.pid, 'SIGKILL', () => resolve());
      }).then(() => exited.then(() => undefined)),
  };
}

function withParentDeathSignal(command: string, args: string[]): [string, string[]] {
  if (!hasSetpriv()) return [command, args];
  const guard = '[ "$PPID" = "$1" ] || exit 125; shift; exec "$@"';
  return ['setpriv', ['--pdeathsig', 'KILL', '--', 'sh', '-c', guard, 'sh', String(process.pid), command, ...args]];
}

let setprivFound: boolean | undefined;
function hasSetpriv(): boolean {
  setprivFound ??= process.platform === 'linux' && ['/usr/bin/setpriv', '/bin/setpriv'].some((p) => existsSync(p));
  return setprivFound;
}
