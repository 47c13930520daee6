import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { builtInMachines } from '../../src/machines/catalogue.js';
import { replayLog } from '../../src/runner/replay.js';
import { runJob, type JobRun, type RunJobOptions } from '../../src/runner/jobSession.js';
import { readLog } from '../../src/store/logReader.js';
import { exited, processesWithEnv } from '../helpers/processes.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();
const AGENT = join(import.meta.dirname, '../fixtures/agent/fake-agent.mjs');
const FAST = { maxDurationMs: 10_000, postResultGraceMs: 300, killAfterMs: 300, idleOutputMs: 2_000 };

/** Runs the fake agent as a job; afterwards nothing of it may be left (checked straight in /proc). */
async function agentJob(flags: string[], options: Partial<RunJobOptions> = {}): Promise<JobRun & { dir: string; pids: Map<string, number>; types: string[] }> {
  const dir = tempDir();
  const pidsFile = join(dir, 'pids.txt');
  const run = await runJob({ dir, command: ['node', AGENT, ...flags, '--pids', pidsFile], timeouts: FAST, ...options });
  const pids = new Map<string, number>();
  if (existsSync(pidsFile)) for (const line of readFileSync(pidsFile, 'utf8').trim().split('\n')) pids.set(line.split(' ')[0]!, Number(line.split(' ')[1]));
  expect([...pids.values()].filter((pid) => !exited(pid)), 'processes of the job left behind').toEqual([]);
  expect(processesWithEnv('WARDEN_JOB_ID', `${run.runId}/${run.meta.slug}`)).toEqual([]);
  // The log replays and verifies, and the meta file agrees with it.
  replayLog(run.log, builtInMachines, { verify: true });
  expect(JSON.parse(readFileSync(join(dir, '.warden', 'runs', run.runId, `${run.meta.slug}.meta.json`), 'utf8'))).toEqual(run.meta);
  const types = readLog(run.log).records.filter((r) => r.actor === run.actor).map((r) => `${r.type}${r.state ? ` → ${typeof r.state === 'string' ? r.state : JSON.stringify(r.state)}` : ''}`);
  return { ...run, dir, pids, types };
}

