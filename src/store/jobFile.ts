/**
 * Job files, `<jobs dir>/<slug>.md`: an optional YAML frontmatter (read with the `yaml` library,
 * checked with zod; unknown keys and wrong types are errors naming the key) and the prompt — the
 * rest of the file. A file that cannot be read as a job is a problem naming the file and what is
 * wrong; the others are read on regardless.
 */
import { createHash } from 'node:crypto';
import { closeSync, constants, fstatSync, openSync, readdirSync, readSync } from 'node:fs';
import { join } from 'node:path';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { describeIssue } from './catalogue.js';
import { jobTimeoutsSchema } from './events/job.events.js';
import { retriesSchema } from './events/queue.events.js';

/**
 * Slugs are file names without `.md`; nothing else is accepted (DESIGN.md "Files a user writes").
 * No `..` either: slugs name files under `.warden/runs/`, and no name there should look like a
 * way out of it.
 */
export const SLUG_PATTERN = /^(?!.*\.\.)[a-z0-9][a-z0-9._-]*$/;
export const DEFAULT_PARALLEL_GROUP = 99;
/** A job file is a prompt, not a data set: a bigger one is a mistake, and is never read whole. */
export const JOB_FILE_MAX_BYTES = 1024 * 1024;
/** yaml's own default: aliases may expand a frontmatter at most about this many times over. */
const MAX_ALIAS_COUNT = 100;

export const jobFrontmatterSchema = z.strictObject({
  title: z.string().min(1).optional(),
  cwd: z.string().min(1).optional().describe('relative to the project dir; default: the project dir'),
  parallelGroup: z.number().int().nonnegative().optional(),
  estimateMinutes: z.number().positive().optional(),
  command: z.array(z.string()).min(1).optional().describe('argv; default: config.agent.command'),
  timeouts: jobTimeoutsSchema.partial().optional(),
  dependsOn: z.array(z.string().min(1)).optional().describe('slugs of jobs that must complete before this one starts'),
  retries: retriesSchema.partial().optional().describe('retry a failed attempt: {max, initialMs, factor, maxMs}; default: config retries, else none'),
});
export type JobFrontmatter = z.infer<typeof jobFrontmatterSchema>;

export interface JobFile extends JobFrontmatter {
  slug: string;
  file: string;
  parallelGroup: number;
  /** Where parallelGroup came from. */
  groupFrom: 'frontmatter' | 'file name' | 'default';
  prompt: string;
  /** sha256 (hex) of the file's bytes: a scheduler tells an edited file by it. */
  hash: string;
}

export type JobFileResult = { ok: true; job: JobFile } | { ok: false; file: string; problem: string };

/**
 * Reads one job file: its bytes (which must be UTF-8), or its text (hashed as UTF-8).
 * @example parseJobFile('.warden/jobs/07-fix-login.md', '---\ntitle: Fix login\n---\nFix it.')
 */
export function parseJobFile(file: string, content: string | Uint8Array): JobFileResult {
  const name = file.slice(file.lastIndexOf('/') + 1);
  const bad = (problem: string): JobFileResult => ({ ok: false, file, problem });
  if (!name.endsWith('.md')) return bad('not a .md file');
  const slug = name.slice(0, -'.md'.length);
  const slugProblem = slugProblemOf(slug);
  if (slugProblem) return bad(slugProblem);
  const bytes = typeof content === 'string' ? Buffer.from(content, 'utf8') : content;
  const hash = createHash('sha256').update(bytes).digest('hex');
  let text: string;
  try {
    text = typeof content === 'string' ? content : new TextDecoder('utf-8', { fatal: true }).decode(content);
  } catch {
    return bad('is not UTF-8 text');
  }

  // Files written on Windows: a BOM and CRLF line ends read as the same file with LF (the prompt too).
  text = text.replace(/^\uFEFF/, '').replaceAll('\r\n', '\n');

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
    try {
      frontmatter = doc.toJS({ maxAliasCount: MAX_ALIAS_COUNT }) ?? {};
    } catch (error) {
      // yaml refuses aliases that expand past its limit (a "billion laughs" file) by throwing.
      if (error instanceof ReferenceError) return bad(`frontmatter is not YAML: too many aliases (${error.message})`);
      throw error;
    }
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
  return { ok: true, job: { ...parsed.data, slug, file, parallelGroup, groupFrom, prompt, hash } };
}

