import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseJobFile, readJobsDir } from '../../src/store/jobFile.js';
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
});