describe('runJob: a supervised agent process', () => {
  it('completes on a successful result and exit 0, recording subtype, cost, usage and duration; every state is logged', async () => {
    const run = await agentJob(['--lines', '3', '--result', 'success']);
    expect(run.outcome).toBe('completed');
    expect(run.meta).toMatchObject({ exitCode: 0, signal: null, resultSubtype: 'success', isError: false, costUsd: 0.0421, usage: { input_tokens: 120, output_tokens: 45 }, killedBy: null, mappedFromSignal: false });
    expect(run.meta.durationMs).toBeGreaterThanOrEqual(0);
    expect(run.types).toEqual(
      expect.arrayContaining(['actor.started → pending', 'job.start → starting', 'job.spawned → {"alive":"running"}', 'job.resultSeen → {"alive":"grace"}', 'job.exited → exited', 'job.reaped → finishing', 'job.metaWritten → completed']),
    );
    // Each output line went to the run's log, 0600.
    const outputLog = join(run.dir, '.warden', 'runs', run.runId, 'exec.log');
    expect(readFileSync(outputLog, 'utf8').trim().split('\n')).toHaveLength(5);
    expect(statSync(outputLog).mode & 0o777).toBe(0o600);
  });

  it('finds a result with its keys in any order, and one of 1 MB', async () => {
    const reversed = await agentJob(['--result', 'success', '--keys-reversed']);
    expect(reversed.meta).toMatchObject({ outcome: 'completed', resultSubtype: 'success' });
    const huge = await agentJob(['--result', 'success', '--result-bytes', String(1100 * 1024)]);
    expect(huge.meta).toMatchObject({ outcome: 'completed', resultSubtype: 'success' });
    const seen = readLog(huge.log).records.find((r) => r.type === 'job.resultSeen');
    expect((seen?.data as { bytes: number }).bytes).toBeGreaterThan(1024 * 1024);
  });

  it('a 50 MB line without a newline is logged, not kept, and the result after it is still seen; a 50 MB result line is seen', async () => {
    // Generous watchdogs: a loaded CI machine may take seconds to move 50 MB through a pipe.
    const slow = { timeouts: { ...FAST, maxDurationMs: 50_000, idleOutputMs: 20_000 } };
    const run = await agentJob(['--huge-line', String(50 * 1024 * 1024), '--result', 'success'], slow);
    expect(run.meta).toMatchObject({ outcome: 'completed', resultSubtype: 'success' });
    expect(statSync(join(run.dir, '.warden', 'runs', run.runId, 'exec.log')).size).toBeGreaterThan(50 * 1024 * 1024);
    // And a result line of 50 MB is a result like any other.
    const long = await agentJob(['--result', 'success', '--result-bytes', String(51 * 1024 * 1024)], slow);
    expect(long.meta).toMatchObject({ outcome: 'completed', resultSubtype: 'success', costUsd: 0.0421 });
    const seen = readLog(long.log).records.find((r) => r.type === 'job.resultSeen');
    expect((seen?.data as { bytes: number }).bytes).toBeGreaterThan(50 * 1024 * 1024);
  }, 120_000);

  it('an agent lingering after its result: SIGTERM after the grace, SIGKILL if ignored; mapped to completed; its children die too', async () => {
    const run = await agentJob(['--result', 'success', '--linger', 'forever', '--ignore-term', '--grandchild', '--setsid', '--daemon']);
    expect(run.meta).toMatchObject({ outcome: 'completed', killedBy: 'postResult', mappedFromSignal: true, signal: 'SIGKILL' });
    expect(run.types).toEqual(expect.arrayContaining(['job.signalled → terminating', 'job.signalled → killing']));
    const term = readLog(run.log).records.find((r) => r.type === 'job.signalled' && (r.data as { signal: string }).signal === 'SIGTERM');
    // The setsid'd and the double-forked sleeps left the group, and were reached all the same.
    expect((term?.data as { pids: number[] }).pids).toEqual(expect.arrayContaining([run.pids.get('agent'), run.pids.get('grandchild'), run.pids.get('setsid'), run.pids.get('daemon')]));
  });

  it('idle watchdog: no output for idleOutputMs → killed, failed', async () => {
    const run = await agentJob(['--lines', '1', '--linger', 'forever'], { timeouts: { ...FAST, idleOutputMs: 400 } });
    expect(run.meta).toMatchObject({ outcome: 'failed', killedBy: 'idle', signal: 'SIGTERM' });
    expect(run.meta.reason).toBe('killed by SIGTERM; killed: no output for idleOutputMs 400');
  });

  it('idle watchdog: bytes count as output, so one line streamed slowly for longer than idleOutputMs is not idle', async () => {
    const run = await agentJob(['--drip-line', '1200', '--result', 'success'], { timeouts: { ...FAST, idleOutputMs: 400 } });
    expect(run.meta).toMatchObject({ outcome: 'completed', killedBy: null });
  });

  it('maxDuration watchdog: killed past the maximum even while producing output', async () => {
    // 2 s: the agent must be up (its SIGTERM handler installed) before the watchdog fires, even on a loaded machine.
    const run = await agentJob(['--linger', 'forever', '--ignore-term'], { timeouts: { ...FAST, maxDurationMs: 2_000, idleOutputMs: 60_000 } });
    expect(run.meta).toMatchObject({ outcome: 'failed', killedBy: 'maxDuration', signal: 'SIGKILL' });
  });

  it('an agent that exits by itself leaves nothing behind: what it left running is killed and logged', async () => {
    const run = await agentJob(['--result', 'success', '--grandchild', '--setsid', '--daemon']);
    expect(run.meta.outcome).toBe('completed');
    expect(run.meta.leftovers?.killed).toEqual(expect.arrayContaining([run.pids.get('grandchild'), run.pids.get('setsid'), run.pids.get('daemon')]));
    expect(run.meta.leftovers?.survivors).toEqual([]);
  });

  it('a 200 KiB prompt reaches the agent intact on stdin, and is not in argv', async () => {
    const dir = tempDir();
    const prompt = randomBytes(200 * 1024).toString('base64').slice(0, 200 * 1024);
    writeFileSync(join(dir, 'prompt.md'), prompt);
    const run = await agentJob(['--echo-prompt', '--result', 'success'], { promptFile: join(dir, 'prompt.md') });
    const output = readFileSync(join(run.dir, '.warden', 'runs', run.runId, 'exec.log'), 'utf8').split('\n')[0]!;
    expect(JSON.parse(output)).toMatchObject({ bytes: 200 * 1024, sha256: createHash('sha256').update(prompt).digest('hex') });
    expect(JSON.parse(output).argvBytes).toBeLessThan(1000);
    // The log holds the prompt's path and size, not the prompt.
    expect(readFileSync(run.log, 'utf8')).not.toContain(prompt.slice(0, 64));
  });

  it('closes the prompt file even when the agent never reads its stdin', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'prompt.md'), 'x'.repeat(256 * 1024)); // more than a pipe holds
    const runs = [];
    for (let i = 0; i < 3; i++) runs.push(await runJob({ dir, command: ['true'], promptFile: join(dir, 'prompt.md'), timeouts: FAST }));
    expect(runs.map((r) => r.outcome)).toEqual(['completed', 'completed', 'completed']);
    const open = readdirSync('/proc/self/fd').flatMap((fd) => {
      try {
        return [readlinkSync(`/proc/self/fd/${fd}`)];
      } catch {
        return [];
      }
    });
    // The last run's files may still be closing as runJob returns; the earlier runs' must be closed.
    const earlier = runs.slice(0, -1).map((r) => join(dir, '.warden', 'runs', r.runId));
    expect(open.filter((target) => earlier.some((runDir) => target.startsWith(runDir)))).toEqual([]);
  });

  it('without a prompt stdin is at EOF (nothing can wait on it); via file, the path is in WARDEN_PROMPT_FILE', async () => {
    const none = await agentJob(['--echo-prompt', '--result', 'success']);
    const first = (run: { dir: string; runId: string }) => readFileSync(join(run.dir, '.warden', 'runs', run.runId, 'exec.log'), 'utf8').split('\n');
    expect(JSON.parse(first(none)[0]!)).toMatchObject({ bytes: 0 });
    const dir = tempDir();
    writeFileSync(join(dir, 'task.md'), 'do the thing');
    const viaFile = await agentJob(['--result', 'success'], { promptFile: join(dir, 'task.md'), promptVia: 'file' });
    const init = JSON.parse(first(viaFile)[0]!) as { promptFile: string };
    expect(init.promptFile).toBe(join(viaFile.dir, '.warden', 'runs', viaFile.runId, 'exec.prompt'));
    expect(readFileSync(init.promptFile, 'utf8')).toBe('do the thing');
  });

  it('a prompt over 100 KiB for an argv {prompt} placeholder fails with a clear reason', async () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'prompt.md'), 'p'.repeat(101 * 1024));
    const run = await agentJob(['--say', '{prompt}'], { promptFile: join(dir, 'prompt.md') });
    expect(run.meta).toMatchObject({ outcome: 'failed' });
    expect(run.meta.reason).toBe(`spawn failed: the prompt is ${101 * 1024} bytes; a {prompt} argv placeholder takes at most 102400 (use stdin or a prompt file)`);
  });

  it('rate limits: a rejected rate_limit_event or an API 429 result defers; a message that mentions a limit does not', async () => {
    const limited = await agentJob(['--rate-limit', '--result', 'error', '--exit', '1']);
    expect(limited.outcome).toBe('deferred');
    expect(Date.parse(limited.meta.rateLimitResetsAt!)).toBeGreaterThan(Date.now());
    const api = await agentJob(['--result', 'api429', '--exit', '1']);
    expect(api.outcome).toBe('deferred');
    const mention = await agentJob(['--say', "You've hit your limit · resets 5pm", '--stderr', 'rate limit mentioned', '--result', 'success']);
    expect(mention.outcome).toBe('completed');
    expect(readLog(mention.log).records.some((r) => r.type === 'job.rateLimited')).toBe(false);
  });

  it('configured patterns match only lines that are not JSON', async () => {
    const patterns = [{ name: 'quota', regex: /quota exceeded/i }];
    const hit = await agentJob(['--stderr', 'Error: Quota exceeded for this key', '--exit', '2'], { rateLimitPatterns: patterns });
    expect(hit.outcome).toBe('deferred');
    const inJson = await agentJob(['--say', 'quota exceeded (just talking about it)', '--exit', '2'], { rateLimitPatterns: patterns });
    expect(inJson.outcome).toBe('failed');
  });

  it('spawn failures end failed with the reason, never a crash', async () => {
    const dir = tempDir();
    const missing = await runJob({ dir, command: ['warden-no-such-command'], timeouts: FAST });
    expect(missing.meta).toMatchObject({ outcome: 'failed', reason: 'spawn failed: command not found: warden-no-such-command' });
    const noCwd = await runJob({ dir, command: ['true'], cwd: join(dir, 'nope'), timeouts: FAST });
    expect(noCwd.meta.reason).toBe(`spawn failed: cwd missing: ${join(dir, 'nope')}`);
    writeFileSync(join(dir, 'not-executable'), '#!/bin/sh\n');
    const denied = await runJob({ dir, command: [join(dir, 'not-executable')], timeouts: FAST });
    expect(denied.meta.reason).toBe(`spawn failed: permission denied: ${join(dir, 'not-executable')}`);
  });

  it("the child's environment: WARDEN_JOB_ID set, Warden's own and denied variables gone, agent credentials kept", async () => {
    const dir = tempDir();
    const saved = { ...process.env };
    Object.assign(process.env, { WARDEN_LEASE_EPOCH: '9', AWS_SECRET_ACCESS_KEY: 'aws', DEPLOY_PASSWORD: 'pw', ANTHROPIC_API_KEY: 'anthropic', GITHUB_TOKEN: 'gh', PLAIN: 'plain' });
    try {
      const run = await runJob({ dir, command: ['sh', '-c', 'env | sort'], timeouts: FAST, env: { set: { EXTRA: 'added' } } });
      const env = readFileSync(join(dir, '.warden', 'runs', run.runId, 'exec.log'), 'utf8');
      expect(env).toContain(`WARDEN_JOB_ID=${run.runId}/exec\n`);
      for (const kept of ['ANTHROPIC_API_KEY=anthropic', 'GITHUB_TOKEN=gh', 'PLAIN=plain', 'EXTRA=added']) expect(env).toContain(kept);
      for (const gone of ['WARDEN_LEASE_EPOCH', 'AWS_SECRET_ACCESS_KEY', 'DEPLOY_PASSWORD']) expect(env).not.toContain(gone);
      // Nothing of the inherited environment is in the log.
      expect(readFileSync(run.log, 'utf8')).not.toContain('anthropic');
    } finally {
      process.env = saved;
    }
  });

  it('cancelling (an abort signal) terminates the job: failed, killedBy user', async () => {
    const controller = new AbortController();
    const dir = tempDir();
    const pending = runJob({ dir, command: ['node', AGENT, '--lines', '1', '--linger', 'forever'], timeouts: FAST, signal: controller.signal });
    setTimeout(() => controller.abort('stop requested'), 200);
    const run = await pending;
    expect(run.meta).toMatchObject({ outcome: 'failed', killedBy: 'user' });
    expect(run.meta.reason).toContain('cancelled: stop requested');
  });
});
