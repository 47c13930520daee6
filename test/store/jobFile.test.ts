import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { closeSync, ftruncateSync, mkdirSync, openSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { JOB_FILE_MAX_BYTES, SLUG_PATTERN, parseJobFile, readJobsDir } from '../../src/store/jobFile.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();

describe('job files', () => {
  it('reads the frontmatter with a real YAML parser (nesting, flow maps, comments) and the prompt after it', () => {
    const text = [
      '---',
      'title: Add wave 2 games',
      'cwd: ../studio              # relative to the project dir',
      'estimateMinutes: 30',
      'command: ["node", "agent.mjs", "--prompt", "{prompt}"]',
      'timeouts: { maxDurationMs: 600000, idleOutputMs: 1200000 }',
      '---',
      '',
      'Build the games.',
      '---',
      'A rule inside the prompt stays in the prompt.',
    ].join('\n');
    const result = parseJobFile('/p/.warden/jobs/12-wave-2.md', text);
    expect(result).toEqual({
      ok: true,
      job: {
        slug: '12-wave-2',
        file: '/p/.warden/jobs/12-wave-2.md',
        title: 'Add wave 2 games',
        cwd: '../studio',
        estimateMinutes: 30,
        command: ['node', 'agent.mjs', '--prompt', '{prompt}'],
        timeouts: { maxDurationMs: 600000, idleOutputMs: 1200000 },
        parallelGroup: 12,
        groupFrom: 'file name',
        prompt: 'Build the games.\n---\nA rule inside the prompt stays in the prompt.',
        hash: createHash('sha256').update(text).digest('hex'),
      },
    });
  });

  it('parallelGroup: the frontmatter, else an NN- file-name prefix, else 99', () => {
    const group = (file: string, text: string) => {
      const r = parseJobFile(file, text);
      return r.ok ? [r.job.parallelGroup, r.job.groupFrom] : r.problem;
    };
    expect(group('/j/07-fix.md', '---\nparallelGroup: 3\n---\nGo.')).toEqual([3, 'frontmatter']);
    expect(group('/j/07-fix.md', 'Go.')).toEqual([7, 'file name']);
    expect(group('/j/fix.md', 'Go.')).toEqual([99, 'default']);
  });

  it('names the file and the problem: bad slug, broken YAML, unknown key, wrong type, no prompt, no closing line', () => {
    const problem = (file: string, text: string) => {
      const r = parseJobFile(file, text);
      return r.ok ? 'ok' : r.problem;
    };
    expect(problem('/j/Fix Login.md', 'Go.')).toBe('"Fix Login" is not a slug: lowercase letters, digits, ".", "_" or "-", starting with a letter or digit');
    expect(problem('/j/a.md', '---\ntitle: [unclosed\n---\nGo.')).toMatch(/^frontmatter is not YAML \(line 2\): Flow sequence in block collection must be sufficiently indented and end with a \]$/);
    expect(problem('/j/a.md', '---\ntitel: typo\n---\nGo.')).toMatch(/^frontmatter: \(root\): Unrecognized key: "titel"/);
    expect(problem('/j/a.md', '---\nparallelGroup: soon\n---\nGo.')).toMatch(/^frontmatter: parallelGroup: /);
    expect(problem('/j/a.md', '---\ntimeouts: { idleOutputMs: -5 }\n---\nGo.')).toMatch(/^frontmatter: timeouts\.idleOutputMs: /);
    expect(problem('/j/a.md', '---\ntitle: x\n---\n   \n')).toBe('no prompt: the file has nothing after its frontmatter');
    expect(problem('/j/a.md', '---\ntitle: x\nGo.')).toBe('the frontmatter has no closing "---" line');
  });

  it('a jobs dir: every .md in name order; bad files reported with why, the rest read on', () => {
    const dir = join(tempDir(), 'jobs');
    mkdirSync(dir);
    writeFileSync(join(dir, '02-b.md'), 'B.');
    writeFileSync(join(dir, '01-a.md'), '---\ntitle: A\n---\nA.');
    writeFileSync(join(dir, 'Bad.md'), 'x');
    writeFileSync(join(dir, 'notes.txt'), 'not a job');
    const { jobs, problems } = readJobsDir(dir);
    expect(jobs.map((j) => j.slug)).toEqual(['01-a', '02-b']);
    expect(problems).toEqual([{ file: join(dir, 'Bad.md'), problem: expect.stringContaining('is not a slug') }]);
  });

  it('a YAML alias bomb is one bad file, reported and skipped; the job beside it is read', () => {
    const dir = join(tempDir(), 'jobs');
    mkdirSync(dir);
    const bomb = ['---', 'a: &a ["x","x","x","x","x","x","x","x","x"]', 'b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]', 'c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]', 'd: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]', 'e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]', 'f: [*e,*e,*e,*e,*e,*e,*e,*e,*e]', '---', 'Boom.'].join('\n');
    writeFileSync(join(dir, '01-bomb.md'), bomb);
    writeFileSync(join(dir, '02-good.md'), '---\ntitle: Good\n---\nGo.');
    const { jobs, problems } = readJobsDir(dir);
    expect(jobs.map((j) => j.slug)).toEqual(['02-good']);
    expect(problems).toEqual([{ file: join(dir, '01-bomb.md'), problem: expect.stringMatching(/^frontmatter is not YAML: too many aliases/) }]);
    const direct = parseJobFile('/j/bomb.md', bomb);
    expect(direct.ok).toBe(false);
  });

  it('a job file with CRLF line ends, a BOM, or both reads as its LF twin (prompt with LF line ends)', () => {
    const lf = '---\ntitle: Fix login\nparallelGroup: 3\ncommand:\n  - node\n  - agent.mjs\n---\n\nFirst line.\nSecond line.\n';
    const crlf = lf.replaceAll('\n', '\r\n');
    const want = { title: 'Fix login', parallelGroup: 3, command: ['node', 'agent.mjs'], prompt: 'First line.\nSecond line.\n' };
    for (const text of [lf, crlf, `\uFEFF${lf}`, `\uFEFF${crlf}`]) {
      const result = parseJobFile('/j/a.md', Buffer.from(text, 'utf8'));
      expect(result, JSON.stringify(text)).toMatchObject({ ok: true, job: want });
      expect(parseJobFile('/j/a.md', text)).toMatchObject({ ok: true, job: want });
    }
    // The hash is still of the bytes as they are: an edit that only changes line ends is an edit.
    const hashOf = (text: string) => (parseJobFile('/j/a.md', text) as { job: { hash: string } }).job.hash;
    expect(hashOf(crlf)).toBe(createHash('sha256').update(crlf).digest('hex'));
  });

  it('a slug has no "..": slugs become file names under .warden/runs/', () => {
    const problem = (file: string) => {
      const r = parseJobFile(file, 'Go.');
      return r.ok ? 'ok' : r.problem;
    };
    expect(problem('/j/x..y.md')).toBe('"x..y" is not a slug: it contains "..", and slugs become file names under .warden/runs/');
    expect(problem('/j/a...md')).toBe('"a.." is not a slug: it contains "..", and slugs become file names under .warden/runs/');
    expect(problem('/j/..md')).toMatch(/^"\." is not a slug: /);
    expect(problem('/j/v1.2-fix_a.md')).toBe('ok');
    expect(SLUG_PATTERN.test('x..y')).toBe(false);
    expect(SLUG_PATTERN.test('x.y')).toBe(true);
  });

  it('hash: sha256 of the bytes, the same whether given as bytes or text, different once edited', () => {
    const bytes = Buffer.from('---\ntitle: Café\n---\nGo.\n');
    const hashOf = (content: string | Uint8Array) => {
      const r = parseJobFile('/j/a.md', content);
      return r.ok ? r.job.hash : r.problem;
    };
    expect(hashOf(bytes)).toBe(createHash('sha256').update(bytes).digest('hex'));
    expect(hashOf(bytes.toString('utf8'))).toBe(hashOf(bytes));
    expect(hashOf('---\ntitle: Café\n---\nGo!\n')).not.toBe(hashOf(bytes));
    expect(hashOf(Buffer.from([0x47, 0x6f, 0xff, 0x2e]))).toBe('is not UTF-8 text');
  });

  it('a jobs dir with every kind of bad file: each reported with its reason, the good ones still read', () => {
    const root = tempDir();
    const dir = join(root, 'jobs');
    mkdirSync(dir);
    writeFileSync(join(dir, '01-good.md'), '---\ntitle: Good\n---\nGo.');
    writeFileSync(join(dir, 'bad-yaml.md'), '---\ntitle: [unclosed\n---\nGo.');
    writeFileSync(join(dir, 'unknown-key.md'), '---\ntitel: typo\n---\nGo.');
    writeFileSync(join(dir, 'wrong-type.md'), '---\nestimateMinutes: soon\n---\nGo.');
    writeFileSync(join(dir, 'x..y.md'), 'Go.');
    writeFileSync(join(dir, 'big.md'), Buffer.alloc(5 * 1024 * 1024, 'a'));
    writeFileSync(join(root, 'secret.md'), 'Send this anywhere.');
    symlinkSync(join(root, 'secret.md'), join(dir, 'link.md'));
    symlinkSync('../secret.md', join(dir, 'relative-link.md'));
    symlinkSync(join(root, 'missing.md'), join(dir, 'dangling.md'));
    mkdirSync(join(dir, 'folder.md'));
    writeFileSync(join(dir, 'zz-good.md'), 'Also good.');

    const { jobs, problems } = readJobsDir(dir);
    expect(jobs.map((j) => j.slug)).toEqual(['01-good', 'zz-good']);
    expect(jobs[0]).toMatchObject({ title: 'Good', prompt: 'Go.', hash: createHash('sha256').update('---\ntitle: Good\n---\nGo.').digest('hex') });
    const reasons = Object.fromEntries(problems.map((p) => [p.file.slice(dir.length + 1), p.problem]));
    expect(reasons).toEqual({
      'bad-yaml.md': expect.stringMatching(/^frontmatter is not YAML \(line 2\): /),
      'unknown-key.md': 'frontmatter: (root): Unrecognized key: "titel"',
      'wrong-type.md': expect.stringMatching(/^frontmatter: estimateMinutes: /),
      'x..y.md': '"x..y" is not a slug: it contains "..", and slugs become file names under .warden/runs/',
      'big.md': 'is 5 MiB (5242880 bytes), over the 1 MiB limit for a job file',
      'link.md': 'is a symlink; job files must be regular files',
      'relative-link.md': 'is a symlink; job files must be regular files',
      'dangling.md': 'is a symlink; job files must be regular files',
      'folder.md': 'is a directory; job files must be regular files',
    });
    for (const { problem } of problems) expect(problem).not.toContain('\n');
  });

  it('a file far over the limit is refused by its size, never read (a sparse 4 GiB file)', () => {
    const dir = tempDir();
    const fd = openSync(join(dir, 'huge.md'), 'w');
    ftruncateSync(fd, 4 * 1024 * 1024 * 1024);
    closeSync(fd);
    writeFileSync(join(dir, 'ok.md'), 'Go.');
    const started = performance.now();
    const { jobs, problems } = readJobsDir(dir);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(jobs.map((j) => j.slug)).toEqual(['ok']);
    expect(problems).toEqual([{ file: join(dir, 'huge.md'), problem: 'is 4096 MiB (4294967296 bytes), over the 1 MiB limit for a job file' }]);
  });

  it('the limit itself is allowed; one byte more is not', () => {
    const dir = tempDir();
    writeFileSync(join(dir, 'at-limit.md'), Buffer.alloc(JOB_FILE_MAX_BYTES, 'a'));
    writeFileSync(join(dir, 'over.md'), Buffer.alloc(JOB_FILE_MAX_BYTES + 1, 'a'));
    const { jobs, problems } = readJobsDir(dir);
    expect(jobs.map((j) => [j.slug, j.prompt.length])).toEqual([['at-limit', JOB_FILE_MAX_BYTES]]);
    expect(problems).toEqual([{ file: join(dir, 'over.md'), problem: 'is 1.0 MiB (1048577 bytes), over the 1 MiB limit for a job file' }]);
  });

  it.skipIf(process.platform === 'win32')('a FIFO named x.md is reported at once, not waited on', () => {
    const dir = tempDir();
    execFileSync('mkfifo', [join(dir, 'pipe.md')]);
    writeFileSync(join(dir, 'ok.md'), 'Go.');
    const { jobs, problems } = readJobsDir(dir);
    expect(jobs.map((j) => j.slug)).toEqual(['ok']);
    expect(problems).toEqual([{ file: join(dir, 'pipe.md'), problem: 'is not a regular file (a FIFO, socket or device); job files must be regular files' }]);
  });
});
