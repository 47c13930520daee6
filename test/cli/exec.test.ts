import { randomUUID } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { readLog } from '../../src/store/logReader.js';
import { CLI, warden } from '../helpers/cli.js';
import { killTagged, until } from '../helpers/holds.js';
import { exited, processesWithEnv } from '../helpers/processes.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();
const AGENT = join(import.meta.dirname, '../fixtures/agent/fake-agent.mjs');
const FAST = ['--grace', '300ms', '--kill-after', '300', '--idle', '5s'];

const lastJson = (stdout: string) => JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>;

describe('warden exec', () => {
  it('passes the output through, exits 0 on completion, and prints the meta record last with --json', async () => {
    const dir = tempDir();
    const result = await warden(['exec', '--dir', dir, ...FAST, '--json', '--', 'node', AGENT, '--lines', '2', '--result', 'success']);
    expect(result.code).toBe(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines.filter((l) => l.includes('"assistant"'))).toHaveLength(2);
    const meta = lastJson(result.stdout);
    expect(meta).toMatchObject({ outcome: 'completed', exitCode: 0, resultSubtype: 'success', slug: 'exec', cwd: dir });
    // Its own log, under .warden/exec/, and the meta file beside the output log.
    const [log] = readdirSync(join(dir, '.warden', 'exec'));
    expect(log).toMatch(/\.jsonl$/);
    const runId = log!.replace(/\.jsonl$/, '');
    expect(JSON.parse(readFileSync(join(dir, '.warden', 'runs', runId, 'exec.meta.json'), 'utf8'))).toEqual(meta);
    expect(await warden(['replay', join(dir, '.warden', 'exec', log!), '--verify'])).toMatchObject({ code: 0 });
  });

  it('exit codes: 1 failed, 75 deferred, 0 for a kill mapped after a successful result', async () => {
    const dir = tempDir();
    expect((await warden(['exec', '--dir', dir, ...FAST, '--', 'node', AGENT, '--exit', '3'])).code).toBe(1);
    const deferred = await warden(['exec', '--dir', dir, ...FAST, '--', 'node', AGENT, '--rate-limit', '--result', 'error', '--exit', '1']);
    expect(deferred.code).toBe(75);
    expect(deferred.stderr).toMatch(/^warden: job deferred: rate limited \(rate_limit_event\) until \S+ \(log: /);
    const mapped = await warden(['exec', '--dir', dir, ...FAST, '--json', '--', 'node', AGENT, '--result', 'success', '--linger', 'forever']);
    expect(mapped.code).toBe(0);
    expect(lastJson(mapped.stdout)).toMatchObject({ mappedFromSignal: true, killedBy: 'postResult', signal: 'SIGTERM' });
  });

  it('--prompt-file reaches the agent on stdin', async () => {
    const dir = tempDir();
    const prompt = join(dir, 'task.md');
    await execa('sh', ['-c', `printf 'fix the login bug' > ${prompt}`]);
    const result = await warden(['exec', '--dir', dir, ...FAST, '--prompt-file', prompt, '--', 'node', AGENT, '--echo-prompt']);
    expect(JSON.parse(result.stdout.split('\n')[0]!)).toMatchObject({ bytes: 17 });
  });

  it('SIGTERM to warden exec cancels the job: the whole tree dies, exit 1', async () => {
    const dir = tempDir();
    const pids = join(dir, 'pids.txt');
    const child = execa('node', [CLI, 'exec', '--dir', dir, ...FAST, '--json', '--', 'node', AGENT, '--lines', '1', '--grandchild', '--setsid', '--linger', 'forever', '--pids', pids], { reject: false });
    await new Promise<void>((resolve) => child.stdout!.on('data', (d: Buffer) => d.toString().includes('"assistant"') && resolve()));
    child.kill('SIGTERM');
    const result = await child;
    expect(result.exitCode).toBe(1);
    expect(lastJson(String(result.stdout))).toMatchObject({ outcome: 'failed', killedBy: 'user' });
    const started = readFileSync(pids, 'utf8').trim().split('\n').map((l) => Number(l.split(' ')[1]));
    expect(started).toHaveLength(3);
    expect(started.filter((pid) => !exited(pid))).toEqual([]);
    expect(processesWithEnv('WARDEN_JOB_ID', String(lastJson(String(result.stdout)).jobId))).toEqual([]);
  });

  describe('SIGKILL of warden exec', () => {
    /**
     * A fake agent with a child in its group, one in a session of its own and a double-forked
     * daemon, all tagged by the test; once all four have started, warden exec is SIGKILLed.
     */
    async function killedExec(dir: string) {
      const tag = randomUUID();
      const pids = join(dir, 'pids.txt');
      const child = execa('node', [CLI, 'exec', '--dir', dir, ...FAST, '--', 'node', AGENT, '--lines', '1', '--grandchild', '--setsid', '--daemon', '--linger', 'forever', '--pids', pids], {
        reject: false,
        env: { EXEC_TEST_TAG: tag },
        // Not read: the agent's children keep warden's pipes open after it dies.
        stdio: 'ignore',
      });
      await until(() => existsSync(pids) && readFileSync(pids, 'utf8').trim().split('\n').length === 4, 'the agent and its three children');
      const started = Object.fromEntries(readFileSync(pids, 'utf8').trim().split('\n').map((l) => [l.split(' ')[0]!, Number(l.split(' ')[1])]));
      child.kill('SIGKILL');
      await child;
      const log = join(dir, '.warden', 'exec', readdirSync(join(dir, '.warden', 'exec')).find((n) => n.endsWith('.jsonl'))!);
      return { tag, started, log };
    }

    const jobState = (log: string) => readLog(log).records.filter((r) => r.actor === 'job:exec' && r.state !== undefined).at(-1)!.state;

    it('the agent dies with it; its children stay until a cleaner comes, and doctor reports them', async () => {
      const dir = tempDir();
      const { tag, started, log } = await killedExec(dir);
      try {
        await until(() => exited(started['agent']!), 'the agent to die of the parent-death signal');
        const left = processesWithEnv('EXEC_TEST_TAG', tag);
        expect(left.sort()).toEqual([started['grandchild'], started['setsid'], started['daemon']].sort());
        const report = await warden(['doctor', dir, '--dir', dir, '--json']);
        expect(report.code).toBe(1);
        const json = JSON.parse(report.stdout) as { findings: Array<{ kind: string; message: string }>; execs: Array<{ jobs: Array<{ state: string; leftovers: number[] }> }> };
        expect(json.findings.filter((f) => f.kind === 'dead-exec')).toHaveLength(1);
        expect(json.execs[0]!.jobs[0]).toMatchObject({ state: 'alive.running', leftovers: expect.arrayContaining(left) });
        // Reporting changes nothing.
        expect(processesWithEnv('EXEC_TEST_TAG', tag).sort()).toEqual(left.sort());
        expect(jobState(log)).toEqual({ alive: 'running' });
      } finally {
        await killTagged('EXEC_TEST_TAG', tag);
      }
    });

    it.each([
      ['warden doctor --fix', (dir: string) => ['doctor', dir, '--dir', dir, '--fix']],
      ['the next warden exec in the dir', (dir: string) => ['exec', '--dir', dir, '--', 'true']],
      ['the next warden run in the dir', (dir: string) => ['run', '--dir', dir, '--once']],
    ])('%s kills what it left, by the log, and ends the log: the job interrupted', async (_who, cleaner) => {
      const dir = tempDir();
      const { tag, log } = await killedExec(dir);
      try {
        expect(processesWithEnv('EXEC_TEST_TAG', tag).length).toBeGreaterThan(0);
        const cleaned = await warden(cleaner(dir));
        expect(cleaned.code).toBe(0);
        expect(cleaned.stdout + cleaned.stderr).toMatch(/dead exec \(pid \d+\)/);
        expect(processesWithEnv('EXEC_TEST_TAG', tag)).toEqual([]);
        expect(jobState(log)).toBe('interrupted');
        const records = readLog(log).records;
        expect(records.at(-1)).toMatchObject({ type: 'run.stopped' });
        expect(records.find((r) => r.type === 'job.interrupt')?.data).toMatchObject({ reason: expect.stringMatching(/^warden exec \(pid \d+\) died; recovered by warden /) });
        expect((await warden(['replay', log, '--verify'])).code).toBe(0);
        // Once ended, the log is left alone.
        const again = await warden(['doctor', dir, '--dir', dir]);
        expect(again.stdout).not.toContain('dead exec');
      } finally {
        await killTagged('EXEC_TEST_TAG', tag);
      }
    });

    it('a live exec is never taken for a dead one', async () => {
      const dir = tempDir();
      const tag = randomUUID();
      const pids = join(dir, 'pids.txt');
      const child = execa('node', [CLI, 'exec', '--dir', dir, ...FAST, '--', 'node', AGENT, '--lines', '1', '--grandchild', '--linger', 'forever', '--pids', pids], { reject: false, env: { EXEC_TEST_TAG: tag } });
      try {
        await until(() => existsSync(pids) && readFileSync(pids, 'utf8').trim().split('\n').length === 2, 'the agent and its child');
        const report = await warden(['doctor', dir, '--dir', dir, '--fix']);
        expect(report.stdout).not.toContain('dead exec');
        const agentTree = readFileSync(pids, 'utf8').trim().split('\n').map((l) => Number(l.split(' ')[1]));
        // The agent and its child, and warden exec itself (it carries the tag too).
        expect(processesWithEnv('EXEC_TEST_TAG', tag).sort()).toEqual([...agentTree, child.pid!].sort());
        child.kill('SIGTERM');
        expect((await child).exitCode).toBe(1);
        expect(processesWithEnv('EXEC_TEST_TAG', tag)).toEqual([]);
      } finally {
        await killTagged('EXEC_TEST_TAG', tag);
      }
    });
  });

  it('takes timeouts, environment and rate-limit patterns from the project config; flags win', async () => {
    const dir = tempDir();
    mkdirSync(join(dir, '.warden'));
    writeFileSync(
      join(dir, '.warden', 'config.json'),
      JSON.stringify({ timeouts: { idleOutputMs: 300, postResultGraceMs: 300, killAfterMs: 300 }, env: { set: { FROM_CONFIG: 'yes' } }, rateLimitPatterns: [{ name: 'quota', regex: 'quota exceeded' }] }),
    );
    const idle = await warden(['exec', '--dir', dir, '--json', '--', 'node', AGENT, '--lines', '1', '--linger', 'forever']);
    expect(lastJson(idle.stdout)).toMatchObject({ killedBy: 'idle' });
    const flagWins = await warden(['exec', '--dir', dir, '--idle', '1h', '--max-duration', '500', '--json', '--', 'node', AGENT, '--lines', '1', '--linger', 'forever']);
    expect(lastJson(flagWins.stdout)).toMatchObject({ killedBy: 'maxDuration' });
    const env = await warden(['exec', '--dir', dir, '--', 'sh', '-c', 'echo "$FROM_CONFIG"']);
    expect(env.stdout).toBe('yes');
    expect((await warden(['exec', '--dir', dir, '--', 'sh', '-c', 'echo "quota exceeded" >&2; exit 1'])).code).toBe(75);
    writeFileSync(join(dir, '.warden', 'config.json'), JSON.stringify({ rateLimitPatterns: [{ name: 'bad', regex: '(' }] }));
    expect(await warden(['exec', '--dir', dir, '--', 'true'])).toMatchObject({ code: 2, stderr: `warden: ${join(dir, '.warden', 'config.json')}: rateLimitPatterns.0.regex: not a valid regular expression` });
  });

  it('bad input: one line, exit 2', async () => {
    const dir = tempDir();
    for (const [args, message] of [
      [['exec', '--idle', '20x', '--', 'true'], '--idle: expected milliseconds or a duration like 90s, 20m, 2h; got "20x"'],
      [['exec', '--max-duration', '0', '--', 'true'], '--max-duration: expected milliseconds or a duration like 90s, 20m, 2h; got "0"'],
      [['exec', 'true'], 'exec: unexpected argument "true": the command to run goes after -- (warden exec [options] -- CMD…)'],
      [['exec'], 'exec: no command given (warden exec [options] -- CMD…)'],
      [['exec', '--prompt-file', join(dir, 'missing.md'), '--', 'true'], `exec: --prompt-file ${join(dir, 'missing.md')}: no such file`],
      [['exec', '--prompt-via', 'carrier-pigeon', '--', 'true'], '--prompt-via: expected stdin, file or argv, got "carrier-pigeon"'],
      [['exec', '--slug', 'Bad Slug', '--', 'true'], 'slug "Bad Slug": expected lowercase letters, digits, ".", "_" or "-", starting with a letter or digit, and no ".."'],
    ] as const) {
      expect(await warden([...args], { cwd: dir }), args.join(' ')).toMatchObject({ code: 2, stderr: `warden: ${message}` });
    }
    // Nothing was started, so nothing was made.
    expect(existsSync(join(dir, '.warden'))).toBe(false);
  });
});
