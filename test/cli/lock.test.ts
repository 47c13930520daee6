import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { currentIdentity } from '../../src/effects/processIdentity.js';
import { CLI, warden } from '../helpers/cli.js';
import { processGone, useSleepers } from '../helpers/processes.js';
import { fromBStart, overlapAfterSigkill } from '../helpers/holds.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();
const RACER = join(import.meta.dirname, '../fixtures/workerLock/racer.mjs');
// Session probes ask a tmux socket with no server: every tmux session is gone.
const NO_TMUX = ['--tmux-socket', `warden-test-none-${process.pid}`];

function workerDir(): string {
  const dir = join(tempDir(), 'worker');
  mkdirSync(dir);
  return dir;
}
const lockOf = (dir: string) => JSON.parse(readFileSync(join(dir, '.runtime', 'agent.lock'), 'utf8')) as Record<string, unknown>;
const writeLock = (dir: string, content: unknown) => {
  mkdirSync(join(dir, '.runtime'), { recursive: true });
  writeFileSync(join(dir, '.runtime', 'agent.lock'), typeof content === 'string' ? content : JSON.stringify(content));
};


const spawnSleeper = useSleepers();
const sleepers = new Map<number, ReturnType<typeof spawnSleeper>['child']>();
const sleeper = () => {
  const { pid, child } = spawnSleeper();
  sleepers.set(pid, child);
  return pid;
};

describe('16 processes racing for one worker', () => {
  it('through the library: exactly one wins each of 40 rounds', async () => {
    const racers = Array.from({ length: 16 }, () => execa('node', [RACER], { reject: false, stdin: 'pipe' }));
    const pids = racers.map((r) => r.pid!);
    const lines = racers.map((racer) => createInterface({ input: racer.stdout! })[Symbol.asyncIterator]());
    const next = async (i: number) => (await lines[i]!.next()).value as string;
    expect(await Promise.all(racers.map((_, i) => next(i)))).toEqual(Array(16).fill('ready'));
    for (let round = 0; round < 40; round++) {
      const dir = join(workerDir(), '..', `round-${round}`);
      mkdirSync(dir);
      for (const racer of racers) racer.stdin!.write(`${dir}\n`);
      const outcomes = (await Promise.all(racers.map((_, i) => next(i)))).map((line) => JSON.parse(line) as { worker: string; won: boolean });
      const winners = outcomes.flatMap((o, i) => (o.won ? [pids[i]] : []));
      expect(winners, `round ${round}`).toHaveLength(1);
      expect(lockOf(dir)).toMatchObject({ pid: winners[0], session_id: `racer-${winners[0]}` });
    }
    for (const racer of racers) racer.stdin!.end();
    expect((await Promise.all(racers)).map((r) => r.exitCode)).toEqual(Array(16).fill(0));
    expect(pids.filter((pid) => !processGone(pid))).toEqual([]);
  }, 120_000);

  it('through `warden lock acquire`: exactly one wins each round', async () => {
    const owners = Array.from({ length: 16 }, () => sleeper());
    for (let round = 0; round < 3; round++) {
      const dir = workerDir();
      const results = await Promise.all(owners.map((pid) => warden(['lock', 'acquire', dir, '--pid', String(pid), '--session', `s-${pid}`, ...NO_TMUX])));
      const winners = results.flatMap((r, i) => (r.code === 0 ? [owners[i]] : []));
      expect(winners, `round ${round}`).toHaveLength(1);
      expect(results.filter((r) => r.code === 75)).toHaveLength(15);
      for (const r of results.filter((x) => x.code === 75)) expect(r.stderr).toMatch(new RegExp(`is locked by PID ${winners[0]} \\(session: s-${winners[0]}`));
      expect(lockOf(dir)).toMatchObject({ pid: winners[0], session_id: `s-${winners[0]}` });
    }
  }, 120_000);
});

