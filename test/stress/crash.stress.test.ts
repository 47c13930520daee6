/**
 * Stress: `warden run` under SIGKILL chaos. A 30-job queue of short fake-agent jobs (some linger
 * after their result, some fail) is run by one `warden run --once` after another, each SIGKILLed
 * by a seeded random schedule — at a random moment, or (when the run before it left jobs alive)
 * as soon as it logs its first `job.interrupt`, that is, while it recovers and reaps what the
 * dead run left. After at least 30 kills a final `run --once` must end, and then:
 *
 * - every job is in exactly one terminal state (completed, failed or interrupted), and none
 *   completed twice;
 * - no process of the test's jobs is left (matched by the project's own tag);
 * - `replay --verify` passes;
 * - no job whose agent wrote a successful result (its own trace file says so) is `interrupted`.
 *
 * The seed is printed; WARDEN_CHAOS_SEED=<n> replays a schedule (process timing still varies).
 */
import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { readLog } from '../../src/store/logReader.js';
import { warden } from '../helpers/cli.js';
import { jobProcesses, startRun, tagOf, writeJob, writeProject, type TestJob } from '../helpers/queueProject.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();

const JOBS = 30;
// Jobs added each time the queue drains before the schedule's kills are done.
const WAVE = 10;
const MIN_KILLS = 30;
/** The final run must end within this (it is minutes if recovery stalls, never). */
const FINAL_RUN_LIMIT_MS = 120_000;

/** mulberry32: a small seeded generator, so a schedule can be replayed from its seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Bytes appended to a file since `offset`, and the new offset. */
function readFrom(path: string, offset: number): { text: string; offset: number } {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return { text: '', offset };
  }
  try {
    const size = statSync(path).size;
    if (size <= offset) return { text: '', offset };
    const buffer = Buffer.alloc(size - offset);
    const read = readSync(fd, buffer, 0, buffer.length, offset);
    return { text: buffer.subarray(0, read).toString('utf8'), offset: offset + read };
  } finally {
    closeSync(fd);
  }
}

