import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import { afterEach, describe, expect, it } from 'vitest';
import { isZombie } from '../../src/effects/processIdentity.js';
import {
  defaultProbes,
  sessionVerdict,
  takeSnapshots,
  tmuxProbe,
  wardenJobProbe,
  type SessionProbe,
} from '../../src/effects/sessionProbes.js';
import { processGone } from '../helpers/processes.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();

/** Every tmux server here has a socket of its own: one per test, never the default server. */
const SOCKET_PREFIX = `warden-test-${process.pid}-${randomBytes(3).toString('hex')}`;
let socketsMade = 0;

interface TmuxServer {
  socket: string;
  /** The server's pid and socket file, once known. */
  pid: number | undefined;
  socketPath: string | undefined;
  /** The process of every pane made in it, killed ones too: none may outlive the server. */
  panePids: number[];
  tmux(...args: string[]): Promise<string>;
}

interface Pane {
  paneId: string;
  panePid: number;
}

interface Session extends Pane {
  name: string;
  id: string;
}

const servers: TmuxServer[] = [];
const children: ChildProcess[] = [];
/** Processes a fixture started that are not our children, killed if a failed test left them; a pid or its pid file. */
const strays: Array<number | string> = [];

afterEach(async () => {
  // Everything is cleaned up first, whatever is found left behind; then that is asserted.
  const leftBehind: string[] = [];
  for (const server of servers.splice(0)) {
    await execa('tmux', ['-L', server.socket, 'kill-server'], { reject: false, stdin: 'ignore', env: { TMUX: '' } });
    for (const pid of [server.pid, ...server.panePids]) {
      if (pid !== undefined && !(await exited(pid))) {
        leftBehind.push(`process ${pid} of the tmux server on ${server.socket}`);
        process.kill(pid, 'SIGKILL');
      }
    }
    // tmux leaves its socket file behind when the server exits.
    if (server.socketPath) rmSync(server.socketPath, { force: true });
  }
  for (const child of children.splice(0)) {
    if (child.exitCode === null && child.signalCode === null) {
      const exit = once(child, 'exit');
      child.kill('SIGKILL');
      await exit;
    }
    if (!processGone(child.pid!)) leftBehind.push(`child ${child.pid}`);
  }
  // Before useTempDirs removes the pid files (after-hooks run in reverse order). Each test that
  // makes strays asserts they are gone itself; this only tidies up after one that failed.
  for (const stray of strays.splice(0)) {
    const pid = typeof stray === 'number' ? stray : existsSync(stray) ? Number(readFileSync(stray, 'utf8')) : 0;
    if (pid > 1 && !(await exited(pid, 0))) process.kill(pid, 'SIGKILL');
  }
  expect(leftBehind).toEqual([]);
});

/**
 * Whether the process has exited (gone, or a zombie that a non-reaping init never collects),
 * waiting up to `withinMs`. The tmux server and what a fixture leaves behind are not our
 * children, so there is no exit event to await: this polls.
 */
async function exited(pid: number, withinMs = 5_000): Promise<boolean> {
  const deadline = Date.now() + withinMs;
  while (!processGone(pid) && !isZombie(pid)) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}

function unique(what: string): string {
  return `${what}-${randomBytes(4).toString('hex')}`;
}

/** A new tmux server on its own socket, with one session. */
async function startServer(): Promise<{ server: TmuxServer; first: Session }> {
  const socket = `${SOCKET_PREFIX}-${++socketsMade}`;
  const server: TmuxServer = {
    socket,
    pid: undefined,
    socketPath: undefined,
    panePids: [],
    async tmux(...args) {
      const result = await execa('tmux', ['-L', socket, ...args], { stdin: 'ignore', env: { TMUX: '' } });
      return String(result.stdout).trim();
    },
  };
  servers.push(server);
  const first = await newSession(server, unique('first'));
  const [pid, ...socketPath] = (await server.tmux('display-message', '-p', '-t', first.id, '#{pid} #{socket_path}')).split(' ');
  server.pid = Number(pid);
  server.socketPath = socketPath.join(' ');
  expect(server.pid).toBeGreaterThan(1);
  return { server, first };
}

