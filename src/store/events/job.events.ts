import { z } from 'zod';

const ms = (what: string) => z.number().int().positive().describe(what);

export const jobTimeoutsSchema = z.strictObject({
  maxDurationMs: ms('killed past this long in all (default 2 h)'),
  postResultGraceMs: ms('after a result, how long the process may take to exit by itself (default 90 s)'),
  killAfterMs: ms('after SIGTERM, how long before SIGKILL (default 30 s)'),
  idleOutputMs: ms('killed after this long without output (default 20 min)'),
});
export type JobTimeouts = z.infer<typeof jobTimeoutsSchema>;

export const DEFAULT_JOB_TIMEOUTS: JobTimeouts = {
  maxDurationMs: 2 * 60 * 60 * 1000,
  postResultGraceMs: 90 * 1000,
  killAfterMs: 30 * 1000,
  idleOutputMs: 20 * 60 * 1000,
};

/** Input of a job actor (`job:<slug>`): what to run, where, and its watchdogs. */
export const jobInputSchema = z.strictObject({
  jobId: z.string().min(1).describe('unique per run of the job; its processes carry it as WARDEN_JOB_ID'),
  slug: z.string().min(1),
  command: z.array(z.string()).min(1).describe('argv: the program and its arguments (never a shell string)'),
  cwd: z.string().min(1),
  prompt: z
    .strictObject({
      path: z.string().min(1).describe('the file holding the prompt (the prompt itself is not logged)'),
      via: z
        .enum(['stdin', 'file', 'argv'])
        .describe('stdin: written to the child\'s stdin, then EOF; file: its path is in WARDEN_PROMPT_FILE; argv: replaces {prompt} in the command (at most 100 KiB)'),
      bytes: z.number().int().nonnegative(),
    })
    .nullable()
    .describe('null: the child gets no prompt and an empty stdin'),
  outputLog: z.string().min(1).describe('where each output line is appended (`.warden/runs/<runId>/<slug>.log`)'),
  metaPath: z.string().min(1).describe('the meta file written when the job ends'),
  env: z
    .record(z.string(), z.string())
    .describe('variables added to the child\'s environment (after the deny list); the inherited environment is not logged'),
  timeouts: jobTimeoutsSchema,
});
export type JobInput = z.infer<typeof jobInputSchema>;

const usageSchema = z.record(z.string(), z.unknown()).nullable();

export const jobResultSchema = z.strictObject({
  subtype: z.string().nullable().describe('e.g. success, error_max_turns, error_during_execution'),
  isError: z.boolean().describe('the result is a failure, as the agent reports it (is_error, or a subtype other than success)'),
  durationMs: z.number().nullable().describe('the agent\'s own duration_ms'),
  costUsd: z.number().nullable().describe('total_cost_usd'),
  usage: usageSchema.describe('token usage as the agent reported it'),
  apiErrorStatus: z.number().int().nullable().describe('api_error_status, when the result is an API error (429: rate limited)'),
  bytes: z.number().int().positive().describe('length of the result line'),
});
export type JobResult = z.infer<typeof jobResultSchema>;

export const killedBySchema = z.enum(['maxDuration', 'postResult', 'idle', 'user', 'interrupt']);
export type KilledBy = z.infer<typeof killedBySchema>;

/** Data of each event the job machine accepts, by event type. */
export const jobEvents = {
  'job.start': z.strictObject({}).describe('Start the job: its process is spawned.'),
  'job.spawned': z
    .strictObject({
      pid: z.number().int().positive(),
      startedAt: z.iso.datetime(),
      pidStartTime: z.string().nullable().optional().describe('its start time (/proc stat field 22): a later run tells it from a reused pid'),
    })
    .describe('The process is running, in a process group of its own.'),
  'job.spawnFailed': z
    .strictObject({ reason: z.string().describe('command not found, cwd missing, permission denied …'), at: z.iso.datetime() })
    .describe('The process could not be started; the job fails.'),
  'job.firstOutput': z.strictObject({ at: z.iso.datetime() }).describe('The first line of output.'),
  'job.output': z
    .strictObject({
      lines: z.number().int().nonnegative().describe('lines since the last job.output'),
      bytes: z.number().int().nonnegative(),
    })
    .describe('Output activity (coalesced: at most one per interval, never one per line); resets the idle watchdog.'),
  'job.resultSeen': jobResultSchema.describe('A `{"type": "result", …}` line: the agent reports it is done.'),
  'job.rateLimited': z
    .strictObject({
      resetsAt: z.iso.datetime().nullable().describe('when the limit resets, if the signal says'),
      source: z.string().describe('what signalled it: rate_limit_event, result api_error_status 429, or pattern:<name>'),
    })
    .describe('A structured rate-limit signal (a message that merely mentions a limit is not one).'),
  'job.cancel': z.strictObject({ reason: z.string() }).describe('Stop the job (a user, or the scheduler).'),
  'job.interrupt': z
    .strictObject({ reason: z.string().describe('why: the scheduler that ran it died, or is shutting down') })
    .describe('The job\'s supervision ended before the job did: whatever of it is still alive is killed, and the job ends `interrupted` (the queue may run it again).'),
  'job.signalled': z
    .strictObject({
      signal: z.enum(['SIGTERM', 'SIGKILL']),
      pids: z.array(z.number().int().positive()).describe('every process signalled: the group, its descendants, and any carrying WARDEN_JOB_ID'),
    })
    .describe('What a kill stage reached.'),
  'job.exited': z
    .strictObject({
      exitCode: z.number().int().nullable(),
      signal: z.string().nullable(),
      at: z.iso.datetime(),
    })
    .describe('The job\'s main process has exited.'),
  'job.reaped': z
    .strictObject({
      killed: z.array(z.number().int().positive()).describe('processes left behind by the job, killed after it exited'),
      survivors: z.array(z.number().int().positive()).describe('processes still there after SIGKILL (should be empty)'),
    })
    .describe('Nothing of the job is left running (or what is, by pid).'),
  'job.metaWritten': z.strictObject({ path: z.string() }).describe('The meta file was written.'),
} as const;

export type JobEvent =
  | { type: 'job.start' }
  | { type: 'job.spawned'; pid: number; startedAt: string; pidStartTime?: string | null }
  | { type: 'job.spawnFailed'; reason: string; at: string }
  | { type: 'job.firstOutput'; at: string }
  | { type: 'job.output'; lines: number; bytes: number }
  | ({ type: 'job.resultSeen' } & JobResult)
  | { type: 'job.rateLimited'; resetsAt: string | null; source: string }
  | { type: 'job.cancel'; reason: string }
  | { type: 'job.interrupt'; reason: string }
  | { type: 'job.signalled'; signal: 'SIGTERM' | 'SIGKILL'; pids: number[] }
  | { type: 'job.exited'; exitCode: number | null; signal: string | null; at: string }
  | { type: 'job.reaped'; killed: number[]; survivors: number[] }
  | { type: 'job.metaWritten'; path: string }
  | { type: 'effect.failed'; effect: string; causeSeq: number; message: string };
