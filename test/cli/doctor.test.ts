import { randomUUID } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { cleanStaleLocks, detectCollisions } from '../../src/effects/doctor.js';
import { findAllLocks } from '../../src/effects/lockScan.js';
import { tmuxProbe, wardenJobProbe } from '../../src/effects/sessionProbes.js';
import { removeIfStillStale } from '../../src/effects/workerLock.js';
import { currentIdentity, isZombie } from '../../src/effects/processIdentity.js';
import { CLI, warden } from '../helpers/cli.js';
import { processGone, useSleepers } from '../helpers/processes.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();
const HOST = currentIdentity().hostname;
// A tmux server of this file's own, and a socket with no server behind it.
const SOCKET = `warden-test-doctor-${process.pid}`;
const NO_TMUX = ['--tmux-socket', `warden-test-none-${process.pid}`];

function lockIn(root: string, worker: string, content: unknown): string {
  const dir = join(root, worker);
  mkdirSync(join(dir, '.runtime'), { recursive: true });
  writeFileSync(join(dir, '.runtime', 'agent.lock'), typeof content === 'string' ? content : JSON.stringify(content));
  return dir;
}
const lock = (fields: Record<string, unknown>) => ({ pid: 999_999_999, acquired_at: '2026-01-05T10:23:45.123456789-08:00', hostname: HOST, ...fields });

const spawnSleeper = useSleepers();
const sleeper = (env?: Record<string, string>) => spawnSleeper(env).pid;
afterAll(async () => {
  await execa('tmux', ['-L', SOCKET, 'kill-server'], { reject: false });
});

interface Report {
  root: string;
  locks: Array<{ worker: string; pid: unknown; session_id: string | null; hostname: string | null; acquired_at: string | null; state: string }>;
  findings: Array<{ kind: string; severity: string; message: string; fixed?: boolean; worker?: string; path?: string }>;
  cleaned: string[];
  probes: Array<{ probe: string; ok: boolean; detail: string }>;
}
async function doctorJson(args: string[], env?: Record<string, string>): Promise<{ code: number | undefined; report: Report; stderr: string }> {
  const result = await warden(['doctor', ...args, '--json'], env ? { env } : {});
  if (result.stdout === '') throw new Error(`doctor printed nothing; stderr: ${result.stderr}`);
  return { code: result.code, report: JSON.parse(result.stdout) as Report, stderr: result.stderr };
}
const stateOf = (report: Report, worker: string) => report.locks.find((l) => l.worker === worker)?.state;

describe('findAllLocks', () => {
  it('finds three workers, maps each worker dir to its lock, and skips heavy directories', () => {
    const root = tempDir();
    const workers = ['worker1', 'worker2', 'rig/polecats/worker3'].map((w, i) => lockIn(root, w, lock({ pid: 100 + i, session_id: `session-${i}` })));
    // A lock inside node_modules or .git is not a worker: never entered.
    lockIn(root, 'worker1/node_modules/pkg', lock({}));
    lockIn(root, 'worker2/.git/modules/x', lock({}));
    const scan = findAllLocks(root);
    expect([...scan.locks.keys()].sort()).toEqual([...workers].sort());
    expect(scan.locks.get(workers[0]!)?.state).toMatchObject({ kind: 'lock', info: { pid: 100, session_id: 'session-0' } });
    expect(scan.skipped).toBe(2);
    expect(findAllLocks(root, { skipDirs: [] }).locks.size).toBe(5);
  });
});

