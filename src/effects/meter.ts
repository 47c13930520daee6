/**
 * The usage meter: one poll of a URL (GET, JSON) or a command (its stdout, JSON), answering
 * `{ "utilization": 0..100, "resetsAt": ISO string | epoch seconds | null }`, checked with zod.
 * Each poll ends in exactly one report — answered, or failed with its kind and a one-line reason
 * — within `timeoutMs`: a hanging URL is aborted, a hanging command is killed with everything it
 * started (it runs in a process group of its own, and its processes carry a WARDEN_JOB_ID of
 * their own, as a job's do).
 */
import { randomUUID } from 'node:crypto';
import { execa } from 'execa';
import { fromCallback } from 'xstate';
import { z } from 'zod';
import type { EffectInput } from '../runner/runner.js';
import type { FailureKind } from '../store/events/poll.events.js';
import { timeOf } from './agentOutput.js';
import { setLongTimeout } from './longTimer.js';
import { killJobRemains } from './processTree.js';

export type MeterConfig = { url: string; headers?: Record<string, string> } | { command: readonly string[] };

export type MeterReport =
  | { type: 'poll.answered'; utilization: number; resetsAt: string | null; at: string; tookMs: number }
  | { type: 'poll.failed'; kind: FailureKind; status: number | null; reason: string; at: string; tookMs: number };

const answerSchema = z.looseObject({
  utilization: z.number().min(0).max(100),
  resetsAt: z.union([z.string(), z.number(), z.null()]).optional(),
});

/** The meter's answer, or why it is not one. */
export function parseMeterAnswer(text: string): { ok: true; utilization: number; resetsAt: string | null } | { ok: false; reason: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    return { ok: false, reason: `not JSON: ${JSON.stringify(text.slice(0, 80))}` };
  }
  const parsed = answerSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    return { ok: false, reason: `${issue?.path.join('.') || '(root)'}: ${issue?.message ?? 'invalid'}` };
  }
  const raw = parsed.data.resetsAt ?? null;
  const resetsAt = raw === null ? null : timeOf(raw);
  if (raw !== null && resetsAt === null) return { ok: false, reason: `resetsAt: not an ISO time or epoch seconds: ${JSON.stringify(raw)}` };
  return { ok: true, utilization: parsed.data.utilization, resetsAt };
}

/** The kind of failure an HTTP status is. */
export function statusKind(status: number): FailureKind {
  if (status === 429) return 'rate_limited';
  if (status === 401 || status === 403) return 'auth';
  return 'http';
}

/**
 * Polls once; calls `report` exactly once (unless stopped first) and returns a stop function
 * that abandons the poll (aborts the request, kills the command).
 */
export function pollOnce(meter: MeterConfig, timeoutMs: number, now: () => number, report: (r: MeterReport) => void): () => void {
  const started = now();
  let done = false;
  const finish = (r: DistributiveOmit<MeterReport, 'at' | 'tookMs'>) => {
    if (done) return;
    done = true;
    report({ ...r, at: new Date(now()).toISOString(), tookMs: Math.max(0, Math.round(now() - started)) } as MeterReport);
  };
  const answer = (text: string) => {
    const parsed = parseMeterAnswer(text);
    if (parsed.ok) finish({ type: 'poll.answered', utilization: parsed.utilization, resetsAt: parsed.resetsAt });
    else finish({ type: 'poll.failed', kind: 'malformed', status: null, reason: `malformed answer: ${parsed.reason}` });
  };
  return 'url' in meter ? pollUrl(meter, timeoutMs, answer, finish, () => done) : pollCommand(meter, timeoutMs, answer, finish, () => done);
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

type Finish = (r: { type: 'poll.failed'; kind: FailureKind; status: number | null; reason: string }) => void;

function pollUrl(meter: { url: string; headers?: Record<string, string> }, timeoutMs: number, answer: (text: string) => void, finish: Finish, isDone: () => boolean): () => void {
  const abort = new AbortController();
  const timer = setLongTimeout(() => {
    finish({ type: 'poll.failed', kind: 'timeout', status: null, reason: `no answer within ${timeoutMs} ms` });
    abort.abort();
  }, timeoutMs);
  void (async () => {
    try {
      const response = await fetch(meter.url, { headers: meter.headers, signal: abort.signal, redirect: 'follow' });
      const text = await response.text();
      if (!response.ok) {
        finish({ type: 'poll.failed', kind: statusKind(response.status), status: response.status, reason: `HTTP ${response.status}${text ? `: ${oneLine(text)}` : ''}` });
      } else answer(text);
    } catch (error) {
      if (!isDone()) finish({ type: 'poll.failed', kind: 'unreachable', status: null, reason: oneLine(causeOf(error)) });
    } finally {
      timer.clear();
    }
  })();
  return () => {
    timer.clear();
    abort.abort();
  };
}

function pollCommand(meter: { command: readonly string[] }, timeoutMs: number, answer: (text: string) => void, finish: Finish, isDone: () => boolean): () => void {
  // Its own id, so whatever it starts (a setsid'd child, a daemon) can be found and killed.
  const id = `meter:${randomUUID()}`;
  const child = execa(meter.command[0]!, meter.command.slice(1), {
    detached: true,
    stdin: 'ignore',
    reject: false,
    cleanup: false,
    maxBuffer: 1024 * 1024,
    env: { WARDEN_JOB_ID: id },
  });
  const reap = () => killJobRemains(id, child.pid ?? null, 2_000);
  const timer = setLongTimeout(() => {
    finish({ type: 'poll.failed', kind: 'timeout', status: null, reason: `the meter command did not finish within ${timeoutMs} ms; killed` });
    void reap();
  }, timeoutMs);
  void child.then(async (result) => {
    timer.clear();
    // Nothing it started may outlive it.
    await reap();
    if (isDone()) return;
    if (result.failed && result.exitCode === undefined) {
      finish({ type: 'poll.failed', kind: 'command', status: null, reason: oneLine(result.shortMessage ?? 'the meter command could not run') });
    } else if (result.exitCode !== 0) {
      finish({ type: 'poll.failed', kind: 'command', status: result.exitCode ?? null, reason: `the meter command exited ${result.exitCode ?? result.signal}${result.stderr ? `: ${oneLine(String(result.stderr))}` : ''}` });
    } else answer(String(result.stdout));
  });
  return () => {
    timer.clear();
    void reap();
  };
}

function causeOf(error: unknown): string {
  const cause = (error as { cause?: { code?: string; message?: string } }).cause;
  if (cause?.code) return `${cause.code}${cause.message ? `: ${cause.message}` : ''}`;
  return error instanceof Error ? error.message : String(error);
}

function oneLine(text: string): string {
  const line = text.replace(/\s+/g, ' ').trim();
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}

/** The poll machine's `pollMeter` effect for a meter: each poll reported to the poll actor. */
export function meterEffect(meter: MeterConfig) {
  return fromCallback(({ input }: { input: EffectInput<{ timeoutMs: number }> }) =>
    pollOnce(meter, input.params.timeoutMs, input.now, (report) => input.send(report)),
  );
}