function slugProblemOf(slug: string): string | undefined {
  if (slug.includes('..')) return `"${slug}" is not a slug: it contains "..", and slugs become file names under .warden/runs/`;
  if (!SLUG_PATTERN.test(slug)) return `"${slug}" is not a slug: lowercase letters, digits, ".", "_" or "-", starting with a letter or digit`;
  return undefined;
}

/**
 * Reads every `.md` file of a jobs dir (other files are ignored), in name order: the jobs, and the
 * files that are not jobs with why. Only regular files are read, and none past
 * JOB_FILE_MAX_BYTES: a symlink could point anywhere (a job file's text is sent to an agent), and
 * a FIFO would block the scheduler forever.
 */
export function readJobsDir(dir: string): { jobs: JobFile[]; problems: Array<{ file: string; problem: string }> } {
  const jobs: JobFile[] = [];
  const problems: Array<{ file: string; problem: string }> = [];
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.md')).sort()) {
    const file = join(dir, name);
    const read = readJobBytes(file);
    const result = typeof read === 'string' ? ({ ok: false, file, problem: read } as const) : parseSafely(file, read);
    if (result.ok) jobs.push(result.job);
    else problems.push({ file: result.file, problem: result.problem });
  }
  return { jobs, problems };
}

/** parseJobFile, with anything it throws made that file's problem: one bad file never stops the others. */
function parseSafely(file: string, bytes: Buffer): JobFileResult {
  try {
    return parseJobFile(file, bytes);
  } catch (error) {
    return { ok: false, file, problem: `cannot be read as a job: ${error instanceof Error ? error.message : String(error)}` };
  }
}

/**
 * The bytes of a job file, or why they are not read. Opened without following a symlink and
 * without blocking (a FIFO), then judged by fstat of that descriptor, so what is checked is what
 * is read.
 */
function readJobBytes(file: string): Buffer | string {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ELOOP') return 'is a symlink; job files must be regular files';
    if (code === 'EISDIR') return 'is a directory; job files must be regular files';
    return `cannot read: ${code ?? String(error)}`;
  }
  try {
    const stat = fstatSync(fd);
    if (stat.isDirectory()) return 'is a directory; job files must be regular files';
    if (!stat.isFile()) return 'is not a regular file (a FIFO, socket or device); job files must be regular files';
    if (stat.size > JOB_FILE_MAX_BYTES) return tooLarge(stat.size);
    return readAtMost(fd, JOB_FILE_MAX_BYTES) ?? `grew past ${mib(JOB_FILE_MAX_BYTES)}, the limit for a job file, while it was read`;
  } catch (error) {
    return `cannot read: ${(error as NodeJS.ErrnoException).code ?? String(error)}`;
  } finally {
    closeSync(fd);
  }
}

/** Reads to the end, or gives up (undefined) as soon as more than `limit` bytes came. */
function readAtMost(fd: number, limit: number): Buffer | undefined {
  const chunks: Buffer[] = [];
  let total = 0;
  const chunk = Buffer.allocUnsafe(64 * 1024);
  for (let n = readSync(fd, chunk); n > 0; n = readSync(fd, chunk)) {
    total += n;
    if (total > limit) return undefined;
    chunks.push(Buffer.from(chunk.subarray(0, n)));
  }
  return Buffer.concat(chunks, total);
}

function tooLarge(bytes: number): string {
  return `is ${mib(bytes)} (${bytes} bytes), over the ${mib(JOB_FILE_MAX_BYTES)} limit for a job file`;
}

function mib(bytes: number): string {
  const value = bytes / (1024 * 1024);
  return `${Number.isInteger(value) ? value : value.toFixed(1)} MiB`;
}
