/**
 * The job machine's effects: spawn the agent (execa, an argv array, detached into a session and
 * process group of its own), read its output as it comes, signal and reap everything it started,
 * write its meta file. Events go back through `send`, so the log records them before the
 * machine sees them.
 */
import { createReadStream, closeSync, constants, fstatSync, mkdirSync, openSync, readFileSync, readSync, renameSync, statSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { pipeline } from 'node:stream';
import { execa } from 'execa';
import { fromCallback, fromPromise } from 'xstate';
import type { EffectHandlers, EffectInput } from '../runner/runner.js';
import type { JobMeta } from '../machines/job.machine.js';
import type { JobInput, JobResult } from '../store/events/job.events.js';
import { LineScanner, type RateLimitPattern } from './agentOutput.js';
import { isExecutable, withParentDeathSignal } from './guardedCommand.js';
import { jobEnvironment, type JobEnvOptions } from './jobEnv.js';
import { readStartTime } from './processIdentity.js';
import { killJobRemains, signalJobProcesses } from './processTree.js';

/** After the process exits, its pipes are read until they end or stay quiet this long. */
const EXIT_QUIET_MS = 100;

/** What spawnJob is asked to run: the job's input, minus what only the machine needs. */
export type SpawnParams = Pick<JobInput, 'jobId' | 'command' | 'cwd' | 'prompt' | 'outputLog' | 'env'> & { idleOutputMs: number };

/** Prompts passed through an argv `{prompt}` placeholder may be at most this long. */
export const MAX_ARGV_PROMPT_BYTES = 100 * 1024;

export interface JobEffectsOptions {
  /** The deny and allow lists applied to the inherited environment (see jobEnv.ts). */
  env?: Pick<JobEnvOptions, 'deny' | 'allow'>;
  rateLimitPatterns?: readonly RateLimitPattern[];
  maxLineBytes?: number;
  /** Where the child's output also goes, as it comes (`warden exec` passes it through). */
  passThrough?: { stdout: NodeJS.WritableStream; stderr: NodeJS.WritableStream };
  /** How long SIGKILLed leftovers may take to disappear before they are reported as survivors. */
  reapWithinMs?: number;
  /**
   * The agent's main process gets a parent-death SIGKILL (as `lease run` gives its CMD): it dies
   * with this process. `warden exec` asks for it; a queue's jobs outlive a dead scheduler until
   * the next run reaps them.
   */
  parentDeathSignal?: boolean;
}

interface Running {
  pid: number;
  /** Its start time (ticks after boot): only processes started since can carry its WARDEN_JOB_ID. */
  startTime: number | null;
}

/**
 * Effect handlers for the job machine, sharing one table of running jobs.
 * @example Runner.open({ log, machines: [jobDefinition], effects: jobEffects() })
 */
export function jobEffects(options: JobEffectsOptions = {}): EffectHandlers {
  const running = new Map<string, Running>();
  return {
    spawnJob: fromCallback(({ input }: { input: EffectInput<SpawnParams> }) => {
      const stop = spawnAgent(input, options, (pid) => {
        const started = readStartTime(pid);
        running.set(input.params.jobId, { pid, startTime: started === null ? null : Number(started) });
        return started;
      });
      return stop;
    }),
    signalJob: fromPromise(async ({ input }: { input: EffectInput<{ jobId: string; signal: 'SIGTERM' | 'SIGKILL' }> }) => {
      const job = running.get(input.params.jobId);
      const pids = signalJobProcesses(input.params.jobId, job ?? null, input.params.signal);
      input.send({ type: 'job.signalled', signal: input.params.signal, pids });
    }),
    reapJob: fromPromise(async ({ input }: { input: EffectInput<{ jobId: string; root?: { pid: number; pidStartTime: string | null } | null }> }) => {
      // A job this process started is known here; one a dead run started is known from its log:
      // its main pid counts only while that pid still has the start time the log recorded.
      const job = running.get(input.params.jobId) ?? rootFromLog(input.params.root ?? null);
      const { killed, survivors } = await killJobRemains(input.params.jobId, job ?? null, options.reapWithinMs ?? 2_000);
      running.delete(input.params.jobId);
      input.send({ type: 'job.reaped', killed, survivors });
    }),
    writeMeta: fromPromise(async ({ input }: { input: EffectInput<{ path: string; meta: JobMeta }> }) => {
      writeFileAtomically(input.params.path, `${JSON.stringify(input.params.meta, null, 2)}\n`);
      input.send({ type: 'job.metaWritten', path: input.params.path });
    }),
  };
}

/** How much of the end of an output file recovery reads for a result line (a line may be 16 MiB). */
const RESULT_TAIL_BYTES = 32 * 1024 * 1024;

/**
 * The last result line in a job's output file (its last 32 MiB), or null (no file, no result).
 * A run that died may have written the agent's result there without logging it: recovery reads
 * it back.
 */
export function resultInOutputLog(path: string, maxLineBytes?: number): JobResult | null {
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch {
    return null;
  }
  let found: JobResult | null = null;
  const scanner = new LineScanner({ maxLineBytes, onResult: (result) => (found = result), onRateLimit: () => {} });
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) return null;
    // From the first line that starts inside the tail: a cut line is not read as one.
    let position = Math.max(0, stat.size - RESULT_TAIL_BYTES);
    let skipping = position > 0;
    for (;;) {
      const chunk = Buffer.alloc(1024 * 1024);
      const read = readSync(fd, chunk, 0, chunk.length, position);
      if (read === 0) break;
      position += read;
      let piece = chunk.subarray(0, read);
      if (skipping) {
        const newline = piece.indexOf(0x0a);
        if (newline < 0) continue;
        piece = piece.subarray(newline + 1);
        skipping = false;
      }
      scanner.push(piece);
    }
    scanner.end();
  } catch {
    // Unreadable part-way (not a regular file, say): what was read stands.
  } finally {
    closeSync(fd);
  }
  return found;
}

