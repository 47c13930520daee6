import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readLog } from '../../src/store/logReader.js';
import { warden } from '../helpers/cli.js';
import { jobProcesses, outputLine, slugOfJobId, startRun, writeJob, writeProject } from '../helpers/queueProject.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();
const ours = (id: string) => slugOfJobId(id).startsWith('qu-');
let server: Server | undefined;
afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => (server ? server.close(resolve) : resolve(undefined)));
  server = undefined;
  expect([...jobProcesses()].filter(([id]) => ours(id)), 'job processes left behind').toEqual([]);
});

/** A usage meter on 127.0.0.1 whose utilization the test sets. */
async function meter(initial: number): Promise<{ url: string; set: (u: number) => void; polls: () => number }> {
  let utilization = initial;
  let polls = 0;
  server = createServer((_request, response) => {
    polls++;
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify({ utilization, resetsAt: new Date(Date.now() + 3_600_000).toISOString() }));
  });
  await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, set: (u) => (utilization = u), polls: () => polls };
}

describe('warden run with a usage meter', () => {
  it('when-available: jobs wait while utilization is over the threshold, start once it drops; status shows the meter', async () => {
    const dir = tempDir();
    const usage = await meter(95);
    writeProject(dir, [{ slug: 'qu-a' }, { slug: 'qu-b' }], { firePolicy: 'when-available', utilizationThreshold: 80, meter: { url: usage.url, intervalMs: 100, timeoutMs: 2_000 } });
    const run = startRun(dir);
    await outputLine(run, /qu-a pending/);
    while (usage.polls() < 2) await new Promise((r) => setTimeout(r, 20));
    const held = await warden(['status', '--dir', dir]);
    expect(held.stdout).toMatch(/fire policy: when-available: closed \(when-available: utilization 95% ≥ 80%\)/);
    expect(held.stdout).toMatch(/meter: last poll .*: utilization 95%.*; next poll/);
    const json = JSON.parse((await warden(['status', '--dir', dir, '--json'])).stdout);
    expect(json.meter).toMatchObject({ utilization: 95, failures: 0 });
    expect(['waiting', 'polling']).toContain(json.meter.state);
    expect(json.jobs.map((j: { status: string }) => j.status)).toEqual(['pending', 'pending']);
    expect(json.jobs[0].waitsFor).toBe('the usage gate (when-available: utilization 95% ≥ 80%)');
    usage.set(30);
    const result = await run;
    expect(result.exitCode, String(result.all)).toBe(0);
    // No job started before the meter said 30%.
    const queue = readLog(join(dir, '.warden', 'events.jsonl')).records.filter((r) => r.actor === 'queue');
    const firstStart = queue.findIndex((r) => (r.effects ?? []).some((e) => e.type === 'startJob'));
    expect(queue[firstStart]).toMatchObject({ type: 'queue.usage', data: { utilization: 30 } });
    expect(queue.slice(0, firstStart).filter((r) => r.type === 'queue.usage').every((r) => (r.data as { utilization: number }).utilization === 95)).toBe(true);
    expect((await warden(['replay', '--dir', dir, '--verify'])).code).toBe(0);
  }, 60_000);

  it('a job deferred by a rate limit pauses the queue until its reset: --once exits 75 saying until when; the next run after it resumes by itself and runs it again', async () => {
    const dir = tempDir();
    const once = join(dir, 'limited-once');
    writeProject(dir, [{ slug: 'qu-limited', agent: ['--rate-limit-once', once, '--result', 'success'] }], { rateLimitMarginMs: 100 });
    const first = await warden(['run', '--dir', dir, '--once'], { timeout: 30_000 });
    expect(first.stdout).toMatch(/queue paused \(rate_limit until .*: qu-limited: rate limited/);
    expect(first.code, first.stdout + first.stderr).toBe(75);
    const line = first.stderr.trim().split('\n');
    expect(line).toEqual([expect.stringMatching(/^warden: paused \(rate limit: qu-limited: rate limited \(rate_limit_event\) until \S+\) until (\S+); nothing can start$/)]);
    const until = /until (\S+); nothing can start$/.exec(line[0]!)![1]!;
    expect(JSON.parse((await warden(['status', '--dir', dir, '--json'])).stdout).paused).toMatchObject({ reason: 'rate_limit', until });
    // The pause ends by itself at its time: a run started after it runs the job.
    while (Date.now() <= Date.parse(until)) await new Promise((r) => setTimeout(r, 50));
    const run = startRun(dir);
    const result = await run;
    expect(result.exitCode, String(result.all)).toBe(0);
    const status = JSON.parse((await warden(['status', '--dir', dir, '--json'])).stdout);
    expect(status.jobs[0]).toMatchObject({ status: 'completed', runs: 2, deferrals: 1, attempts: 1 });
    expect(status.paused).toBeNull();
    const records = readLog(join(dir, '.warden', 'events.jsonl')).records;
    const paused = records.find((r) => r.actor === 'queue' && r.state === 'pausedUntil')!;
    const resumed = records.find((r) => r.actor === 'queue' && r.type === 'timer.fired')!;
    expect(resumed.seq).toBeGreaterThan(paused.seq);
    // It resumed no earlier than the reset plus the margin.
    const due = records.filter((r) => r.actor === 'queue' && r.seq === paused.seq).map((r) => (r.effects ?? []).find((e) => e.type === 'timer.arm')!.params as { dueAt: number })[0]!;
    expect(Date.parse(resumed.ts)).toBeGreaterThanOrEqual(due.dueAt);
  }, 60_000);

  it('--once exits 75 at once when the queue is paused by hand, naming the pause; nothing starts', async () => {
    const dir = tempDir();
    writeProject(dir, [{ slug: 'qu-held' }]);
    expect((await warden(['pause', '--dir', dir, '--reason', 'maint\u001b[31menance\nforged line'])).code).toBe(0);
    const result = await warden(['run', '--dir', dir, '--once'], { timeout: 30_000 });
    expect(result.code, result.stdout + result.stderr).toBe(75);
    expect(result.stderr.split('\n').filter((l) => l !== '')).toEqual(['warden: paused (manual: maint\\u001b[31menance\\nforged line) until `warden resume`; nothing can start']);
    expect(result.stdout).toMatch(/^0 of 1 jobs completed$/m);
    const records = readLog(join(dir, '.warden', 'events.jsonl')).records;
    expect(records.filter((r) => r.type === 'job.spawned')).toEqual([]);
    expect(records.filter((r) => r.type === 'queue.detached').at(-1)?.data).toMatchObject({ reason: 'nothing can start: paused (--once)' });
    const status = JSON.parse((await warden(['status', '--dir', dir, '--json'])).stdout);
    expect(status).toMatchObject({ lease: { held: false }, paused: { reason: 'manual' } });
    expect(status.jobs[0]).toMatchObject({ status: 'pending' });
    // Resumed, the next --once runs it.
    expect((await warden(['resume', '--dir', dir])).code).toBe(0);
    expect((await warden(['run', '--dir', dir, '--once'], { timeout: 30_000 })).code).toBe(0);
    expect((await warden(['replay', '--dir', dir, '--verify'])).code).toBe(0);
  }, 60_000);

  it("a stale reading opens nothing: a new run whose meter fails does not start a job on the last run's 20 %", async () => {
    const dir = tempDir();
    const answered = join(dir, 'answered-once');
    // Answers 20 % once, then fails for good.
    const script = `const fs = require('node:fs'); if (fs.existsSync(process.argv[1])) { console.error('meter down'); process.exit(1); } fs.writeFileSync(process.argv[1], ''); console.log(JSON.stringify({ utilization: 20 }));`;
    const meterConfig = { command: ['node', '-e', script, answered], intervalMs: 100, timeoutMs: 5_000, backoff: { initialMs: 100, factor: 1, maxMs: 100 } };
    writeProject(dir, [{ slug: 'qu-first' }], { firePolicy: 'when-available', meter: meterConfig });
    const first = startRun(dir);
    expect((await first).exitCode, first.output()).toBe(0);
    const log = join(dir, '.warden', 'events.jsonl');
    const reading = readLog(log).records.find((r) => r.type === 'queue.usage')!;
    expect(reading.data).toMatchObject({ utilization: 20 });
    writeJob(dir, { slug: 'qu-second' });
    // The reading is older than 3 intervals plus the timeout by the time the next run starts.
    const maxAgeMs = 3 * 100 + 5_000;
    while (Date.now() - Date.parse((reading.data as { at: string }).at) <= maxAgeMs) await new Promise((r) => setTimeout(r, 50));
    // status, with no run, judges the reading's age too.
    expect(JSON.parse((await warden(['status', '--dir', dir, '--json'])).stdout).gate).toMatchObject({ open: false, reason: expect.stringContaining('is older than 5300 ms') });
    const before = readLog(log).records.length;
    const second = startRun(dir, []);
    try {
      const deadline = Date.now() + 30_000;
      const since = () => readLog(log).records.slice(before);
      while (since().filter((r) => r.type === 'poll.failed').length < 3) {
        expect(Date.now(), second.output()).toBeLessThan(deadline);
        await new Promise((r) => setTimeout(r, 50));
      }
      expect(since().filter((r) => r.type === 'job.spawned' || (r.effects ?? []).some((e) => e.type === 'startJob'))).toEqual([]);
      const status = JSON.parse((await warden(['status', '--dir', dir, '--json'])).stdout);
      expect(status.gate).toMatchObject({ open: false, reason: expect.stringContaining('is older than 5300 ms') });
      expect(status.jobs.find((j: { slug: string }) => j.slug === 'qu-second')).toMatchObject({ status: 'pending', waitsFor: expect.stringContaining('the usage gate') });
    } finally {
      second.kill('SIGTERM');
      await second;
    }
    expect((await warden(['replay', '--dir', dir, '--verify'])).code).toBe(0);
  }, 60_000);

  it('warden resume lets a rate-limited job run once, not in a loop; past rateLimitMaxDeferrals it fails naming the rate limit', async () => {
    const dir = tempDir();
    // Rate limited on every run, resetting in an hour.
    writeProject(dir, [{ slug: 'qu-limited', agent: ['--rate-limit', '--exit', '1'] }], { rateLimitMaxDeferrals: 2, resumeSuppressMs: 600_000 });
    const run = startRun(dir, []);
    const log = join(dir, '.warden', 'events.jsonl');
    const records = () => readLog(log).records;
    const spawned = () => records().filter((r) => r.type === 'job.spawned').length;
    const deferred = () => records().filter((r) => r.type === 'queue.jobFinished' && (r.data as { outcome: string }).outcome === 'deferred').length;
    const until = async (what: string, condition: () => boolean) => {
      const deadline = Date.now() + 30_000;
      while (!condition()) {
        expect(Date.now(), `${what}:\n${run.output()}`).toBeLessThan(deadline);
        await new Promise((r) => setTimeout(r, 50));
      }
    };
    try {
      expect(await outputLine(run, /queue paused/)).toMatch(/paused \(rate_limit until /);
      expect(spawned()).toBe(1);
      // A manual resume: the job runs once, is rate limited again inside the suppression window, and waits for its reset.
      expect((await warden(['resume', '--dir', dir])).stdout).toMatch(/resumed \(scheduler\)/);
      await until('the second deferral', () => deferred() === 2);
      expect((await warden(['kick', '--dir', dir])).stdout).toMatch(/kicked: 0 job\(s\) starting/);
      expect(spawned()).toBe(2);
      const waiting = JSON.parse((await warden(['status', '--dir', dir, '--json'])).stdout).jobs[0];
      expect(waiting).toMatchObject({ status: 'retrying', deferrals: 2, runs: 2 });
      expect(Date.parse(waiting.waitsFor.match(/until (\S+)/)[1])).toBeGreaterThan(Date.now() + 50 * 60_000);
      // Another resume: once more; the third deferral in a row is past the limit of 2.
      await warden(['resume', '--dir', dir]);
      await until('the third deferral', () => deferred() === 3);
      await warden(['kick', '--dir', dir]);
      expect(spawned()).toBe(3);
      const failed = JSON.parse((await warden(['status', '--dir', dir, '--json'])).stdout).jobs[0];
      expect(failed).toMatchObject({ status: 'failed', deferrals: 3, runs: 3, reason: expect.stringMatching(/^rate limited 3 times in a row, more than rateLimitMaxDeferrals \(2\); last: rate limited/) });
    } finally {
      run.kill('SIGTERM');
      await run;
    }
    expect((await warden(['replay', '--dir', dir, '--verify'])).code).toBe(0);
  }, 60_000);

  it('a config asking for a fire policy without a meter is exit 2 with one line', async () => {
    const dir = tempDir();
    writeProject(dir, [{ slug: 'qu-x' }], { firePolicy: 'on-reset' });
    const result = await warden(['run', '--dir', dir, '--once']);
    expect(result.code).toBe(2);
    expect(result.stderr.trim().split('\n')).toEqual([expect.stringMatching(/firePolicy: firePolicy when-available and on-reset need a meter/)]);
  });
});
