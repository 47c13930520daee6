/**
 * An exclusive flock(2) on a coordination file, held for the length of a callback. Node has no
 * flock, so util-linux's flock(1) takes it for us: the file is opened here and handed to the
 * child as fd 3; `flock 3` locks that open file description, which this process shares, and
 * exits. The lock then lasts until this process closes its descriptor — in `finally`, or by the
 * kernel if the process dies — so a crashed holder can never leave it held. The file itself is
 * never deleted (deleting it would let two processes lock two different inodes of one name).
 */
import { closeSync, constants, lstatSync, openSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { FlockTimeoutError, LockPathError, ToolError } from '../errors.js';
import { setLongTimeout } from './longTimer.js';

export interface FlockOptions {
  /** How long to wait for the lock; holders keep it for milliseconds. Default 10 s. */
  timeoutMs?: number;
}

/**
 * Runs `fn` while holding an exclusive flock on `path` (created 0644 if missing; a symlink there
 * is refused, never followed).
 * @example await withFlock(`${lockPath}.flock`, () => readJudgeAndWrite())
 */
export async function withFlock<T>(path: string, fn: () => T | Promise<T>, options: FlockOptions = {}): Promise<T> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  const held = await takeFlock(path, { timeoutMs });
  if (!held) throw new FlockTimeoutError(path, timeoutMs);
  try {
    return await fn();
  } finally {
    held.release();
  }
}

/** An exclusive flock this process holds until `release()`, or until it dies. */
export interface HeldFlock {
  release(): void;
}

/**
 * Takes an exclusive flock on `path` (created with `mode` if missing; a symlink there is refused,
 * never followed) and keeps it until `release()` — or until this process dies, when the kernel
 * drops it: a lock held for a process's life says whether it is alive. Null if another holds it
 * past `timeoutMs` (0: do not wait).
 * @example const held = await takeFlock(logPath, { timeoutMs: 0 }); if (!held) return 'in use';
 */
export async function takeFlock(path: string, options: FlockOptions & { mode?: number } = {}): Promise<HeldFlock | null> {
  const timeoutMs = options.timeoutMs ?? 10_000;
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW | constants.O_NONBLOCK, options.mode ?? 0o644);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOOP') throw new LockPathError(path, 'is a symbolic link; refusing to follow it');
    throw error;
  }
  let open = true;
  const release = () => {
    if (open) closeSync(fd);
    open = false;
  };
  try {
    if (!lstatSync(path).isFile()) throw new LockPathError(path, 'is not a regular file');
    const result = await runFlock(fd, timeoutMs);
    if (result.kind === 'missing') throw new ToolError('flock', 'not found on PATH (util-linux flock(1) is needed for worker locks)');
    if (result.kind === 'exit' && result.code === 1) {
      release();
      return null;
    }
    if (result.kind !== 'exit' || result.code !== 0) throw new ToolError('flock', `${path}: ${result.detail}`);
    return { release };
  } catch (error) {
    release();
    throw error;
  }
}

/**
 * Runs `flock --exclusive --wait S 3` with our descriptor as its fd 3. (execa takes no raw
 * descriptor beyond stdio, so this one child is spawned with node:child_process.)
 */
function runFlock(fd: number, timeoutMs: number): Promise<{ kind: 'exit'; code: number | null; detail: string } | { kind: 'missing' }> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn('flock', ['--exclusive', ...(timeoutMs === 0 ? ['--nonblock'] : ['--wait', String(timeoutMs / 1000)]), '3'], {
      stdio: ['ignore', 'ignore', 'pipe', fd],
    });
    // A safety net past flock's own --wait (not spawn's `timeout`, which clamps 2^31 ms to 1 ms).
    const timer = setLongTimeout(() => child.kill('SIGKILL'), timeoutMs + 5_000);
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => {
      if (stderr.length < 4096) stderr += chunk.toString();
    });
    child.on('error', (error: NodeJS.ErrnoException) => {
      timer.clear();
      if (error.code === 'ENOENT') resolvePromise({ kind: 'missing' });
      else reject(error);
    });
    child.on('close', (code, signal) => {
      timer.clear();
      resolvePromise({ kind: 'exit', code, detail: stderr.trim().split('\n')[0] || (signal ? `killed by ${signal}` : `exit ${String(code)}`) });
    });
  });
}
