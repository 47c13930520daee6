import { createHash, randomUUID } from 'node:crypto';
import {
  closeSync,
  constants,
  fstatSync,
  fsyncSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  readSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { LeaseFormatError, LockPathError } from '../errors.js';
import { describeIssue } from '../store/catalogue.js';
import { currentIdentity, judgeOwner, type ProcessIdentity } from './processIdentity.js';

/**
 * The scheduler lock file, `.warden/scheduler.lock`, and the one protocol that changes it.
 *
 * Appearing: a lock is written whole to a private temp file and `link()`ed to the lock name,
 * which fails if the name exists — so the lock is never seen half-written, and two creators
 * cannot both succeed.
 *
 * Changing or removing an existing lock (takeover of a stale one, renewal, release) is a
 * *transition away from one exact content*. Each content has a token (a hash of its inode, size
 * and bytes; a fresh lockId and renewedAt make every written content unique). To move away from
 * token T a process must first create the claim file `scheduler.lock.claim.<T>.1` (whole, by
 * link). Exactly one process can create it. The winner re-reads the lock: if it no longer holds
 * T, someone else already moved it on and the winner backs off; if it does, the winner renames
 * its new content over the lock (or unlinks it). Between that re-read and the act nothing else
 * can change the lock: creation needs the name to be free, and any other change needs the claim
 * on T, which the winner holds. Check-then-unlink by two recoverers — the seed's double-holder
 * race — cannot happen, because a decision made on a stale read meets a claim it cannot win or a
 * token that no longer matches.
 *
 * A claimant that dies holding claim k would block T forever, so claims escalate: if claim k's
 * creator is dead (same host: pid and start time; other host: older than `claimTtlMs`), the
 * next process tries claim k+1. At any moment at most one *live* process holds the highest claim
 * of a token. Claims of a token that is gone are deleted by whoever moved the lock on; deleting
 * them is always safe because tokens never come back, so a late claimant only finds a mismatch.
 *
 * A process paused past `claimTtlMs` on *another host* can still act late: on a shared
 * filesystem no lock file can rule that out, which is why holders fence their writes by epoch.
 */

/** The lock file's content. `pid` is kept unknown: a malformed pid is a stale owner, not a corrupt file. */
export const leaseLockSchema = z.strictObject({
  ownerId: z.string().min(1),
  lockId: z.string().min(1),
  pid: z.unknown(),
  pidStartTime: z.string().nullable(),
  bootId: z.string().nullable(),
  hostname: z.string().min(1),
  acquiredAt: z.iso.datetime(),
  renewedAt: z.iso.datetime(),
  epoch: z.number().int().positive(),
});
export type LeaseLock = z.infer<typeof leaseLockSchema>;

export type LockState =
  | { kind: 'absent' }
  | { kind: 'lock'; lock: LeaseLock; token: string; mtimeMs: number }
  | { kind: 'corrupt'; reason: string; token: string; mtimeMs: number };

export type TransitionResult = 'done' | 'changed' | 'busy';

/** Points where tests pause a process (SIGSTOP) to force the interleavings a race needs. */
export interface LeaseFileHooks {
  /** A lock was judged stale and nothing has been done about it yet. */
  afterStaleDecision?: () => void;
  /** A new lock's temp file exists but is still empty. */
  afterTempCreated?: () => void;
}

export interface LeaseFileOptions {
  /** How long a claim's creator on another host counts as alive without proof. */
  claimTtlMs: number;
  hooks?: LeaseFileHooks;
}

const READ_CAP = 64 * 1024;
const MAX_CLAIM_LEVELS = 64;

export class LeaseFile {
  readonly lockPath: string;
  readonly epochPath: string;
  private readonly identity: ProcessIdentity;

  constructor(
    readonly dir: string,
    private readonly options: LeaseFileOptions,
  ) {
    this.lockPath = join(dir, 'scheduler.lock');
    this.epochPath = join(dir, 'scheduler.epoch');
    this.identity = currentIdentity();
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const dirStat = lstatSync(dir);
    if (!dirStat.isDirectory()) throw new LockPathError(dir, 'is not a directory (a symbolic link is not followed)');
  }

  get hooks(): LeaseFileHooks {
    return this.options.hooks ?? {};
  }

  /** What is at the lock path now. A symlink there is refused, never followed. */
  read(): LockState {
    let fd: number;
    try {
      fd = openSync(this.lockPath, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return { kind: 'absent' };
      if (code === 'ELOOP') throw new LockPathError(this.lockPath, 'is a symbolic link; refusing to follow it');
      if (code === 'EISDIR') return this.directoryState();
      throw error;
    }
    try {
      const stat = fstatSync(fd);
      if (stat.isDirectory()) return this.directoryState();
      const buffer = Buffer.alloc(Math.min(stat.size, READ_CAP));
      const n = stat.isFile() ? readSync(fd, buffer, 0, buffer.length, 0) : 0;
      const bytes = buffer.subarray(0, n);
      const token = tokenOf(`${stat.ino}:${stat.size}`, bytes);
      const base = { token, mtimeMs: stat.mtimeMs };
      if (!stat.isFile()) return { kind: 'corrupt', reason: 'not a regular file', ...base };
      if (stat.size > READ_CAP) return { kind: 'corrupt', reason: `${stat.size} bytes, too large for a lock`, ...base };
      let json: unknown;
      try {
        json = JSON.parse(bytes.toString('utf8'));
      } catch {
        return { kind: 'corrupt', reason: stat.size === 0 ? 'empty' : 'not JSON', ...base };
      }
      const parsed = leaseLockSchema.safeParse(json);
      if (!parsed.success) return { kind: 'corrupt', reason: describeIssue(parsed.error.issues[0]), ...base };
      return { kind: 'lock', lock: parsed.data, ...base };
    } finally {
      closeSync(fd);
    }
  }

  /** Creates the lock if the name is free: written whole first, then linked into place. */
  tryCreate(lock: LeaseLock): 'created' | 'exists' {
    const temp = this.writeTemp(lock);
    try {
      linkSync(temp, this.lockPath);
      return 'created';
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return 'exists';
      throw error;
    } finally {
      unlinkQuietly(temp);
    }
  }

  /**
   * Moves the lock away from the content with `token`: to `next`, or removes it (`null`).
   * 'changed': the lock no longer holds that content; 'busy': a live process is moving it.
   */
  transition(token: string, next: LeaseLock | null): TransitionResult {
    const level = this.claim(token);
    if (level === undefined) return 'busy';
    try {
      const now = this.read();
      if (now.kind === 'absent' || now.token !== token) return 'changed';
      const isDirectory = now.kind === 'corrupt' && now.reason === 'a directory';
      // A directory cannot be renamed over: it is kept aside (whatever put it there may want it
      // back), and the new lock then competes for the free name like any creation.
      if (isDirectory) renameSync(this.lockPath, `${this.lockPath}.corrupt-${randomUUID()}`);
      if (next && isDirectory) {
        if (this.tryCreate(next) === 'exists') return 'changed';
      } else if (next) {
        const temp = this.writeTemp(next);
        try {
          renameSync(temp, this.lockPath);
        } catch (error) {
          unlinkQuietly(temp);
          throw error;
        }
      } else if (!isDirectory) {
        unlinkSync(this.lockPath);
      }
      return 'done';
    } finally {
      for (let k = 1; k <= level; k++) unlinkQuietly(this.claimPath(token, k));
    }
  }

  /** The highest epoch any holder has had, 0 if none has been recorded. */
  readEpoch(): number {
    let text: string;
    try {
      text = readNoFollow(this.epochPath);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return 0;
      throw error;
    }
    const epoch = Number(text.trim());
    if (!/^\d+\s*$/.test(text) || !Number.isSafeInteger(epoch)) {
      throw new LeaseFormatError(this.epochPath, `expected a non-negative integer, found ${JSON.stringify(text.slice(0, 40))}`);
    }
    return epoch;
  }

  /** Records `epoch` as the high-water mark (never lowers it). Only a holder calls this. */
  writeEpoch(epoch: number): void {
    if (epoch <= this.readEpoch()) return;
    const temp = join(this.dir, `.scheduler.epoch.${randomUUID()}.tmp`);
    writeWhole(temp, `${epoch}\n`);
    renameSync(temp, this.epochPath);
  }

  /** Deletes claims left by dead claimants on contents that are gone (safe: tokens never return). */
  sweepClaims(currentToken: string | undefined): void {
    for (const name of readdirSync(this.dir)) {
      const match = /^scheduler\.lock\.claim\.([0-9a-f]+)\.\d+$/.exec(name);
      if (match && match[1] !== currentToken) unlinkQuietly(join(this.dir, name));
    }
  }

  /** Wins a claim on `token`: the level won, or undefined if a live process holds one. */
  private claim(token: string): number | undefined {
    const mine = JSON.stringify({ ...this.identity, at: new Date().toISOString() });
    for (let k = 1; k <= MAX_CLAIM_LEVELS; k++) {
      const path = this.claimPath(token, k);
      const temp = join(this.dir, `.claim.${randomUUID()}.tmp`);
      writeWhole(temp, mine);
      try {
        linkSync(temp, path);
        return k;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      } finally {
        unlinkQuietly(temp);
      }
      if (this.claimantAlive(path)) return undefined;
    }
    return undefined;
  }

  private claimantAlive(path: string): boolean {
    let claimant: { pid?: unknown; pidStartTime?: string | null; bootId?: string | null; hostname?: string; at?: string };
    try {
      claimant = JSON.parse(readNoFollow(path));
    } catch (error) {
      // Gone meanwhile: its owner finished; the caller re-reads the lock and sees what it did.
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return true;
      // Claims are written whole: an unreadable one was not written by Warden; it protects nothing.
      return false;
    }
    const at = Date.parse(claimant.at ?? '');
    const liveness = judgeOwner(
      { pid: claimant.pid, pidStartTime: claimant.pidStartTime ?? null, bootId: claimant.bootId ?? null, hostname: String(claimant.hostname ?? '') },
      { now: Date.now(), renewedAtMs: Number.isNaN(at) ? 0 : at, ttlMs: this.options.claimTtlMs },
    );
    return liveness.alive;
  }

  private claimPath(token: string, level: number): string {
    return join(this.dir, `scheduler.lock.claim.${token}.${level}`);
  }

  private writeTemp(lock: LeaseLock): string {
    const temp = join(this.dir, `.scheduler.lock.${randomUUID()}.tmp`);
    writeWhole(temp, `${JSON.stringify(lock)}\n`, this.hooks.afterTempCreated);
    return temp;
  }

  private directoryState(): LockState {
    const stat = lstatSync(this.lockPath);
    return { kind: 'corrupt', reason: 'a directory', token: tokenOf(`dir:${stat.ino}:${stat.mtimeMs}`, Buffer.alloc(0)), mtimeMs: stat.mtimeMs };
  }
}

function tokenOf(prefix: string, bytes: Buffer): string {
  return createHash('sha256').update(prefix).update(bytes).digest('hex').slice(0, 24);
}

/** A new private file with this content, synced: what gets linked or renamed into place. */
function writeWhole(path: string, text: string, afterCreate?: () => void): void {
  const fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, 0o600);
  try {
    afterCreate?.();
    writeSync(fd, text);
    fsyncSync(fd);
  } catch (error) {
    closeSync(fd);
    unlinkQuietly(path);
    throw error;
  }
  closeSync(fd);
}

function readNoFollow(path: string): string {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
