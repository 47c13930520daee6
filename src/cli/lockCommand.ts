import { realpathSync, watch } from 'node:fs';
import { join, resolve } from 'node:path';
import { LockHeldError, UsageError } from '../errors.js';
import { currentIdentity, isValidPid } from '../effects/processIdentity.js';
import { defaultProbes } from '../effects/sessionProbes.js';
import { setLongTimeout } from '../effects/longTimer.js';
import {
  RUNTIME_DIR,
  acquireWorkerLock,
  checkWorkerLock,
  forceReleaseWorkerLock,
  lockPathOf,
  ownerOf,
  releaseWorkerLock,
  workerLockStatus,
  type LockOwner,
  type WorkerLockOptions,
} from '../effects/workerLock.js';
import { loadConfig } from '../store/configFile.js';
import { findCommand, positiveInteger } from './args.js';
import { parseCommand } from './parse.js';
import { exitCodeOf, forwardSignals } from './childExit.js';
import { Output, warn } from './output.js';

const SUBCOMMANDS = ['acquire', 'release', 'status', 'check', 'run'] as const;

/** `warden lock acquire|release|status|check|run WORKER …`. */
export async function lockCommand(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (!SUBCOMMANDS.includes(sub as (typeof SUBCOMMANDS)[number])) {
    throw new UsageError(`lock: expected one of ${SUBCOMMANDS.join(', ')}, got ${sub === undefined ? 'nothing' : `"${sub}"`}`);
  }
  if (sub === 'run') return lockRun(rest);
  const { values, positionals } = parseCommand(`lock ${sub}` as 'lock acquire' | 'lock release' | 'lock status' | 'lock check', rest);
  const worker = resolve(positionals[0]!);
  const owner = ownerFrom(values.pid);
  const options = await lockOptions(values.dir, values['tmux-socket']);
  const out = new Output();
  const print = (json: unknown, text: string) => out.line(values.json ? JSON.stringify(json) : text);
  let code = 0;

  if (sub === 'acquire') {
    const result = await acquireWorkerLock(worker, { owner, session: values.session }, options);
    const words = {
      acquired: 'acquired',
      refreshed: 'refreshed (already held by this owner)',
      'took-over': `took over a stale lock (${result.kind === 'took-over' ? result.judgement.reason : ''})`,
      'replaced-corrupt': `replaced an unreadable lock (${result.kind === 'replaced-corrupt' ? `${result.reason}; kept as ${result.keptAs}` : ''})`,
    }[result.kind];
    print(result, `${worker}: ${words}: PID ${String(result.lock.pid)}${result.lock.session_id ? ` (session: ${result.lock.session_id})` : ''}`);
  } else if (sub === 'release' && values.force) {
    const result = await forceReleaseWorkerLock(worker, options);
    print(result, `${worker}: ${result.kind === 'unlocked' ? 'was not locked' : result.kind === 'released' ? `removed the lock of PID ${String(result.previous.pid)}` : `moved an unreadable lock aside (${result.reason}) to ${result.keptAs}`}`);
  } else if (sub === 'release') {
    const result = await releaseWorkerLock(worker, { owner }, options);
    print({ kind: result }, `${worker}: ${result === 'released' ? 'released' : result === 'unlocked' ? 'was not locked' : `not released: the lock is not PID ${owner.pid}'s`}`);
    if (result === 'not ours') code = 1;
  } else if (sub === 'status') {
    const status = await workerLockStatus(worker, { owner }, options);
    print(status, status.judgement && status.state !== 'stale' && status.state !== 'live' ? `${status.status} [${status.state}: ${status.judgement.reason}]` : status.status);
  } else {
    const result = await checkWorkerLock(worker, { owner }, options);
    print(result, `${worker}: ${result.kind === 'unlocked' ? 'unlocked' : result.kind === 'ours' ? 'locked (by us)' : `removed a stale lock (${result.judgement.reason})`}`);
  }
  await out.end();
  return code;
}

/** Like flock(1): CMD runs while this warden process holds WORKER's identity lock; exit = CMD's. */
async function lockRun(argv: string[]): Promise<number> {
  const {
    values,
    positionals: [workerArg],
    command: [command, ...args],
  } = parseCommand('lock run', argv);
  findCommand('lock run', command!);
  const worker = resolve(workerArg!);
  const probeMs = positiveInteger('probe-ms', values['probe-ms']) ?? 1_000;
  const options = await lockOptions(values.dir, values['tmux-socket']);
  // The owner is this warden process: it lives exactly as long as CMD runs under the lock.
  const owner = currentIdentity();
  let lastHolder: string | undefined;
  for (;;) {
    try {
      await acquireWorkerLock(worker, { owner, session: values.session }, options);
      break;
    } catch (error) {
      if (!(error instanceof LockHeldError) || !values.wait) throw error;
      if (error.message !== lastHolder) warn(`${error.message}; waiting`);
      lastHolder = error.message;
      await runtimeChangeOr(join(worker, RUNTIME_DIR), probeMs);
    }
  }

  // Every process started under this holding carries this warden's identity in the lock's own
  // variable: what another holding left running is killed before CMD starts, and what CMD
  // leaves, when it ends.
  const { clearEarlierHolds, holdVariable, startGuardedCommand } = await import('../effects/guardedCommand.js');
  const tag = { name: holdVariable(lockPathOf(realpathSync(worker))), value: `${owner.pid}.${owner.pidStartTime ?? ''}` };
  const cleared = await clearEarlierHolds(tag.name, (value) => value !== tag.value);
  if (cleared.killed.length > 0) warn(`${worker}: killed ${cleared.killed.length} process${cleared.killed.length === 1 ? '' : 'es'} an earlier holder left running: ${cleared.killed.join(', ')}`);
  if (cleared.survivors.length > 0) {
    warn(`${worker}: processes of an earlier holder still running after SIGKILL: ${cleared.survivors.join(', ')}; CMD not started`);
    await releaseWorkerLock(worker, { owner }, options);
    return 1;
  }
  const child = startGuardedCommand(command!, args, { WARDEN_WORKER: worker, ...(values.session ? { WARDEN_WORKER_SESSION: values.session } : {}) }, tag);
  const forwarding = forwardSignals(child);
  const result = await child.exited;
  forwarding.stop();
  const left = await child.killTree();
  if (left.killed.length > 0) warn(`${worker}: killed ${left.killed.length} process${left.killed.length === 1 ? '' : 'es'} CMD left running: ${left.killed.join(', ')}`);
  // One that survives SIGKILL (uninterruptible sleep) keeps its tag: the next holder's sweep
  // finds it too, and starts nothing while it is there.
  if (left.survivors.length > 0) warn(`${worker}: processes CMD left still running after SIGKILL: ${left.survivors.join(', ')}`);
  if ((await releaseWorkerLock(worker, { owner }, options)) === 'not ours') warn(`${worker}: the lock was no longer ours at release; left it alone`);
  return left.survivors.length > 0 ? 1 : exitCodeOf(result, forwarding.signalled());
}

/**
 * The owner a lock is taken or judged for: `--pid P`, else the process that ran warden (its
 * parent), so a lock taken from a script lives as long as the script. Never warden's own pid.
 */
function ownerFrom(pid: string | undefined): LockOwner {
  if (pid === undefined) return ownerOf(process.ppid);
  const n = Number(pid);
  if (!/^[0-9]+$/.test(pid) || !isValidPid(n)) throw new UsageError(`--pid: expected a process id (a positive integer below 2^31), got "${pid}"`);
  return ownerOf(n);
}

/** Session probes on the tmux server named by --tmux-socket, else the config's tmux.socket. */
export async function lockOptions(dir: string | undefined, tmuxSocket: string | undefined): Promise<WorkerLockOptions> {
  const config = await loadConfig(resolve(dir ?? '.'));
  return { probes: defaultProbes({ tmuxSocket: tmuxSocket ?? config.tmux?.socket }) };
}

/** Resolves when the worker's `.runtime` changes (a release) or after one probe interval (a death). */
function runtimeChangeOr(dir: string, ms: number): Promise<void> {
  return new Promise((resolvePromise) => {
    let watcher: ReturnType<typeof watch> | undefined;
    const done = () => {
      timer.clear();
      watcher?.close();
      resolvePromise();
    };
    const timer = setLongTimeout(done, ms);
    try {
      watcher = watch(dir, (_event, name) => {
        if (name === null || name === 'agent.lock') done();
      });
    } catch {
      // No .runtime yet: the probe interval alone.
    }
  });
}
