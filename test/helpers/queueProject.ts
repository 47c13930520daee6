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

/** Writes a project: config and job files running the fake agent, each in a cwd of its own. */
export function writeProject(dir: string, jobs: readonly TestJob[], config: Record<string, unknown> = {}): void {
  mkdirSync(join(dir, '.warden', 'jobs'), { recursive: true });
  writeFileSync(
    join(dir, '.warden', 'config.json'),
    // Investigations off unless a test asks: a failing job would otherwise start the default agent.
    JSON.stringify({ concurrencyCap: 2, blockedProbeMs: 100, investigation: { enabled: false }, timeouts: { maxDurationMs: 60_000, postResultGraceMs: 10_000, killAfterMs: 500, idleOutputMs: 20_000 }, ...config }),
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
  const child = execa('node', [CLI, 'run', '--dir', dir, ...args], { reject: false, env, all: true }) as ResultPromise & { output: () => string };
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

/** Every live process carrying a WARDEN_JOB_ID, by its value (read straight from /proc). */
export function jobProcesses(): Map<string, number[]> {
  const found = new Map<string, number[]>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'latin1');
      if (stat.slice(stat.lastIndexOf(')') + 2)[0] === 'Z') continue;
      const variable = readFileSync(`/proc/${entry}/environ`, 'latin1')
        .split('\0')
        .find((v) => v.startsWith('WARDEN_JOB_ID='));
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
 * of which job ids. Only processes under `dir` count (by their job id's run dir: all test
 * projects use fresh runIds, so ids are matched against the set seen under this project).
 */
export function watchJobProcesses(filter: (jobId: string) => boolean): { stop: () => { maxPerSlug: number; worst: string[] } } {
  let maxPerSlug = 0;
  let worst: string[] = [];
  const look = () => {
    const bySlug = new Map<string, string[]>();
    for (const [id, pids] of jobProcesses()) {
      if (!filter(id)) continue;
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
