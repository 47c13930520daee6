import { appendFileSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readLog } from '../../src/store/logReader.js';
import type { LogRecord } from '../../src/store/record.js';
import { warden } from '../helpers/cli.js';
import { execa } from 'execa';
import { CLI } from '../helpers/cli.js';
import { jobProcesses, outputLine, startRun, tagOf, watchJobProcesses, writeJob, writeProject, type TestJob } from '../helpers/queueProject.js';
import { useSleepers } from '../helpers/processes.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();
const sleeper = useSleepers();
// This file's job processes: those tagged by the projects it wrote (see writeProject).
const leftovers = () => [...jobProcesses()];

afterEach(() => {
  expect(leftovers(), 'job processes left behind').toEqual([]);
});

/** `warden lease run` holding the lease with no scheduler (and no control socket) behind it. */
function startLeaseHolder(dir: string) {
  const child = execa('node', [CLI, 'lease', 'run', '--dir', dir, '--', 'sh', '-c', 'echo holding; exec sleep 30'], { reject: false, all: true }) as ReturnType<typeof startRun>;
  let text = '';
  child.all!.on('data', (chunk: Buffer) => (text += chunk.toString()));
  child.output = () => text;
  return child;
}

/** Resolves once `n` jobs of the project in `dir` have live processes (their spawn follows the log's record). */
async function agentsAlive(dir: string, n: number): Promise<void> {
  while (jobProcesses([tagOf(dir)]).size < n) await new Promise((r) => setTimeout(r, 20));
}

const recordsOf = (dir: string): LogRecord[] => readLog(join(dir, '.warden', 'events.jsonl')).records;