async function newSession(server: TmuxServer, name: string): Promise<Session> {
  const out = await server.tmux('new-session', '-d', '-s', name, '-P', '-F', '#{session_id} #{pane_id} #{pane_pid}', 'sleep 1000000');
  const [id, paneId, panePid] = out.split(' ');
  server.panePids.push(Number(panePid));
  return { name, id: id!, paneId: paneId!, panePid: Number(panePid) };
}

/** A second window in `session`, whose single pane is returned. */
async function newWindow(server: TmuxServer, session: Session): Promise<Pane> {
  const out = await server.tmux('new-window', '-d', '-t', session.id, '-P', '-F', '#{pane_id} #{pane_pid}', 'sleep 1000000');
  const [paneId, panePid] = out.split(' ');
  server.panePids.push(Number(panePid));
  return { paneId: paneId!, panePid: Number(panePid) };
}

/** The probe's verdict kind for each id, from one snapshot (which must have succeeded). */
async function verdicts(probe: SessionProbe, ids: string[]): Promise<Record<string, string>> {
  const snapshot = await probe.snapshot();
  if (!snapshot.ok) throw new Error(`${snapshot.probe} failed: ${snapshot.reason}`);
  return Object.fromEntries(ids.map((id) => [id, snapshot.verdict(id, {}).kind]));
}

/** An executable stand-in for tmux, written at test time, whose body may use the dir it lives in. */
function fakeTmux(body: (dir: string) => string): { command: string; dir: string } {
  const dir = tempDir();
  const command = join(dir, 'tmux');
  writeFileSync(command, `#!/bin/sh\n${body(dir)}\n`, { mode: 0o755 });
  return { command, dir };
}

