/**
 * Finds every worker lock (`<worker>/.runtime/agent.lock`) under a root. Symbolic links are never
 * followed (a link loop cannot trap the walk; links are reported); heavy directories that hold no
 * workers are skipped by name; a directory that cannot be read is reported and the walk goes on.
 */
import { readdirSync, type Dirent } from 'node:fs';
import { join } from 'node:path';
import { LOCK_NAME, RUNTIME_DIR, inspectLockFile, type LockFileState } from './workerLockFile.js';

/** Skipped by name wherever they appear: they hold dependencies and build output, never workers. */
export const DEFAULT_SKIP_DIRS: readonly string[] = ['.git', 'node_modules', 'vendor', 'target', 'build', 'dist', '.gradle', '.m2', 'bazel-out', 'bazel-bin'];

export interface FoundLock {
  worker: string;
  path: string;
  state: Exclude<LockFileState, { kind: 'absent' }>;
}

export interface ScanProblem {
  kind: 'unreadable-dir' | 'symlink' | 'lock-path-symlink';
  path: string;
  message: string;
}

export interface ScanResult {
  /** Worker dir → its lock, in walk order. */
  locks: Map<string, FoundLock>;
  problems: ScanProblem[];
  /** Directories read. */
  dirs: number;
  /** Directories not entered because of their name. */
  skipped: number;
}

export interface ScanOptions {
  /** Directory names not to enter (default {@link DEFAULT_SKIP_DIRS}). */
  skipDirs?: readonly string[];
}

/**
 * Walks `root` for worker locks.
 * @example const { locks } = findAllLocks('/town'); locks.get('/town/polecats/ace')
 */
export function findAllLocks(root: string, options: ScanOptions = {}): ScanResult {
  const skip = new Set(options.skipDirs ?? DEFAULT_SKIP_DIRS);
  const result: ScanResult = { locks: new Map(), problems: [], dirs: 0, skipped: 0 };
  const stack: string[] = [root];
  while (stack.length > 0) {
    const dir = stack.pop()!;
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      // Gone since its parent was read: nothing to report.
      if (code === 'ENOENT') continue;
      if (dir === root && code === 'ENOTDIR') throw error;
      result.problems.push({ kind: 'unreadable-dir', path: dir, message: `cannot read directory ${dir}: ${code ?? String(error)}` });
      continue;
    }
    result.dirs++;
    const inRuntime = dir !== root && dir.endsWith(`/${RUNTIME_DIR}`);
    for (let i = entries.length - 1; i >= 0; i--) {
      const entry = entries[i]!;
      const name = entry.name;
      if (inRuntime && name === LOCK_NAME) {
        const path = join(dir, name);
        if (entry.isSymbolicLink()) {
          result.problems.push({ kind: 'lock-path-symlink', path, message: `${path} is a symbolic link; not followed, not read` });
          continue;
        }
        const worker = dir.slice(0, -RUNTIME_DIR.length - 1);
        const state = inspectLockFile(path);
        if (state.kind !== 'absent') result.locks.set(worker, { worker, path, state });
        continue;
      }
      if (entry.isDirectory()) {
        if (skip.has(name)) result.skipped++;
        else stack.push(join(dir, name));
      } else if (entry.isSymbolicLink()) {
        const path = join(dir, name);
        result.problems.push({ kind: 'symlink', path, message: `${path} is a symbolic link; not followed` });
      }
    }
  }
  return result;
}
