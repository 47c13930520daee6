import { execa } from 'execa';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import ts from 'typescript';
import { createInterface } from 'node:readline';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { UsageError } from '../../src/errors.js';
import {
  currentIdentity,
  isValidPid,
  judgeOwner,
  localHostname,
  probePid,
  readBootId,
  readStartTime,
} from '../../src/effects/processIdentity.js';
import { processGone } from '../helpers/processes.js';
import { useTempDirs } from '../helpers/tempDir.js';

const TITLED = join(import.meta.dirname, '../fixtures/effects/titled.mjs');
// A title whose naive space-split of /proc/<pid>/stat would shift every later field by two.
const TRICKY_TITLE = 'a) b (c';
const LEASE = { now: 0, renewedAtMs: 0, ttlMs: 30_000 };
const MALFORMED: unknown[] = [0, -1, 1.5, '12', 2 ** 31, Number.NaN, null, undefined];

const tempDir = useTempDirs();
const started: ChildProcess[] = [];
const originalHostnameEnv = process.env['WARDEN_HOSTNAME'];

afterEach(async () => {
  vi.restoreAllMocks();
  if (originalHostnameEnv === undefined) delete process.env['WARDEN_HOSTNAME'];
  else process.env['WARDEN_HOSTNAME'] = originalHostnameEnv;
  for (const child of started.splice(0)) {
    await stop(child);
    expect(processGone(child.pid!)).toBe(true);
  }
});

/** Starts the titled fixture and resolves once it has printed 'ready'. */
async function startTitled(title: string): Promise<ChildProcess & { pid: number }> {
  const child = spawn(process.execPath, [TITLED, title], { stdio: ['pipe', 'pipe', 'inherit'] });
  started.push(child);
  for await (const line of createInterface({ input: child.stdout! })) if (line === 'ready') return child as never;
  throw new Error(`fixture exited before saying ready (exit ${child.exitCode})`);
}

/** Closes the child's stdin and resolves once it has exited and been reaped. */
async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.stdin?.end();
  await exited;
}

/** The pid of a process that has already exited and been reaped by us. */
async function reapedPid(): Promise<number> {
  const child = spawn(process.execPath, ['-e', ''], { stdio: 'ignore' });
  await once(child, 'exit');
  return child.pid!;
}

/** Field 22 by another route: blank out the whole (greedy) comm, then index the 1-based field directly. */
function field22(pid: number | 'self'): string {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').replace(/\(.*\)/s, 'COMM').split(' ');
  return fields[22 - 1]!;
}

describe('readStartTime', () => {
  it('reads the same field 22 of /proc/<pid>/stat as an independent parse of /proc/self/stat', () => {
    expect(readStartTime(process.pid)).toBe(field22('self'));
    expect(readStartTime(process.pid)).toMatch(/^\d+$/);
  });

  it('parses a process whose name holds spaces and a closing parenthesis', async () => {
    const child = await startTitled(TRICKY_TITLE);
    expect(readFileSync(`/proc/${child.pid}/comm`, 'utf8')).toBe(`${TRICKY_TITLE}\n`);
    const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
    const startTime = readStartTime(child.pid);
    expect(startTime).toMatch(/^\d+$/);
    expect(startTime).toBe(field22(child.pid));
    expect(stat.split(' ')[21]).not.toBe(startTime);
    expect(BigInt(startTime!)).toBeGreaterThan(BigInt(readStartTime(process.pid)!));
  });

  it('is null for a process that has exited and for values that are not pids', async () => {
    expect(readStartTime(await reapedPid())).toBeNull();
    for (const pid of MALFORMED) expect(readStartTime(pid as number)).toBeNull();
  });
});

describe('isValidPid', () => {
  it.each([1, process.pid, 2 ** 31 - 1])('accepts %s', (value) => {
    expect(isValidPid(value)).toBe(true);
  });

  it.each(MALFORMED)('rejects %s', (value) => {
    expect(isValidPid(value)).toBe(false);
  });
});