describe('tmuxProbe, against a real tmux server', () => {
  it('finds a session by its name, and calls a name no session has gone', async () => {
    const { server, first } = await startServer();
    const missing = unique('missing');
    expect(await verdicts(tmuxProbe({ socket: server.socket }), [first.name, missing])).toEqual({ [first.name]: 'alive', [missing]: 'gone' });
    const snapshot = await tmuxProbe({ socket: server.socket }).snapshot();
    expect(snapshot).toMatchObject({ probe: `tmux -L ${server.socket}`, ok: true, note: '1 sessions, 1 panes' });
  });

  it('finds a session by its $N id, and calls the same id gone once that session is killed', async () => {
    const { server, first } = await startServer();
    const second = await newSession(server, unique('second'));
    expect(second.id).toMatch(/^\$\d+$/);
    expect(second.id).not.toBe(first.id);
    const probe = tmuxProbe({ socket: server.socket });
    expect(await verdicts(probe, [first.id, second.id, second.name])).toEqual({ [first.id]: 'alive', [second.id]: 'alive', [second.name]: 'alive' });

    await server.tmux('kill-session', '-t', second.id);
    // The server lives on (the first session keeps it), so this is the answer of a running server.
    expect(await verdicts(probe, [first.id, second.id, second.name])).toEqual({ [first.id]: 'alive', [second.id]: 'gone', [second.name]: 'gone' });
  });

  it('finds a %N pane among the panes that exist, and calls it gone once the pane is killed', async () => {
    const { server, first } = await startServer();
    const pane = await newWindow(server, first);
    expect(pane.paneId).toMatch(/^%\d+$/);
    const probe = tmuxProbe({ socket: server.socket });
    expect(await verdicts(probe, [first.paneId, pane.paneId])).toEqual({ [first.paneId]: 'alive', [pane.paneId]: 'alive' });

    await server.tmux('kill-pane', '-t', pane.paneId);
    expect(await verdicts(probe, [first.paneId, pane.paneId, first.id])).toEqual({ [first.paneId]: 'alive', [pane.paneId]: 'gone', [first.id]: 'alive' });
  });

  it('never reads %N as $N (or $N as %N): a dead pane is gone even when a live session has its number', async () => {
    const { server, first } = await startServer();
    // Use up a pane number, so that pane and session numbers part ways.
    const killed = await newWindow(server, first);
    await server.tmux('kill-pane', '-t', killed.paneId);
    const second = await newSession(server, unique('second'));
    const paneWithSessionNumber = `%${second.id.slice(1)}`;
    const sessionWithPaneNumber = `$${second.paneId.slice(1)}`;
    // What tmux itself says: the session and the pane live; the ids with their numbers swapped do not.
    const panes = (await server.tmux('list-panes', '-a', '-F', '#{pane_id}')).split('\n');
    const sessions = (await server.tmux('list-sessions', '-F', '#{session_id}')).split('\n');
    expect(sessions).toContain(second.id);
    expect(panes).toContain(second.paneId);
    expect(panes).not.toContain(paneWithSessionNumber);
    expect(sessions).not.toContain(sessionWithPaneNumber);

    expect(await verdicts(tmuxProbe({ socket: server.socket }), [second.id, second.paneId, paneWithSessionNumber, sessionWithPaneNumber])).toEqual({
      [second.id]: 'alive',
      [second.paneId]: 'alive',
      [paneWithSessionNumber]: 'gone',
      [sessionWithPaneNumber]: 'gone',
    });
  });

  it('asks the server named by its socket: a socket with no server has no sessions at all', async () => {
    const { server, first } = await startServer();
    const elsewhere = tmuxProbe({ socket: `${SOCKET_PREFIX}-nobody-here` });
    const snapshot = await elsewhere.snapshot();
    expect(snapshot).toMatchObject({ ok: true, note: 'no server running' });
    expect(await verdicts(elsewhere, [first.name, first.id, first.paneId])).toEqual({ [first.name]: 'gone', [first.id]: 'gone', [first.paneId]: 'gone' });
    // The same ids on the right socket, for contrast.
    expect(await verdicts(tmuxProbe({ socket: server.socket }), [first.name, first.id, first.paneId])).toEqual({
      [first.name]: 'alive',
      [first.id]: 'alive',
      [first.paneId]: 'alive',
    });
  });

  it('without a socket, asks the default server, even when run inside a session of another server ($TMUX set)', async () => {
    const { server, first } = await startServer();
    // What tmux puts in $TMUX for the processes in that session; plain tmux would then ask that server.
    const inside = `${server.socketPath},${server.pid},${first.id.slice(1)}`;
    expect((await execa('tmux', ['has-session', '-t', first.name], { reject: false, stdin: 'ignore', env: { TMUX: inside } })).exitCode).toBe(0);

    const saved = process.env['TMUX'];
    process.env['TMUX'] = inside;
    try {
      const probes = [tmuxProbe()];
      const { probe, verdict } = sessionVerdict(first.name, probes, await takeSnapshots(probes));
      expect(probe).toBe('tmux');
      // A developer's own default server may be running (or not answer): only its not seeing ours is certain.
      expect(verdict.kind).not.toBe('alive');
    } finally {
      if (saved === undefined) delete process.env['TMUX'];
      else process.env['TMUX'] = saved;
    }
  });

  it('reads a server that was killed outright (its socket left behind) as no server: its sessions are gone', async () => {
    const { server, first } = await startServer();
    process.kill(server.pid!, 'SIGKILL');
    expect(await exited(server.pid!)).toBe(true);
    expect(existsSync(server.socketPath!)).toBe(true);
    const probe = tmuxProbe({ socket: server.socket });
    expect(await probe.snapshot()).toMatchObject({ ok: true, note: 'no server running' });
    expect(await verdicts(probe, [first.name, first.id, first.paneId])).toEqual({ [first.name]: 'gone', [first.id]: 'gone', [first.paneId]: 'gone' });
  });
});

