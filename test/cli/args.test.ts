import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { COMMANDS, type CommandName } from '../../src/cli/commandTable.js';
import { editDistance } from '../../src/cli/parse.js';
import { CLI, warden } from '../helpers/cli.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();

/** A project dir with the bad paths a user may type: missing, a file, a directory, a FIFO. */
function scene() {
  const root = tempDir();
  const paths = {
    root,
    missing: join(root, 'missing'),
    file: join(root, 'file.txt'),
    dir: join(root, 'dir'),
    fifo: join(root, 'fifo'),
    worker: join(root, 'worker'),
  };
  writeFileSync(paths.file, 'x\n');
  mkdirSync(paths.dir);
  mkdirSync(paths.worker);
  execFileSync('mkfifo', [paths.fifo]);
  return paths;
}
type Scene = ReturnType<typeof scene>;

/** Exit 2, one line on stderr naming the path and what is wrong, nothing on stdout, nothing created. */
async function expectRejected(s: Scene, args: string[], path: string, why: RegExp) {
  // A FIFO opened blocking would hang the command: the timeout makes that a failure, not a hang.
  const result = await warden(args, { cwd: s.root, timeout: 30_000 });
  expect(result, args.join(' ')).toMatchObject({ code: 2, stdout: '' });
  expect(result.stderr.split('\n'), args.join(' ')).toHaveLength(1);
  expect(result.stderr, args.join(' ')).toContain(path);
  expect(result.stderr, args.join(' ')).toMatch(why);
  expect(result.stderr).not.toContain('internal error');
  expect(existsSync(s.missing), `${args.join(' ')} created ${s.missing}`).toBe(false);
  expect(existsSync(join(s.root, '.warden')), `${args.join(' ')} created .warden in the cwd`).toBe(false);
}

const NO_DIR = /no such directory/;
const NOT_DIR = /not a directory/;

/** Every command with each directory argument it takes; `D` is where the bad path goes. */
const DIR_ARGS: ((s: Scene, d: string) => string[])[] = [
  (_, d) => ['run', '--once', '--dir', d],
  (s, d) => ['run', '--once', '--dir', s.root, '--jobs', d],
  (_, d) => ['status', '--dir', d],
  (_, d) => ['pause', '--dir', d],
  (_, d) => ['resume', '--dir', d],
  (_, d) => ['kick', '--dir', d],
  (_, d) => ['log', '--dir', d],
  (_, d) => ['replay', '--dir', d],
  (_, d) => ['exec', '--dir', d, '--', 'true'],
  (_, d) => ['exec', '--cwd', d, '--', 'true'],
  (_, d) => ['lease', 'run', '--dir', d, '--', 'true'],
  (_, d) => ['lease', 'status', '--dir', d],
  (_, d) => ['lock', 'acquire', d],
  (s, d) => ['lock', 'acquire', s.worker, '--dir', d],
  (_, d) => ['lock', 'release', d],
  (_, d) => ['lock', 'status', d],
  (_, d) => ['lock', 'check', d],
  (_, d) => ['lock', 'run', d, '--', 'true'],
  (s, d) => ['lock', 'run', s.worker, '--dir', d, '--', 'true'],
  (_, d) => ['doctor', d],
  (_, d) => ['doctor', '--dir', d],
];

/** Every file argument; a directory, a FIFO or a missing file in its place. */
const FILE_ARGS: ((s: Scene, f: string) => string[])[] = [
  (_, f) => ['exec', '--prompt-file', f, '--', 'true'],
  (_, f) => ['log', f],
  (_, f) => ['replay', f],
  (_, f) => ['replay', '--machines', f, '--dir', '.'],
  (_, f) => ['log', '--machines', f, '--dir', '.'],
];

