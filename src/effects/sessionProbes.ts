/**
 * Session probes: is the session a worker lock names still there? Agents outlive the process
 * that started them (an agent in a tmux session, a Warden job whose spawner died), so a lock
 * whose PID is dead is stale only if its session is gone too. Each probe takes one snapshot of
 * what exists; a probe that cannot answer says so, and no lock is then judged stale by it.
 *
 * Session ids:
 * - `warden-job:<jobId>` — a Warden job: alive while some process carries `WARDEN_JOB_ID=<jobId>`
 *   in its environment (jobs set it for the agent and everything it spawns);
 * - `$N` — a tmux session id; `%N` — a tmux pane id (checked against the panes that exist, not
 *   mapped onto sessions); anything else — a tmux session name.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { setLongTimeout } from './longTimer.js';

export const WARDEN_JOB_SESSION_PREFIX = 'warden-job:';

/** What a probe says about one session id. */
export type SessionVerdict = { kind: 'alive' } | { kind: 'gone' } | { kind: 'unknown'; reason: string };

/** One probe's view of the sessions that exist, taken at one moment. */
export type SessionSnapshot =
  | { probe: string; ok: true; verdict(sessionId: string, context: { lockUid?: number }): SessionVerdict; note?: string }
  | { probe: string; ok: false; reason: string };

export interface SessionProbe {
  readonly name: string;
  /** Whether session ids of this form are this probe's to answer. */
  handles(sessionId: string): boolean;
  snapshot(): Promise<SessionSnapshot>;
}

/** The probe that answers for `sessionId` and its verdict, from snapshots taken of `probes`. */
export function sessionVerdict(
  sessionId: string,
  probes: readonly SessionProbe[],
  snapshots: ReadonlyMap<string, SessionSnapshot>,
  context: { lockUid?: number } = {},
): { probe: string; verdict: SessionVerdict } {
  const probe = probes.find((p) => p.handles(sessionId));
  if (!probe) return { probe: 'none', verdict: { kind: 'unknown', reason: `no session probe answers for "${sessionId}"` } };
  const snapshot = snapshots.get(probe.name);
  if (!snapshot) return { probe: probe.name, verdict: { kind: 'unknown', reason: `${probe.name} was not asked` } };
  if (!snapshot.ok) return { probe: probe.name, verdict: { kind: 'unknown', reason: `${probe.name} probe failed: ${snapshot.reason}` } };
  return { probe: probe.name, verdict: snapshot.verdict(sessionId, context) };
}

/** Takes one snapshot from each probe, all at once. */
export async function takeSnapshots(probes: readonly SessionProbe[]): Promise<Map<string, SessionSnapshot>> {
  const snapshots = await Promise.all(probes.map((p) => p.snapshot()));
  return new Map(snapshots.map((s) => [s.probe, s]));
}

export interface TmuxProbeOptions {
  /** The server's socket name, as `tmux -L NAME`; default tmux's own default server. */
  socket?: string;
  /** Each tmux command is killed after this long (default 5 s). */
  timeoutMs?: number;
  /** The tmux binary (default `tmux` on PATH). */
  command?: string;
}

/** tmux sessions (by name and `$N` id) and panes (`%N`) on one server. */
export function tmuxProbe(options: TmuxProbeOptions = {}): SessionProbe {
  const name = options.socket ? `tmux -L ${options.socket}` : 'tmux';
  const timeoutMs = options.timeoutMs ?? 5_000;
  const command = options.command ?? 'tmux';
  const serverArgs = options.socket ? ['-L', options.socket] : [];

  async function ask(args: string[]): Promise<{ ok: true; lines: string[] } | { ok: false; noServer: boolean; reason: string }> {
    // No terminal and no stdin: nothing can wait for an answer from a person. Detached, the
    // command leads a process group (and session) of its own, so a timeout kills everything it
    // started: a child left holding its stdout would otherwise keep the answer from ever arriving.
    // Loaded here, not at the top: most doctor runs never start a probe, and execa is most of a
    // short command's module loading.
    const { execa } = await import('execa');
    const subprocess = execa(command, [...serverArgs, ...args], {
      stdin: 'ignore',
      reject: false,
      detached: true,
      env: { TMUX: '' },
      extendEnv: true,
    });
    let timedOut = false;
    const timer = setLongTimeout(() => {
      timedOut = true;
      try {
        if (subprocess.pid !== undefined) process.kill(-subprocess.pid, 'SIGKILL');
      } catch {
        // the group is gone already
      }
    }, timeoutMs);
    const result = await subprocess;
    timer.clear();
    if (timedOut) {
      const gone = await groupGone(subprocess.pid, 2_000);
      return { ok: false, noServer: false, reason: `timed out after ${timeoutMs} ms${gone ? '' : `; process group ${String(subprocess.pid)} still there 2 s after SIGKILL`}` };
    }
    const code = (result as { code?: string }).code;
    if (code === 'ENOENT') return { ok: false, noServer: false, reason: `${command} not found` };
    if (result.exitCode === 0) return { ok: true, lines: String(result.stdout).split('\n').filter((l) => l !== '') };
    if (result.exitCode === undefined && result.signal === undefined) {
      return { ok: false, noServer: false, reason: `cannot run ${command}: ${code ?? result.shortMessage}` };
    }
    const stderr = String(result.stderr).trim();
    // tmux's words for "there is no server on that socket", which means: no sessions at all.
    const noServer = /no server running|error connecting to .*\(No such file or directory\)/i.test(stderr);
    const exit = result.signal !== undefined ? `killed by ${result.signal}` : `exit ${String(result.exitCode)}`;
    return { ok: false, noServer, reason: stderr.split('\n')[0] || exit };
  }

  return {
    name,
    handles: (sessionId) => !sessionId.startsWith(WARDEN_JOB_SESSION_PREFIX),
    async snapshot() {
      const sessions = await ask(['list-sessions', '-F', '#{session_id}\t#{session_name}']);
      if (!sessions.ok && !sessions.noServer) return { probe: name, ok: false, reason: sessions.reason };
      const ids = new Set<string>();
      const names = new Set<string>();
      const panes = new Set<string>();
      if (sessions.ok) {
        for (const line of sessions.lines) {
          const tab = line.indexOf('\t');
          ids.add(line.slice(0, tab));
          names.add(line.slice(tab + 1));
        }
        const paneList = await ask(['list-panes', '-a', '-F', '#{pane_id}']);
        if (!paneList.ok && !paneList.noServer) return { probe: name, ok: false, reason: paneList.reason };
        if (paneList.ok) for (const pane of paneList.lines) panes.add(pane);
      }
      const note = sessions.ok ? `${ids.size} sessions, ${panes.size} panes` : 'no server running';
      return {
        probe: name,
        ok: true,
        note,
        verdict(sessionId) {
          const set = /^\$\d+$/.test(sessionId) ? ids : /^%\d+$/.test(sessionId) ? panes : names;
          return set.has(sessionId) ? { kind: 'alive' } : { kind: 'gone' };
        },
      };
    },
  };
}