describe('tmuxProbe, when tmux cannot answer', () => {
  it('fails with tmux\'s reason when tmux fails for another reason than "no server"; verdicts are then unknown', async () => {
    const reason = 'error connecting to /tmp/tmux-0/default (Permission denied)';
    const { command } = fakeTmux(() => `echo '${reason}' >&2\nexit 1`);
    const probes = [tmuxProbe({ command })];
    const snapshots = await takeSnapshots(probes);
    expect(snapshots.get('tmux')).toEqual({ probe: 'tmux', ok: false, reason });
    for (const id of ['$0', '%0', 'main']) {
      expect(sessionVerdict(id, probes, snapshots)).toEqual({ probe: 'tmux', verdict: { kind: 'unknown', reason: `tmux probe failed: ${reason}` } });
    }
  });

  it('fails when sessions can be listed but panes cannot', async () => {
    const { command } = fakeTmux(() =>
      ['case " $* " in', `  *" list-sessions "*) printf '$0\\tmain\\n' ;;`, "  *) echo 'protocol version mismatch' >&2; exit 1 ;;", 'esac'].join('\n'),
    );
    expect(await tmuxProbe({ command }).snapshot()).toEqual({ probe: 'tmux', ok: false, reason: 'protocol version mismatch' });
  });

  it('gives up on a tmux that hangs after timeoutMs, and leaves nothing it started running', async () => {
    // It ignores polite signals, and its child holds the output pipes open after it is gone.
    const { command, dir } = fakeTmux((d) =>
      ["trap '' TERM HUP INT", `echo $$ > '${d}/tmux.pid'`, 'sleep 1000000 &', `echo $! > '${d}/child.pid'`, 'wait'].join('\n'),
    );
    const pidFiles = ['tmux.pid', 'child.pid'].map((f) => join(dir, f));
    strays.push(...pidFiles);
    const timeoutMs = 1_000;
    const started = Date.now();
    const snapshot = await tmuxProbe({ command, timeoutMs }).snapshot();
    const tookMs = Date.now() - started;
    const pids = pidFiles.map((f) => Number(readFileSync(f, 'utf8')));

    expect(snapshot).toEqual({ probe: 'tmux', ok: false, reason: `timed out after ${timeoutMs} ms` });
    expect(tookMs).toBeGreaterThanOrEqual(timeoutMs - 50);
    expect(tookMs).toBeLessThan(timeoutMs + 3_000);
    // The fake tmux is the probe's child, reaped by now; its child was orphaned and may await init.
    expect(processGone(pids[0]!)).toBe(true);
    expect(await exited(pids[1]!)).toBe(true);
  });

  it('fails, rather than reporting no sessions, when tmux is not there', async () => {
    const probes = [tmuxProbe({ command: '/nonexistent/tmux' })];
    const snapshots = await takeSnapshots(probes);
    expect(snapshots.get('tmux')).toEqual({ probe: 'tmux', ok: false, reason: '/nonexistent/tmux not found' });
    expect(sessionVerdict('main', probes, snapshots).verdict).toMatchObject({ kind: 'unknown' });
  });

  it('fails, saying why, when tmux cannot be run', async () => {
    const dir = tempDir();
    const command = join(dir, 'tmux');
    writeFileSync(command, '#!/bin/sh\nexit 0\n', { mode: 0o644 });
    expect(await tmuxProbe({ command }).snapshot()).toEqual({ probe: 'tmux', ok: false, reason: `cannot run ${command}: EACCES` });
  });

  it('gives tmux no stdin and no terminal, so nothing can wait for an answer from a person', async () => {
    const { command, dir } = fakeTmux((d) =>
      [
        `report='${d}/seen'`,
        'if [ -t 0 ]; then echo "stdin: a terminal" >> "$report"; else echo "stdin: not a terminal" >> "$report"; fi',
        'if read -r line; then echo "read: a line" >> "$report"; else echo "read: end of input" >> "$report"; fi',
        'if (: </dev/tty) 2>/dev/null; then echo "controlling terminal: yes" >> "$report"; else echo "controlling terminal: none" >> "$report"; fi',
        'echo "args: $*" >> "$report"',
        "echo 'no server running on /tmp/tmux-0/fake' >&2",
        'exit 1',
      ].join('\n'),
    );
    const socket = unique('fake');
    // Long enough that a read waiting on a pipe nobody closes would show as a timeout.
    const snapshot = await tmuxProbe({ command, socket, timeoutMs: 10_000 }).snapshot();
    expect(snapshot).toMatchObject({ ok: true, note: 'no server running' });
    expect(readFileSync(join(dir, 'seen'), 'utf8').split('\n')).toEqual([
      'stdin: not a terminal',
      'read: end of input',
      'controlling terminal: none',
      `args: -L ${socket} list-sessions -F #{session_id}\t#{session_name}`,
      '',
    ]);
  });
});