describe('warden lock acquire|release|status|check', () => {
  it('records --pid, or else the process that ran warden — never its own short-lived pid', async () => {
    const dir = workerDir();
    const owner = sleeper();
    expect(await warden(['lock', 'acquire', dir, '--pid', String(owner), '--session', 'sess'])).toMatchObject({ code: 0 });
    expect(lockOf(dir)).toMatchObject({ pid: owner, session_id: 'sess', hostname: currentIdentity().hostname });
    const second = join(workerDir(), '..', 'w2');
    mkdirSync(second);
    // Run through a shell: the shell is warden's parent, and its pid is the owner recorded.
    const shell = await execa('sh', ['-c', `node ${CLI} lock acquire ${second} --json && echo "shell=$$"`], { reject: false });
    expect(shell.exitCode).toBe(0);
    const shellPid = Number(/shell=(\d+)/.exec(String(shell.stdout))![1]);
    expect(lockOf(second).pid).toBe(shellPid);
    expect(JSON.parse(String(shell.stdout).split('\n')[0]!)).toMatchObject({ kind: 'acquired', lock: { pid: shellPid } });
  });

  it("round-trips and speaks gastown's status strings through the CLI", async () => {
    const dir = workerDir();
    const me = sleeper();
    const as = ['--pid', String(me), ...NO_TMUX];
    expect((await warden(['lock', 'status', dir, ...as])).stdout.trim()).toBe('unlocked');
    expect(await warden(['lock', 'acquire', dir, '--session', 'one', ...as])).toMatchObject({ code: 0 });
    expect((await warden(['lock', 'status', dir, ...as])).stdout.trim()).toBe('locked (by us)');
    expect(await warden(['lock', 'acquire', dir, '--session', 'two', ...as])).toMatchObject({ code: 0, stdout: expect.stringContaining('refreshed') });
    expect(lockOf(dir).session_id).toBe('two');
    const them = sleeper();
    expect((await warden(['lock', 'status', dir, '--pid', String(them), ...NO_TMUX])).stdout.trim()).toBe(`locked by PID ${me} (session: two) [orphaned: PID ${me} alive, but session two gone]`);
    // Not theirs to release; theirs to be refused.
    expect(await warden(['lock', 'release', dir, '--pid', String(them), ...NO_TMUX])).toMatchObject({ code: 1 });
    expect(await warden(['lock', 'check', dir, '--pid', String(them), ...NO_TMUX])).toMatchObject({ code: 75 });
    expect(await warden(['lock', 'release', dir, ...as])).toMatchObject({ code: 0, stdout: expect.stringContaining('released') });
    expect(existsSync(join(dir, '.runtime', 'agent.lock'))).toBe(false);
    expect(existsSync(join(dir, '.runtime', 'agent.lock.flock'))).toBe(true);
  });

  it('stale locks: status says so, check cleans, acquire takes over; PIDs 0, -1, 999999999 are dead', async () => {
    for (const pid of [0, -1, 999_999_999]) {
      const dir = workerDir();
      writeLock(dir, { pid, acquired_at: '2026-01-05T10:23:45.123456789-08:00', session_id: 'dead-session', hostname: currentIdentity().hostname });
      const status = await warden(['lock', 'status', dir, '--json', ...NO_TMUX]);
      expect(JSON.parse(status.stdout)).toMatchObject({ status: `stale (dead PID ${pid})`, state: 'stale' });
      expect(await warden(['lock', 'check', dir, ...NO_TMUX])).toMatchObject({ code: 0, stdout: expect.stringContaining('removed a stale lock') });
      expect(existsSync(join(dir, '.runtime', 'agent.lock'))).toBe(false);
      writeLock(dir, { pid, acquired_at: '2026-01-05T18:23:45Z' });
      expect(await warden(['lock', 'acquire', dir, '--session', 'new', ...NO_TMUX])).toMatchObject({ code: 0, stdout: expect.stringContaining('took over a stale lock') });
    }
  });

  it('bad input: one line naming what is wrong, exit 2, nothing lost', async () => {
    const dir = workerDir();
    writeLock(dir, 'invalid json');
    const read = await warden(['lock', 'check', dir]);
    expect(read).toMatchObject({ code: 2, stderr: `warden: ${join(dir, '.runtime', 'agent.lock')}: invalid lock file: not JSON` });
    expect(readFileSync(join(dir, '.runtime', 'agent.lock'), 'utf8')).toBe('invalid json');
    for (const [args, message] of [
      [['lock', 'acquire'], 'lock acquire: no WORKER given (warden lock acquire WORKER [--pid P] [--session S] [--json] [--dir D] [--tmux-socket NAME])'],
      [['lock', 'frob', dir], 'lock: expected one of acquire, release, status, check, run, got "frob"'],
      [['lock', 'acquire', dir, '--pid', '0'], '--pid: expected a process id (a positive integer below 2^31), got "0"'],
      [['lock', 'acquire', dir, '--pid', '12abc'], '--pid: expected a process id (a positive integer below 2^31), got "12abc"'],
      [['lock', 'acquire', dir, '--pid', '999999999'], 'no process with pid 999999999'],
      [['lock', 'acquire', join(dir, 'missing')], `lock acquire: ${join(dir, 'missing')}: no such directory`],
      [['lock', 'status', dir, '--session', 'x'], 'unknown option --session for warden lock status (see warden lock status --help)'],
      [['lock', 'run', dir], 'lock run: no command given (warden lock run WORKER [options] -- CMD…)'],
    ] as const) {
      const result = await warden([...args]);
      expect(result, args.join(' ')).toMatchObject({ code: 2, stderr: `warden: ${message}` });
    }
  });
});