describe('crash chaos: warden run SIGKILLed over and over during a 30-job queue', () => {
  it('ends with every job in one terminal state, nothing left running, a verifying log, and no finished work called interrupted', async () => {
    const seed = process.env.WARDEN_CHAOS_SEED ? Number(process.env.WARDEN_CHAOS_SEED) : Math.floor(Math.random() * 2 ** 31);
    console.log(`crash chaos: WARDEN_CHAOS_SEED=${seed}`);
    const random = rng(seed);
    const between = (lo: number, hi: number) => Math.round(lo + random() * (hi - lo));

    const dir = tempDir();
    const trace = join(dir, 'agent-trace.txt');
    const jobs: TestJob[] = [];
    const makeJob = (i: number): TestJob => {
      const slug = `qc-${String(i).padStart(2, '0')}`;
      const roll = random();
      const work = String(between(200, 2_500));
      const common = ['--lines', '2', '--work', work, '--trace', trace];
      if (roll < 0.2) return { slug, agent: [...common, '--result', 'error', '--exit', '3'] };
      if (roll < 0.45) return { slug, agent: [...common, '--result', 'success', '--linger', String(between(500, 3_000))] };
      return { slug, agent: [...common, '--result', 'success'] };
    };
    for (let i = 0; i < JOBS; i++) jobs.push(makeJob(i));
    // Lingering jobs are killed 300 ms after their result (completed, mapped from the signal).
    writeProject(dir, jobs, { concurrencyCap: 4, timeouts: { maxDurationMs: 60_000, postResultGraceMs: 300, killAfterMs: 300, idleOutputMs: 20_000 } });
    const log = join(dir, '.warden', 'events.jsonl');

    const started = Date.now();
    let kills = 0;
    let recoveryKills = 0;
    let runs = 0;
    let drainedEarly = 0;
    let offset = 0;
    // Whether the run before started jobs (so this one has something to recover).
    let leftJobs = false;
    while (kills < MIN_KILLS) {
      // Mostly, when the run before left jobs, kill this one as soon as it interrupts one of
      // them: while it recovers and reaps what the dead run left.
      const duringRecovery = leftJobs && random() < 0.7;
      const delay = between(300, 3_000);
      offset = readFrom(log, 0).offset;
      const run = startRun(dir);
      runs++;
      let exited = false;
      void run.then(() => (exited = true));
      const deadline = Date.now() + (duringRecovery ? 8_000 : delay);
      let seen = '';
      let interrupted = false;
      for (;;) {
        if (exited) break;
        const fresh = readFrom(log, offset);
        offset = fresh.offset;
        seen += fresh.text;
        if (duringRecovery && fresh.text.includes('"type":"job.interrupt"')) {
          interrupted = true;
          break;
        }
        if (Date.now() >= deadline) break;
        await sleep(duringRecovery ? 2 : 10);
      }
      if (exited) {
        // It drained the queue before its kill (a fast, idle machine gets through 30 short jobs
        // in fewer than 30 kills): more jobs arrive, as they would overnight, and the chaos goes on.
        drainedEarly++;
        await run;
        for (let i = 0; i < WAVE; i++) {
          const job = makeJob(jobs.length);
          jobs.push(job);
          writeJob(dir, job);
        }
        leftJobs = false;
        continue;
      }
      run.kill('SIGKILL');
      await run;
      kills++;
      if (interrupted) recoveryKills++;
      seen += readFrom(log, offset).text;
      leftJobs = seen.includes('"type":"job.spawned"') || seen.includes('"type":"job.interrupt"');
    }

    const final = startRun(dir);
    let timer: NodeJS.Timeout | undefined;
    const ended = await Promise.race([final, new Promise<null>((r) => (timer = setTimeout(() => r(null), FINAL_RUN_LIMIT_MS)))]);
    clearTimeout(timer);
    if (ended === null) final.kill('SIGKILL');
    const seconds = ((Date.now() - started) / 1000).toFixed(1);
    expect(ended, `the final run --once did not end in ${FINAL_RUN_LIMIT_MS} ms (seed ${seed}):\n${final.output()}`).not.toBeNull();

    const statusRun = await warden(['status', '--dir', dir, '--json']);
    expect(statusRun.code, statusRun.stderr).toBe(0);
    const status = JSON.parse(statusRun.stdout) as { jobs: Array<{ slug: string; status: string; runs: number; interruptions: number }> };
    const outcomes: Record<string, number> = {};
    for (const job of status.jobs) outcomes[job.status] = (outcomes[job.status] ?? 0) + 1;
    console.log(
      `crash chaos: seed ${seed}, ${kills} kills (${recoveryKills} during recovery), ${runs + 1} runs, ${status.jobs.length} jobs: ${JSON.stringify(outcomes)}, ${seconds} s${drainedEarly ? `, drained ${drainedEarly} time(s) before the kills were done (+${WAVE} jobs each)` : ''}`,
    );
    expect(kills, `only ${kills} kills before the queue drained (seed ${seed})`).toBeGreaterThanOrEqual(MIN_KILLS);
    expect(status.jobs).toHaveLength(jobs.length);
    for (const job of status.jobs) expect(['completed', 'failed', 'interrupted'], `${job.slug} (seed ${seed})`).toContain(job.status);

    // Exactly one terminal verdict each: never completed twice.
    const records = readLog(log).records;
    const completions = new Map<string, number>();
    for (const r of records) {
      if (r.type !== 'queue.jobFinished' || (r.data as { outcome: string }).outcome !== 'completed') continue;
      const slug = (r.data as { slug: string }).slug;
      completions.set(slug, (completions.get(slug) ?? 0) + 1);
    }
    expect([...completions].filter(([, n]) => n > 1), `completed twice (seed ${seed})`).toEqual([]);

    // Nothing of the test's jobs is left running.
    expect([...jobProcesses([tagOf(dir)])], `job processes left (seed ${seed})`).toEqual([]);

    // The log verifies.
    const replay = await warden(['replay', '--dir', dir, '--verify']);
    expect(replay.code, `${replay.stderr} (seed ${seed})`).toBe(0);

    // No job whose agent said it succeeded is left interrupted.
    const succeeded = new Set(
      readFileSync(trace, 'utf8')
        .split('\n')
        .filter((l) => l.endsWith(' success'))
        .map((l) => l.slice(l.indexOf('/') + 1, l.indexOf(' ')).replace(/#\d+$/, '')),
    );
    const wronged = status.jobs.filter((j) => j.status === 'interrupted' && succeeded.has(j.slug)).map((j) => j.slug);
    expect(wronged, `finished with a successful result, left interrupted (seed ${seed})`).toEqual([]);
  }, 240_000);
});