describe('paths on the command line', () => {
  it('a directory that does not exist is exit 2 naming it, for every command; nothing is created', async () => {
    const s = scene();
    for (const args of DIR_ARGS) await expectRejected(s, args(s, s.missing), s.missing, NO_DIR);
  }, 180_000);

  it('a file where a directory is expected is exit 2 naming it', async () => {
    const s = scene();
    for (const args of DIR_ARGS) await expectRejected(s, args(s, s.file), s.file, NOT_DIR);
  }, 180_000);

  it('a directory, a FIFO (without hanging) or a missing file where a file is expected is exit 2 naming it', async () => {
    const s = scene();
    for (const args of FILE_ARGS) {
      await expectRejected(s, args(s, s.dir), s.dir, /is a directory, expected a file/);
      await expectRejected(s, args(s, s.fifo), s.fifo, /not a regular file \(a FIFO\)/);
    }
    for (const args of FILE_ARGS.filter((a) => a(s, 'F')[1] !== 'F')) await expectRejected(s, args(s, s.missing), s.missing, /no such file/);
    // `log FILE` waits for a missing file only with --follow; `replay FILE` needs it.
    await expectRejected(s, ['replay', s.missing], s.missing, /no such file/);
  }, 180_000);

  it('an unreadable prompt file is exit 2 naming it (run as nobody: root reads anything)', async () => {
    const s = scene();
    chmodSync(s.root, 0o755);
    const secret = join(s.root, 'secret.md');
    writeFileSync(secret, 'prompt', { mode: 0o600 });
    const { execa } = await import('execa');
    const result = await execa('setpriv', ['--reuid', '65534', '--regid', '65534', '--clear-groups', 'node', CLI, 'exec', '--dir', s.root, '--prompt-file', secret, '--', 'true'], {
      reject: false,
      cwd: s.root,
      timeout: 30_000,
    });
    expect({ code: result.exitCode, stderr: result.stderr }).toEqual({ code: 2, stderr: `warden: exec: --prompt-file ${secret}: permission denied` });
  });

  it('what a command reads inside the dirs it is given: a FIFO there does not hang it, a directory or a file in the wrong place is exit 2 naming it', async () => {
    const s = scene();
    const project = (name: string) => {
      mkdirSync(join(s.root, name));
      return join(s.root, name);
    };
    const fifoLog = project('fifo-log');
    mkdirSync(join(fifoLog, '.warden'));
    execFileSync('mkfifo', [join(fifoLog, '.warden', 'events.jsonl')]);
    for (const command of [['status'], ['log'], ['replay'], ['run', '--once'], ['pause'], ['lease', 'status']]) {
      await expectRejected(s, [...command, '--dir', fifoLog], join(fifoLog, '.warden', 'events.jsonl'), /not a regular file \(a FIFO\)/);
    }
    const dirLog = project('dir-log');
    mkdirSync(join(dirLog, '.warden', 'events.jsonl'), { recursive: true });
    await expectRejected(s, ['status', '--dir', dirLog], join(dirLog, '.warden', 'events.jsonl'), /is a directory, expected a file/);
    const fileWarden = project('file-warden');
    writeFileSync(join(fileWarden, '.warden'), '');
    await expectRejected(s, ['status', '--dir', fileWarden], join(fileWarden, '.warden'), NOT_DIR);
    const dirConfig = project('dir-config');
    mkdirSync(join(dirConfig, '.warden', 'config.json'), { recursive: true });
    await expectRejected(s, ['exec', '--dir', dirConfig, '--', 'true'], join(dirConfig, '.warden', 'config.json'), /is a directory, expected a file/);
    const flocked = project('flocked');
    mkdirSync(join(flocked, '.runtime', 'agent.lock.flock'), { recursive: true });
    await expectRejected(s, ['lock', 'acquire', flocked], join(flocked, '.runtime', 'agent.lock.flock'), /is a directory, expected a file/);
    writeFileSync(join(s.worker, '.runtime'), '');
    await expectRejected(s, ['lock', 'acquire', s.worker], join(s.worker, '.runtime'), NOT_DIR);
  }, 180_000);
});

