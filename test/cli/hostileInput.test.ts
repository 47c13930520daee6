import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { warden } from '../helpers/cli.js';
import { jobProcesses, slugOfJobId, startRun, writeJob, writeProject } from '../helpers/queueProject.js';
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