describe('warden lock run', () => {
  it("runs CMD under the lock (exit = CMD's), refuses with 75 while held, and with --wait takes it when freed", async () => {
    const dir = workerDir();
    const ok = await warden(['lock', 'run', dir, '--session', 'r1', ...NO_TMUX, '--', 'sh', '-c', 'cat "$WARDEN_WORKER/.runtime/agent.lock"; exit 7']);
    expect(ok.code).toBe(7);
    expect(JSON.parse(ok.stdout)).toMatchObject({ session_id: 'r1', owner: 'warden' });
    expect(existsSync(join(dir, '.runtime', 'agent.lock'))).toBe(false);

    const holder = sleeper();
    expect(await warden(['lock', 'acquire', dir, '--pid', String(holder), ...NO_TMUX])).toMatchObject({ code: 0 });
    const refused = await warden(['lock', 'run', dir, ...NO_TMUX, '--', 'true']);
    expect(refused).toMatchObject({ code: 75, stderr: expect.stringContaining(`is locked by PID ${holder}`) });

    const waiting = execa('node', [CLI, 'lock', 'run', dir, '--wait', '--probe-ms', '100', ...NO_TMUX, '--', 'sh', '-c', 'echo ran; exit 3'], { reject: false });
    // Once it says it is waiting, kill the holder: its lock goes stale and the waiter takes over.
    await new Promise<void>((resolve) => {
      let seen = '';
      waiting.stderr!.on('data', (chunk: Buffer) => {
        seen += chunk.toString();
        if (seen.includes('; waiting')) resolve();
      });
    });
    sleepers.get(holder)!.kill('SIGKILL');
    const result = await waiting;
    const ran = { code: result.exitCode, stdout: String(result.stdout), stderr: String(result.stderr) };
    expect(ran).toMatchObject({ code: 3, stdout: 'ran' });
    expect(ran.stderr).toMatch(new RegExp(`is locked by PID ${holder}.*; waiting`));
    expect(existsSync(join(dir, '.runtime', 'agent.lock'))).toBe(false);
  });

  it("kills what a SIGKILLed holder's CMD started before the next holder's CMD starts: no two sections overlap", async () => {
    const dir = workerDir();
    const { lines, next, left } = await overlapAfterSigkill(
      dir,
      (cmd) => ['lock', 'run', dir, ...NO_TMUX, '--', ...cmd],
      (cmd) => ['lock', 'run', dir, '--wait', '--probe-ms', '20', ...NO_TMUX, '--', ...cmd],
    );
    expect(lines).not.toContain('A-alive');
    expect(fromBStart(lines)).toEqual(['B-start', 'B-end']);
    expect(next.code).toBe(0);
    expect(next.stderr).toMatch(/: killed \d+ process(es)? an earlier holder left running: \d+/);
    expect(left).toEqual([]);
  });
});
