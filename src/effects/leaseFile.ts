import { createHash, randomUUID } from 'node:crypto';
import {
  closeSync,
  constants,
  fstatSync,
  ftruncateSync,
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
import { currentIdentity, isValidPid, judgeOwner, probePid, type ProcessIdentity } from './processIdentity.js';

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
  /**
   * The holder's lease TTL: on another host it is alive until renewedAt plus this (it renews every
   * third of it). Every judge uses the holder's TTL, never its own. Missing in locks written before
   * it was recorded (see leaseOps.ts, ttlOf).
   */
  ttlMs: z.number().int().positive().optional(),
});
export type LeaseLock = z.infer<typeof leaseLockSchema>;

export type LockState =
  | { kind: 'absent' }
  | { kind: 'lock'; lock: LeaseLock; token: string; mtimeMs: number }
  | { kind: 'corrupt'; reason: string; token: string; mtimeMs: number };

export type TransitionResult = 'done' | 'changed' | 'busy';

/**
 * Identifies one written lock file: a file rewritten in place or replaced shows another stamp.
 * `mtimeMs` is left out for a lock made from this instance's pinned temp file, whose inode cannot
 * be reused by another file while the instance holds it open (see {@link LeaseFile.tryCreate}).
 */
export interface LockStamp {
  ino: number;
  size: number;
  mtimeMs?: number;
}

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
const EPOCH_BUFFER = Buffer.alloc(32);
const MAX_CLAIM_LEVELS = 64;
/** Numbers the LeaseFiles of this process, so each has a temp name of its own. */
let instances = 0;

/**
 * This instance's temp file for creating locks, kept open between acquisitions. `linked`: the lock
 * name may be a second name of this inode (from our link until we removed the lock or moved it
 * on), so it must not be rewritten.
 */
