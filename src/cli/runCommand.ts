import { runScheduler } from '../runner/scheduler.js';
import { positiveInteger } from './args.js';
import { parseCommand } from './parse.js';
import { lineDisplay, tableDisplay } from './queueView.js';
import { warn } from './output.js';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/**
 * `warden run [--dir D] [--jobs D] [--once] [--probe-ms N]`: take the lease (or wait for it),
 * read the job files and run the queue. On SIGINT/SIGTERM/SIGHUP the running jobs are
 * interrupted (killed, and requeued by the next run), the lease released, and warden dies of the
 * signal. Exit (with --once): 0 when every job completed, 1 otherwise.
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
