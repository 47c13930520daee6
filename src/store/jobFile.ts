/**
 * Job files, `<jobs dir>/<slug>.md`: an optional YAML frontmatter (read with the `yaml` library,
 * checked with zod; unknown keys and wrong types are errors naming the key) and the prompt — the
 * rest of the file. A file that cannot be read as a job is a problem naming the file and what is
 * wrong; the others are read on regardless.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { describeIssue } from './catalogue.js';
import { jobTimeoutsSchema } from './events/job.events.js';

/** Slugs are file names without `.md`; nothing else is accepted (DESIGN.md "Files a user writes"). */
export const SLUG_PATTERN = /^[a-z0-9][a-z0-9._-]*$/;
export const DEFAULT_PARALLEL_GROUP = 99;

export const jobFrontmatterSchema = z.strictObject({
  title: z.string().min(1).optional(),
  cwd: z.string().min(1).optional().describe('relative to the project dir; default: the project dir'),
  parallelGroup: z.number().int().nonnegative().optional(),
  estimateMinutes: z.number().positive().optional(),
  command: z.array(z.string()).min(1).optional().describe('argv; default: config.agent.command'),
  timeouts: jobTimeoutsSchema.partial().optional(),
});
export type JobFrontmatter = z.infer<typeof jobFrontmatterSchema>;

export interface JobFile extends JobFrontmatter {
  slug: string;
  file: string;
  parallelGroup: number;
  /** Where parallelGroup came from. */
  groupFrom: 'frontmatter' | 'file name' | 'default';
  prompt: string;
}

export type JobFileResult = { ok: true; job: JobFile } | { ok: false; file: string; problem: string };

/**
 * Reads one job file's text.
 * @example parseJobFile('.warden/jobs/07-fix-login.md', '---\ntitle: Fix login\n---\nFix it.')
 */
export function parseJobFile(file: string, text: string): JobFileResult {
  const name = file.slice(file.lastIndexOf('/') + 1);
  const bad = (problem: string): JobFileResult => ({ ok: false, file, problem });
  if (!name.endsWith('.md')) return bad('not a .md file');
  const slug = name.slice(0, -'.md'.length);
  if (!SLUG_PATTERN.test(slug)) return bad(`"${slug}" is not a slug: lowercase letters, digits, ".", "_" or "-", starting with a letter or digit`);

  let frontmatter: unknown = {};
  let body = text;
  const lines = text.split('\n');
  if (lines[0]?.trimEnd() === '---') {
    const end = lines.findIndex((line, i) => i > 0 && line.trimEnd() === '---');
    if (end < 0) return bad('the frontmatter has no closing "---" line');
    const doc = parseDocument(lines.slice(1, end).join('\n'));
    if (doc.errors.length > 0) {
      const error = doc.errors[0]!;
      // yaml counts lines from 1 within the frontmatter; the file has the opening "---" before it.
      const line = error.linePos?.[0]?.line;
      return bad(`frontmatter is not YAML${line === undefined ? '' : ` (line ${line + 1})`}: ${error.message.split(' at line ')[0]!.split('\n')[0]}`);
    }
    frontmatter = doc.toJS() ?? {};
    body = lines.slice(end + 1).join('\n');
  }
  const parsed = jobFrontmatterSchema.safeParse(frontmatter);
  if (!parsed.success) return bad(`frontmatter: ${describeIssue(parsed.error.issues[0])}`);
  const prompt = body.replace(/^\s*\n/, '');
  if (prompt.trim() === '') return bad('no prompt: the file has nothing after its frontmatter');

  const prefix = /^(\d+)-/.exec(slug);
  const fromFile = prefix ? Number(prefix[1]) : undefined;
  const parallelGroup = parsed.data.parallelGroup ?? fromFile ?? DEFAULT_PARALLEL_GROUP;
  const groupFrom = parsed.data.parallelGroup !== undefined ? 'frontmatter' : fromFile !== undefined ? 'file name' : 'default';
  return { ok: true, job: { ...parsed.data, slug, file, parallelGroup, groupFrom, prompt } };
}

/**
 * Reads every `.md` file of a jobs dir (other files are ignored), in name order: the jobs, and the
 * files that are not jobs with why.
 */
export function readJobsDir(dir: string): { jobs: JobFile[]; problems: Array<{ file: string; problem: string }> } {
  const jobs: JobFile[] = [];
  const problems: Array<{ file: string; problem: string }> = [];
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.md')).sort()) {
    const file = join(dir, name);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      problems.push({ file, problem: `cannot read: ${(error as NodeJS.ErrnoException).code ?? String(error)}` });
      continue;
    }
    const result = parseJobFile(file, text);
    if (result.ok) jobs.push(result.job);
    else problems.push({ file: result.file, problem: result.problem });
  }
  return { jobs, problems };
}
