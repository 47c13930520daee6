/**
 * Warden's state files (the event log, its commit mark, the config) are opened one way
 * everywhere: a symlink, directory or FIFO there is refused with one line naming the file and
 * exit 2 — never followed, never blocked on, never quoted.
 */
import { chmodSync, copyFileSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { warden } from '../helpers/cli.js';
import { processesWithEnv } from '../helpers/processes.js';
import { writeProject } from '../helpers/queueProject.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();
const GOLDEN = join(import.meta.dirname, '../fixtures/logs/demo-answered.jsonl');
// A FIFO must be refused at once: a generous deadline, far below a hang.
const DEADLINE_MS = 30_000;

/** A project with one job and whatever `place` puts at .warden/events.jsonl. */
function project(place: (log: string, dir: string) => void): { dir: string; log: string } {
  const dir = tempDir();
  writeProject(dir, [{ slug: 'only' }]);
  const log = join(dir, '.warden', 'events.jsonl');
  place(log, dir);
  return { dir, log };
}

/** Every command that reads the log: exit 2, one line naming the log and saying what it is. */
async function expectRefusedEverywhere(dir: string, log: string, what: RegExp): Promise<void> {
  for (const args of [
    ['status', '--dir', dir],
    ['replay', '--dir', dir],
    ['log', log],
    ['log', '--follow', log],
    ['run', '--dir', dir, '--once'],
  ]) {
    const result = await warden(args, { timeout: DEADLINE_MS, env: { WARDEN_TEST_TAG: dir } });
    expect(result.code, `${args[0]}: ${result.stderr}`).toBe(2);
    const lines = result.stderr.trimEnd().split('\n');
    expect(lines, args[0]).toHaveLength(1);
    expect(lines[0]).toContain('events.jsonl');
    expect(lines[0]).toMatch(what);
    expect(lines[0]).not.toMatch(/internal error|EISDIR|ELOOP/);
  }
  expect(processesWithEnv('WARDEN_TEST_TAG', dir)).toEqual([]);
}

describe('state files that are not regular files', () => {
  it('a FIFO at events.jsonl: status, replay, log and run refuse it at once instead of hanging in open()', async () => {
    const { dir, log } = project((path) => {
      mkdirSync(join(path, '..'), { recursive: true });
      expect(spawnSync('mkfifo', [path]).status).toBe(0);
    });
    await expectRefusedEverywhere(dir, log, /(is a FIFO, not a regular file|not a regular file \(a FIFO\))/);
  }, 4 * DEADLINE_MS);

  it('a directory at events.jsonl is named, not an internal EISDIR', async () => {
    const { dir, log } = project((path) => mkdirSync(path, { recursive: true }));
    await expectRefusedEverywhere(dir, log, /is a directory, (not a regular file|expected a file)/);
  }, 60_000);

  it('a symlinked log is refused by every command alike, and a foreign file behind it is never quoted', async () => {
    const { dir, log } = project((path, d) => {
      copyFileSync(GOLDEN, join(d, 'elsewhere.jsonl'));
      symlinkSync(join(d, 'elsewhere.jsonl'), path);
    });
    await expectRefusedEverywhere(dir, log, /is a symbolic link/);
    const foreign = project((path) => symlinkSync('/etc/passwd', path));
    await expectRefusedEverywhere(foreign.dir, foreign.log, /is a symbolic link/);
    const status = await warden(['status', '--dir', foreign.dir]);
    expect(status.stderr).not.toContain('root:');
  }, 60_000);

  it('a symlinked commit mark is refused too, naming the mark', async () => {
    const { dir } = project((path, d) => {
      copyFileSync(GOLDEN, path);
      writeFileSync(join(d, 'm'), '');
      symlinkSync(join(d, 'm'), `${path}.mark`);
    });
    const result = await warden(['status', '--dir', dir]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/events\.jsonl\.mark: is a symbolic link/);
  });
});

describe('the config file', () => {
  it('a config symlinked to a foreign file is refused without quoting its bytes', async () => {
    const dir = tempDir();
    writeProject(dir, [{ slug: 'only' }]);
    const config = join(dir, '.warden', 'config.json');
    const { rmSync } = await import('node:fs');
    rmSync(config);
    symlinkSync('/etc/passwd', config);
    const result = await warden(['run', '--dir', dir, '--once']);
    expect(result.code).toBe(2);
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/config\.json: is a symbolic link/);
    expect(result.stderr).not.toContain('root:');
  });

  it('a 10 MB config is refused with its size and the limit', async () => {
    const dir = tempDir();
    writeProject(dir, [{ slug: 'only' }]);
    // Valid JSON and a valid config, but for 10 MB of trailing blanks.
    writeFileSync(join(dir, '.warden', 'config.json'), `{"concurrencyCap":1}${' '.repeat(10 * 1024 * 1024)}`);
    const result = await warden(['run', '--dir', dir, '--once']);
    expect(result.code).toBe(2);
    expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
    expect(result.stderr).toMatch(/config\.json: is 10485\d+ bytes, over the 256 KiB limit for a config file/);
  });
});

/** A project dir of root's that others may enter but not write (as a shared checkout is). */
function tempDirFor(): string {
  const dir = tempDir();
  mkdirSync(join(dir, '.warden'), { mode: 0o755 });
  chmodSync(dir, 0o755);
  return dir;
}

describe('another uid', () => {
  // Root reads any file, so the refusal is shown by running the CLI as `nobody` (runuser, which this machine has).
  const runuser = spawnSync('runuser', ['-u', 'nobody', '--', 'true']).status === 0;

  it('status, replay and run as a user who may not read the project name the file and exit 2, not an internal EACCES', async () => {
    expect(runuser).toBe(true);
    // lease run meets the same wall first: the lease files of a project it may not write.
    const lease = spawnSync('runuser', ['-u', 'nobody', '--', process.execPath, (await import('../helpers/cli.js')).CLI, 'lease', 'run', '--dir', tempDirFor(), '--', 'true'], { encoding: 'utf8', timeout: DEADLINE_MS });
    expect(lease.status, lease.stderr).toBe(2);
    expect(lease.stderr).toMatch(/permission denied \(EACCES\)/);
    const { dir, log } = project((path) => copyFileSync(GOLDEN, path));
    chmodSync(dir, 0o755);
    chmodSync(join(dir, '.warden'), 0o755);
    chmodSync(log, 0o600);
    const { CLI } = await import('../helpers/cli.js');
    for (const args of [['status', '--dir', dir], ['replay', '--dir', dir], ['run', '--dir', dir, '--once']]) {
      const result = spawnSync('runuser', ['-u', 'nobody', '--', process.execPath, CLI, ...args], { encoding: 'utf8', timeout: DEADLINE_MS });
      expect(result.status, `${args[0]}: ${result.stderr}`).toBe(2);
      expect(result.stderr.trimEnd().split('\n')).toHaveLength(1);
      // run takes the lease before it reads the log: its epoch file is the first it may not open.
      expect(result.stderr).toMatch(args[0] === 'run' ? /\.warden\/\S+: permission denied/ : /events\.jsonl: permission denied/);
      expect(result.stderr).not.toContain('internal error');
    }
  }, 60_000);
});
