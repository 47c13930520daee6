import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readLog } from '../../src/store/logReader.js';
import type { LogRecord } from '../../src/store/record.js';
import { warden } from '../helpers/cli.js';
import { execa } from 'execa';
import { CLI } from '../helpers/cli.js';
import { jobProcesses, outputLine, slugOfJobId, startRun, watchJobProcesses, writeJob, writeProject, type TestJob } from '../helpers/queueProject.js';
import { useSleepers } from '../helpers/processes.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();
const sleeper = useSleepers();
// Every slug in this file starts with "qe-", so /proc can be searched for this file's jobs alone.
const ours = (jobId: string) => slugOfJobId(jobId).startsWith('qe-');
const leftovers = () => [...jobProcesses()].filter(([id]) => ours(id));

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

/** Resolves once `n` of this file's job processes are alive (their spawn follows the log's record). */
async function agentsAlive(n: number): Promise<void> {
  while (new Set(leftovers().map(([id]) => id)).size < n) await new Promise((r) => setTimeout(r, 20));
}

const recordsOf = (dir: string): LogRecord[] => readLog(join(dir, '.warden', 'events.jsonl')).records;
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
    const watch = watchJobProcesses(ours);
    const first = startRun(dir);
    await outputLine(first, /qe-two-\d running/);
    await agentsAlive(2);
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
    expect(records.filter((r) => r.type === 'job.interrupt').length).toBe(interrupted.length);
    expect(records.some((r) => r.type === 'lease.superseded')).toBe(true);
    await verified(dir);
  }, 60_000);

  it('SIGKILLed mid-run and restarted: every job reaches exactly one terminal state, nothing is left behind, the log verifies', async () => {
    const dir = tempDir();
    const jobs = Array.from({ length: 5 }, (_, i) => ({ slug: `qe-crash-${i}`, agent: ['--lines', '1', '--grandchild', '--setsid', '--work', '1500', '--result', 'success'] }));
    writeProject(dir, jobs, { concurrencyCap: 3 });
    const watch = watchJobProcesses((id) => ours(id));
    const first = startRun(dir);
    await outputLine(first, /qe-crash-\d running/);
    await agentsAlive(3);
    first.kill('SIGKILL');
    await first;
    // Its agents (in groups of their own) outlive it: the next run must kill them first.
    expect(leftovers().length).toBeGreaterThan(0);
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
    writeProject(dir, [{ slug: 'qe-stop', agent: ['--result', 'success', '--linger', 'forever', '--ignore-term'] }], { requeueInterrupted: 0, timeouts: { maxDurationMs: 60_000, postResultGraceMs: 300, killAfterMs: 300, idleOutputMs: 20_000 } });
    const run = startRun(dir, []);
    await outputLine(run, /qe-stop running/);
    run.kill('SIGINT');
    expect((await run).signal).toBe('SIGINT');
    expect((await statusOf(dir)).jobs[0]).toMatchObject({ status: 'pending', interruptions: 0 });
    const again = await startRun(dir);
    expect(again.exitCode, String(again.all)).toBe(0);
    expect((await statusOf(dir)).jobs[0]).toMatchObject({ status: 'completed', runs: 2 });
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
