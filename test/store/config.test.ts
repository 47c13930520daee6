import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { UsageError } from '../../src/errors.js';
import { configSchema } from '../../src/store/config.js';
import { CONFIG_DEFAULTS, DEFAULT_AGENT_COMMAND, concurrencyCapOf, loadConfig } from '../../src/store/configFile.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();

/** A project dir whose .warden/config.json holds `json`. */
function projectWith(json: unknown): string {
  const dir = tempDir();
  mkdirSync(join(dir, '.warden'));
  writeFileSync(join(dir, '.warden', 'config.json'), JSON.stringify(json));
  return dir;
}

async function loadProblem(json: unknown): Promise<string> {
  const dir = projectWith(json);
  const error = await loadConfig(dir).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(UsageError);
  return (error as UsageError).message.slice(join(dir, '.warden', 'config.json').length + 2);
}

describe('the project config', () => {
  it('reads every key it knows', async () => {
    const config = {
      concurrencyCap: 2,
      agent: { command: ['node', 'agent.mjs'] },
      jobsDir: 'queue',
      requeueInterrupted: 0,
      blockedProbeMs: 500,
      timeouts: { maxDurationMs: 1000, idleOutputMs: 500 },
      env: { deny: ['*_TOKEN'], allow: ['GH_TOKEN'], set: { A: 'b' } },
      rateLimitPatterns: [{ name: 'quota', regex: 'quota exceeded' }],
      tmux: { socket: 'w' },
      doctor: { skipDirs: ['.git'] },
    };
    expect(await loadConfig(projectWith(config))).toEqual(config);
  });

  it('an unknown key, top-level or nested, is an error naming it', async () => {
    expect(await loadProblem({ concurrencyCap: 2, concurency: 3 })).toBe('(root): Unrecognized key: "concurency"');
    expect(await loadProblem({ agent: { command: ['x'], args: [] } })).toBe('agent: Unrecognized key: "args"');
    expect(await loadProblem({ timeouts: { idleMs: 5 } })).toBe('timeouts: Unrecognized key: "idleMs"');
  });

  it.each([
    [{ concurrencyCap: 0 }, /^concurrencyCap: /],
    [{ concurrencyCap: 21 }, /^concurrencyCap: /],
    [{ concurrencyCap: 2.5 }, /^concurrencyCap: /],
    [{ agent: { command: [] } }, /^agent\.command: /],
    [{ agent: {} }, /^agent\.command: /],
    [{ agent: { command: 'claude -p' } }, /^agent\.command: /],
    [{ jobsDir: '' }, /^jobsDir: /],
    [{ requeueInterrupted: -1 }, /^requeueInterrupted: /],
    [{ blockedProbeMs: 0 }, /^blockedProbeMs: /],
    [{ blockedProbeMs: '2s' }, /^blockedProbeMs: /],
  ])('a wrong type or value is an error naming the key: %j', async (json, message) => {
    expect(await loadProblem(json)).toMatch(message);
  });

  it('no file is the empty config; the defaults are one object', async () => {
    expect(await loadConfig(tempDir())).toEqual({});
    expect(CONFIG_DEFAULTS).toEqual({
      concurrencyCap: 4,
      agent: { command: ['claude', '-p', '--output-format', 'stream-json', '--verbose'] },
      jobsDir: '.warden/jobs',
      requeueInterrupted: 1,
      blockedProbeMs: 2000,
      workerLockGraceMs: 10_000,
      firePolicy: 'immediate',
      utilizationThreshold: 90,
      offsetMinutes: 15,
      rateLimitMarginMs: 60_000,
      rateLimitPauseMs: 15 * 60_000,
      rateLimitMaxDeferrals: 5,
      resumeSuppressMs: 10 * 60_000,
      meter: { intervalMs: 60_000, timeoutMs: 10_000, on429: 'transient', backoff: { initialMs: 30_000, factor: 2, maxMs: 480_000 }, networkPauseAfterMs: 30 * 60_000 },
    });
    expect(DEFAULT_AGENT_COMMAND).toBe(CONFIG_DEFAULTS.agent.command);
    expect(Object.isFrozen(DEFAULT_AGENT_COMMAND)).toBe(true);
  });

  it.each([
    [{ concurrencyCap: 1e300 }, 'concurrencyCap: expected an integer from 1 to 20, got 1e+300'],
    [{ concurrencyCap: 21 }, 'concurrencyCap: expected an integer from 1 to 20, got 21'],
    [{ requeueInterrupted: 1e20 }, 'requeueInterrupted: expected an integer from 0 to 100, got 100000000000000000000'],
    [{ blockedProbeMs: 2 ** 53 }, 'blockedProbeMs: expected an integer from 1 to 3600000 ms (1 h), got 9007199254740992'],
    [{ rateLimitPauseMs: 2 ** 31 }, 'rateLimitPauseMs: expected an integer from 1 to 604800000 ms (7 d), got 2147483648'],
    [{ timeouts: { maxDurationMs: 600 * 3_600_000 } }, 'timeouts.maxDurationMs: expected an integer from 1 to 2073600000 ms (24 d), got 2160000000'],
    [{ meter: { command: ['m'], backoff: { initialMs: 1, factor: 1e9, maxMs: 2 } } }, 'meter.backoff.factor: expected a number from 1 to 10, got 1000000000'],
    [{ retries: { max: 1e300 } }, 'retries.max: expected an integer from 0 to 100, got 1e+300'],
    [{ supervisor: { command: ['p'], maxConcurrentProbes: 1e300 } }, 'supervisor.maxConcurrentProbes: expected an integer from 1 to 20, got 1e+300'],
    [{ offsetMinutes: 1e300 }, 'offsetMinutes: expected a number from 0 to 1440, got 1e+300'],
  ])('a number past its bound is an error naming the key and the bound: %j', async (json, message) => {
    expect(await loadProblem(json)).toBe(message);
  });

  it('every number in the config schema has a bound below 2^31 (the JSON Schema says so too)', () => {
    const numbers: string[] = [];
    const walk = (node: Record<string, unknown>, path: string) => {
      if (node.type === 'number' || node.type === 'integer') {
        numbers.push(path);
        expect(node.maximum, path).toBeLessThan(2 ** 31);
      }
      for (const [key, sub] of Object.entries((node.properties ?? {}) as Record<string, Record<string, unknown>>)) walk(sub, `${path}${path ? '.' : ''}${key}`);
      for (const sub of (node.anyOf ?? []) as Array<Record<string, unknown>>) walk(sub, path);
      if (node.items) walk(node.items as Record<string, unknown>, `${path}[]`);
    };
    walk(z.toJSONSchema(configSchema, { io: 'input' }) as Record<string, unknown>, '');
    expect(numbers).toContain('concurrencyCap');
    expect(numbers).toContain('meter.backoff.factor');
  });

  it.each([
    ['../../../etc', 'jobsDir: "../../../etc" leads out of the project dir; the jobs dir must be inside it'],
    ['jobs/../../x', 'jobsDir: "jobs/../../x" leads out of the project dir; the jobs dir must be inside it'],
    ['..', 'jobsDir: ".." leads out of the project dir; the jobs dir must be inside it'],
    ['/etc', 'jobsDir: "/etc" is an absolute path; give a path relative to the project dir, inside it'],
  ])('jobsDir %j outside the project dir is refused', async (jobsDir, message) => {
    expect(await loadProblem({ jobsDir })).toBe(message);
  });

  it.each(['queue', 'a/b/../jobs', './jobs', '.warden/jobs', '..jobs'])('jobsDir %j inside the project dir is accepted', (jobsDir) => {
    expect(configSchema.safeParse({ jobsDir }).success).toBe(true);
  });

  it('accepts a $schema key, for editors', () => {
    expect(configSchema.safeParse({ $schema: '../node_modules/warden/docs/config.schema.json' }).success).toBe(true);
  });
});