/** The root of a job a dead run started: its pid, only if that pid still has the recorded start time. */
function rootFromLog(root: { pid: number; pidStartTime: string | null } | null): Running | null {
  if (root === null || root.pidStartTime === null) return null;
  const now = readStartTime(root.pid);
  return now !== null && now === root.pidStartTime ? { pid: root.pid, startTime: Number(now) } : null;
}

/** Spawns the agent and watches it; returns what stops watching (the process is the kill stages' business). */
function spawnAgent(input: EffectInput<SpawnParams>, options: JobEffectsOptions, onPid: (pid: number) => string | null): () => void {
  const { params } = input;
  const at = () => new Date(input.now()).toISOString();
  let reported = false;
  const send = (event: { type: string } & Record<string, unknown>) => {
    if (!reported) input.send(event);
  };
  const fail = (reason: string) => {
    send({ type: 'job.spawnFailed', reason, at: at() });
    reported = true;
  };

  // What can be checked before spawning, with a clear reason.
  try {
    if (!statSync(params.cwd).isDirectory()) return (fail(`cwd is not a directory: ${params.cwd}`), () => {});
  } catch {
    return (fail(`cwd missing: ${params.cwd}`), () => {});
  }
  let argv = params.command;
  if (params.prompt?.via === 'argv') {
    const text = readFileSync(params.prompt.path);
    if (text.length > MAX_ARGV_PROMPT_BYTES) {
      return (fail(`the prompt is ${text.length} bytes; a {prompt} argv placeholder takes at most ${MAX_ARGV_PROMPT_BYTES} (use stdin or a prompt file)`), () => {});
    }
    argv = argv.map((arg) => arg.replaceAll('{prompt}', text.toString('utf8')));
  }
  mkdirSync(dirname(params.outputLog), { recursive: true, mode: 0o700 });
  const logFd = openSync(params.outputLog, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
  // Closed exactly once: a descriptor number closed twice may by then be another file's.
  let logOpen = true;
  const closeLog = () => {
    if (logOpen) closeSync(logFd);
    logOpen = false;
  };

  let stopped = false;
  let child: ReturnType<typeof spawnDetached> | undefined;
  // Output activity, coalesced: at most one job.output per interval.
  // The first line of a burst schedules one flush; a silent job costs no wake-ups at all.
  const coalesceMs = Math.min(1_000, Math.max(10, Math.floor(params.idleOutputMs / 10)));
  let pendingLines = 0;
  let pendingBytes = 0;
  let sawOutput = false;
  let lastDataAt = 0;
  let flushTimer: NodeJS.Timeout | undefined;
  const flush = () => {
    clearTimeout(flushTimer);
    flushTimer = undefined;
    if (pendingLines === 0 && pendingBytes === 0) return;
    send({ type: 'job.output', lines: pendingLines, bytes: pendingBytes });
    pendingLines = 0;
    pendingBytes = 0;
  };

  const scannerFor = () =>
    new LineScanner({
      maxLineBytes: options.maxLineBytes,
      rateLimitPatterns: options.rateLimitPatterns,
      onLine: () => {
        if (!sawOutput) {
          sawOutput = true;
          send({ type: 'job.firstOutput', at: at() });
        }
        pendingLines++;
      },
      onResult: (result) => {
        flush();
        send({ type: 'job.resultSeen', ...result });
      },
      onRateLimit: (signal) => send({ type: 'job.rateLimited', ...signal }),
    });
  const scanners = { stdout: scannerFor(), stderr: scannerFor() };

  const env = jobEnvironment(params.jobId, {
    ...options.env,
    set: { ...params.env, ...(params.prompt?.via === 'file' ? { WARDEN_PROMPT_FILE: params.prompt.path } : {}) },
  });
  try {
    child = spawnDetached(argv, params.cwd, env, params.prompt?.via === 'stdin', options.parentDeathSignal ?? false);
  } catch (error) {
    closeLog();
    return (fail(spawnReason(error, argv[0]!)), () => {});
  }
  const subprocess = child;

  let spawned = false;
  subprocess.once('spawn', () => {
    spawned = true;
    if (subprocess.pid === undefined) return;
    const pidStartTime = onPid(subprocess.pid);
    send({ type: 'job.spawned', pid: subprocess.pid, startedAt: at(), pidStartTime });
    if (params.prompt?.via === 'stdin' && subprocess.stdin) {
      // An agent that exits without reading its prompt closes the pipe: not Warden's error. The
      // pipeline closes the prompt file either way (a plain pipe() would leak its descriptor).
      pipeline(createReadStream(params.prompt.path), subprocess.stdin, () => {});
    }
  });
  subprocess.once('error', (error) => {
    if (!spawned) {
      flush();
      closeLog();
      fail(spawnReason(error, argv[0]!));
    }
  });

  for (const name of ['stdout', 'stderr'] as const) {
    const stream = subprocess[name];
    if (!stream) continue;
    stream.on('data', (chunk: Buffer) => {
      if (logOpen) writeSync(logFd, chunk);
      options.passThrough?.[name].write(chunk);
      // Activity is bytes, not finished lines: an agent streaming one long line is not idle.
      pendingBytes += chunk.length;
      flushTimer ??= setTimeout(flush, coalesceMs);
      lastDataAt = performance.now();
      scanners[name].push(chunk);
    });
  }

  subprocess.once('exit', (exitCode, signal) => {
    // Output the process wrote just before exiting may still be in the pipes: read it first. A
    // descendant that keeps a pipe open (a background shell) must not hold the exit back, so
    // wait for the streams to end, or to go quiet for a moment (output still draining from a
    // busy pipe keeps the wait going).
    const ended = [subprocess.stdout, subprocess.stderr].map((s) => (s && !s.readableEnded ? new Promise((r) => s.once('end', r)) : Promise.resolve()));
    const quiet = new Promise<void>((resolve) => {
      const check = () => {
        const idle = performance.now() - lastDataAt;
        if (idle >= EXIT_QUIET_MS) resolve();
        else setTimeout(check, EXIT_QUIET_MS - idle);
      };
      lastDataAt = Math.max(lastDataAt, performance.now());
      check();
    });
    const settle = () => {
      scanners.stdout.end();
      scanners.stderr.end();
      flush();
      send({ type: 'job.exited', exitCode, signal, at: at() });
      reported = true;
    };
    void Promise.race([Promise.all(ended), quiet]).then(() => {
      if (!stopped) settle();
    });
  });
  // The log file is closed once nothing can write to it any more.
  subprocess.once('close', closeLog);

  return () => {
    stopped = true;
    clearTimeout(flushTimer);
  };
}

/** spawn(2) through execa: argv, no shell, detached (setsid), output as raw byte streams. */
function spawnDetached(argv: readonly string[], cwd: string, env: Record<string, string>, promptOnStdin: boolean, guarded: boolean) {
  // A command that cannot be run is left to fail at the spawn, with the spawn's own reason.
  const [file, args] = guarded && isExecutable(argv[0]!, cwd, env['PATH']) ? withParentDeathSignal(argv[0]!, argv.slice(1)) : [argv[0]!, argv.slice(1)];
  const subprocess = execa(file, args, {
    cwd,
    env,
    extendEnv: false,
    detached: true,
    // No prompt on stdin: stdin is at EOF from the start (an agent asking a question gets nothing).
    stdin: promptOnStdin ? 'pipe' : 'ignore',
    stdout: 'pipe',
    stderr: 'pipe',
    buffer: false,
    reject: false,
    encoding: 'buffer',
    cleanup: false,
  });
  // The result promise is not used (exit and output are taken from the process itself).
  subprocess.catch(() => {});
  return subprocess;
}

function spawnReason(error: unknown, command: string): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return `command not found: ${command}`;
  if (code === 'EACCES') return `permission denied: ${command}`;
  return `${command}: ${(error as Error).message ?? String(error)}`;
}

/** Writes `text` to `path` whole: a temp file beside it, then rename. */
export function writeFileAtomically(path: string, text: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const temp = `${path}.${process.pid}.tmp`;
  const fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_TRUNC | constants.O_NOFOLLOW, 0o644);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
  renameSync(temp, path);
}
