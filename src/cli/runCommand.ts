import { resolve } from 'node:path';
import type { Hold } from '../machines/queue.machine.js';
import { deadExecs } from '../runner/execRecovery.js';
import { describeRecovery } from './execCommand.js';
import { runScheduler } from '../runner/scheduler.js';
import { positiveInteger } from './args.js';
import { escapeControls } from './escape.js';
import { parseCommand } from './parse.js';
import { lineDisplay, tableDisplay } from './queueView.js';
import { warn } from './output.js';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** `--once` found nothing running and a pause holding the rest (EX_TEMPFAIL: try again later). */
const EXIT_PAUSED = 75;

const REASON_WORDS: Record<Hold['reason'], string> = { manual: 'manual', rate_limit: 'rate limit', auth: 'auth', network: 'network' };

/**
 * The line `--once` ends with when a pause holds the queue: what holds it and when that ends.
 * @example describeHold(hold) // 'paused (rate limit: a: rate limited) until 2026-12-01T11:00:00.000Z; nothing can start'
 */
export function describeHold(hold: Hold): string {
  const what = `${hold.paused ? 'paused' : 'waiting'} (${REASON_WORDS[hold.reason]}: ${escapeControls(hold.message)})`;
  const ends = hold.until !== null ? hold.until : hold.reason === 'manual' ? '`warden resume`' : 'the usage meter answers, or `warden resume`';
  return `${what} until ${ends}; nothing can start`;
}

/**
 * `warden run [--dir D] [--jobs D] [--once] [--probe-ms N]`: take the lease (or wait for it),
 * read the job files and run the queue. On SIGINT/SIGTERM/SIGHUP the running jobs are
 * interrupted (killed, and requeued by the next run), the lease released, and warden dies of the
 * signal. Exit (with --once): 0 when every job completed, 1 otherwise, 75 when nothing runs and a
 * pause holds the rest (one line says which, and until when).
 */
export async function runCommand(argv: string[]): Promise<number> {
  const { values } = parseCommand('run', argv);
  const probeIntervalMs = positiveInteger('probe-ms', values['probe-ms']);

  const abort = new AbortController();
  let caught: NodeJS.Signals | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (caught) return;
    caught = signal;
    abort.abort(signal);
  };
  for (const signal of SIGNALS) process.on(signal, onSignal);

  // What an exec that died in this dir left running is killed, and its log ended (execRecovery.ts).
  for (const dead of await deadExecs(resolve(values.dir ?? '.'), { recover: true, by: `warden run (pid ${process.pid})` })) warn(describeRecovery(dead));

  const display = process.stdout.isTTY ? tableDisplay(process.stdout) : lineDisplay((line) => process.stdout.write(`${line}\n`));
  try {
    const result = await runScheduler({
      dir: values.dir,
      jobsDir: values.jobs,
      once: values.once,
      probeIntervalMs,
      signal: abort.signal,
      onRecord: (record, view) => display.update(record, view),
      onWaiting: (reason) => warn(`waiting for the lease: ${reason}`),
    });
    display.close();
    if (result.stoppedBy === 'lost') {
      warn(`stopped: ${result.lostReason ?? `lost the lease (epoch ${result.epoch})`}`);
      return 1;
    }
    if (result.stoppedBy === 'stopped') {
      // Die of the signal, as the default action would have, now that the lease is released.
      for (const signal of SIGNALS) process.off(signal, onSignal);
      if (caught) process.kill(process.pid, caught);
      return 1;
    }
    const jobs = Object.values(result.queue.jobs).filter((j) => !j.removed);
    const done = jobs.filter((j) => j.status === 'completed').length;
    process.stdout.write(`${done} of ${jobs.length} jobs completed${result.queue.problems.length ? `; ${result.queue.problems.length} bad job file(s)` : ''}\n`);
    if (result.stoppedBy === 'paused' && result.hold) {
      warn(describeHold(result.hold));
      return EXIT_PAUSED;
    }
    return result.allCompleted ? 0 : 1;
  } catch (error) {
    display.close();
    // Aborted while waiting for the lease: nothing was held.
    if (caught && abort.signal.aborted) {
      for (const signal of SIGNALS) process.off(signal, onSignal);
      process.kill(process.pid, caught);
      return 1;
    }
    throw error;
  } finally {
    if (!caught) for (const signal of SIGNALS) process.off(signal, onSignal);
  }
}