describe('detectCollisions and cleanStaleLocks (the API)', () => {
  const probes = [wardenJobProbe(), tmuxProbe({ socket: `warden-test-none-${process.pid}` })];

  it('detects stale and orphaned locks with a message each; cleans stale and keeps live', async () => {
    const root = tempDir();
    const stale = lockIn(root, 'stale-worker', lock({ session_id: 'dead-session' }));
    const orphan = lockIn(root, 'orphan-worker', lock({ pid: sleeper(), session_id: 'orphan-session' }));
    const live = lockIn(root, 'live-worker', lock({ pid: sleeper() }));
    const findings = await detectCollisions(root, { probes });
    expect(findings.map((f) => [f.kind, f.worker, f.message])).toEqual(
      expect.arrayContaining([
        ['stale', stale, expect.stringMatching(/^stale lock in .*stale-worker: PID 999999999 dead; session dead-session gone$/)],
        ['orphaned', orphan, expect.stringMatching(/^orphaned lock in .*orphan-worker: PID \d+ alive, but session orphan-session gone$/)],
      ]),
    );
    expect(findings).toHaveLength(2);
    expect(existsSync(join(stale, '.runtime', 'agent.lock'))).toBe(true);
    const { cleaned } = await cleanStaleLocks(root, { probes });
    expect(cleaned).toEqual([stale]);
    expect([orphan, live].map((w) => existsSync(join(w, '.runtime', 'agent.lock')))).toEqual([true, true]);
  });

  it('a cleaner never removes a lock that changed after it was judged stale', async () => {
    const root = tempDir();
    const worker = lockIn(root, 'w', lock({}));
    const path = join(worker, '.runtime', 'agent.lock');
    const judged = findAllLocks(root).locks.get(worker)!.state;
    if (judged.kind !== 'lock') throw new Error(judged.kind);
    // Meanwhile a new agent takes the worker (gastown's two-cleaner race deleted this one).
    const fresh = JSON.stringify(lock({ pid: sleeper() }));
    writeFileSync(path, fresh);
    expect(await removeIfStillStale(path, judged.bytes, { probes })).toEqual({ kind: 'changed' });
    expect(readFileSync(path, 'utf8')).toBe(fresh);
    // Same bytes but now alive (its session appeared): kept too.
    const job = randomUUID();
    sleeper({ WARDEN_JOB_ID: job });
    const bytes = JSON.stringify(lock({ session_id: `warden-job:${job}` }));
    writeFileSync(path, bytes);
    expect(await removeIfStillStale(path, bytes, { probes })).toMatchObject({ kind: 'kept', judgement: { state: 'live' } });
    expect(existsSync(path)).toBe(true);
  });

  it('concurrent cleaners and acquirers: no acquirer ever loses its fresh lock', async () => {
    const root = tempDir();
    const workers = Array.from({ length: 12 }, (_, i) => lockIn(root, `w${i}`, lock({ session_id: `dead-${i}` })));
    const owners = workers.map(() => sleeper());
    const runs = await Promise.all([
      ...[0, 1, 2, 3].map(() => warden(['doctor', root, '--fix', '--json', ...NO_TMUX])),
      ...workers.map((w, i) => warden(['lock', 'acquire', w, '--pid', String(owners[i]), ...NO_TMUX])),
    ]);
    const acquires = runs.slice(4);
    // Every acquirer won (the old locks were all stale), and every one of their locks is still there.
    expect(acquires.map((r) => r.code)).toEqual(Array(12).fill(0));
    for (const [i, w] of workers.entries()) {
      expect(JSON.parse(readFileSync(join(w, '.runtime', 'agent.lock'), 'utf8')).pid).toBe(owners[i]);
    }
    // Each stale lock was removed at most once in all, by a cleaner or taken over by its acquirer.
    const cleaned = runs.slice(0, 4).flatMap((r) => (JSON.parse(r.stdout) as Report).cleaned);
    expect(new Set(cleaned).size).toBe(cleaned.length);
  }, 60_000);
});

