import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { describe, expect, it } from 'vitest';
import { readLog } from '../../src/store/logReader.js';
import { CLI, warden } from '../helpers/cli.js';
import { fromBStart, killTagged, overlapAfterSigkill, until } from '../helpers/holds.js';
import { exited, processesWithEnv, processGone } from '../helpers/processes.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();
const HOLD = join(import.meta.dirname, '../fixtures/lease/holdUntilStdinCloses.mjs');
const LIBRARY_USER = join(import.meta.dirname, '../fixtures/lease/libraryUser.mjs');
const AGENT = join(import.meta.dirname, '../fixtures/agent/fake-agent.mjs');

/** Resolves with the first stdout line of `child` that matches. */
function line(child: ResultPromise, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    let buffer = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffer += chunk.toString();
      const found = buffer.split('\n').find((l) => pattern.test(l));
      if (found) resolve(found);
    });
    child.once('exit', (code) => reject(new Error(`exited (${code}) before printing ${pattern}; stdout: ${buffer}`)));
  });
}

function holder(dir: string, extra: string[] = [], env: Record<string, string> = {}) {
  return execa('node', [CLI, 'lease', 'run', '--dir', dir, ...extra, '--', 'node', HOLD], { reject: false, env, stdin: 'pipe' });
}

const lockOf = (dir: string) => JSON.parse(readFileSync(join(dir, '.warden', 'scheduler.lock'), 'utf8'));
const recordsOf = (dir: string) => readLog(join(dir, '.warden', 'events.jsonl')).records;

