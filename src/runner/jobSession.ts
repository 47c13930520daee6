/**
 * One supervised job, run to its end through the runner and a log of its own: what `warden exec`
 * does, and what an embedder calls to run a single agent under Warden's watchdogs.
 */
import { randomUUID } from 'node:crypto';
import { copyFileSync, mkdirSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { RateLimitPattern } from '../effects/agentOutput.js';
import { systemClock, type Clock } from '../effects/clock.js';
import type { JobEnvOptions } from '../effects/jobEnv.js';
import { jobEffects } from '../effects/jobProcess.js';
import { takeFlock } from '../effects/flock.js';
import { FlockTimeoutError, UsageError } from '../errors.js';
import { deadExecs, type DeadExec } from './execRecovery.js';
import { builtInMachines } from '../machines/catalogue.js';
import { metaOf, type JobContext, type JobMeta, type JobOutcome } from '../machines/job.machine.js';
import { SLUG_PATTERN } from '../store/jobFile.js';
import { DEFAULT_JOB_TIMEOUTS, type JobInput, type JobTimeouts } from '../store/events/job.events.js';
import { Runner } from './runner.js';

export interface RunJobOptions {
  /** The project dir: its `.warden/` holds the log (`exec/<runId>.jsonl`) and the run's files. Default `.`. */
  dir?: string;
  /** argv: the program and its arguments. `{prompt}` in an argument is replaced by the prompt (≤ 100 KiB). */
  command: readonly string[];
  /** Where the job runs (default: the project dir). */
  cwd?: string;
  /** Names the job's files and actor (default `exec`). */
  slug?: string;
  /** A file holding the prompt; copied into the run's dir, then given on stdin (or via `promptVia`). */
  promptFile?: string;
  /** How the prompt reaches the child: stdin (default), file (`WARDEN_PROMPT_FILE`), argv (`{prompt}`). */
  promptVia?: 'stdin' | 'file' | 'argv';
  timeouts?: Partial<JobTimeouts>;
  env?: JobEnvOptions;
  rateLimitPatterns?: readonly RateLimitPattern[];
  /** Pass the child's stdout and stderr through to this process's, as they come. */
  passThrough?: boolean;
  /** Aborting cancels the job (SIGTERM, then SIGKILL after killAfterMs). */
  signal?: AbortSignal;
  clock?: Clock;
  fsync?: 'always' | 'batch' | 'never';
  /** Told of each dead exec in the dir whose leftovers were killed (and log ended) before this job started. */
  onRecovered?: (dead: DeadExec) => void;
}

export interface JobRun {
  runId: string;
  /** The log of this run. */
  log: string;
  /** The job's actor id in it. */
  actor: string;
  outcome: JobOutcome;
  meta: JobMeta;
}


/**
 * Runs one command as a supervised job and resolves with its outcome once nothing of it is left.
 * @example const { outcome, meta } = await runJob({ command: ['claude', '-p', '--output-format', 'stream-json'], promptFile: 'task.md' })
 */
export async function runJob(options: RunJobOptions): Promise<JobRun> {
  const dir = resolve(options.dir ?? '.');
  const slug = options.slug ?? 'exec';
  if (!SLUG_PATTERN.test(slug)) throw new UsageError(`slug "${slug}": expected lowercase letters, digits, ".", "_" or "-", starting with a letter or digit, and no ".."`);
  if (options.command.length === 0 || options.command[0] === '') throw new UsageError('no command given');
  const timeouts = { ...DEFAULT_JOB_TIMEOUTS, ...options.timeouts };
  for (const [name, value] of Object.entries(timeouts)) {
    if (!Number.isInteger(value) || value < 1) throw new UsageError(`${name}: expected a positive integer of ms, got ${String(value)}`);
  }
  const via = options.promptVia ?? (options.command.some((a) => a.includes('{prompt}')) ? 'argv' : 'stdin');
  if (via === 'argv' && !options.command.some((a) => a.includes('{prompt}'))) throw new UsageError('promptVia argv: no {prompt} in the command');
  if (options.command.some((a) => a.includes('{prompt}')) && !options.promptFile) throw new UsageError('the command has a {prompt} placeholder but no prompt was given');

  let size = 0;
  if (options.promptFile !== undefined) {
    try {
      size = statSync(options.promptFile).size;
    } catch (error) {
      throw new UsageError(`prompt file ${options.promptFile}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
    }
  }

  const runId = `${new Date().toISOString().replace(/[:.]/g, '-')}-${randomUUID().slice(0, 8)}`;
  const runDir = join(dir, '.warden', 'runs', runId);
  mkdirSync(runDir, { recursive: true, mode: 0o700 });
  let prompt: JobInput['prompt'] = null;
  if (options.promptFile !== undefined) {
    // The run keeps the prompt it ran with: editing the original later changes nothing here.
    const path = join(runDir, `${slug}.prompt`);
    copyFileSync(options.promptFile, path);
    prompt = { path, via, bytes: size };
  }
  const jobId = `${runId}/${slug}`;
  const input: JobInput = {
    jobId,
    slug,
    command: [...options.command],
    cwd: resolve(options.cwd ?? dir),
    prompt,
    outputLog: join(runDir, `${slug}.log`),
    metaPath: join(runDir, `${slug}.meta.json`),
    // Only the additions are logged; the inherited environment is filtered at spawn time.
    env: { ...(options.env?.set ?? {}) },
    timeouts,
  };

  const log = join(dir, '.warden', 'exec', `${runId}.jsonl`);
  mkdirSync(join(dir, '.warden', 'exec'), { recursive: true, mode: 0o700 });
  // What an exec that died here left running is killed first, and its log ended.
  for (const dead of await deadExecs(dir, { recover: true, by: `warden exec (pid ${process.pid})` })) options.onRecovered?.(dead);
  // Held for as long as this process runs the job: a log whose flock is free and that lacks its
  // run.stopped is a dead exec's (see execRecovery.ts). Waited for, since a cleaner that came
  // upon the new, empty log may be holding it for a moment.
  const held = await takeFlock(log, { mode: 0o600 });
  if (!held) throw new FlockTimeoutError(log, 10_000);
  let runner: Runner;
  try {
    runner = Runner.open({
      log,
      runId,
      machines: builtInMachines,
      clock: options.clock ?? systemClock,
      fsync: options.fsync,
      resume: false,
      effects: jobEffects({
        env: { deny: options.env?.deny, allow: options.env?.allow },
        // The agent dies with this process; what it started is found from the log by the next one.
        parentDeathSignal: true,
        rateLimitPatterns: options.rateLimitPatterns,
        passThrough: options.passThrough ? { stdout: process.stdout, stderr: process.stderr } : undefined,
      }),
    });
  } catch (error) {
    held.release();
    throw error;
  }
  const actor = `job:${slug}`;
  const cancel = () => runner.send(actor, { type: 'job.cancel', reason: String(options.signal?.reason ?? 'aborted') });
  try {
    runner.start(actor, 'job', input);
    options.signal?.addEventListener('abort', cancel, { once: true });
    if (options.signal?.aborted) cancel();
    else runner.send(actor, { type: 'job.start' });
    const done = await Promise.race([runner.waitFor(actor, (s) => s.status === 'done'), runner.halted.then((reason) => Promise.reject(reason))]);
    const context = done.context as JobContext;
    return { runId, log, actor, outcome: context.outcome ?? 'failed', meta: metaOf(context) };
  } finally {
    options.signal?.removeEventListener('abort', cancel);
    runner.close('job ended');
    held.release();
  }
}