interface PinnedTemp {
  fd: number;
  ino: number;
  size: number;
  linked: boolean;
}

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
    this.tempPath = join(dir, `.scheduler.lock.${process.pid}.${++instances}.tmp`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const dirStat = lstatSync(dir);
    if (!dirStat.isDirectory()) throw new LockPathError(dir, 'is not a directory (a symbolic link is not followed)');
    this.sweepTemps();
  }

  /** This instance's temp file: where its locks are written before they are linked into place. */
  readonly tempPath: string;
  private pinned: PinnedTemp | undefined;

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

  /**
   * Creates the lock if the name is free: written whole first, then linked into place.
   *
   * The temp file is this instance's own, pinned: after a successful link it is not unlinked, so
   * lock and temp are two names of one inode until the lock is removed or moved on; then the temp
   * is rewritten in place for the next acquisition. That saves creating and deleting a directory
   * entry per acquisition (two of the four a fresh temp costs), and the stamp needs no fstat: no
   * other file can have this inode while the instance keeps it open, so inode and size identify
   * the lock it wrote. A pinned temp whose inode may still be the lock is never rewritten — it is
   * dropped and a fresh one made.
   */
  tryCreate(lock: LeaseLock): LockStamp | 'exists' {
    const pinned = this.writePinned(`${JSON.stringify(lock)}\n`);
    try {
      linkSync(this.tempPath, this.lockPath);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EEXIST') return 'exists';
      this.dropPinned();
      throw error;
    }
    pinned.linked = true;
    return { ino: pinned.ino, size: pinned.size };
  }

  /**
   * Removes the lock if it is still exactly the file `stamp` describes. Without a claim: only
   * for a holder that nobody can have judged stale yet (see LeaseOps.release).
   */
  removeIfStamp(stamp: LockStamp): 'removed' | 'not ours' {
    if (!this.hasStamp(stamp)) return 'not ours';
    unlinkSync(this.lockPath);
    if (this.pinned?.ino === stamp.ino) this.pinned.linked = false;
    return 'removed';
  }

  /** Whether the lock path holds exactly the file `stamp` describes (one lstat). */
  hasStamp(stamp: LockStamp): boolean {
    try {
      const now = lstatSync(this.lockPath);
      return now.ino === stamp.ino && now.size === stamp.size && (stamp.mtimeMs === undefined || now.mtimeMs === stamp.mtimeMs);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return false;
      throw error;
    }
  }

  /**
   * Moves the lock away from the content with `token`: to `next`, or removes it (`null`).
   * 'changed': the lock no longer holds that content; 'busy': a live process is moving it.
   */
  transition(token: string, next: LeaseLock | null): TransitionResult {
    return this.transitionWithStamp(token, next).result;
  }

  /** As {@link transition}, with the stamp of the new lock file when one was written. */
  transitionWithStamp(token: string, next: LeaseLock | null): { result: TransitionResult; stamp?: LockStamp } {
    const level = this.claim(token);
    if (level === undefined) return { result: 'busy' };
    try {
      const now = this.read();
      if (now.kind === 'absent' || now.token !== token) return { result: 'changed' };
      const isDirectory = now.kind === 'corrupt' && now.reason === 'a directory';
      // A directory cannot be renamed over: it is kept aside (whatever put it there may want it
      // back), and the new lock then competes for the free name like any creation.
      if (isDirectory) renameSync(this.lockPath, `${this.lockPath}.corrupt-${randomUUID()}`);
      if (next && isDirectory) {
        const created = this.tryCreate(next);
        return created === 'exists' ? { result: 'changed' } : { result: 'done', stamp: created };
      }
      if (next) {
        const { path: temp, stamp } = this.writeTemp(next);
        try {
          renameSync(temp, this.lockPath);
        } catch (error) {
          unlinkQuietly(temp);
          throw error;
        }
        this.unpin();
        return { result: 'done', stamp };
      }
      if (!isDirectory) unlinkSync(this.lockPath);
      this.unpin();
      return { result: 'done' };
    } finally {
      for (let k = 1; k <= level; k++) unlinkQuietly(this.claimPath(token, k));
    }
  }

  /** The highest epoch any holder has had, 0 if none has been recorded. */
  readEpoch(): number {
    const fd = this.epochFd();
    const text = EPOCH_BUFFER.toString('utf8', 0, readSync(fd, EPOCH_BUFFER, 0, EPOCH_BUFFER.length, 0));
    if (text === '') return 0;
    const epoch = Number(text.trim());
    if (!/^\d+\n?$/.test(text) || !Number.isSafeInteger(epoch)) {
      throw new LeaseFormatError(this.epochPath, `expected a non-negative integer, found ${JSON.stringify(text.slice(0, 32))}`);
    }
    return epoch;
  }

  /**
   * Raises the high-water mark to `epoch` (never lowers it). Only a holder writes it, in place:
   * the number only grows, so the new text always covers the old, and one small write is read
   * whole or not at all.
   */
  writeEpoch(epoch: number, current = this.readEpoch()): void {
    if (epoch <= current) return;
    writeSync(this.epochFd(), `${epoch}\n`, 0);
  }

  /** Closes the files this LeaseFile keeps open and removes its temp file's name (never the lock's). */
  close(): void {
    if (this.epochDescriptor !== undefined) closeSync(this.epochDescriptor);
    this.epochDescriptor = undefined;
    this.dropPinned();
  }

  /** Writes `text` to the pinned temp file, making a fresh one when there is none or it may be the lock. */
  private writePinned(text: string): PinnedTemp {
    if (this.pinned?.linked) this.dropPinned();
    if (!this.pinned) {
      const fd = openFresh(this.tempPath);
      try {
        this.hooks.afterTempCreated?.();
        writeSync(fd, text);
        const { ino, size } = fstatSync(fd);
        this.pinned = { fd, ino, size, linked: false };
      } catch (error) {
        closeSync(fd);
        unlinkQuietly(this.tempPath);
        throw error;
      }
      return this.pinned;
    }
    const pinned = this.pinned;
    try {
      this.hooks.afterTempCreated?.();
      const size = writeSync(pinned.fd, text, 0);
      if (size < pinned.size) ftruncateSync(pinned.fd, size);
      pinned.size = size;
    } catch (error) {
      this.dropPinned();
      throw error;
    }
    return pinned;
  }

  /** The lock path was just replaced or removed by us: whatever it was, it is not our pinned temp now. */
  private unpin(): void {
    if (this.pinned) this.pinned.linked = false;
  }

  /** Forgets the pinned temp: closes it and removes the temp name (the lock name, if any, keeps the file). */
  private dropPinned(): void {
    if (!this.pinned) return;
    closeSync(this.pinned.fd);
    this.pinned = undefined;
    unlinkQuietly(this.tempPath);
  }

  private epochDescriptor: number | undefined;

  private epochFd(): number {
    this.epochDescriptor ??= openSync(this.epochPath, constants.O_RDWR | constants.O_CREAT | constants.O_NOFOLLOW, 0o600);
    return this.epochDescriptor;
  }

  /**
   * Deletes claims left by dead claimants on contents that are gone (safe: tokens never return),
   * and the temp files of dead processes.
   */
  sweepClaims(currentToken: string | undefined): void {
    const names = readdirSync(this.dir);
    for (const name of names) {
      const claim = /^scheduler\.lock\.claim\.([0-9a-f]+)\.\d+$/.exec(name);
      if (claim && claim[1] !== currentToken) unlinkQuietly(join(this.dir, name));
    }
    this.sweepTemps(names);
  }

  /**
   * Deletes the temp files of dead processes (named by their pid): those killed mid-write, and
   * the pinned temps of those killed while holding or after. Removing a temp name is always safe:
   * when it is a second name of a live lock, the lock name keeps the file.
   */
  sweepTemps(names: readonly string[] = readdirSync(this.dir)): void {
    for (const name of names) {
      const temp = /^\.(?:scheduler\.lock|claim|scheduler\.lock\.next)\.(\d+)(?:\.\d+)?\.tmp$/.exec(name);
      if (temp && Number(temp[1]) !== process.pid && !processExists(Number(temp[1]))) unlinkQuietly(join(this.dir, name));
    }
  }

  /** Wins a claim on `token`: the level won, or undefined if a live process holds one. */
  private claim(token: string): number | undefined {
    const mine = JSON.stringify({ ...this.identity, at: new Date().toISOString() });
    for (let k = 1; k <= MAX_CLAIM_LEVELS; k++) {
      const path = this.claimPath(token, k);
      const temp = join(this.dir, `.claim.${process.pid}.tmp`);
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

  /** A fresh temp file for a transition, which renames it over the lock. */
  private writeTemp(lock: LeaseLock): { path: string; stamp: LockStamp } {
    // One name per process, reused: every use is a synchronous write → rename, so two can never
    // overlap in one process, and a fixed name keeps the directory from filling with the
    // dentries of names used once (measured: half the cost of a cycle).
    const path = join(this.dir, `.scheduler.lock.next.${process.pid}.tmp`);
    return { path, stamp: writeWhole(path, `${JSON.stringify(lock)}\n`, this.hooks.afterTempCreated) };
  }

  private directoryState(): LockState {
    const stat = lstatSync(this.lockPath);
    return { kind: 'corrupt', reason: 'a directory', token: tokenOf(`dir:${stat.ino}:${stat.mtimeMs}`, Buffer.alloc(0)), mtimeMs: stat.mtimeMs };
  }
}

function tokenOf(prefix: string, bytes: Buffer): string {
  return createHash('sha256').update(prefix).update(bytes).digest('hex').slice(0, 24);
}

/**
 * A new private file with this content: what gets linked or renamed into place. Not fsynced: a
 * lock matters only to live processes, and a power loss ends them all (the boot id makes every
 * older lock stale); a lock left empty by one is unreadable and recovered after the grace period.
 */
function writeWhole(path: string, text: string, afterCreate?: () => void): LockStamp {
  const fd = openFresh(path);
  try {
    afterCreate?.();
    writeSync(fd, text);
    const { ino, size, mtimeMs } = fstatSync(fd);
    return { ino, size, mtimeMs };
  } catch (error) {
    unlinkQuietly(path);
    throw error;
  } finally {
    closeSync(fd);
  }
}

function readNoFollow(path: string): string {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    return readFileSync(fd, 'utf8');
  } finally {
    closeSync(fd);
  }
}

/**
 * Creates `path` anew (O_EXCL, O_NOFOLLOW). A file already there was left by a dead process that
 * had our pid, killed between linking its temp into place and unlinking it: that file may be the
 * very inode of a live lock or claim, so it is never opened and rewritten — its name is removed
 * (the other name keeps the file) and a new file is made. Found by the SIGKILL stress test.
 */
function openFresh(path: string): number {
  const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
  try {
    return openSync(path, flags, 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    unlinkSync(path);
    return openSync(path, flags, 0o600);
  }
}

function processExists(pid: number): boolean {
  return isValidPid(pid) && probePid(pid) === 'alive';
}

function unlinkQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
}
