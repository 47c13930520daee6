import { existsSync, realpathSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { clearEarlierHolds, holdVariable, startGuardedCommand } from '../effects/guardedCommand.js';
import { DEFAULT_LEASE_TIMINGS, LeaseOps } from '../effects/leaseOps.js';
import { acquireLease } from '../runner/leaseSession.js';
import { findCommand, positiveInteger } from './args.js';
import { parseCommand } from './parse.js';
import { exitCodeOf, forwardSignals } from './childExit.js';
import { Output, warn } from './output.js';

/** `warden lease run|status`. */
export async function leaseCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === 'run') return leaseRun(rest);
  if (sub === 'status') return leaseStatus(rest);
  throw new UsageError(`lease: expected "run" or "status", got ${sub === undefined ? 'nothing' : `"${sub}"`}`);
}

/** Like flock(1): CMD runs while this process holds the lease; the exit code is CMD's. */
async function leaseRun(argv: string[]): Promise<number> {
  const {
    values,
    command: [command, ...args],
  } = parseCommand('lease run', argv);
  findCommand('lease run', command!);
  const ttl = positiveInteger('ttl-ms', values['ttl-ms']);
  const lease = await acquireLease({
    dir: values.dir ?? '.',
    ownerId: values.id,
    wait: values.wait ?? false,
    probeIntervalMs: positiveInteger('probe-ms', values['probe-ms']),
    timings: {
      // A claim (held for milliseconds while the lock changes hands) from another host is not
      // trusted longer than a lease: a shorter TTL shortens the claim TTL with it.
      ...(ttl === undefined ? {} : { leaseTtlMs: ttl, claimTtlMs: Math.min(DEFAULT_LEASE_TIMINGS.claimTtlMs, ttl) }),
      ...(values['grace-ms'] === undefined ? {} : { graceMs: positiveInteger('grace-ms', values['grace-ms']) }),
    },
    // This command releases itself, after CMD has exited.
    releaseOnExit: false,
    // Once per holder, and only when waiting: without --wait the refusal itself is the one line.
    onBlocked: (holder) => {
      if (!values.wait) return;
      warn(
        holder
          ? `lease held by ${holder.ownerId} (pid ${String(holder.pid)} on ${holder.hostname}, epoch ${holder.epoch}); waiting`
          : 'lease lock unreadable and young; waiting',
      );
    },
  });

  // Every process started under this holding carries the epoch in the lease's own variable: what
  // earlier holdings left running is killed before CMD starts, and what CMD leaves, when it ends.
  const dir = resolve(values.dir ?? '.');
  const tag = { name: holdVariable(join(realpathSync(join(dir, '.warden')), 'scheduler.lock')), value: String(lease.epoch) };
  const cleared = await clearEarlierHolds(tag.name, (value) => /^[0-9]+$/.test(value) && Number(value) < lease.epoch);
  if (cleared.killed.length > 0) warn(`killed ${plural(cleared.killed.length, 'process', 'processes')} an earlier holder left running: ${cleared.killed.join(', ')}`);
  if (cleared.survivors.length > 0) {
    const why = `processes of an earlier holder still running after SIGKILL: ${cleared.survivors.join(', ')}`;
    warn(`${why}; CMD not started`);
    lease.release(why);
    return 1;
  }

  const child = startGuardedCommand(command!, args, { WARDEN_LEASE_EPOCH: String(lease.epoch), WARDEN_LEASE_DIR: dir }, tag);
  const forwarding = forwardSignals(child);
  const outcome = await Promise.race([
    child.exited.then((result) => ({ kind: 'exited' as const, result })),
    lease.lost.then((error) => ({ kind: 'lost' as const, error })),
  ]);
  forwarding.stop();

  if (outcome.kind === 'lost') {
    // Deposed: the critical section must not go on beside the new holder's.
    warn(`lease.lost: ${outcome.error.message}`);
    await child.killTree();
    return 1;
  }
  // The section ends with CMD: what it left running (a background job, a daemon) ends with it.
  const left = await child.killTree();
  if (left.killed.length > 0) warn(`killed ${plural(left.killed.length, 'process', 'processes')} CMD left running: ${left.killed.join(', ')}`);
  // One that survives SIGKILL (uninterruptible sleep) keeps its tag: the next holder's sweep
  // finds it too, and starts nothing while it is there.
  if (left.survivors.length > 0) warn(`processes CMD left still running after SIGKILL: ${left.survivors.join(', ')}`);
  const { result } = outcome;
  const signalled = forwarding.signalled();
  const code = exitCodeOf(result);
  const why = signalled ? `${signalled}; command exited with ${code}` : `command exited with ${code}`;
  if (lease.release(why) === 'not ours') {
    // Deposed while CMD ran (a SIGSTOPped holder, say, whose CMD the new holder's sweep killed):
    // the same verdict as a loss seen first, whatever order the two events arrived in.
    warn(`lease.lost: lease lost (epoch ${lease.epoch}): the lock had been taken over before CMD ended; left it alone`);
    return 1;
  }
  return left.survivors.length > 0 ? 1 : exitCodeOf(result, signalled);
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** Who holds the lease and whether that owner is alive. */
async function leaseStatus(argv: string[]): Promise<number> {
  const { values } = parseCommand('lease status', argv);
  const wardenDir = join(resolve(values.dir ?? '.'), '.warden');
  const status = existsSync(wardenDir)
    ? new LeaseOps(wardenDir, 'status').status()
    : { held: false, live: false, owner: null, basis: 'no .warden directory' };
  const out = new Output();
  if (values.json) out.line(JSON.stringify(status));
  else if (!status.owner) out.line(status.held ? `held: ${status.basis}` : `not held (${status.basis})`);
  else {
    const o = status.owner;
    out.line(`held by ${o.ownerId} (pid ${String(o.pid)} on ${o.hostname}, epoch ${o.epoch}), acquired ${o.acquiredAt}, renewed ${o.renewedAt}`);
    out.line(status.live ? `owner alive (${status.basis === 'pid-only' ? 'judged by PID only: no process start times here' : status.basis})` : `owner gone (${status.basis}): the next contender takes over`);
  }
  await out.end();
  return 0;
}