describe('parse errors are our own, one line, exit 2', () => {
  it.each([
    [['status', '--jsn'], 'warden: unknown option --jsn for warden status (did you mean --json?)'],
    [['exec', '--max-duraton', '1s', '--', 'true'], 'warden: unknown option --max-duraton for warden exec (did you mean --max-duration?)'],
    [['lock', 'acquire', 'W', '--sesion', 's'], 'warden: unknown option --sesion for warden lock acquire (did you mean --session?)'],
    [['run', '--frobnicate'], 'warden: unknown option --frobnicate for warden run (see warden run --help)'],
    [['status', '-x'], 'warden: unknown option -x for warden status (see warden status --help)'],
    [['exec', '--grace', '-5s', '--', 'true'], 'warden: exec: --grace needs a value, and "-5s" looks like an option (write --grace=-5s if it is the value)'],
    [['exec', '--grace=-5s', '--', 'true'], 'warden: --grace: expected milliseconds or a duration like 90s, 20m, 2h; got "-5s"'],
    [['status', '--dir'], 'warden: status: --dir needs a value (--dir D)'],
    [['status', '--json=yes'], 'warden: status: --json takes no value, got "yes"'],
    [['lock', 'run', 'W', 'echo', 'hello'], 'warden: lock run: unexpected argument "echo": the command to run goes after -- (warden lock run WORKER [options] -- CMD…)'],
    [['lease', 'run', 'sleep', '1'], 'warden: lease run: unexpected argument "sleep": the command to run goes after -- (warden lease run [options] -- CMD…)'],
    [['exec', 'true'], 'warden: exec: unexpected argument "true": the command to run goes after -- (warden exec [options] -- CMD…)'],
    [['lock', 'run', 'W'], 'warden: lock run: no command given (warden lock run WORKER [options] -- CMD…)'],
    [['lease', 'run', '--'], 'warden: lease run: no command given (warden lease run [options] -- CMD…)'],
  ])('%j', async (args, message) => {
    const dir = tempDir();
    mkdirSync(join(dir, 'W'));
    const result = await warden(args, { cwd: dir, timeout: 30_000 });
    expect(result).toEqual({ code: 2, stdout: '', stderr: message });
  });

  it('the edit distance counts insertions, deletions and substitutions', () => {
    expect([editDistance('jsn', 'json'), editDistance('json', 'jsn'), editDistance('kitten', 'sitting'), editDistance('', 'ab'), editDistance('dir', 'dir')]).toEqual([1, 1, 3, 2, 0]);
  });
});

describe('a command that is not there', () => {
  it.each([
    [['lease', 'run', '--dir', '.', '--', '/no/such/cmd'], 127, 'warden: lease run: /no/such/cmd: no such file'],
    [['lease', 'run', '--dir', '.', '--', 'warden-no-such-command-x1'], 127, 'warden: lease run: warden-no-such-command-x1: command not found on PATH'],
    [['lock', 'run', 'W', '--', 'warden-no-such-command-x1'], 127, 'warden: lock run: warden-no-such-command-x1: command not found on PATH'],
    [['lease', 'run', '--dir', '.', '--', './notexec.sh'], 126, 'warden: lease run: ./notexec.sh: not an executable file'],
  ])('%j: exit %i like a shell, one line of ours naming it; nothing left held', async (args, code, message) => {
    const dir = tempDir();
    mkdirSync(join(dir, 'W'));
    writeFileSync(join(dir, 'notexec.sh'), 'echo hi\n', { mode: 0o644 });
    expect(await warden(args, { cwd: dir, timeout: 30_000 })).toEqual({ code, stdout: '', stderr: message });
    expect(existsSync(join(dir, 'W', '.runtime', 'agent.lock'))).toBe(false);
    expect((await warden(['lease', 'status', '--json'], { cwd: dir })).stdout).toContain('"held":false');
  });
});

describe('--help', () => {
  it.each(Object.keys(COMMANDS) as CommandName[])('warden %s --help lists every flag with its meaning, the exit codes and an example', async (name) => {
    const result = await warden([...name.split(' '), '--help']);
    expect(result.code).toBe(0);
    for (const flag of Object.keys(COMMANDS[name].options)) expect(result.stdout).toMatch(new RegExp(`^  --${flag}\\b.* \\S`, 'm'));
    expect(result.stdout).toContain('\nexit codes:\n');
    expect(result.stdout).toContain(`\nexample:\n  warden ${name}`);
  });

  it('durations say their units; defaults are given', async () => {
    const { stdout } = await warden(['exec', '--help']);
    expect(stdout).toMatch(/--idle T +kill the job after T without output; T: milliseconds, or a number with a unit: 500ms, 90s, 20m, 2h \(default: the config’s timeouts, else 20m\)/);
  });

  it('a command with subcommands lists them; each subcommand has its own help', async () => {
    const group = await warden(['lock', '--help']);
    for (const sub of ['acquire', 'release', 'status', 'check', 'run']) expect(group.stdout).toContain(`warden lock ${sub} `);
    expect((await warden(['lock', 'acquire', '--help'])).stdout).toMatch(/^usage: warden lock acquire WORKER /);
  });
});