describe('probePid', () => {
  it('finds this process alive', () => {
    expect(probePid(process.pid)).toBe('alive');
  });

  it('finds a child that exited and was reaped dead', async () => {
    expect(probePid(await reapedPid())).toBe('dead');
  });

  it('finds init alive whether or not it may be signalled', () => {
    expect(probePid(1)).toBe('alive');
  });

  // As root every signal is allowed, so drop to 'nobody' in a child that probes this root process.
  it.runIf(process.getuid?.() === 0)('finds a process it may not signal (EPERM) alive', async () => {
    const dir = tempDir();
    chmodSync(dir, 0o755);
    writeFileSync(join(dir, 'package.json'), '{"type":"module"}');
    for (const [source, target] of [['effects/processIdentity.ts', 'processIdentity.js'], ['errors.ts', 'errors.js']]) {
      const code = readFileSync(join(import.meta.dirname, '../../src', source!), 'utf8');
      const { outputText } = ts.transpileModule(code, { compilerOptions: { module: ts.ModuleKind.ES2022 } });
      writeFileSync(join(dir, target!), outputText.replace("'../errors.js'", "'./errors.js'"));
    }
    const program = `const { probePid } = await import(process.argv[1]); const pid = Number(process.argv[2]);
      try { process.kill(pid, 0); console.log('signal allowed'); } catch (e) { console.log(e.code, probePid(pid)); }`;
    const url = pathToFileURL(join(dir, 'processIdentity.js')).href;
    const child = spawn(process.execPath, ['--input-type=module', '-e', program, url, String(process.pid)], {
      uid: 65534,
      gid: 65534,
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    started.push(child);
    const lines = createInterface({ input: child.stdout! });
    const [line] = (await once(lines, 'line')) as [string];
    expect(line).toBe('EPERM alive');
  });

  it.each([0, -1, 1.5, Number.NaN, 2 ** 31, -process.pid])('throws for %s without signalling anything', (pid) => {
    const kill = vi.spyOn(process, 'kill');
    expect(() => probePid(pid)).toThrow(UsageError);
    expect(kill).not.toHaveBeenCalled();
  });
});

describe('currentIdentity', () => {
  it('describes this process and reads the hostname on every call', () => {
    const identity = currentIdentity();
    expect(identity).toEqual({
      pid: process.pid,
      pidStartTime: field22('self'),
      bootId: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
      hostname: hostname(),
    });
    expect(readBootId()).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/);
    process.env['WARDEN_HOSTNAME'] = 'warden-test-elsewhere';
    expect(currentIdentity()).toEqual({ ...identity, hostname: 'warden-test-elsewhere' });
  });
});

describe('localHostname', () => {
  it('follows WARDEN_HOSTNAME when it is set', () => {
    expect(localHostname()).toBe(hostname());
    process.env['WARDEN_HOSTNAME'] = 'warden-test-elsewhere';
    expect(localHostname()).toBe('warden-test-elsewhere');
  });

  it('refuses an empty WARDEN_HOSTNAME, naming the variable', () => {
    process.env['WARDEN_HOSTNAME'] = '';
    expect(() => localHostname()).toThrow(UsageError);
    expect(() => localHostname()).toThrow(/WARDEN_HOSTNAME/);
  });
});

describe('judgeOwner on the same host', () => {
  it('finds a live child with its recorded start time alive, then dead once it has exited', async () => {
    const child = await startTitled(TRICKY_TITLE);
    const owner = { ...currentIdentity(), pid: child.pid, pidStartTime: readStartTime(child.pid) };
    expect(judgeOwner(owner, LEASE)).toEqual({ alive: true, basis: 'pid+starttime' });
    await stop(child);
    expect(judgeOwner(owner, LEASE)).toEqual({ alive: false, reason: 'dead' });
  });

  it('finds a live pid with another start time reused', () => {
    const owner = { ...currentIdentity(), pidStartTime: String(BigInt(field22('self')) + 1n) };
    expect(judgeOwner(owner, LEASE)).toEqual({ alive: false, reason: 'pid-reused' });
  });

  it('finds an owner recorded under another boot gone, though its pid is alive', () => {
    const owner = { ...currentIdentity(), bootId: '00000000-0000-4000-8000-000000000000' };
    expect(judgeOwner(owner, LEASE)).toEqual({ alive: false, reason: 'rebooted' });
  });

  it.each([null, undefined])('rests on the pid alone when the recorded start time is %s', (pidStartTime) => {
    const owner = { ...currentIdentity(), pidStartTime };
    expect(judgeOwner(owner, LEASE)).toEqual({ alive: true, basis: 'pid-only' });
  });

  it.each(MALFORMED)('finds the malformed pid %s not alive without signalling', (pid) => {
    const kill = vi.spyOn(process, 'kill');
    expect(judgeOwner({ ...currentIdentity(), pid }, LEASE)).toEqual({ alive: false, reason: 'malformed-pid' });
    expect(kill).not.toHaveBeenCalled();
  });
});

describe('judgeOwner for another host', () => {
  const renewed = { renewedAtMs: 1_000_000, ttlMs: 30_000 };

  it.each([
    { now: 1_000_000, expected: { alive: true, basis: 'lease-ttl' } },
    { now: 1_029_999, expected: { alive: true, basis: 'lease-ttl' } },
    { now: 1_030_000, expected: { alive: false, reason: 'lease-expired' } },
    { now: 5_000_000, expected: { alive: false, reason: 'lease-expired' } },
  ])('judges by the lease alone at now=$now, never probing the pid', ({ now, expected }) => {
    const kill = vi.spyOn(process, 'kill');
    const owner = { ...currentIdentity(), hostname: 'warden-test-elsewhere' };
    expect(judgeOwner(owner, { now, ...renewed })).toEqual(expected);
    expect(kill).not.toHaveBeenCalled();
  });

  it('treats this very process as foreign once WARDEN_HOSTNAME names another host', () => {
    const owner = currentIdentity();
    expect(judgeOwner(owner, { now: 2_000_000, ...renewed })).toEqual({ alive: true, basis: 'pid+starttime' });
    process.env['WARDEN_HOSTNAME'] = 'warden-test-elsewhere';
    expect(judgeOwner(owner, { now: 2_000_000, ...renewed })).toEqual({ alive: false, reason: 'lease-expired' });
  });
});

describe('a zombie owner', () => {
  it('is judged dead although signal 0 still reaches it', async () => {
    const { isZombie, judgeOwner, readStartTime, localHostname, probePid } = await import('../../src/effects/processIdentity.js');
    // sh starts a child that exits at once, then becomes `sleep`, which never reaps it: a zombie.
    const parent = execa('sh', ['-c', 'sleep 0 & echo $!; exec sleep 30'], { reject: false });
    const zombiePid = await new Promise<number>((resolve) => parent.stdout!.once('data', (chunk: Buffer) => resolve(Number(chunk.toString().trim()))));
    for (let i = 0; i < 1_000 && !isZombie(zombiePid); i++) await new Promise((r) => setTimeout(r, 5));
    expect(isZombie(zombiePid)).toBe(true);
    expect(probePid(zombiePid)).toBe('alive');
    const owner = { pid: zombiePid, pidStartTime: readStartTime(zombiePid), hostname: localHostname() };
    expect(judgeOwner(owner, { now: 0, renewedAtMs: 0, ttlMs: 1 })).toEqual({ alive: false, reason: 'dead' });
    parent.kill('SIGKILL');
    await parent;
    expect(isZombie(parent.pid!)).toBe(false);
  });
});