describe('warden lease run', () => {
  it('runs CMD holding the lease and exits with its code', async () => {
    const dir = tempDir();
    const result = await warden(['lease', 'run', '--dir', dir, '--', 'sh', '-c', 'echo "epoch $WARDEN_LEASE_EPOCH"; exit 3']);
    expect(result.stdout).toBe('epoch 1');
    expect(result.code).toBe(3);
    expect(existsSync(join(dir, '.warden', 'scheduler.lock'))).toBe(false);
  });

  it('exits 75 with one line when another live owner holds it, and reports the holder in lease status', async () => {
    const dir = tempDir();
    const first = holder(dir, ['--id', 'first']);
    await line(first, /^ready 1$/);
    const second = await warden(['lease', 'run', '--dir', dir, '--', 'true']);
    expect(second.code).toBe(75);
    expect(second.stderr.split('\n')).toEqual([expect.stringMatching(/^warden: the lease of .* is held by first \(pid \d+ on .*, epoch 1\)$/)]);
    const status = await warden(['lease', 'status', '--dir', dir, '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({ held: true, live: true, basis: 'pid+starttime', owner: { ownerId: 'first', pid: first.pid, epoch: 1 } });
    first.stdin!.end();
    expect((await first).exitCode).toBe(0);
    expect(JSON.parse((await warden(['lease', 'status', '--dir', dir, '--json'])).stdout)).toMatchObject({ held: false, owner: null });
  });

  it('removes the lock when the holder gets SIGTERM, and CMD goes with it', async () => {
    const dir = tempDir();
    const first = holder(dir);
    await line(first, /^ready/);
    first.kill('SIGTERM');
    const result = await first;
    expect(result.exitCode).toBe(143);
    expect(existsSync(join(dir, '.warden', 'scheduler.lock'))).toBe(false);
    expect(recordsOf(dir).filter((r) => r.type === 'lease.release').map((r) => r.data)).toEqual([{ reason: 'SIGTERM; command exited with 143' }]);
  });

  it('lets the same --id re-acquire after a SIGKILL, writing the new pid into the lock', async () => {
    const dir = tempDir();
    const first = holder(dir, ['--id', 'steady']);
    await line(first, /^ready 1$/);
    first.kill('SIGKILL');
    await first;
    expect(lockOf(dir).pid).toBe(first.pid);
    const again = holder(dir, ['--id', 'steady']);
    await line(again, /^ready 2$/);
    expect(lockOf(dir)).toMatchObject({ ownerId: 'steady', pid: again.pid, epoch: 2 });
    const acquired = recordsOf(dir).find((r) => r.actor === 'lease:2' && r.type === 'lease.acquired');
    expect(acquired?.data).toMatchObject({ predecessor: { ownerId: 'steady', pid: first.pid, reason: 'resumed by the same owner; dead' } });
    again.stdin!.end();
    await again;
  });

  it('a passive waiter takes over within two probe intervals of the holder\'s death', async () => {
    const dir = tempDir();
    const probeMs = 500;
    const first = holder(dir);
    await line(first, /^ready 1$/);
    const waiter = holder(dir, ['--wait', '--probe-ms', String(probeMs)]);
    await new Promise<void>((resolve) => waiter.stderr!.once('data', () => resolve()));
    const killedAt = Date.now();
    first.kill('SIGKILL');
    await line(waiter, /^ready 2$/);
    const acquired = recordsOf(dir).find((r) => r.actor === 'lease:2' && r.type === 'lease.acquired');
    // When the lock was won, not when CMD got going: starting CMD is not part of the takeover.
    const wonAt = Date.parse((acquired?.data as { acquiredAt: string }).acquiredAt);
    expect(wonAt - killedAt).toBeLessThanOrEqual(2 * probeMs);
    expect(acquired?.data).toMatchObject({ predecessor: { pid: first.pid, reason: 'dead' }, blockedBy: [{ pid: first.pid, epoch: 1 }] });
    waiter.stdin!.end();
    await waiter;
    await first;
    expect(processGone(first.pid!)).toBe(true);
  });

  it('a SIGSTOPped holder deposed meanwhile logs lease.lost on SIGCONT, stops CMD, and writes nothing more under its epoch', async () => {
    const dir = tempDir();
    // It poses as another host, so it is judged by its lease TTL alone.
    const paused = holder(dir, ['--ttl-ms', '600'], { WARDEN_HOSTNAME: 'elsewhere' });
    await line(paused, /^ready 1$/);
    paused.kill('SIGSTOP');
    const successor = holder(dir, ['--wait', '--probe-ms', '50', '--ttl-ms', '600']);
    await line(successor, /^ready 2$/);
    const takeoverSeq = recordsOf(dir).find((r) => r.actor === 'lease:2' && r.type === 'lease.acquired')!.seq;
    paused.kill('SIGCONT');
    const result = await paused;
    expect(result.exitCode).toBe(1);
    expect(String(result.stderr)).toMatch(/^warden: lease\.lost: lease lost \(epoch 1\): the lock (is now held by|had been taken over before CMD ended)/m);
    expect(recordsOf(dir).filter((r) => r.epoch === 1).every((r) => r.seq < takeoverSeq)).toBe(true);
    expect(lockOf(dir)).toMatchObject({ epoch: 2, pid: successor.pid });
    successor.stdin!.end();
    expect((await successor).exitCode).toBe(0);
  });

  it('never lets CMD run on when warden is SIGKILLed right after forking it', { timeout: 90_000 }, async () => {
    const SECTION = join(import.meta.dirname, '../fixtures/stress/section.mjs');
    for (let attempt = 0; attempt < 8; attempt++) {
      const dir = tempDir();
      const shared = join(dir, 'sections.txt');
      const warden = execa('node', [CLI, 'lease', 'run', '--dir', dir, '--', 'node', SECTION, shared], { reject: false });
      // Kill it the moment it has a child: the gap before the parent-death signal is set.
      let child: number | undefined;
      while (child === undefined && warden.exitCode === null) {
        try {
          const found = readFileSync(`/proc/${warden.pid}/task/${warden.pid}/children`, 'utf8').trim().split(' ')[0];
          child = found ? Number(found) : undefined;
        } catch {
          break;
        }
        if (child === undefined) await new Promise((resolve) => setImmediate(resolve));
      }
      warden.kill('SIGKILL');
      await warden;
      for (let i = 0; child !== undefined && !processGone(child) && i < 2_000; i++) await new Promise((r) => setTimeout(r, 5));
      if (child !== undefined) expect(processGone(child)).toBe(true);
      const text = existsSync(shared) ? readFileSync(shared, 'utf8') : '';
      expect(text).not.toMatch(/^end /m);
    }
  });

  it("kills what a SIGKILLed holder's CMD started before the next holder's CMD starts: no two sections overlap", async () => {
    const dir = tempDir();
    const { lines, next, left } = await overlapAfterSigkill(
      dir,
      (cmd) => ['lease', 'run', '--dir', dir, '--', ...cmd],
      (cmd) => ['lease', 'run', '--dir', dir, '--wait', '--probe-ms', '20', '--', ...cmd],
    );
    expect(lines).not.toContain('A-alive');
    expect(fromBStart(lines)).toEqual(['B-start', 'B-end']);
    expect(next.code).toBe(0);
    expect(next.stderr).toMatch(/^warden: killed \d+ process(es)? an earlier holder left running: \d+/m);
    expect(left).toEqual([]);
  });

  it('contains a `warden exec` run as CMD: what its agent started is killed by the next holder too', async () => {
    const dir = tempDir();
    const tag = randomUUID();
    const pids = join(dir, 'pids.txt');
    const agent = ['node', AGENT, '--lines', '1', '--grandchild', '--linger', 'forever', '--pids', pids];
    try {
      const first = execa('node', [CLI, 'lease', 'run', '--dir', dir, '--', 'node', CLI, 'exec', '--dir', dir, '--', ...agent], { env: { HOLD_TEST_TAG: tag }, stdio: 'ignore', reject: false });
      await until(() => existsSync(pids) && readFileSync(pids, 'utf8').trim().split('\n').length === 2, 'the agent and its child');
      first.kill('SIGKILL');
      await first;
      const next = await warden(['lease', 'run', '--dir', dir, '--wait', '--probe-ms', '20', '--', 'true'], { env: { HOLD_TEST_TAG: tag } });
      expect(next.code).toBe(0);
      expect(next.stderr).toMatch(/^warden: killed \d+ process(es)? an earlier holder left running/m);
      expect(processesWithEnv('HOLD_TEST_TAG', tag)).toEqual([]);
    } finally {
      await killTagged('HOLD_TEST_TAG', tag);
    }
  });

  it('ends what CMD left running (a background loop) with the section, before the lease is released', async () => {
    const dir = tempDir();
    const bg = join(dir, 'bg.pid');
    const result = await warden(['lease', 'run', '--dir', dir, '--', 'sh', '-c', '(while :; do sleep 0.01; done) & echo $! > "$0"', bg]);
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(/^warden: killed \d+ process(es)? CMD left running: /m);
    expect(exited(Number(readFileSync(bg, 'utf8')))).toBe(true);
    expect(existsSync(join(dir, '.warden', 'scheduler.lock'))).toBe(false);
  });

  it.each([
    [['lease', 'run'], 'lease run: no command given'],
    [['lease', 'frob'], 'lease: expected "run" or "status", got "frob"'],
    [['lease', 'run', '--probe-ms', 'soon', '--', 'true'], '--probe-ms: expected a positive integer, got "soon"'],
    [['lease', 'status', 'extra'], 'lease status: unexpected argument "extra"'],
  ])('rejects %j with exit 2 and one line', async (args, message) => {
    const result = await warden([...args.slice(0, 2), '--dir', tempDir(), ...args.slice(2)]);
    expect(result.code).toBe(2);
    expect(result.stderr.split('\n')).toHaveLength(1);
    expect(result.stderr).toContain(message);
  });
});

describe('the library releases on the way out', () => {
  it.each([
    ['a normal exit', 'exit', 0, 'process exit'],
    ['an uncaught error', 'throw', 1, 'uncaught error: boom'],
  ])('on %s', async (_what, how, code, reason) => {
    const dir = tempDir();
    const result = await execa('node', [LIBRARY_USER, dir, how], { reject: false });
    expect(result.stdout).toBe('held 1');
    expect(result.exitCode).toBe(code);
    expect(existsSync(join(dir, '.warden', 'scheduler.lock'))).toBe(false);
    expect(recordsOf(dir).filter((r) => r.type === 'lease.release').map((r) => r.data)).toEqual([{ reason }]);
  });

  it('still dies of a SIGTERM that is handled only after the lease was released', async () => {
    const dir = tempDir();
    const result = await execa('node', [LIBRARY_USER, dir, 'signal-then-release'], { reject: false });
    expect(result.stdout).toBe('held 1');
    expect(result.signal).toBe('SIGTERM');
    expect(recordsOf(dir).filter((r) => r.type === 'lease.release').map((r) => r.data)).toEqual([{ reason: 'released by the program' }]);
  });

  it.each([['SIGINT'], ['SIGTERM'], ['SIGHUP']] as const)('on %s, then dies of it', async (signal) => {
    const dir = tempDir();
    const child = execa('node', [LIBRARY_USER, dir, 'hang'], { reject: false });
    await line(child, /^held 1$/);
    child.kill(signal);
    const result = await child;
    expect(result.signal).toBe(signal);
    expect(existsSync(join(dir, '.warden', 'scheduler.lock'))).toBe(false);
    expect(recordsOf(dir).filter((r) => r.type === 'lease.release').map((r) => r.data)).toEqual([{ reason: signal }]);
  });
});