describe('warden doctor', () => {
  it('stale → reported, and removed by --fix; live kept; orphaned reported; foreign noted; exit 1 then 0', async () => {
    const root = tempDir();
    const live = sleeper();
    const orphanPid = sleeper();
    const stale = lockIn(root, 'stale-worker', lock({ session_id: 'dead-session' }));
    const alive = lockIn(root, 'live-worker', lock({ pid: live }));
    const orphan = lockIn(root, 'orphan-worker', lock({ pid: orphanPid, session_id: 'orphan-session' }));
    const foreign = lockIn(root, 'foreign-worker', lock({ hostname: 'elsewhere' }));

    const first = await doctorJson([root, ...NO_TMUX]);
    expect(first.code).toBe(1);
    expect(first.report).toMatchObject({ root, cleaned: [] });
    expect(first.report.locks.find((l) => l.worker === stale)).toEqual({
      worker: stale, pid: 999_999_999, session_id: 'dead-session', hostname: HOST, acquired_at: '2026-01-05T10:23:45.123456789-08:00', state: 'stale', reason: expect.any(String),
    });
    expect([stale, alive, orphan, foreign].map((w) => stateOf(first.report, w))).toEqual(['stale', 'live', 'orphaned', 'foreign']);
    expect(first.report.findings.map((f) => [f.kind, f.severity, f.worker]).sort()).toEqual([
      ['foreign', 'note', foreign],
      ['orphaned', 'problem', orphan],
      ['stale', 'problem', stale],
    ]);
    expect(existsSync(join(stale, '.runtime', 'agent.lock'))).toBe(true);

    const fixed = await doctorJson([root, '--fix', ...NO_TMUX]);
    expect(fixed.report.cleaned).toEqual([stale]);
    expect(fixed.report.findings.find((f) => f.kind === 'stale')).toMatchObject({ fixed: true });
    expect(existsSync(join(stale, '.runtime', 'agent.lock'))).toBe(false);
    expect(existsSync(join(stale, '.runtime', 'agent.lock.flock'))).toBe(true);
    for (const kept of [alive, orphan, foreign]) expect(existsSync(join(kept, '.runtime', 'agent.lock'))).toBe(true);
    // The orphan is still a problem: exit 1. Without it, only live and foreign remain: exit 0.
    expect(fixed.code).toBe(1);
    await warden(['lock', 'release', orphan, '--force']);
    expect((await doctorJson([root, ...NO_TMUX])).code).toBe(0);
  });

  it('a dead PID whose tmux session lives is kept — also a session known only by its $N id — and cleaned once it is gone', async () => {
    const root = tempDir();
    const name = `w-${randomUUID().slice(0, 8)}`;
    await execa('tmux', ['-L', SOCKET, 'new-session', '-d', '-s', name, 'sleep 1000']);
    await execa('tmux', ['-L', SOCKET, 'new-session', '-d', '-s', `${name}-b`, 'sleep 1000']);
    const id = (await execa('tmux', ['-L', SOCKET, 'display-message', '-p', '-t', `${name}-b`, '#{session_id}'])).stdout.trim();
    expect(id).toMatch(/^\$\d+$/);
    const byName = lockIn(root, 'by-name', lock({ session_id: name }));
    const byId = lockIn(root, 'by-id', lock({ session_id: id }));

    const kept = await doctorJson([root, '--fix', '--tmux-socket', SOCKET]);
    expect([stateOf(kept.report, byName), stateOf(kept.report, byId)]).toEqual(['live', 'live']);
    expect(kept.report.cleaned).toEqual([]);
    expect(kept.code).toBe(0);
    // The config's tmux.socket names the same server.
    mkdirSync(join(root, 'project', '.warden'), { recursive: true });
    writeFileSync(join(root, 'project', '.warden', 'config.json'), JSON.stringify({ tmux: { socket: SOCKET } }));
    const viaConfig = await doctorJson([root, '--dir', join(root, 'project')]);
    expect([stateOf(viaConfig.report, byName), stateOf(viaConfig.report, byId)]).toEqual(['live', 'live']);
    expect(viaConfig.report.probes.map((p) => p.probe)).toContain(`tmux -L ${SOCKET}`);
    // Another server does not know these sessions: asked there, both are stale.
    const elsewhere = await doctorJson([root, ...NO_TMUX]);
    expect([stateOf(elsewhere.report, byName), stateOf(elsewhere.report, byId)]).toEqual(['stale', 'stale']);

    await execa('tmux', ['-L', SOCKET, 'kill-session', '-t', `${name}-b`]);
    const after = await doctorJson([root, '--fix', '--tmux-socket', SOCKET]);
    expect(after.report.cleaned).toEqual([byId]);
    expect(existsSync(join(byName, '.runtime', 'agent.lock'))).toBe(true);
    await execa('tmux', ['-L', SOCKET, 'kill-server'], { reject: false });
  });

  it('a Warden job session that lives keeps its lock', async () => {
    const root = tempDir();
    const job = randomUUID();
    sleeper({ WARDEN_JOB_ID: job });
    const worker = lockIn(root, 'job-worker', lock({ session_id: `warden-job:${job}` }));
    const gone = lockIn(root, 'gone-worker', lock({ session_id: `warden-job:${randomUUID()}` }));
    const result = await doctorJson([root, '--fix', ...NO_TMUX]);
    expect([stateOf(result.report, worker), stateOf(result.report, gone)]).toEqual(['live', 'stale']);
    expect(result.report.cleaned).toEqual([gone]);
  });

  it('a failing or hanging session probe makes nothing stale, is reported, and leaves nothing behind', async () => {
    const root = tempDir();
    const bin = join(root, 'bin');
    mkdirSync(bin);
    const worker = lockIn(root, 'w', lock({ session_id: 'some-session' }));
    // A tmux that fails for a reason other than "no server running".
    writeFileSync(join(bin, 'tmux'), '#!/bin/sh\necho "error connecting to /tmp/tmux-0/default (Permission denied)" >&2\nexit 1\n');
    chmodSync(join(bin, 'tmux'), 0o755);
    const env = { PATH: `${bin}:${process.env.PATH}` };
    const failed = await doctorJson([root, '--fix'], env);
    expect(failed.code).toBe(1);
    expect(stateOf(failed.report, worker)).toBe('unknown');
    expect(failed.report.cleaned).toEqual([]);
    expect(failed.report.findings.map((f) => f.kind).sort()).toEqual(['probe-failed', 'unknown']);
    expect(failed.report.findings.find((f) => f.kind === 'probe-failed')?.message).toMatch(/Permission denied/);
    expect(existsSync(join(worker, '.runtime', 'agent.lock'))).toBe(true);

    // A tmux that hangs (and would wait for a person on stdin): killed at the timeout.
    const pidFile = join(root, 'tmux.pid');
    writeFileSync(join(bin, 'tmux'), `#!/bin/sh\nread answer\nsleep 1000 &\necho "$$ $!" > ${pidFile}\nwait\n`);
    const hung = await doctorJson([root, '--fix', '--probe-timeout-ms', '300'], env);
    expect(hung.report.probes.find((p) => p.probe === 'tmux')).toMatchObject({ ok: false, detail: 'timed out after 300 ms' });
    expect(hung.report.cleaned).toEqual([]);
    expect(existsSync(join(worker, '.runtime', 'agent.lock'))).toBe(true);
    // The probe and what it started: a kill of the probe alone would leave its sleep behind.
    const started = readFileSync(pidFile, 'utf8').trim().split(' ').map(Number);
    expect(started).toHaveLength(2);
    // (A zombie that nothing reaps has exited all the same.)
    expect(started.filter((pid) => !processGone(pid) && !isZombie(pid))).toEqual([]);
  });

  it('on a symlink loop, an unreadable directory, a lock that is a directory, a 10 MB lock and PIDs 0, -1, 2^40: no hang, no crash, each reported', async () => {
    const root = tempDir();
    mkdirSync(join(root, 'loop'));
    symlinkSync(join(root, 'loop'), join(root, 'loop', 'again'));
    mkdirSync(join(root, 'locked-away', 'inner'), { recursive: true });
    chmodSync(join(root, 'locked-away'), 0o000);
    mkdirSync(join(root, 'dir-lock', '.runtime', 'agent.lock'), { recursive: true });
    const huge = lockIn(root, 'huge', 'x'.repeat(10 * 1024 * 1024));
    const pids = [0, -1, 2 ** 40].map((pid, i) => lockIn(root, `pid-${i}`, lock({ pid })));
    const lockLink = join(root, 'link-lock');
    mkdirSync(join(lockLink, '.runtime'), { recursive: true });
    symlinkSync('/etc/passwd', join(lockLink, '.runtime', 'agent.lock'));

    // As root, permissions do not stop reading: run without the capabilities that bypass them.
    const asRoot = process.getuid?.() === 0;
    const command = asRoot ? ['setpriv', '--bounding-set', '-dac_override,-dac_read_search', '--inh-caps', '-all', 'node'] : ['node'];
    const result = await execa(command[0]!, [...command.slice(1), CLI, 'doctor', root, '--json', ...NO_TMUX], { reject: false, timeout: 60_000 });
    chmodSync(join(root, 'locked-away'), 0o755);
    expect(result.exitCode).toBe(1);
    const report = JSON.parse(String(result.stdout)) as Report;
    const kinds = report.findings.map((f) => [f.kind, f.path ?? f.worker ?? '']);
    expect(kinds).toEqual(
      expect.arrayContaining([
        ['unreadable-dir', join(root, 'locked-away')],
        ['corrupt', join(root, 'dir-lock', '.runtime', 'agent.lock')],
        ['corrupt', join(huge, '.runtime', 'agent.lock')],
        ['lock-path-symlink', join(lockLink, '.runtime', 'agent.lock')],
        ['symlinks', ''],
      ]),
    );
    expect(report.findings.find((f) => f.kind === 'symlinks')?.message).toContain(join(root, 'loop', 'again'));
    expect(report.findings.find((f) => f.path === join(huge, '.runtime', 'agent.lock'))?.message).toMatch(/10485760 bytes, too large for a lock/);
    expect(pids.map((w) => stateOf(report, w))).toEqual(['stale', 'stale', 'stale']);
    expect(pids.map((w) => report.locks.find((l) => l.worker === w)?.pid)).toEqual([0, -1, 2 ** 40]);
  });

  it('bad input: exit 2 with one line', async () => {
    const root = tempDir();
    expect(await warden(['doctor', join(root, 'missing')])).toMatchObject({ code: 2, stderr: `warden: doctor: ${join(root, 'missing')}: no such directory` });
    expect(await warden(['doctor', root, '--skip', 'a/b'])).toMatchObject({ code: 2, stderr: 'warden: doctor: --skip: expected a directory name, got "a/b"' });
    expect(await warden(['doctor', root, '--probe-timeout-ms', '0'])).toMatchObject({ code: 2, stderr: 'warden: --probe-timeout-ms: expected a positive integer, got "0"' });
    mkdirSync(join(root, '.warden'));
    writeFileSync(join(root, '.warden', 'config.json'), '{"tmux": {"socket": 7}}');
    expect(await warden(['doctor', root, '--dir', root])).toMatchObject({ code: 2, stderr: expect.stringMatching(/config\.json: tmux\.socket: /) });
    // An empty tree is clean.
    expect(await warden(['doctor', join(root, '.warden')])).toMatchObject({ code: 0 });
  });
});