/** Resolves with the first record of the log that `predicate` accepts, polling (a missing or half-written log is read again). */
async function logRecord(dir: string, predicate: (r: LogRecord) => boolean, withinMs = 30_000): Promise<LogRecord> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    let found: LogRecord | undefined;
    try {
      found = recordsOf(dir).find(predicate);
    } catch {
      // not there yet
    }
    if (found) return found;
    if (Date.now() > deadline) throw new Error(`no such record in ${withinMs} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The child's exit, or null if it is still running `withinMs` later. */
async function exitWithin<T>(child: Promise<T>, withinMs: number): Promise<T | null> {
  let timer: NodeJS.Timeout | undefined;
  const result = await Promise.race([child, new Promise<null>((r) => (timer = setTimeout(() => r(null), withinMs)))]);
  clearTimeout(timer);
  return result;
}

const RESPAWNER = join(import.meta.dirname, '../fixtures/agent/respawner.mjs');

/**
 * Leaves a lingering job in `interrupting` with no reap logged, as a run killed during its reap
 * does: run 1 is SIGKILLed once the job is spawned; run 2 recovers it — a process of the job that
 * keeps coming back holds its reap open — and is SIGKILLed once its job.interrupt is logged.
 */
async function killedDuringReap(dir: string): Promise<{ actor: string }> {
  writeProject(dir, [{ slug: 'qe-reap', agent: ['--lines', '1', '--result', 'success', '--linger', 'forever'] }], { requeueInterrupted: 0, timeouts: { maxDurationMs: 60_000, postResultGraceMs: 500, killAfterMs: 300, idleOutputMs: 20_000 } });
  const first = startRun(dir);
  const spawned = await logRecord(dir, (r) => r.type === 'job.spawned');
  first.kill('SIGKILL');
  await first;
  const started = recordsOf(dir).find((r) => r.type === 'actor.started' && r.actor === spawned.actor)!;
  const jobId = (started.data as { input: { jobId: string } }).input.jobId;
  const respawner = execa('node', [RESPAWNER, '4'], { env: { CARRY_JOB_ID: jobId, CARRY_TAG: tagOf(dir) }, reject: false, all: true });
  try {
    await new Promise<void>((resolve) => respawner.all!.on('data', (d: Buffer) => d.toString().includes('ready') && resolve()));
    const second = startRun(dir);
    const interrupt = await logRecord(dir, (r) => r.type === 'job.interrupt' && r.actor === spawned.actor);
    second.kill('SIGKILL');
    await second;
    // The scenario holds: the interrupt is logged, its reap is not.
    const after = recordsOf(dir).filter((r) => r.seq > interrupt.seq && r.actor === spawned.actor).map((r) => r.type);
    expect(after, 'run 2 logged its reap before it was killed').not.toContain('job.reaped');
    expect(recordsOf(dir).findLast((r) => r.actor === spawned.actor)!.state).toBe('interrupting');
  } finally {
    respawner.kill('SIGTERM');
    await respawner;
  }
  return { actor: spawned.actor };
}
async function statusOf(dir: string) {
  const result = await warden(['status', '--dir', dir, '--json']);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as { lease: { held: boolean }; paused: { reason: string } | null; jobs: Array<{ slug: string; status: string; group: number; attempts: number; exitCode: number | null; runs: number; interruptions: number; blockedBy: { pid: number } | null }>; problems: Array<{ file: string; problem: string }> };
}
async function verified(dir: string) {
  const replay = await warden(['replay', '--dir', dir, '--verify']);
  expect(replay.code, replay.stderr).toBe(0);
  expect(replay.stdout).toContain('every step verified');
}

describe('warden run', () => {
  it('runs a 12-job queue in 3 groups with cap 2 in order; a failing job fails alone', async () => {
    const dir = tempDir();
    const jobs: TestJob[] = [];
    for (const group of [30, 10, 20]) {
      for (let i = 0; i < 4; i++) jobs.push({ slug: `qe-g${group}-${i}`, group, agent: ['--lines', '2', '--result', 'success', '--linger', '150'] });
    }
    jobs[5] = { slug: 'qe-g10-1', group: 10, agent: ['--result', 'error', '--exit', '3'] };
    writeProject(dir, jobs);
    const run = await startRun(dir);
    expect(run.exitCode, String(run.stderr)).toBe(1); // not every job completed
    const status = await statusOf(dir);
    expect(status.jobs.map((j) => `${j.slug}:${j.status}`)).toEqual([
      'qe-g10-0:completed', 'qe-g10-1:failed', 'qe-g10-2:completed', 'qe-g10-3:completed',
      'qe-g20-0:completed', 'qe-g20-1:completed', 'qe-g20-2:completed', 'qe-g20-3:completed',
      'qe-g30-0:completed', 'qe-g30-1:completed', 'qe-g30-2:completed', 'qe-g30-3:completed',
    ]);
    expect(status.jobs.find((j) => j.slug === 'qe-g10-1')).toMatchObject({ exitCode: 3, attempts: 1 });

    // The order, from the log: never more than 2 at once; a group starts only once every lower one has finished.
    const groupOf = (slug: string) => Number(/qe-g(\d+)-/.exec(slug)![1]);
    const running = new Set<string>();
    const finished = new Set<string>();
    let most = 0;
    for (const r of recordsOf(dir).filter((r) => r.actor === 'queue')) {
      const slug = (r.data as { slug?: string }).slug;
      // A verdict frees its slot before the same step starts the next job.
      if (r.type === 'queue.jobFinished' && slug) {
        running.delete(slug);
        finished.add(slug);
      }
      for (const effect of r.effects ?? []) {
        if (effect.type !== 'startJob') continue;
        const started = (effect.params as { slug: string }).slug;
        const lowerUnfinished = jobs.filter((j) => j.group! < groupOf(started) && !finished.has(j.slug));
        expect(lowerUnfinished.map((j) => j.slug), `${started} started early`).toEqual([]);
        running.add(started);
        most = Math.max(most, running.size);
      }
    }
    expect(most).toBe(2);
    expect(finished.size).toBe(12);
    await verified(dir);
    expect(run.all).toMatch(/11 of 12 jobs completed/);
  }, 60_000);

  it('two schedulers in one dir: one runs, the other waits and takes over when the first is SIGKILLed; no job ever has two live processes', async () => {
    const dir = tempDir();
    const jobs = Array.from({ length: 6 }, (_, i) => ({ slug: `qe-two-${i}`, agent: ['--work', '1500', '--result', 'success'] }));
    writeProject(dir, jobs);
    const watch = watchJobProcesses(dir);
    const first = startRun(dir);
    await outputLine(first, /qe-two-\d running/);
    await agentsAlive(dir, 2);
    const second = startRun(dir, ['--once', '--probe-ms', '100']);
    await outputLine(second, /waiting for the lease/);
    first.kill('SIGKILL');
    await first;
    const result = await second;
    const { maxPerSlug, worst } = watch.stop();
    expect(result.exitCode, String(result.all)).toBe(0);
    expect(maxPerSlug, `one job had two live processes: ${worst.join(', ')}`).toBe(1);
    const status = await statusOf(dir);
    expect(status.jobs.every((j) => j.status === 'completed')).toBe(true);
    // What the first left running was interrupted (killed) and run again by the second.
    const interrupted = status.jobs.filter((j) => j.interruptions > 0);
    expect(interrupted.length).toBeGreaterThan(0);
    for (const job of interrupted) expect(job.runs).toBe(2);
    const records = recordsOf(dir);
    // A job the first run picked but had not yet spawned is interrupted too, and requeued
    // without counting (no agent ran): only interrupts of spawned runs count as interruptions.
    const spawned = new Set(records.filter((r) => r.type === 'job.spawned').map((r) => r.actor));
    const interrupts = records.filter((r) => r.type === 'job.interrupt');
    expect(interrupts.filter((r) => spawned.has(r.actor)).length).toBe(interrupted.length);
    expect(new Set(interrupts.map((r) => r.actor)).size).toBe(interrupts.length);
    expect(records.some((r) => r.type === 'lease.superseded')).toBe(true);
    await verified(dir);
  }, 60_000);

  it('SIGKILLed mid-run and restarted: every job reaches exactly one terminal state, nothing is left behind, the log verifies', async () => {
    const dir = tempDir();
    const jobs = Array.from({ length: 5 }, (_, i) => ({ slug: `qe-crash-${i}`, agent: ['--lines', '1', '--grandchild', '--setsid', '--work', '1500', '--result', 'success'] }));
    writeProject(dir, jobs, { concurrencyCap: 3 });
    const watch = watchJobProcesses(dir);
    const first = startRun(dir);
    await outputLine(first, /qe-crash-\d running/);
    await agentsAlive(dir, 3);
    first.kill('SIGKILL');
    await first;
    // Its agents (in groups of their own) outlive it: the next run must kill them first.
    expect(jobProcesses([tagOf(dir)]).size).toBeGreaterThan(0);
    const second = await startRun(dir);
    const { worst } = watch.stop();
    expect(second.exitCode, String(second.all)).toBe(0);
    // Per slug, no two agent *runs* at once (a run's own grandchildren share its id).
    const runsAtOnce = new Set(worst.map((w) => w.split(':')[0]));
    expect(runsAtOnce.size, `two runs of one job alive at once: ${worst.join(', ')}`).toBe(1);
    const status = await statusOf(dir);
    expect(status.jobs.map((j) => j.status)).toEqual(Array(5).fill('completed'));
    // Exactly one completed run per job in the log.
    const records = recordsOf(dir);
    const completedRuns = records.filter((r) => r.type === 'queue.jobFinished' && (r.data as { outcome: string }).outcome === 'completed').map((r) => (r.data as { slug: string }).slug);
    expect(completedRuns.sort()).toEqual(jobs.map((j) => j.slug).sort());
    await verified(dir);
  }, 60_000);

  it('runs the good jobs of a jobs dir with broken files and reports each bad one', async () => {
    const dir = tempDir();
    writeProject(dir, [{ slug: 'qe-good-1' }, { slug: 'qe-good-2' }]);
    const jobs = join(dir, '.warden', 'jobs');
    writeFileSync(join(jobs, 'qe-yaml.md'), '---\ntitle: [unclosed\n---\nx\n');
    writeFileSync(join(jobs, 'qe-unknown.md'), '---\ntitel: typo\n---\nx\n');
    writeFileSync(join(jobs, 'qe-types.md'), '---\nparallelGroup: soon\n---\nx\n');
    writeFileSync(join(jobs, 'qe..dots.md'), '---\ntitle: dots\n---\nx\n');
    writeFileSync(join(jobs, 'qe-huge.md'), `---\ntitle: huge\n---\n${'x'.repeat(5 * 1024 * 1024)}\n`);
    mkdirSync(join(dir, 'outside'));
    writeFileSync(join(dir, 'outside', 'evil.md'), '---\ntitle: evil\n---\nrm -rf\n');
    symlinkSync(join(dir, 'outside', 'evil.md'), join(jobs, 'qe-link.md'));
    const run = await startRun(dir);
    expect(run.exitCode).toBe(1); // the good ones completed; the bad files mean not everything did
    const status = await statusOf(dir);
    expect(status.jobs.map((j) => `${j.slug}:${j.status}`)).toEqual(['qe-good-1:completed', 'qe-good-2:completed']);
    const problems = Object.fromEntries(status.problems.map((p) => [p.file.slice(jobs.length + 1), p.problem]));
    expect(Object.keys(problems).sort()).toEqual(['qe-huge.md', 'qe-link.md', 'qe-types.md', 'qe-unknown.md', 'qe-yaml.md', 'qe..dots.md'].sort());
    expect(problems['qe-yaml.md']).toMatch(/not YAML/);
    expect(problems['qe-unknown.md']).toMatch(/titel/);
    expect(problems['qe-types.md']).toMatch(/parallelGroup/);
    expect(problems['qe..dots.md']).toMatch(/\.\./);
    expect(problems['qe-huge.md']).toMatch(/1 MiB/);
    expect(problems['qe-link.md']).toMatch(/symlink/);
    expect(run.all).toMatch(/bad job file .*qe-yaml\.md: frontmatter is not YAML/);
    expect(readFileSync(join(dir, 'outside', 'evil.md'), 'utf8')).toContain('rm -rf');
  }, 60_000);

  it('a job whose worker is locked by another live agent waits as blocked, naming it, and starts once it is free', async () => {
    const dir = tempDir();
    writeProject(dir, [{ slug: 'qe-locked', cwd: 'shared' }, { slug: 'qe-free' }]);
    const agent = sleeper();
    const locked = await warden(['lock', 'acquire', join(dir, 'shared'), '--pid', String(agent.pid)]);
    expect(locked.code, locked.stderr).toBe(0);
    const run = startRun(dir);
    expect(await outputLine(run, /qe-locked blocked/)).toContain(`PID ${agent.pid}`);
    const blocked = await statusOf(dir);
    expect(blocked.jobs.find((j) => j.slug === 'qe-locked')).toMatchObject({ status: 'blocked', blockedBy: { pid: agent.pid } });
    agent.child.kill('SIGKILL');
    await agent.child;
    const result = await run;
    expect(result.exitCode, String(result.all)).toBe(0);
    expect((await statusOf(dir)).jobs.map((j) => j.status)).toEqual(['completed', 'completed']);
    await verified(dir);
  }, 60_000);

  it('pause, resume and kick reach a running scheduler; without one they are logged under the lease', async () => {
    const dir = tempDir();
    writeProject(dir, [{ slug: 'qe-ctl-1', agent: ['--result', 'success'] }]);
    // No scheduler: the event is logged, and the next run starts paused.
    const paused = await warden(['pause', '--dir', dir, '--reason', 'maintenance']);
    expect(paused.code, paused.stderr).toBe(0);
    expect(paused.stdout).toMatch(/paused \(logged; no scheduler running\)/);
    expect((await statusOf(dir)).paused).toMatchObject({ reason: 'manual', message: 'maintenance' });

    const run = startRun(dir, []);
    await outputLine(run, /qe-ctl-1 pending/);
    const kick = await warden(['kick', '--dir', dir]);
    expect(kick.stdout).toMatch(/kicked: 0 job\(s\) starting \(scheduler\)/); // a manual pause holds against kicks
    const resumed = await warden(['resume', '--dir', dir, '--json']);
    expect(JSON.parse(resumed.stdout)).toMatchObject({ ok: true, message: 'resumed', via: 'scheduler' });
    await outputLine(run, /qe-ctl-1 completed/);
    // A new file is picked up while the scheduler runs.
    writeJob(dir, { slug: 'qe-ctl-2' });
    await outputLine(run, /qe-ctl-2 completed/);
    run.kill('SIGTERM');
    const result = await run;
    expect(result.signal).toBe('SIGTERM');
    const status = await statusOf(dir);
    expect(status.lease.held).toBe(false);
    expect(status.jobs.map((j) => j.status)).toEqual(['completed', 'completed']);
    const types = recordsOf(dir).filter((r) => r.actor === 'queue').map((r) => r.type);
    expect(types).toEqual(expect.arrayContaining(['queue.pause', 'queue.kick', 'queue.resume', 'queue.detached']));
    await verified(dir);
  }, 60_000);

  it('control exits 75 when a process holds the lease but no scheduler answers', async () => {
    const dir = tempDir();
    writeProject(dir, []);
    const holder = startLeaseHolder(dir);
    await outputLine(holder, /holding/);
    const pause = await warden(['pause', '--dir', dir]);
    expect(pause.code).toBe(75);
    expect(pause.stderr).toMatch(/control socket did not answer/);
    holder.kill('SIGTERM');
    await holder;
  }, 30_000);

  it('a stopped scheduler interrupts its running jobs, which the next run completes without using up a requeue', async () => {
    const dir = tempDir();
    // The agent prints its result only once `go` exists: the first run cannot finish it by itself
    // before the SIGINT lands, however slow the machine.
    const go = join(dir, 'go');
    writeProject(dir, [{ slug: 'qe-stop', agent: ['--until', go, '--until-cap', '50000', '--result', 'success', '--linger', 'forever', '--ignore-term'] }], { requeueInterrupted: 0, timeouts: { maxDurationMs: 60_000, postResultGraceMs: 300, killAfterMs: 300, idleOutputMs: 55_000 } });
    const run = startRun(dir, []);
    await outputLine(run, /qe-stop running/);
    run.kill('SIGINT');
    expect((await run).signal).toBe('SIGINT');
    expect((await statusOf(dir)).jobs[0]).toMatchObject({ status: 'pending', interruptions: 0 });
    writeFileSync(go, 'go\n');
    const again = await startRun(dir);
    expect(again.exitCode, String(again.all)).toBe(0);
    expect((await statusOf(dir)).jobs[0]).toMatchObject({ status: 'completed', runs: 2 });
  }, 60_000);

  it('a run killed while it reaps a dead run\'s job: the next run --once reaps it again and ends with the job in a terminal state', async () => {
    const dir = tempDir();
    const { actor } = await killedDuringReap(dir);
    const third = startRun(dir);
    const result = await exitWithin(third, 30_000);
    if (result === null) third.kill('SIGKILL');
    expect(result, `run --once did not end:\n${third.output()}`).not.toBeNull();
    const status = await statusOf(dir);
    expect(['completed', 'interrupted']).toContain(status.jobs[0]!.status);
    // Reaped by the third run: once only.
    expect(recordsOf(dir).filter((r) => r.actor === actor && r.type === 'job.reaped')).toHaveLength(1);
    await verified(dir);
  }, 60_000);

  it('SIGTERM of a run recovering a job left in interrupting ends it in bounded time', async () => {
    const dir = tempDir();
    const { actor } = await killedDuringReap(dir);
    const lastSeq = recordsOf(dir).at(-1)!.seq;
    const third = startRun(dir, []);
    // Its recovery has begun (the old code then had nothing to wait on but a job that never ends).
    await logRecord(dir, (r) => r.seq > lastSeq && r.actor === actor && r.type === 'job.interrupt');
    third.kill('SIGTERM');
    const result = await exitWithin(third, 30_000);
    if (result === null) third.kill('SIGKILL');
    expect(result, `warden run ignored SIGTERM:\n${third.output()}`).not.toBeNull();
    expect(result!.signal).toBe('SIGTERM');
    expect((await statusOf(dir)).lease.held).toBe(false);
    await verified(dir);
  }, 60_000);

  it('a job that cannot start fails with the reason, and --once ends: a cwd that is a file, a .runtime or agent.lock that is a symlink', async () => {
    const dir = tempDir();
    writeProject(dir, [{ slug: 'qe-file-cwd', cwd: 'a-file' }, { slug: 'qe-runtime-link' }, { slug: 'qe-lock-link' }, { slug: 'qe-fine' }]);
    rmSync(join(dir, 'a-file'), { recursive: true });
    writeFileSync(join(dir, 'a-file'), 'not a dir\n');
    mkdirSync(join(dir, 'elsewhere'));
    symlinkSync(join(dir, 'elsewhere'), join(dir, 'w', 'qe-runtime-link', '.runtime'));
    mkdirSync(join(dir, 'w', 'qe-lock-link', '.runtime'));
    writeFileSync(join(dir, 'elsewhere', 'target'), '{}\n');
    symlinkSync(join(dir, 'elsewhere', 'target'), join(dir, 'w', 'qe-lock-link', '.runtime', 'agent.lock'));
    const run = startRun(dir);
    const result = await exitWithin(run, 30_000);
    if (result === null) run.kill('SIGKILL');
    expect(result, `run --once did not end:\n${run.output()}`).not.toBeNull();
    expect(result!.exitCode).toBe(1);
    const status = await statusOf(dir);
    const bySlug = Object.fromEntries(status.jobs.map((j) => [j.slug, j]));
    expect(Object.fromEntries(status.jobs.map((j) => [j.slug, j.status]))).toEqual({ 'qe-file-cwd': 'failed', 'qe-fine': 'completed', 'qe-lock-link': 'failed', 'qe-runtime-link': 'failed' });
    const reasons = await warden(['status', '--dir', dir]);
    expect(reasons.stdout).toMatch(/qe-file-cwd.*cwd is not a directory/);
    expect(reasons.stdout).toMatch(/qe-runtime-link.*\.runtime.*symbolic link/);
    expect(reasons.stdout).toMatch(/qe-lock-link.*agent\.lock/);
    expect(bySlug['qe-file-cwd']).toMatchObject({ attempts: 1 });
    const failed = recordsOf(dir).filter((r) => r.type === 'queue.startFailed').map((r) => (r.data as { reason: string }).reason);
    expect(failed).toHaveLength(3);
    expect(recordsOf(dir).some((r) => r.type === 'effect.failed')).toBe(false);
    expect(readFileSync(join(dir, 'elsewhere', 'target'), 'utf8')).toBe('{}\n');
    await verified(dir);
  }, 60_000);

  it('a job whose result its dead run wrote to the output file but never logged is judged by that result', async () => {
    const dir = tempDir();
    writeProject(dir, [{ slug: 'qe-said-done', agent: ['--lines', '1', '--work', '60000', '--result', 'success'] }], { requeueInterrupted: 0 });
    const first = startRun(dir);
    const spawned = await logRecord(dir, (r) => r.type === 'job.spawned');
    await logRecord(dir, (r) => r.type === 'job.firstOutput');
    first.kill('SIGKILL');
    await first;
    // What a run that died between writing the agent's last line and logging it leaves: the line in the output file alone.
    const started = recordsOf(dir).find((r) => r.type === 'actor.started' && r.actor === spawned.actor)!;
    const outputLog = (started.data as { input: { outputLog: string } }).input.outputLog;
    appendFileSync(outputLog, `${JSON.stringify({ type: 'result', subtype: 'success', is_error: false, duration_ms: 10, result: 'done', total_cost_usd: 0.01 })}\n`);
    expect(recordsOf(dir).some((r) => r.type === 'job.resultSeen')).toBe(false);
    const second = await startRun(dir);
    expect(second.exitCode, String(second.all)).toBe(0);
    const status = await statusOf(dir);
    expect(status.jobs[0]).toMatchObject({ slug: 'qe-said-done', status: 'completed', runs: 1 });
    await verified(dir);
  }, 60_000);

  it('a job whose run died after picking it but before it started is run again without using up a requeue', async () => {
    const dir = tempDir();
    writeProject(dir, [{ slug: 'qe-picked' }], { requeueInterrupted: 0 });
    // The start waits for the worker's coordination lock, held here: the run dies while the job is starting.
    const runtime = join(dir, 'w', 'qe-picked', '.runtime');
    mkdirSync(runtime);
    // -o: flock(1) itself holds the lock (its command does not), so killing its group frees it.
    const holder = execa('flock', ['-o', join(runtime, 'agent.lock.flock'), 'sh', '-c', 'echo held; exec sleep 60'], { reject: false, all: true, detached: true });
    try {
      await new Promise<void>((resolve) => holder.all!.on('data', (d: Buffer) => d.toString().includes('held') && resolve()));
      const first = startRun(dir);
      await logRecord(dir, (r) => r.actor === 'queue' && (r.effects ?? []).some((e) => e.type === 'startJob'));
      first.kill('SIGKILL');
      await first;
    } finally {
      process.kill(-holder.pid!, 'SIGKILL');
      await holder;
    }
    expect(recordsOf(dir).some((r) => r.type === 'queue.jobStarted')).toBe(false);
    const second = await startRun(dir);
    expect(second.exitCode, String(second.all)).toBe(0);
    expect((await statusOf(dir)).jobs[0]).toMatchObject({ status: 'completed', interruptions: 0, runs: 2 });
    await verified(dir);
  }, 60_000);

  it('bad input: junk WARDEN_MAX_CONCURRENCY, unknown flags and config keys are exit 2 with one line', async () => {
    const dir = tempDir();
    writeProject(dir, [{ slug: 'qe-bad' }]);
    const junk = await warden(['run', '--dir', dir, '--once'], { env: { WARDEN_MAX_CONCURRENCY: 'lots' } });
    expect(junk.code).toBe(2);
    expect(junk.stderr.trim().split('\n')).toEqual([expect.stringContaining('WARDEN_MAX_CONCURRENCY')]);
    const flag = await warden(['run', '--dir', dir, '--forever']);
    expect(flag.code).toBe(2);
    writeFileSync(join(dir, '.warden', 'config.json'), JSON.stringify({ concurencyCap: 3 }));
    const config = await warden(['run', '--dir', dir, '--once']);
    expect(config.code).toBe(2);
    expect(config.stderr).toMatch(/concurencyCap/);
    expect((await warden(['status', '--dir', dir, 'extra'])).code).toBe(2);
    expect((await warden(['pause', '--dir', dir, '--until', 'x'])).code).toBe(2);
  }, 30_000);
});
