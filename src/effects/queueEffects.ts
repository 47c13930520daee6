/**
 * The queue's effects: reading the jobs dir into specs, starting a job (its worker lock, its
 * prompt copy, its job actor), watching a worker lock a blocked job waits for, and letting a
 * finished job's lock go. Like every effect, they report back through events the runner logs
 * before the queue sees them; the queue itself reads no file.
 */
import { closeSync, constants, existsSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { fromCallback, fromPromise } from 'xstate';
import { FlockTimeoutError, LockFormatError, LockHeldError, LockPathError } from '../errors.js';
import type { QueueEffects } from '../machines/queue.machine.js';
import type { EffectHandlers, EffectInput } from '../runner/runner.js';
import { DEFAULT_JOB_TIMEOUTS, type JobInput, type JobTimeouts } from '../store/events/job.events.js';
import type { JobSpec, Retries } from '../store/events/queue.events.js';
import { readJobsDir, type JobFile } from '../store/jobFile.js';
import { FAILURE_DEFAULTS } from '../store/configDefaults.js';
import { fileTail } from './boundedCommand.js';
import { setLongTimeout, type LongTimeout } from './longTimer.js';
import { WARDEN_JOB_SESSION_PREFIX, defaultProbes, type SessionProbe } from './sessionProbes.js';
import { acquireWorkerLock, corruptLockExpired, releaseWorkerLock, workerLockStatus } from './workerLock.js';

/** What the scheduler knows of the job files: the specs it last reported, with their prompts. */
export interface ScanResult {
  specs: JobSpec[];
  problems: Array<{ file: string; problem: string }>;
  /** Prompt text by slug, for the hash in the spec. */
  prompts: Map<string, { hash: string; prompt: string }>;
  /** One string that changes whenever what the queue would be told changes. */
  fingerprint: string;
}

export interface ScanOptions {
  projectDir: string;
  jobsDir: string;
  /** argv for jobs that name none. */
  defaultCommand: readonly string[];
  /** Config timeouts (each job may override). */
  timeouts?: Partial<JobTimeouts>;
  /** Config retries (each job may override); default none. */
  retries?: Partial<Retries>;
}


/** Reads the jobs dir into specs: cwd resolved against the project dir, config defaults applied. */
export function scanJobs(options: ScanOptions): ScanResult {
  let read: { jobs: JobFile[]; problems: Array<{ file: string; problem: string }> };
  try {
    read = existsSync(options.jobsDir) ? readJobsDir(options.jobsDir) : { jobs: [], problems: [] };
  } catch (error) {
    // The dir itself is unreadable: say so as a problem; the jobs the queue knows stay as they are.
    read = { jobs: [], problems: [{ file: options.jobsDir, problem: `cannot read the jobs dir: ${(error as NodeJS.ErrnoException).code ?? String(error)}` }] };
  }
  const specs: JobSpec[] = [];
  const prompts = new Map<string, { hash: string; prompt: string }>();
  for (const job of read.jobs) {
    specs.push({
      slug: job.slug,
      file: job.file,
      hash: job.hash,
      title: job.title ?? job.slug,
      group: job.parallelGroup,
      cwd: resolve(options.projectDir, job.cwd ?? '.'),
      command: [...(job.command ?? options.defaultCommand)],
      timeouts: { ...DEFAULT_JOB_TIMEOUTS, ...options.timeouts, ...job.timeouts },
      estimateMinutes: job.estimateMinutes ?? null,
      promptBytes: Buffer.byteLength(job.prompt),
      dependsOn: [...new Set(job.dependsOn ?? [])],
      retries: retriesOf(options.retries, job.retries),
    });
    prompts.set(job.slug, { hash: job.hash, prompt: job.prompt });
  }
  const bad = dependencyProblems(specs);
  if (bad.size > 0) {
    for (const spec of specs) if (bad.has(spec.slug)) read.problems.push({ file: spec.file, problem: bad.get(spec.slug)! });
    read.problems.sort((a, b) => (a.file < b.file ? -1 : 1));
    specs.splice(0, specs.length, ...specs.filter((s) => !bad.has(s.slug)));
  }
  const fingerprint = JSON.stringify([specs.map((s) => [s.slug, s.hash, s.cwd, s.command, s.timeouts, s.retries]), read.problems]);
  return { specs, problems: read.problems, prompts, fingerprint };
}

function retriesOf(config: Partial<Retries> | undefined, job: Partial<Retries> | undefined): Retries | null {
  const retries: Retries = { ...FAILURE_DEFAULTS.retries, ...config, ...job };
  return retries.max > 0 ? retries : null;
}

/**
 * Jobs whose dependencies cannot be met, with why: a slug that names no job (or a job that is
 * itself refused), or a cycle. Such a job is reported as a bad job file, and nothing in a cycle runs.
 */
export function dependencyProblems(specs: readonly Pick<JobSpec, 'slug' | 'dependsOn'>[]): Map<string, string> {
  const bySlug = new Map(specs.map((s) => [s.slug, s]));
  const bad = new Map<string, string>();
  // Cycles first (each member is named with the whole cycle), by depth-first search.
  const state = new Map<string, 'open' | 'done'>();
  const path: string[] = [];
  const visit = (slug: string) => {
    state.set(slug, 'open');
    path.push(slug);
    for (const dep of bySlug.get(slug)!.dependsOn) {
      if (!bySlug.has(dep)) continue;
      if (state.get(dep) === 'open') {
        const cycle = [...path.slice(path.indexOf(dep)), dep];
        for (const member of cycle) if (!bad.has(member)) bad.set(member, `dependsOn: a cycle: ${cycle.join(' → ')}`);
      } else if (!state.has(dep)) visit(dep);
    }
    path.pop();
    state.set(slug, 'done');
  };
  for (const spec of specs) if (!state.has(spec.slug)) visit(spec.slug);
  // Then unknown slugs, and dependants of refused jobs, until nothing changes.
  for (let changed = true; changed; ) {
    changed = false;
    for (const spec of specs) {
      if (bad.has(spec.slug)) continue;
      const missing = spec.dependsOn.find((dep) => !bySlug.has(dep) || bad.has(dep));
      if (missing === undefined) continue;
      bad.set(spec.slug, bySlug.has(missing) ? `dependsOn: "${missing}" cannot run (${bad.get(missing)})` : `dependsOn: no job "${missing}"`);
      changed = true;
    }
  }
  return bad;
}

/** What the queue's effects need from the scheduler that runs them. */
export interface QueueHost {
  projectDir: string;
  /** `.warden/runs/<runId>`: prompts, output logs and meta files of this run's jobs. */
  runDir: string;
  /** The last scan (the queue was told exactly this). */
  lastScan(): ScanResult | undefined;
  /** Asks for a new scan (a job's file changed under it). */
  requestScan(): void;
  /** Starts the job actor and sends it job.start. */
  startJobActor(actor: string, input: JobInput): void;
  /** Variables added to every job's environment (config env.set). */
  env: Record<string, string>;
  probes?: readonly SessionProbe[];
  /** How often a blocked job looks at the lock it waits for. */
  blockedProbeMs: number;
  /** An unreadable worker lock younger than this counts as held (default 10 s). */
  workerLockGraceMs?: number;
  /** Where fix plans are written (the jobs dir). */
  jobsDir: string;
  /** The investigator: its argv and its watchdogs. */
  investigator: { command: readonly string[]; timeouts: JobTimeouts };
}

/** How much of a failed job's log its investigator is shown (the full log's path is given too). */
const LOG_TAIL_BYTES = 8 * 1024;

/** The investigator's prompt: the failed job's prompt, why it failed, its log's tail and path, and what to write where. */
export function investigationPrompt(p: { slug: string; title: string; reason: string; prompt: string; log: string; logTail: string; fixPath: string; group: number; cwd: string }): string {
  return [
    `A job run by Warden failed. Find the root cause and write a fix plan. Do not attempt the fix, and change no file but the fix plan.`,
    ``,
    `Failed job: ${p.slug} (${p.title})`,
    `Why it failed: ${p.reason}`,
    `Its full log: ${p.log} (also in WARDEN_FAILED_LOG)`,
    ``,
    `Write the fix plan to ${p.fixPath} (also in WARDEN_FIX_PATH): a self-contained Warden job file —`,
    `YAML frontmatter between "---" lines with \`title\`, \`parallelGroup: ${p.group}\` and \`cwd: ${p.cwd}\`, then the prompt`,
    `of the fix: what is wrong, where, and how to fix it, so that an agent with no other context can do it.`,
    ``,
    `The failed job's prompt:`,
    `-----`,
    p.prompt.trimEnd(),
    `-----`,
    ``,
    `The last ${LOG_TAIL_BYTES / 1024} KiB of its log:`,
    `-----`,
    p.logTail.trimEnd(),
    `-----`,
    ``,
  ].join('\n');
}

/** File names of a run's files: `<slug>` for a job's first run, `<slug>#<n>` after. */
export function runFileBase(slug: string, run: number): string {
  return run === 1 ? slug : `${slug}#${run}`;
}

export function queueEffects(host: QueueHost): EffectHandlers {
  const probes = () => host.probes ?? defaultProbes();
  return {
    startJob: fromPromise(async ({ input }: { input: EffectInput<QueueEffects['startJob']> }) => {
      const { slug, hash, run, actor, jobId, cwd } = input.params;
      const at = () => new Date(input.now()).toISOString();
      const spec = host.lastScan()?.specs.find((s) => s.slug === slug);
      const prompt = host.lastScan()?.prompts.get(slug);
      if (!spec || spec.hash !== hash || !prompt || prompt.hash !== hash) {
        input.send({ type: 'queue.startFailed', slug, reason: 'its job file changed since it was read; read again', retry: true });
        host.requestScan();
        return;
      }
      // Whatever stops the start (a cwd that is a file, a .runtime or agent.lock that is a
      // symlink, an unwritable run dir) fails the job with the reason: an effect that threw
      // would leave it `starting` for good, holding its slot, and `--once` would never end.
      let locked = false;
      let started = false;
      try {
        if (existsSync(cwd) && !statSync(cwd).isDirectory()) {
          input.send({ type: 'queue.startFailed', slug, reason: `cannot start: cwd is not a directory: ${cwd}`, retry: false });
          return;
        }
        // One live agent per worker: the job's cwd lock, held for its session (`warden-job:<jobId>`),
        // so the lock stays live while any process of the job does, even past this scheduler.
        if (existsSync(cwd)) {
          try {
            await acquireWorkerLock(cwd, { session: `${WARDEN_JOB_SESSION_PREFIX}${jobId}` }, { probes: probes(), graceMs: host.workerLockGraceMs });
            locked = true;
          } catch (error) {
            if (error instanceof LockHeldError) {
              const holder = error.holder;
              input.send({
                type: 'queue.jobBlocked',
                slug,
                holder: {
                  pid: typeof holder?.pid === 'number' ? holder.pid : null,
                  session: holder?.session_id ?? null,
                  hostname: holder?.hostname ?? null,
                  reason: error.reason,
                },
              });
              return;
            }
            if (error instanceof FlockTimeoutError) {
              // Another process holds the worker's coordination lock: blocked (and watched), not failed.
              input.send({ type: 'queue.jobBlocked', slug, holder: { pid: null, session: null, hostname: null, reason: error.message } });
              return;
            }
            if (error instanceof LockFormatError || error instanceof LockPathError) {
              input.send({ type: 'queue.startFailed', slug, reason: `cannot start: worker lock: ${error.message}`, retry: false });
              return;
            }
            throw error;
          }
        }
        // (A missing cwd is the job's own failure: its spawn reports "cwd missing".)
        const base = runFileBase(slug, run);
        mkdirSync(host.runDir, { recursive: true, mode: 0o700 });
        const promptPath = join(host.runDir, `${base}.prompt`);
        writePrivate(promptPath, prompt.prompt);
        const via = spec.command.some((a) => a.includes('{prompt}')) ? 'argv' : 'stdin';
        const jobInput: JobInput = {
          jobId,
          slug,
          command: spec.command,
          cwd,
          prompt: { path: promptPath, via, bytes: Buffer.byteLength(prompt.prompt) },
          outputLog: join(host.runDir, `${base}.log`),
          metaPath: join(host.runDir, `${base}.meta.json`),
          env: { ...host.env },
          timeouts: spec.timeouts,
        };
        input.send({ type: 'queue.jobStarted', slug, actor, jobId, at: at() });
        started = true;
        host.startJobActor(actor, jobInput);
      } catch (error) {
        const reason = `cannot start: ${errorText(error)}`;
        if (locked && !started) await releaseWorkerLock(cwd).catch(() => {});
        if (!started) input.send({ type: 'queue.startFailed', slug, reason, retry: false });
        // The queue counts it as running under an actor that never came to be: its verdict, then.
        else input.send({ type: 'queue.jobFinished', slug, actor, outcome: 'failed', reason, exitCode: null, signal: null, killedBy: null, startedAt: null, finishedAt: null, costUsd: null, rateLimitResetsAt: null, at: at() });
      }
    }),

    watchWorker: fromCallback(({ input }: { input: EffectInput<QueueEffects['watchWorker']> }) => {
      let stopped = false;
      let timer: LongTimeout | undefined;
      const look = async () => {
        if (stopped) return;
        let free = false;
        try {
          const status = await workerLockStatus(input.params.cwd, {}, { probes: probes() });
          // A corrupt lock past its grace is free too: the acquire that follows moves it aside.
          free = status.state === 'unlocked' || status.state === 'ours' || status.state === 'stale' || corruptLockExpired(status, Date.now(), host.workerLockGraceMs);
        } catch {
          free = false; // unreadable now: look again later
        }
        if (stopped) return;
        if (free) input.send({ type: 'queue.workerFree', slug: input.params.slug });
        else timer = setLongTimeout(() => void look(), host.blockedProbeMs);
      };
      timer = setLongTimeout(() => void look(), host.blockedProbeMs);
      return () => {
        stopped = true;
        timer?.clear();
      };
    }),

    investigate: fromPromise(async ({ input }: { input: EffectInput<QueueEffects['investigate']> }) => {
      const p = input.params;
      const fixPath = join(host.jobsDir, `${p.fixSlug}.md`);
      if (existsSync(fixPath)) {
        input.send({ type: 'queue.investigationSkipped', slug: p.slug, reason: `its fix plan ${fixPath} exists already` });
        return;
      }
      // The failed run's own files: its run dir is named by the runId in its job id.
      const failedRunDir = join(host.projectDir, '.warden', 'runs', p.jobId.slice(0, p.jobId.indexOf('/')));
      const failedBase = runFileBase(p.slug, p.run);
      const log = join(failedRunDir, `${failedBase}.log`);
      let prompt = '(its prompt file is gone)';
      try {
        prompt = readFileSync(join(failedRunDir, `${failedBase}.prompt`), 'utf8');
      } catch {
        // shown as gone
      }
      const base = `investigation-${p.actor.slice(p.actor.indexOf(':') + 1)}`;
      mkdirSync(host.runDir, { recursive: true, mode: 0o700 });
      const promptPath = join(host.runDir, `${base}.prompt`);
      const text = investigationPrompt({ slug: p.slug, title: p.title, reason: p.reason, prompt, log, logTail: existsSync(log) ? fileTail(log, LOG_TAIL_BYTES) : '(no log)', fixPath, group: p.group, cwd: p.cwd });
      writePrivate(promptPath, text);
      const command = [...host.investigator.command];
      const via = command.some((a) => a.includes('{prompt}')) ? 'argv' : 'stdin';
      input.send({ type: 'queue.investigationStarted', slug: p.slug, actor: p.actor, fixFile: fixPath, at: new Date(input.now()).toISOString() });
      host.startJobActor(p.actor, {
        jobId: `${host.runDir.slice(host.runDir.lastIndexOf('/') + 1)}/${base}`,
        slug: base,
        command,
        cwd: existsSync(p.cwd) ? p.cwd : host.projectDir,
        prompt: { path: promptPath, via, bytes: Buffer.byteLength(text) },
        outputLog: join(host.runDir, `${base}.log`),
        metaPath: join(host.runDir, `${base}.meta.json`),
        env: { ...host.env, WARDEN_FAILED_LOG: log, WARDEN_FIX_PATH: fixPath },
        timeouts: host.investigator.timeouts,
      });
    }),

    releaseWorker: fromPromise(async ({ input }: { input: EffectInput<QueueEffects['releaseWorker']> }) => {
      // Only this process's lock goes; one a dead scheduler took is stale, and the next start takes it over.
      if (existsSync(input.params.cwd)) await releaseWorkerLock(input.params.cwd);
    }),
  };
}

/** An error as one line: its message, with the errno code where there is one. */
function errorText(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  const message = error instanceof Error ? error.message : String(error);
  return code && !message.includes(code) ? `${code}: ${message}` : message;
}

function writePrivate(path: string, text: string): void {
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o600);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
}
