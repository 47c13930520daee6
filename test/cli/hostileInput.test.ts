import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { warden } from '../helpers/cli.js';
import { AGENT, jobProcesses, slugOfJobId, startRun, writeJob, writeProject } from '../helpers/queueProject.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();
// Every slug in this file starts with "hi-", so /proc can be searched for this file's jobs alone.
const leftovers = () => [...jobProcesses()].filter(([id]) => slugOfJobId(id).startsWith('hi-'));

afterEach(() => {
  expect(leftovers(), 'job processes left behind').toEqual([]);
});

async function statusOf(dir: string) {
  const result = await warden(['status', '--dir', dir, '--json']);
  expect(result.code, result.stderr).toBe(0);
  return JSON.parse(result.stdout) as { jobs: Array<{ slug: string; status: string }>; problems: Array<{ file: string; problem: string }> };
}

describe('hostile input to warden run', () => {
  it('a YAML alias bomb is reported as a bad job file and the valid job beside it runs', async () => {
    const dir = tempDir();
    writeProject(dir, [{ slug: 'hi-good' }]);
    const bomb = ['---', 'a: &a ["x","x","x","x","x","x","x","x","x"]', 'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]', 'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]', 'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]', 'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]', 'f: [*e,*e,*e,*e,*e,*e,*e,*e,*e]', '---', 'Boom.'];
    writeFileSync(join(dir, '.warden', 'jobs', 'hi-bomb.md'), bomb.join('\n'));
    const run = await startRun(dir);
    expect(run.exitCode, String(run.all)).toBe(1); // the good job completed; a bad file means not everything did
    expect(String(run.all)).toMatch(/bad job file .*hi-bomb\.md: frontmatter is not YAML: too many aliases/);
    expect(String(run.all)).not.toContain('cannot read the jobs dir');
    const status = await statusOf(dir);
    expect(status.jobs.map((j) => `${j.slug}:${j.status}`)).toEqual(['hi-good:completed']);
    expect(status.problems).toEqual([{ file: join(dir, '.warden', 'jobs', 'hi-bomb.md'), problem: expect.stringMatching(/^frontmatter is not YAML: too many aliases/) }]);
  }, 60_000);

  it('job files with CRLF line ends and a BOM run like any other', async () => {
    const dir = tempDir();
    writeProject(dir, [{ slug: 'hi-crlf' }, { slug: 'hi-bom' }]);
    const jobs = join(dir, '.warden', 'jobs');
    const lf = (slug: string) => `---\ntitle: Job ${slug}\ncwd: w/${slug}\ncommand:\n  - node\n  - ${JSON.stringify(join(import.meta.dirname, '../fixtures/agent/fake-agent.mjs'))}\n  - --result\n  - success\n---\nDo ${slug}.\n`;
    writeFileSync(join(jobs, 'hi-crlf.md'), lf('hi-crlf').replaceAll('\n', '\r\n'));
    writeFileSync(join(jobs, 'hi-bom.md'), `\uFEFF${lf('hi-bom').replaceAll('\n', '\r\n')}`);
    const run = await startRun(dir);
    expect(run.exitCode, String(run.all)).toBe(0);
    const status = await statusOf(dir);
    expect(status.problems).toEqual([]);
    expect(status.jobs.map((j) => `${j.slug}:${j.status}`).sort()).toEqual(['hi-bom:completed', 'hi-crlf:completed']);
  }, 60_000);

  it.each([
    ['an empty file', (path: string) => writeFileSync(path, '')],
    ['a directory', (path: string) => mkdirSync(path)],
  ])('a young corrupt worker lock (%s) blocks its job only until the grace period ends; then it is moved aside and the job runs', async (_kind, make) => {
    const dir = tempDir();
    writeProject(dir, [], { workerLockGraceMs: 5000 });
    writeJob(dir, { slug: 'hi-corrupt', cwd: 'shared' });
    mkdirSync(join(dir, 'shared', '.runtime'), { recursive: true });
    make(join(dir, 'shared', '.runtime', 'agent.lock'));
    const run = await startRun(dir);
    expect(run.exitCode, String(run.all)).toBe(0);
    expect(String(run.all)).toMatch(/hi-corrupt blocked/);
    expect((await statusOf(dir)).jobs.map((j) => `${j.slug}:${j.status}`)).toEqual(['hi-corrupt:completed']);
    // Kept for whoever wants to look, never deleted.
    expect(readdirSync(join(dir, 'shared', '.runtime')).filter((n) => n.startsWith('agent.lock.corrupt-'))).toHaveLength(1);
  }, 60_000);

});

