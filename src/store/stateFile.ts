/**
 * Opening Warden's own state files (the event log, its commit mark, the project config) the one
 * safe way: never through a symlink (O_NOFOLLOW), never blocking on a FIFO (O_NONBLOCK), and
 * judged by fstat of the descriptor that is then read, so what is checked is what is read.
 * Anything that is not a regular file, or cannot be opened, is a UsageError naming the file.
 */
import { closeSync, constants, fstatSync, lstatSync, openSync } from 'node:fs';
import { UsageError } from '../errors.js';

export interface StateFileOptions {
  /**
   * 'read' (the default); 'append': read-write with O_APPEND, created (0600) if missing;
   * 'update': read-write at explicit offsets, created (0600) if missing.
   */
  access?: 'read' | 'append' | 'update';
  /** How the file is named in errors. Default the path as given. */
  displayName?: string;
}

/**
 * Opens `path` as a regular file and returns the descriptor. A missing file (read-only) throws
 * the ENOENT error itself, untouched, so callers can treat absence their own way.
 *
 * @example
 * const fd = openStateFile('.warden/events.jsonl'); // UsageError ".warden/events.jsonl: is a FIFO, not a regular file"
 */
export function openStateFile(path: string, options: StateFileOptions = {}): number {
  const name = options.displayName ?? path;
  const access = options.access ?? 'read';
  const base =
    access === 'read' ? constants.O_RDONLY : constants.O_RDWR | constants.O_CREAT | (access === 'append' ? constants.O_APPEND : 0);
  let fd: number;
  try {
    fd = openSync(path, base | constants.O_NOFOLLOW | constants.O_NONBLOCK, 0o600);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT' && access === 'read') throw error;
    throw stateFileError(name, error);
  }
  try {
    const kind = fileKind(fstatSync(fd));
    if (kind !== 'file') throw new UsageError(`${name}: is ${kind}, not a regular file; Warden only reads and writes regular files there`);
    return fd;
  } catch (error) {
    closeSync(fd);
    throw error instanceof UsageError ? error : stateFileError(name, error);
  }
}

/**
 * Whether something is at `path` (not followed if a link). Unlike existsSync, a path this user may
 * not look at is not "missing": that is a UsageError naming it, so nothing is taken for empty.
 */
export function stateFileExists(path: string, displayName = path): boolean {
  try {
    lstatSync(path);
    return true;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return false;
    throw stateFileError(displayName, error);
  }
}

/** A system error met on a state file, as one line naming the file (never the file's bytes). */
export function stateFileError(name: string, error: unknown): UsageError {
  const code = (error as NodeJS.ErrnoException).code;
  switch (code) {
    case 'ELOOP':
    case 'EMLINK':
      return new UsageError(`${name}: is a symbolic link; Warden does not follow links for its state files`, { cause: error });
    case 'EISDIR':
      return new UsageError(`${name}: is a directory, not a regular file; Warden only reads and writes regular files there`, { cause: error });
    case 'ENXIO':
      return new UsageError(`${name}: is a socket or device, not a regular file; Warden only reads and writes regular files there`, { cause: error });
    case 'EACCES':
    case 'EPERM':
      return new UsageError(`${name}: permission denied (${code}): it belongs to another user or its directory is closed to this one (uid ${process.getuid?.() ?? '?'})`, { cause: error });
    case 'ENOENT':
      return new UsageError(`${name}: does not exist (or a directory on its path is missing)`, { cause: error });
    default:
      return new UsageError(`${name}: cannot open: ${code ?? (error instanceof Error ? error.message : String(error))}`, { cause: error });
  }
}

function fileKind(stat: { isFile(): boolean; isDirectory(): boolean; isFIFO(): boolean; isSocket(): boolean; isSymbolicLink(): boolean }): string {
  if (stat.isFile()) return 'file';
  if (stat.isDirectory()) return 'a directory';
  if (stat.isFIFO()) return 'a FIFO';
  if (stat.isSocket()) return 'a socket';
  if (stat.isSymbolicLink()) return 'a symbolic link';
  return 'a device';
}
