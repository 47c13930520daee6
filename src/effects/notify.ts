/**
 * Notifications: a job's summary, as JSON, to a command (on its stdin) and/or a URL (the body of
 * a POST), once per terminal state. A notifier that fails or hangs is reported (and logged by the
 * queue as `queue.notified` with `ok: false`); it never stops the queue. A command runs in a
 * process group of its own and is killed, with all it started, at its timeout.
 */
import { fromPromise } from 'xstate';
import type { JobNotice } from '../machines/queue.machine.js';
import type { EffectInput } from '../runner/runner.js';
import { FAILURE_DEFAULTS } from '../store/configDefaults.js';
import { runBounded } from './boundedCommand.js';
import { setLongTimeout } from './longTimer.js';

export interface NotifyConfig {
  command?: readonly string[];
  url?: string;
  timeoutMs?: number;
}

/** Sends one notice; resolves with what went wrong, one line per notifier (empty: all went through). */
export async function sendNotice(config: NotifyConfig, notice: JobNotice): Promise<string[]> {
  const body = `${JSON.stringify(notice)}\n`;
  const timeoutMs = config.timeoutMs ?? FAILURE_DEFAULTS.notify.timeoutMs;
  const problems: string[] = [];
  await Promise.all([
    config.url ? post(config.url, body, timeoutMs).then((p) => p && problems.push(`url: ${p}`)) : undefined,
    config.command ? run(config.command, body, timeoutMs).then((p) => p && problems.push(`command: ${p}`)) : undefined,
  ]);
  return problems;
}

async function post(url: string, body: string, timeoutMs: number): Promise<string | null> {
  // Not AbortSignal.timeout: it clamps 2^31 ms or more to 1 ms (longTimer.ts).
  const abort = new AbortController();
  let timedOut = false;
  const timer = setLongTimeout(() => {
    timedOut = true;
    abort.abort();
  }, timeoutMs);
  try {
    const response = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: abort.signal });
    await response.arrayBuffer();
    return response.ok ? null : `HTTP ${response.status}`;
  } catch (error) {
    if (timedOut) return `no answer within ${timeoutMs} ms`;
    const cause = (error as { cause?: { code?: string } }).cause;
    return cause?.code ?? (error as Error).message;
  } finally {
    timer.clear();
  }
}

async function run(command: readonly string[], body: string, timeoutMs: number): Promise<string | null> {
  const result = await runBounded(command, { kind: 'notify', input: body, timeoutMs });
  return result.ok ? null : result.reason;
}

/** The queue's `notify` effect: the notice sent, and the outcome reported back as `queue.notified`. */
export function notifyEffect(config: NotifyConfig) {
  const via = [config.url ? 'url' : null, config.command ? 'command' : null].filter(Boolean).join('+');
  return fromPromise(async ({ input }: { input: EffectInput<JobNotice> }) => {
    let problems: string[];
    try {
      problems = await sendNotice(config, input.params);
    } catch (error) {
      problems = [(error as Error).message ?? String(error)];
    }
    input.send({ type: 'queue.notified', slug: input.params.slug, status: input.params.status, ok: problems.length === 0, via, reason: problems.length ? problems.join('; ') : null });
  });
}