/** A forged line, a colour, a bell, a C1 CSI and a right-to-left override: what hostile text carries. */
const HOSTILE = 'x\n12:00:00 hi-forged completed\r\u001b[32mgreen\u0007\u009b2J\u202Eevil';
const SHOWN = 'x\\n12:00:00 hi-forged completed\\r\\u001b[32mgreen\\u0007\\u009b2J\\u202eevil';
/** Anything a terminal would act on, but the newlines between lines. */
const RAW_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/;

function printsNoControls(text: string) {
  expect(text).not.toMatch(RAW_CONTROL);
  expect(text).not.toMatch(/^12:00:00 hi-forged/m);
}

describe('untrusted text on the terminal', () => {
  it('status, log and the run view escape a pause reason, a job title, a bad file name and agent output', async () => {
    const dir = tempDir();
    writeProject(dir, []);
    const jobs = join(dir, '.warden', 'jobs');
    mkdirSync(join(dir, 'w', 'hi-agent'), { recursive: true });
    // YAML's double-quoted escapes put every kind of control into the title.
    const title = JSON.stringify(HOSTILE).replace('\\u001b', '\\e').replace('\\u0007', '\\a');
    writeFileSync(join(jobs, 'hi-agent.md'), `---\ntitle: ${title}\ncwd: w/hi-agent\ncommand: ${JSON.stringify(['node', AGENT, '--say', HOSTILE, '--stderr', HOSTILE, '--result', 'error', '--exit', '3'])}\n---\nGo.\n`);
    writeFileSync(join(jobs, `hi-${HOSTILE.replaceAll('/', '')}.md`), 'not a slug');

    const run = await startRun(dir);
    expect(run.exitCode, String(run.all)).toBe(1);
    printsNoControls(String(run.all));
    expect(String(run.all)).toContain(`bad job file ${jobs}/hi-${SHOWN}.md: "hi-${SHOWN}" is not a slug`);
    // The job really carried the hostile text, raw, into the log.
    const log = readFileSync(join(dir, '.warden', 'events.jsonl'), 'utf8');
    expect(log).toContain('\\u001b[32mgreen');
    expect(log).toContain('\u202E');

    const paused = await warden(['pause', '--dir', dir, '--reason', HOSTILE]);
    expect(paused.code, paused.stderr).toBe(0);
    printsNoControls(paused.stdout + paused.stderr);

    const status = await warden(['status', '--dir', dir]);
    expect(status.code, status.stderr).toBe(0);
    printsNoControls(status.stdout);
    expect(status.stdout).toContain(`(${SHOWN})`);
    expect(status.stdout).toContain(`bad job file ${jobs}/hi-${SHOWN}.md`);
    const json = await warden(['status', '--dir', dir, '--json']);
    printsNoControls(json.stdout);
    expect((JSON.parse(json.stdout) as { paused: { message: string } }).paused.message).toBe(HOSTILE);

    for (const args of [['log', '--dir', dir], ['log', '--dir', dir, '--json'], ['replay', '--dir', dir, '--verify']]) {
      const shown = await warden(args);
      expect(shown.code, shown.stderr).toBe(0);
      printsNoControls(shown.stdout + shown.stderr);
    }
    const logText = (await warden(['log', '--dir', dir])).stdout;
    expect(logText).toContain('\\u202eevil'); // the title, the agent's message and its stderr, escaped
  }, 60_000);

  it('lock status, doctor and error messages escape what a lock file or a config file says', async () => {
    const root = tempDir();
    const worker = join(root, `w-${HOSTILE.replaceAll('/', '')}`);
    mkdirSync(join(worker, '.runtime'), { recursive: true });
    const lock = { pid: 999_999_999, acquired_at: new Date().toISOString(), session_id: HOSTILE, hostname: HOSTILE };
    writeFileSync(join(worker, '.runtime', 'agent.lock'), JSON.stringify(lock));

    for (const args of [['lock', 'status', worker], ['lock', 'status', worker, '--json'], ['doctor', root], ['doctor', root, '--json']]) {
      const shown = await warden(args, { cwd: root });
      printsNoControls(shown.stdout + shown.stderr);
      expect(shown.stdout, args.join(' ')).toMatch(/\\u202e/);
    }
    const held = await warden(['lock', 'acquire', worker], { cwd: root });
    expect(held.code).toBe(75);
    printsNoControls(held.stderr);
    // (Error messages are one line: main.ts turns their line breaks into spaces first.)
    expect(held.stderr).toContain('completed\\r\\u001b[32mgreen\\u0007\\u009b2J\\u202eevil');

    // A config that is not JSON: the parser's message quotes the file's bytes.
    const project = tempDir();
    mkdirSync(join(project, '.warden'));
    writeFileSync(join(project, '.warden', 'config.json'), `\u001b]0;pwned\u0007\u001b[2J${HOSTILE}`);
    const bad = await warden(['run', '--once', '--dir', project]);
    expect(bad.code).toBe(2);
    printsNoControls(bad.stderr);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
  }, 60_000);
});

