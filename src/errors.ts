/**
 * Warden's error family. Each error has a literal `code` and carries its facts as fields, so
 * callers branch on data, and the CLI turns any of them into one line and an exit code.
 */
export abstract class WardenError extends Error {
  abstract readonly code: string;
  /** The CLI exit code this error maps to (DESIGN.md "The CLI contract"). */
  abstract readonly exitCode: number;
}

/** A log line that is not a valid record: the file, the 1-based line and what is wrong. */
export class LogFormatError extends WardenError {
  readonly code = 'log_format';
  readonly exitCode = 2;
  constructor(
    readonly file: string,
    readonly line: number,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${file}:${line}: ${reason}`, options);
    this.name = 'LogFormatError';
  }
}

/** Replaying a log through the machines reached something other than what the log records. */
export class NonDeterminismError extends WardenError {
  readonly code = 'non_determinism';
  readonly exitCode = 1;
  constructor(
    readonly seq: number,
    readonly actor: string,
    readonly field: 'state' | 'hash' | 'effects',
    readonly expected: unknown,
    readonly actual: unknown,
  ) {
    super(
      `replay diverged at seq ${seq} (actor ${actor}): ${field} expected ${JSON.stringify(expected)}, actual ${JSON.stringify(actual)}`,
    );
    this.name = 'NonDeterminismError';
  }
}

/** A caller handed Warden something it cannot use: a bad argument, option or file. */
export class UsageError extends WardenError {
  readonly code = 'usage';
  readonly exitCode = 2;
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'UsageError';
  }
}

/** A machine did something the runner does not allow (spawn, invoke, a non-JSON context …). */
export class MachineContractError extends WardenError {
  readonly code = 'machine_contract';
  readonly exitCode = 2;
  constructor(
    readonly machine: string,
    readonly reason: string,
  ) {
    super(`machine ${machine}: ${reason}`);
    this.name = 'MachineContractError';
  }
}

/** A record would be longer than the reader accepts; nothing was written. */
export class RecordTooLargeError extends WardenError {
  readonly code = 'record_too_large';
  readonly exitCode = 2;
  constructor(
    readonly bytes: number,
    readonly limit: number,
    readonly type: string,
  ) {
    super(`a ${type} record of ${bytes} bytes is over the ${limit}-byte limit`);
    this.name = 'RecordTooLargeError';
  }
}

/** The log file already has a writer in this process (one writer per file). */
export class LogBusyError extends WardenError {
  readonly code = 'log_busy';
  readonly exitCode = 75;
  constructor(readonly file: string) {
    super(`${file} already has a writer in this process`);
    this.name = 'LogBusyError';
  }
}

/** The lease or lock path is something Warden will not touch (a symlink, say): nothing was written. */
export class LockPathError extends WardenError {
  readonly code = 'lock_path';
  readonly exitCode = 2;
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path}: ${reason}`);
    this.name = 'LockPathError';
  }
}

/** The control socket's path is unusable: too long, or something other than a socket is there. */
export class ControlPathError extends WardenError {
  readonly code = 'control_path';
  readonly exitCode = 2;
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path}: ${reason}`);
    this.name = 'ControlPathError';
  }
}

/** A scheduler listens on the control socket but gave no usable answer. */
export class ControlReplyError extends WardenError {
  readonly code = 'control_reply';
  readonly exitCode = 1;
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${reason} (control socket ${path})`);
    this.name = 'ControlReplyError';
  }
}

/** A file the lease keeps (the epoch high-water mark) holds something it did not write. */
export class LeaseFormatError extends WardenError {
  readonly code = 'lease_format';
  readonly exitCode = 2;
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path}: ${reason}`);
    this.name = 'LeaseFormatError';
  }
}

/** The lease is held by another live owner. */
export class LeaseHeldError extends WardenError {
  readonly code = 'lease_held';
  readonly exitCode = 75;
  constructor(
    readonly holder: { ownerId?: string; pid?: unknown; hostname?: string; epoch?: number } | undefined,
    readonly dir: string,
  ) {
    super(
      holder
        ? `the lease of ${dir} is held by ${holder.ownerId ?? '?'} (pid ${String(holder.pid)} on ${holder.hostname ?? '?'}, epoch ${holder.epoch ?? '?'})`
        : `the lease of ${dir} is held (the lock file is being written or is unreadable and young)`,
    );
    this.name = 'LeaseHeldError';
  }
}

/** The lease was taken over by another owner while this process believed it held it. */
export class LeaseLostError extends WardenError {
  readonly code = 'lease_lost';
  readonly exitCode = 1;
  constructor(
    readonly epoch: number,
    readonly reason: string,
  ) {
    super(`lease lost (epoch ${epoch}): ${reason}`);
    this.name = 'LeaseLostError';
  }
}

/** A system tool Warden needs (flock, tmux, setpriv) is missing or failed to run. */
export class ToolError extends WardenError {
  readonly code = 'tool';
  readonly exitCode = 2;
  constructor(
    readonly tool: string,
    readonly reason: string,
  ) {
    super(`${tool}: ${reason}`);
    this.name = 'ToolError';
  }
}

/** A coordination lock (flock) stayed taken past its timeout. */
export class FlockTimeoutError extends WardenError {
  readonly code = 'flock_timeout';
  readonly exitCode = 75;
  constructor(
    readonly path: string,
    readonly timeoutMs: number,
  ) {
    super(`${path}: could not take the coordination lock within ${timeoutMs} ms (another process holds it)`);
    this.name = 'FlockTimeoutError';
  }
}

/** A worker's identity lock is held by another live owner. */
export class LockHeldError extends WardenError {
  readonly code = 'lock_held';
  readonly exitCode = 75;
  constructor(
    readonly worker: string,
    readonly holder: { pid: unknown; session_id?: string; hostname?: string; acquired_at?: string } | null,
    readonly reason: string,
  ) {
    super(
      holder
        ? `${worker} is locked by PID ${String(holder.pid)} (session: ${holder.session_id ?? ''}, host: ${holder.hostname ?? '?'}, acquired: ${holder.acquired_at ?? '?'}): ${reason}`
        : `${worker} is locked: ${reason}`,
    );
    this.name = 'LockHeldError';
  }
}

/** A worker lock file that cannot be read as one (not JSON, wrong types, too large, a directory). */
export class LockFormatError extends WardenError {
  readonly code = 'lock_format';
  readonly exitCode = 2;
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path}: invalid lock file: ${reason}`);
    this.name = 'LockFormatError';
  }
}

/** The command a `lease run` / `lock run` was to run is not there (127) or not executable (126), as a shell says. */
export class CommandNotFoundError extends WardenError {
  readonly code = 'command_not_found';
  constructor(
    readonly command: string,
    readonly exitCode: 126 | 127,
    message: string,
  ) {
    super(message);
    this.name = 'CommandNotFoundError';
  }
}