describe('concurrencyCapOf', () => {
  it('the config, else 4, when WARDEN_MAX_CONCURRENCY is not set', () => {
    expect(concurrencyCapOf({}, {})).toBe(4);
    expect(concurrencyCapOf({ concurrencyCap: 7 }, {})).toBe(7);
  });

  it.each([
    ['3', 3],
    [' 12\n', 12],
    ['0', 1],
    ['-4', 1],
    ['20', 20],
    ['50', 20],
    ['99999999999999999999999', 20],
  ])('WARDEN_MAX_CONCURRENCY=%j overrides the config, clamped to 1..20: %i', (value, cap) => {
    expect(concurrencyCapOf({ concurrencyCap: 7 }, { WARDEN_MAX_CONCURRENCY: value })).toBe(cap);
  });

  it.each(['', '  ', 'abc', '2.5', '3x', '-', '1e3', '0x10', '+'])('WARDEN_MAX_CONCURRENCY=%j is a usage error naming the variable and the value', (value) => {
    let error: unknown;
    try {
      concurrencyCapOf({ concurrencyCap: 7 }, { WARDEN_MAX_CONCURRENCY: value });
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(UsageError);
    const message = (error as UsageError).message;
    expect(message).toBe(`WARDEN_MAX_CONCURRENCY: expected an integer (clamped to 1..20), got ${JSON.stringify(value)}`);
    expect(message).not.toContain('\n');
  });

  it('reads process.env by default', () => {
    const saved = process.env.WARDEN_MAX_CONCURRENCY;
    try {
      process.env.WARDEN_MAX_CONCURRENCY = '2';
      expect(concurrencyCapOf({ concurrencyCap: 7 })).toBe(2);
    } finally {
      if (saved === undefined) delete process.env.WARDEN_MAX_CONCURRENCY;
      else process.env.WARDEN_MAX_CONCURRENCY = saved;
    }
  });
});