export interface WardenJobProbeOptions {
  /** Where to look for processes (default `/proc`; tests point it elsewhere only to make it fail). */
  procDir?: string;
}

/**
 * Warden job sessions (`warden-job:<jobId>`): alive while any process has `WARDEN_JOB_ID=<jobId>`
 * in its environment. Only environments this user may read are seen, so for a lock file owned by
 * another user (when not root) a job that is not found is "unknown", not "gone".
 */
export function wardenJobProbe(options: WardenJobProbeOptions = {}): SessionProbe {
  const procDir = options.procDir ?? '/proc';
  const name = 'warden-job';
  return {
    name,
    handles: (sessionId) => sessionId.startsWith(WARDEN_JOB_SESSION_PREFIX),
    async snapshot() {
      let entries: string[];
      try {
        entries = readdirSync(procDir).filter((e) => /^\d+$/.test(e));
      } catch (error) {
        return { probe: name, ok: false, reason: `cannot list ${procDir}: ${(error as NodeJS.ErrnoException).code ?? String(error)}` };
      }
      const jobs = new Set<string>();
      for (const pid of entries) {
        let environ: string;
        try {
          environ = readFileSync(`${procDir}/${pid}/environ`, 'latin1');
        } catch {
          continue; // exited meanwhile, or another user's
        }
        for (const variable of environ.split('\0')) {
          if (variable.startsWith('WARDEN_JOB_ID=')) jobs.add(variable.slice('WARDEN_JOB_ID='.length));
        }
      }
      const uid = process.getuid?.() ?? -1;
      return {
        probe: name,
        ok: true,
        note: `${jobs.size} job sessions`,
        verdict(sessionId, context) {
          if (jobs.has(sessionId.slice(WARDEN_JOB_SESSION_PREFIX.length))) return { kind: 'alive' };
          if (uid !== 0 && context.lockUid !== undefined && context.lockUid !== uid) {
            return { kind: 'unknown', reason: `the lock belongs to uid ${context.lockUid}, whose job environments this user cannot read` };
          }
          return { kind: 'gone' };
        },
      };
    },
  };
}

/** The probes Warden uses unless told otherwise: Warden's own jobs, and tmux on `tmuxSocket`. */
export function defaultProbes(options: { tmuxSocket?: string; timeoutMs?: number } = {}): SessionProbe[] {
  return [wardenJobProbe(), tmuxProbe({ socket: options.tmuxSocket, timeoutMs: options.timeoutMs })];
}

/**
 * Waits until no live process is left in the group (a SIGKILL takes effect asynchronously, and
 * the group's other members are not our children, so there is no exit event to await); false at
 * the deadline. A zombie nobody reaps has exited: it does not count.
 */
async function groupGone(pgid: number | undefined, withinMs: number): Promise<boolean> {
  if (pgid === undefined) return true;
  const deadline = Date.now() + withinMs;
  for (;;) {
    if (liveMembers(pgid) === 0) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

/** How many processes of group `pgid` are alive (not zombies), from /proc; 0 where /proc is missing. */
function liveMembers(pgid: number): number {
  let count = 0;
  let entries: string[];
  try {
    entries = readdirSync('/proc');
  } catch {
    return 0;
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    let stat: string;
    try {
      stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
    } catch {
      continue;
    }
    // Fields after the last ')': state, ppid, pgrp, …
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (Number(fields[2]) === pgid && fields[0] !== 'Z') count++;
  }
  return count;
}
