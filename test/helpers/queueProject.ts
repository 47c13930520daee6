import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { CLI } from './cli.js';

export const AGENT = join(import.meta.dirname, '../fixtures/agent/fake-agent.mjs');

export interface TestJob {
  /** File name without .md (the slug). */
  slug: string;
  group?: number;
  /** Flags for the fake agent. */
  agent?: string[];
  /** cwd relative to the project dir (default: a dir of its own, `w/<slug>`). */
  cwd?: string;
}

/**
 * The variable every job of a test project carries (config `env.set`), so a test finds its own
 * job processes in /proc and nobody else's — not another test's, nor another copy of the suite's
 * running beside it with the same slugs.
 */
export const TAG_VARIABLE = 'WARDEN_TEST_TAG';

/** Tags of the projects this test file wrote (each test file runs in a worker of its own). */
const projectTags = new Set<string>();

/** The tag of the project in `dir`: unique to it, as its temp dir is. */
export function tagOf(dir: string): string {
  return `warden-test:${dir}`;
}

/** Writes a project: config and job files running the fake agent, each in a cwd of its own; every job carries the project's tag. */
export function writeProject(dir: string, jobs: readonly TestJob[], config: Record<string, unknown> = {}): void {
  mkdirSync(join(dir, '.warden', 'jobs'), { recursive: true });
  const env = (config.env ?? {}) as { set?: Record<string, string> };
  projectTags.add(tagOf(dir));
  writeFileSync(
    join(dir, '.warden', 'config.json'),
    // Investigations off unless a test asks: a failing job would otherwise start the default agent.
    JSON.stringify({
      concurrencyCap: 2,
      blockedProbeMs: 100,
      investigation: { enabled: false },
      timeouts: { maxDurationMs: 60_000, postResultGraceMs: 10_000, killAfterMs: 500, idleOutputMs: 20_000 },
      ...config,
      env: { ...env, set: { ...env.set, [TAG_VARIABLE]: tagOf(dir) } },
    }),
  );
  for (const job of jobs) writeJob(dir, job);
}

export function writeJob(dir: string, job: TestJob): void {
  const cwd = job.cwd ?? `w/${job.slug}`;
  mkdirSync(join(dir, cwd), { recursive: true });
  const command = JSON.stringify(['node', AGENT, ...(job.agent ?? ['--result', 'success'])]);
  const group = job.group === undefined ? '' : `parallelGroup: ${job.group}\n`;
  writeFileSync(join(dir, '.warden', 'jobs', `${job.slug}.md`), `---\ntitle: Job ${job.slug}\n${group}cwd: ${cwd}\ncommand: ${command}\n---\nDo ${job.slug}.\n`);
}

/** `warden run` as a child process, its output collected. */
export function startRun(dir: string, args: string[] = ['--once'], env: Record<string, string> = {}): ResultPromise & { output: () => string } {
  // No forced SIGKILL after a SIGTERM: a run that ignores SIGTERM must show as one that does not exit.
  const child = execa('node', [CLI, 'run', '--dir', dir, ...args], { reject: false, env, all: true, forceKillAfterDelay: false }) as ResultPromise & { output: () => string };
  let text = '';
  child.all!.on('data', (chunk: Buffer) => (text += chunk.toString()));
  child.output = () => text;
  return child;
}

/** Resolves when the child's output has a line matching `pattern`; rejects if it exits first. */
export function outputLine(child: ResultPromise & { output: () => string }, pattern: RegExp): Promise<string> {
  return new Promise((resolve, reject) => {
    const look = () => child.output().split('\n').find((l) => pattern.test(l));
    const onData = () => {
      const found = look();
      if (found) {
        child.all!.off('data', onData);
        resolve(found);
      }
    };
    child.all!.on('data', onData);
    onData();
    void child.then(() => {
      const found = look();
      if (found) resolve(found);
      else reject(new Error(`exited before printing ${pattern}:\n${child.output()}`));
    });
  });
}

/**
 * Live job processes (those carrying a WARDEN_JOB_ID) of this test file's projects, by job id,
 * read straight from /proc: only processes tagged with one of `tags` (default: every project this
 * file wrote with {@link writeProject}) count — never a process of someone else's with the same slug.
 */
export function jobProcesses(tags: Iterable<string> = projectTags): Map<string, number[]> {
  const wanted = new Set([...tags].map((tag) => `${TAG_VARIABLE}=${tag}`));
  const found = new Map<string, number[]>();
  if (wanted.size === 0) return found;
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      if (stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z') continue;
      const environ = readFileSync(`/proc/${entry}/environ`, 'latin1').split('\0');
      if (!environ.some((v) => wanted.has(v))) continue;
      const variable = environ.find((v) => v.startsWith('WARDEN_JOB_ID='));
      if (!variable) continue;
      const id = variable.slice('WARDEN_JOB_ID='.length);
      found.set(id, [...(found.get(id) ?? []), Number(entry)]);
    } catch {
      // gone, or not ours to read
    }
  }
  return found;
}

/** The slug of a job id `<runId>/<slug>#<run>`. */
export const slugOfJobId = (id: string) => id.slice(id.indexOf('/') + 1).replace(/#\d+$/, '');

/**
 * Watches /proc while a test runs: the most processes of any one job (slug) alive at once, and
 * of which job ids. Only the processes of the project in `dir` count (by its tag).
 */
export function watchJobProcesses(dir: string): { stop: () => { maxPerSlug: number; worst: string[] } } {
  let maxPerSlug = 0;
  let worst: string[] = [];
  const look = () => {
    const bySlug = new Map<string, string[]>();
    for (const [id, pids] of jobProcesses([tagOf(dir)])) {
      const slug = slugOfJobId(id);
      bySlug.set(slug, [...(bySlug.get(slug) ?? []), ...pids.map((p) => `${id}:${p}`)]);
    }
    for (const entries of bySlug.values()) {
      if (entries.length > maxPerSlug) {
        maxPerSlug = entries.length;
        worst = entries;
      }
    }
  };
  const timer = setInterval(look, 10);
  return {
    stop: () => {
      clearInterval(timer);
      look();
      return { maxPerSlug, worst };
    },
  };
}
