import { resolve } from 'node:path';
import { sendControl, type ControlRequest } from '../effects/controlSocket.js';
import { LeaseHeldError } from '../errors.js';
import type { QueueContext } from '../machines/queue.machine.js';
import { acquireLease } from '../runner/leaseSession.js';
import { applyControl, describeControl, QUEUE_ACTOR } from '../runner/scheduler.js';
import { parseCommand } from './parse.js';
import { escapeControls, jsonLine } from './escape.js';
import { warn } from './output.js';

/**
 * `warden pause | resume | kick [--dir D]`: tells the running scheduler over its control socket;
 * with no scheduler running, takes the lease itself and appends the event to the log (the next
 * `warden run` starts from it). Exit 75 if a scheduler holds the lease but does not answer.
 */
export async function controlCommand(command: ControlRequest['command'], argv: string[]): Promise<number> {
  const { values } = parseCommand(command, argv);
  const dir = resolve(values.dir ?? '.');
  const reason = (values as { reason?: string }).reason;
  const request: ControlRequest = command === 'pause' ? { command, ...(reason !== undefined ? { reason } : {}) } : { command };
  const print = (reply: { ok: boolean; message?: string; error?: string; via: string }) => {
    if (values.json) process.stdout.write(`${jsonLine(reply)}\n`);
    else if (reply.ok) process.stdout.write(`${escapeControls(`${reply.message} (${reply.via})`)}\n`);
    else warn(`${command}: ${reply.error}`);
  };

  const reply = await sendControl(dir, request);
  if (reply !== 'no-scheduler') {
    print({ ...reply, via: 'scheduler' });
    return reply.ok ? 0 : 1;
  }
  // No scheduler listens: write the event ourselves, under the lease.
  let lease;
  try {
    lease = await acquireLease({ dir, resume: true });
  } catch (error) {
    if (error instanceof LeaseHeldError) warn(`${command}: a scheduler holds the lease but its control socket did not answer`);
    throw error;
  }
  try {
    const runner = lease.runner;
    if (!runner.snapshot(QUEUE_ACTOR)) runner.start(QUEUE_ACTOR, 'queue', {});
    // The run the log names is over (this process holds the lease): nothing may start here.
    const at = new Date().toISOString();
    if ((runner.snapshot(QUEUE_ACTOR)!.context as QueueContext).runId !== null) runner.send(QUEUE_ACTOR, { type: 'queue.detached', reason: 'no scheduler running', at });
    applyControl(runner, request, at);
    const queue = runner.snapshot(QUEUE_ACTOR)!.context as QueueContext;
    print({ ok: true, message: describeControl(request, queue), via: 'logged; no scheduler running' });
    return 0;
  } finally {
    lease.release(`warden ${command}`);
  }
}
