import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { readLog } from '../../src/store/logReader.js';
import { warden } from '../helpers/cli.js';
import { readFileSync, writeFileSync } from 'node:fs';
import { processGone, useSleepers } from '../helpers/processes.js';
import { jobProcesses, slugOfJobId, startRun, writeProject } from '../helpers/queueProject.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();
const sleeper = useSleepers();
const ours = (id: string) => /qf-/.test(slugOfJobId(id));
afterEach(() => {
  expect([...jobProcesses()].filter(([id]) => ours(id)), 'job processes left behind').toEqual([]);
});

async function statusOf(dir: string) {
  const result = await warden(['status', '--dir', dir, '--json']);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as { jobs: Array<Record<string, unknown> & { slug: string; status: string }>; problems: Array<{ file: string; problem: string }> };
}

/** A webhook on 127.0.0.1 that records every POST body. */
async function webhook(): Promise<{ url: string; bodies: Array<Record<string, unknown>>; close: () => Promise<void> }> {
  const bodies: Array<Record<string, unknown>> = [];
  const server = createServer((request, response) => {
    let text = '';
    request.on('data', (chunk: Buffer) => (text += chunk.toString()));
    request.on('end', () => {
      if (request.method === 'POST') bodies.push(JSON.parse(text) as Record<string, unknown>);
      response.end('ok');
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    bodies,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

describe('when jobs fail', () => {
  it('a dependsOn chain A → B → C where A fails: B and C end blocked naming A; a cycle is reported and nothing in it runs', async () => {
    const dir = tempDir();
    writeProject(dir, [
      { slug: 'qf-a', agent: ['--result', 'error', '--exit', '2'] },
      { slug: 'qf-b', agent: ['--result', 'success'] },
      { slug: 'qf-c', agent: ['--result', 'success'] },
      { slug: 'qf-x', agent: ['--result', 'success'] },
      { slug: 'qf-y', agent: ['--result', 'success'] },
      { slug: 'qf-free', agent: ['--result', 'success'] },
    ]);
    // dependsOn goes in the frontmatter.
    const add = (slug: string, deps: string[]) => {
      const file = join(dir, '.warden', 'jobs', `${slug}.md`);
      writeFileSync(file, readFileSync(file, 'utf8').replace('---\ntitle:', `---\ndependsOn: ${JSON.stringify(deps)}\ntitle:`));
    };
    add('qf-b', ['qf-a']);
    add('qf-c', ['qf-b']);
    add('qf-x', ['qf-y']);
    add('qf-y', ['qf-x']);
    const run = await startRun(dir);
    expect(run.exitCode).toBe(1);
    const status = await statusOf(dir);
    const by = Object.fromEntries(status.jobs.map((j) => [j.slug, j]));
    expect(Object.keys(by).sort()).toEqual(['qf-a', 'qf-b', 'qf-c', 'qf-free']);
    expect(by['qf-a']).toMatchObject({ status: 'failed', exitCode: 2 });
    expect(by['qf-b']).toMatchObject({ status: 'blocked', reason: 'waits for qf-a, which failed', runs: 0, waitsFor: 'nothing: waits for qf-a, which failed', dependsOn: ['qf-a'] });
    expect(by['qf-c']).toMatchObject({ status: 'blocked', reason: 'waits for qf-a, which failed (through qf-b)', runs: 0 });
    expect(by['qf-free']).toMatchObject({ status: 'completed' });
    expect(status.problems.map((p) => `${p.file.split('/').pop()}: ${p.problem}`).sort()).toEqual([
      'qf-x.md: dependsOn: a cycle: qf-x → qf-y → qf-x',
      'qf-y.md: dependsOn: a cycle: qf-x → qf-y → qf-x',
    ]);
    const started = readLog(join(dir, '.warden', 'events.jsonl')).records.flatMap((r) => (r.effects ?? []).filter((e) => e.type === 'startJob').map((e) => (e.params as { slug: string }).slug));
    expect(started.sort()).toEqual(['qf-a', 'qf-free']);
    expect((await warden(['replay', '--dir', dir, '--verify'])).code).toBe(0);
  }, 60_000);

  it('a job failing twice then succeeding with retries.max 2 ends completed with attempts 3, each retry at least its backoff after the failure', async () => {
    const dir = tempDir();
    const counter = join(dir, 'runs.txt');
    writeProject(dir, [{ slug: 'qf-flaky', agent: ['--fail-times', '2', counter, '--result', 'success'] }], { retries: { max: 2, initialMs: 300, factor: 2, maxMs: 5_000 } });
    const run = await startRun(dir);
    expect(run.exitCode, String(run.all)).toBe(0);
    const status = await statusOf(dir);
    expect(status.jobs[0]).toMatchObject({ status: 'completed', attempts: 3, runs: 3, waitsFor: null });
    const records = readLog(join(dir, '.warden', 'events.jsonl')).records;
    const exits = records.filter((r) => r.type === 'job.exited').map((r) => Date.parse((r.data as { at: string }).at));
    const spawns = records.filter((r) => r.type === 'job.spawned').map((r) => Date.parse((r.data as { startedAt: string }).startedAt));
    expect(spawns).toHaveLength(3);
    expect(spawns[1]! - exits[0]!).toBeGreaterThanOrEqual(300);
    expect(spawns[2]! - exits[1]!).toBeGreaterThanOrEqual(600);
    expect(run.all).toMatch(/qf-flaky retrying \(attempt 1 failed: .*; retry at /);
  }, 60_000);

  it('a webhook gets exactly one POST per terminal state and none for a deferral; a failing notifier does not stop the queue', async () => {
    const hook = await webhook();
    try {
      const dir = tempDir();
      writeProject(
        dir,
        [
          { slug: 'qf-n-ok', agent: ['--result', 'success'] },
          { slug: 'qf-n-bad', agent: ['--result', 'error', '--exit', '1'] },
          { slug: 'qf-n-limited', agent: ['--rate-limit-once', join(dir, 'once'), '--result', 'success'] },
        ],
        { rateLimitMarginMs: 0, notify: { url: hook.url } },
      );
      // The deferral pauses the queue for about 2 s: if nothing is left running before it ends,
      // --once stops there (75, docs/cli.md) and a run after the pause finishes the queue.
      const first = (await startRun(dir)).exitCode;
      if (first === 75) {
        const until = Date.parse(JSON.parse((await warden(['status', '--dir', dir, '--json'])).stdout).paused.until);
        while (Date.now() <= until) await new Promise((r) => setTimeout(r, 50));
        expect((await startRun(dir)).exitCode).toBe(1);
      } else expect(first).toBe(1);
      const seen = hook.bodies.map((b) => `${String(b.slug)}:${String(b.status)}`).sort();
      expect(seen).toEqual(['qf-n-bad:failed', 'qf-n-limited:completed', 'qf-n-ok:completed']);
      expect(hook.bodies.find((b) => b.slug === 'qf-n-limited')).toMatchObject({ runs: 2, attempts: 1, title: 'Job qf-n-limited' });
      const notified = readLog(join(dir, '.warden', 'events.jsonl')).records.filter((r) => r.type === 'queue.notified').map((r) => r.data as { ok: boolean });
      expect(notified.map((n) => n.ok)).toEqual([true, true, true]);

      // A notifier that fails (a refused URL, a command that exits 1): logged, and the queue goes on.
      await hook.close();
      const other = tempDir();
      writeProject(other, [{ slug: 'qf-n-1' }, { slug: 'qf-n-2' }], { concurrencyCap: 1, notify: { url: hook.url, command: ['sh', '-c', 'cat > /dev/null; exit 1'] } });
      const run = await startRun(other);
      expect(run.exitCode, String(run.all)).toBe(0);
      const failed = readLog(join(other, '.warden', 'events.jsonl')).records.filter((r) => r.type === 'queue.notified').map((r) => r.data as { ok: boolean; reason: string });
      expect(failed).toHaveLength(2);
      for (const f of failed) {
        expect(f.ok).toBe(false);
        expect(f.reason).toMatch(/url: ECONNREFUSED; command: exited 1|command: exited 1; url: ECONNREFUSED/);
      }
    } finally {
      await hook.close().catch(() => {});
    }
  }, 60_000);

  it('a failure starts exactly one investigation, whose fix plan then runs; a second failure does not start another while the fix file exists; a failed fix plan starts none', async () => {
    const dir = tempDir();
    const pids = join(dir, 'pids.txt');
    const investigator = ['node', join(import.meta.dirname, '../fixtures/agent/fake-investigator.mjs'), '--pids', pids];
    writeProject(
      dir,
      [
        { slug: '07-qf-login', agent: ['--lines', '2', '--result', 'error', '--exit', '1'] },
        { slug: '05-fix-qf-other', agent: ['--result', 'error', '--exit', '1'] },
      ],
      { investigation: { command: investigator, timeoutMs: 20_000 } },
    );
    const first = await startRun(dir);
    expect(first.exitCode).toBe(1); // the failed job stays failed; its fix plan completed
    const status = await statusOf(dir);
    const by = Object.fromEntries(status.jobs.map((j) => [j.slug, j]));
    expect(by['07-qf-login']).toMatchObject({ status: 'failed', investigation: { status: 'done', fixSlug: '07-fix-qf-login', fixWritten: true, outcome: 'completed' } });
    expect(by['07-fix-qf-login']).toMatchObject({ status: 'completed', group: 7 });
    expect(by['05-fix-qf-other']).toMatchObject({ status: 'failed', investigation: null });
    const records = () => readLog(join(dir, '.warden', 'events.jsonl')).records;
    expect(records().filter((r) => r.type === 'queue.investigationStarted').map((r) => (r.data as { slug: string }).slug)).toEqual(['07-qf-login']);
    // The investigator saw the failed job's log (path in prompt and env) and is gone.
    const investigatorPid = Number(readFileSync(pids, 'utf8').trim().split(' ')[1]);
    expect(processGone(investigatorPid)).toBe(true);
    const init = records().find((r) => r.actor.startsWith('investigation:') && r.type === 'job.firstOutput');
    expect(init).toBeDefined();

    // The job edited and failing again: no second investigation while its fix file is there.
    const file = join(dir, '.warden', 'jobs', '07-qf-login.md');
    writeFileSync(file, readFileSync(file, 'utf8').replace('Do 07-qf-login.', 'Do 07-qf-login, again.'));
    const second = await startRun(dir);
    expect(second.exitCode).toBe(1);
    expect(records().filter((r) => r.type === 'queue.investigationStarted')).toHaveLength(1);
    expect(records().filter((r) => r.type === 'queue.investigationSkipped').map((r) => r.data)).toEqual([
      { slug: '07-qf-login', reason: `its fix plan ${join(dir, '.warden', 'jobs', '07-fix-qf-login.md')} exists already` },
    ]);
    expect((await warden(['replay', '--dir', dir, '--verify'])).code).toBe(0);
  }, 60_000);

  describe('the supervisor probe', () => {
    const PROBE = join(import.meta.dirname, '../fixtures/agent/fake-probe.mjs');
    // A probe that answers gets a generous timeout (node starting on a loaded machine can take
    // longer than 600 ms); only the hanging probe's test waits one out.
    const probeConfig = (mode: string[], record: string, timeoutMs = 10_000) => ({ supervisor: { command: ['node', PROBE, ...mode, '--record', record], intervalMs: 250, staleMs: 150, timeoutMs, maxConcurrentProbes: 2 } });
    const recordsOf = (dir: string) => readLog(join(dir, '.warden', 'events.jsonl')).records;
    /**
     * Fake-agent flags: stay silent (stale, so probed) until the project's log holds `count`
     * records of `type` — the probe's answer judged — rather than for a fixed time a loaded
     * machine may spend before the first probe answers.
     */
    const workUntil = (dir: string, type: string, count = 1) => ['--until', join(dir, '.warden', 'events.jsonl'), '--until-match', `"${type}"`, '--until-lines', String(count)];

    it('kills only the stuck descendant a probe names, and the job goes on', async () => {
      const dir = tempDir();
      const pids = join(dir, 'pids.txt');
      writeProject(dir, [{ slug: 'qf-stuck', agent: ['--grandchild', '--pids', pids, ...workUntil(dir, 'supervisor.killed'), '--result', 'success'] }], probeConfig(['stuck-sleep'], join(dir, 'probes.txt')));
      const run = await startRun(dir);
      expect(run.exitCode, String(run.all)).toBe(0);
      const grandchild = Number(readFileSync(pids, 'utf8').split('\n').find((l) => l.startsWith('grandchild'))!.split(' ')[1]);
      const killed = recordsOf(dir).filter((r) => r.type === 'supervisor.killed');
      expect(killed.map((r) => (r.data as { targetPid: number }).targetPid)).toEqual([grandchild]);
      expect((await statusOf(dir)).jobs[0]).toMatchObject({ status: 'completed', killedBy: null });
      expect(processGone(grandchild)).toBe(true);
    }, 30_000);

    it('kill-job stops the job through its kill stages, with the reason', async () => {
      const dir = tempDir();
      writeProject(dir, [{ slug: 'qf-hopeless', agent: ['--grandchild', '--work', '30000', '--result', 'success'] }], probeConfig(['kill-job'], join(dir, 'probes.txt')));
      const run = await startRun(dir);
      expect(run.exitCode).toBe(1);
      expect((await statusOf(dir)).jobs[0]).toMatchObject({ status: 'failed', killedBy: 'user', reason: expect.stringContaining('supervisor: stuck: no progress') });
    }, 30_000);

    it('refuses a kill-descendant for a PID outside the job', async () => {
      const dir = tempDir();
      const outsider = sleeper();
      writeProject(dir, [{ slug: 'qf-quiet', agent: [...workUntil(dir, 'supervisor.refused'), '--result', 'success'] }], probeConfig(['outside', String(outsider.pid)], join(dir, 'probes.txt')));
      const run = await startRun(dir);
      expect(run.exitCode, String(run.all)).toBe(0);
      const refused = recordsOf(dir).filter((r) => r.type === 'supervisor.refused').map((r) => r.data as { targetPid: number; reason: string });
      expect(refused.length).toBeGreaterThan(0);
      expect(refused[0]).toMatchObject({ targetPid: outsider.pid, reason: `PID ${outsider.pid} is not a process of job qf-quiet` });
      expect(processGone(outsider.pid)).toBe(false);
      expect(recordsOf(dir).filter((r) => r.type === 'supervisor.killed')).toEqual([]);
    }, 30_000);

    it('a probe that hangs is killed at its timeout, and the next interval probes again; garbage answers change nothing', async () => {
      const dir = tempDir();
      const probes = join(dir, 'probes.txt');
      writeProject(dir, [{ slug: 'qf-slow', agent: [...workUntil(dir, 'supervisor.probeFailed', 2), '--result', 'success'] }], probeConfig(['hang'], probes, 600));
      const run = await startRun(dir);
      expect(run.exitCode, String(run.all)).toBe(0);
      const failed = recordsOf(dir).filter((r) => r.type === 'supervisor.probeFailed').map((r) => (r.data as { reason: string }).reason);
      expect(failed.length).toBeGreaterThanOrEqual(2);
      expect(failed[0]).toBe('the probe did not answer within 600 ms; killed');
      const probePids = readFileSync(probes, 'utf8').trim().split('\n').map((l) => Number(l.split(' ')[0]));
      expect(probePids.length).toBeGreaterThanOrEqual(2);
      expect(probePids.filter((pid) => !processGone(pid))).toEqual([]);
      // Never two probes of one job at once: each probe started after the one before had ended.
      const types = recordsOf(dir).filter((r) => r.actor === 'supervisor').map((r) => r.type);
      let inFlight = 0;
      for (const type of types) {
        if (type === 'supervisor.stale') inFlight++;
        if (type === 'supervisor.probeFailed' || type === 'supervisor.answered') inFlight--;
        expect(inFlight).toBeLessThanOrEqual(1);
      }

      const other = tempDir();
      writeProject(other, [{ slug: 'qf-garbled', agent: [...workUntil(other, 'supervisor.probeFailed'), '--result', 'success'] }], probeConfig(['garbage'], join(other, 'probes.txt')));
      expect((await startRun(other)).exitCode).toBe(0);
      const garbled = readLog(join(other, '.warden', 'events.jsonl')).records.filter((r) => r.type === 'supervisor.probeFailed').map((r) => (r.data as { reason: string }).reason);
      expect(garbled[0]).toMatch(/^the probe's answer is not JSON/);
    }, 30_000);
  });
});