/** A process carrying WARDEN_JOB_ID, as a job's agent does; resolves once it runs. */
async function startJobProcess(jobId: string, script = 'setInterval(() => {}, 1000)'): Promise<ChildProcess & { pid: number }> {
  const child = spawn(process.execPath, ['-e', script], { env: { ...process.env, WARDEN_JOB_ID: jobId }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.push(child);
  await once(child, 'spawn');
  return child as ChildProcess & { pid: number };
}

async function kill(child: ChildProcess): Promise<void> {
  const exit = once(child, 'exit');
  child.kill('SIGKILL');
  await exit;
}

describe('wardenJobProbe', () => {
  it('finds a job while a process carries its WARDEN_JOB_ID, and calls it gone once that process is dead', async () => {
    const jobId = unique('job');
    const child = await startJobProcess(jobId);
    const probe = wardenJobProbe();
    const other = `warden-job:${unique('job')}`;
    expect(await verdicts(probe, [`warden-job:${jobId}`, other])).toEqual({ [`warden-job:${jobId}`]: 'alive', [other]: 'gone' });

    await kill(child);
    expect(processGone(child.pid)).toBe(true);
    expect(await verdicts(probe, [`warden-job:${jobId}`])).toEqual({ [`warden-job:${jobId}`]: 'gone' });
  });

  it('keeps a job alive through a descendant after the process that started it has died', async () => {
    const jobId = unique('job');
    // The agent starts a helper of its own, which inherits the job's environment, and says its pid.
    const agent = await startJobProcess(
      jobId,
      "const c = require('node:child_process').spawn('sleep', ['1000000'], { stdio: 'ignore' }); console.log(c.pid); setInterval(() => {}, 1000)",
    );
    const lines = createInterface({ input: agent.stdout! });
    const [first] = (await once(lines, 'line')) as [string];
    const helper = Number(first);
    strays.push(helper);
    const probe = wardenJobProbe();
    const id = `warden-job:${jobId}`;

    await kill(agent);
    expect(await verdicts(probe, [id])).toEqual({ [id]: 'alive' });

    process.kill(helper, 'SIGKILL');
    expect(await exited(helper)).toBe(true);
    expect(await verdicts(probe, [id])).toEqual({ [id]: 'gone' });
  });

  it('fails when it cannot list processes', async () => {
    const probes = [wardenJobProbe({ procDir: '/nonexistent' })];
    const snapshots = await takeSnapshots(probes);
    expect(snapshots.get('warden-job')).toEqual({ probe: 'warden-job', ok: false, reason: 'cannot list /nonexistent: ENOENT' });
    expect(sessionVerdict('warden-job:x', probes, snapshots).verdict).toMatchObject({ kind: 'unknown' });
  });

  it("calls a missing job unknown, not gone, when the lock is another user's and this user is not root", async () => {
    const jobId = unique('job');
    await startJobProcess(jobId);
    const snapshot = await wardenJobProbe().snapshot();
    if (!snapshot.ok) throw new Error(snapshot.reason);
    const uid = process.getuid!();
    const missing = `warden-job:${unique('job')}`;
    expect(snapshot.verdict(`warden-job:${jobId}`, { lockUid: uid + 1 })).toEqual({ kind: 'alive' });
    expect(snapshot.verdict(missing, { lockUid: uid })).toEqual({ kind: 'gone' });
    expect(snapshot.verdict(missing, { lockUid: uid + 1 }).kind).toBe(uid === 0 ? 'gone' : 'unknown');
  });
});

describe('sessionVerdict and takeSnapshots', () => {
  it('sends warden-job: ids to the job probe and every other id to tmux, whichever probe comes first', async () => {
    const { server, first } = await startServer();
    const jobId = unique('job');
    await startJobProcess(jobId);
    const tmuxName = `tmux -L ${server.socket}`;
    const missingJob = `warden-job:${unique('job')}`;
    const ids = [`warden-job:${jobId}`, missingJob, first.name, first.id, first.paneId, 'gone-session'];
    // The first probe that claims an id answers for it, so each must claim only its own.
    for (const probes of [
      [wardenJobProbe(), tmuxProbe({ socket: server.socket })],
      [tmuxProbe({ socket: server.socket }), wardenJobProbe()],
    ]) {
      const snapshots = await takeSnapshots(probes);
      expect([...snapshots.keys()]).toEqual(probes.map((p) => p.name));
      expect(Object.fromEntries(ids.map((id) => [id, sessionVerdict(id, probes, snapshots)]))).toEqual({
        [`warden-job:${jobId}`]: { probe: 'warden-job', verdict: { kind: 'alive' } },
        [missingJob]: { probe: 'warden-job', verdict: { kind: 'gone' } },
        [first.name]: { probe: tmuxName, verdict: { kind: 'alive' } },
        [first.id]: { probe: tmuxName, verdict: { kind: 'alive' } },
        [first.paneId]: { probe: tmuxName, verdict: { kind: 'alive' } },
        ['gone-session']: { probe: tmuxName, verdict: { kind: 'gone' } },
      });
    }
  });

  it('keeps each probe to its own ids: a failed tmux leaves job verdicts alone', async () => {
    const jobId = unique('job');
    await startJobProcess(jobId);
    const probes = [wardenJobProbe(), tmuxProbe({ command: '/nonexistent/tmux' })];
    const snapshots = await takeSnapshots(probes);
    expect(sessionVerdict(`warden-job:${jobId}`, probes, snapshots)).toEqual({ probe: 'warden-job', verdict: { kind: 'alive' } });
    expect(sessionVerdict('main', probes, snapshots)).toMatchObject({ probe: 'tmux', verdict: { kind: 'unknown' } });
  });

  it('says unknown when no probe answers for an id, or its probe was not asked', async () => {
    const jobOnly = [wardenJobProbe()];
    expect(sessionVerdict('main', jobOnly, await takeSnapshots(jobOnly))).toEqual({
      probe: 'none',
      verdict: { kind: 'unknown', reason: 'no session probe answers for "main"' },
    });
    expect(sessionVerdict('main', [tmuxProbe()], new Map())).toEqual({ probe: 'tmux', verdict: { kind: 'unknown', reason: 'tmux was not asked' } });
  });

  it('defaultProbes asks Warden jobs and tmux on the given socket', async () => {
    const { server, first } = await startServer();
    const jobId = unique('job');
    await startJobProcess(jobId);
    const probes = defaultProbes({ tmuxSocket: server.socket });
    expect(probes.map((p) => p.name)).toEqual(['warden-job', `tmux -L ${server.socket}`]);
    const snapshots = await takeSnapshots(probes);
    expect(sessionVerdict(first.name, probes, snapshots).verdict).toEqual({ kind: 'alive' });
    expect(sessionVerdict(`warden-job:${jobId}`, probes, snapshots).verdict).toEqual({ kind: 'alive' });
  });
});
