import { LogFormatError } from '../errors.js';
import type { MachineDefinition } from '../machines/definition.js';
import { createRecordChecker } from '../store/catalogue.js';
import { LogReader } from '../store/logReader.js';
import { noRunsSeen, noteRecord, unknownRunEvidence } from '../store/runEvidence.js';
import type { TornTail } from '../store/logWriter.js';
import { Replayer, type ActorState } from './replayer.js';
import type { PendingTimer } from './timerBook.js';

export interface ReplayOptions {
  /** Compare every step with the record; the first difference throws NonDeterminismError. */
  verify?: boolean;
  /** Stop after the record with this seq: the actors as they were right then. */
  at?: number;
  /** How the file is named in errors; default the path as given. */
  displayName?: string;
  /**
   * 'throw' (the default): a damaged log (a bad line, a broken chain, a cut below its mark) is a
   * LogFormatError. 'stop': the replay stops before the damage and reports it as `damage`.
   */
  onDamage?: 'throw' | 'stop';
}

/** Where a log is damaged: what a reader refused, and the last good record before it. */
export interface LogDamage {
  file: string;
  line: number;
  reason: string;
  /** The seq of the last record read before the damage (0: none). */
  lastGoodSeq: number;
}

export interface ReplayResult {
  actors: ActorState[];
  pendingTimers: PendingTimer[];
  /** Seq of the last record folded. */
  lastSeq: number;
  records: number;
  /** A torn last line (crash mid-append), skipped. */
  torn: TornTail | undefined;
  /** With `onDamage: 'stop'`: the damage the replay stopped at. */
  damage?: LogDamage;
}

/**
 * Replays a log file through the machines with effects and timers switched off.
 *
 * @example
 * const { actors } = replayLog('.warden/events.jsonl', [demoDefinition], { verify: true });
 */
export function replayLog(
  path: string,
  machines: readonly MachineDefinition[],
  options: ReplayOptions = {},
): ReplayResult {
  const definitions = new Map(machines.map((d) => [d.name, d]));
  const replayer = new Replayer(definitions, { verify: options.verify ?? false });
  const reader = new LogReader(path, { check: createRecordChecker(definitions), displayName: options.displayName });
  let records = 0;
  let damage: LogDamage | undefined;
  const seen = noRunsSeen();
  try {
    for (const record of reader) {
      if (options.at !== undefined && record.seq > options.at) break;
      replayer.apply(record);
      noteRecord(record, seen);
      records++;
    }
  } catch (error) {
    if (options.onDamage !== 'stop' || !(error instanceof LogFormatError)) throw error;
    damage = { file: error.file, line: error.line, reason: error.reason, lastGoodSeq: replayer.lastSeq };
  }
  // A whole replay (not one stopped --at a seq) must know every job whose files lie beside the log.
  if (!damage && options.at === undefined) {
    const lost = unknownRunEvidence(path, seen);
    if (lost) {
      const reason = `ends at seq ${replayer.lastSeq}, and ${lost}`;
      if (options.onDamage !== 'stop') throw new LogFormatError(options.displayName ?? path, 0, reason);
      damage = { file: options.displayName ?? path, line: 0, reason, lastGoodSeq: replayer.lastSeq };
    }
  }
  return {
    ...(damage ? { damage } : {}),
    actors: [...replayer.actors.values()],
    pendingTimers: replayer.timers.pending(),
    lastSeq: replayer.lastSeq,
    records,
    torn: reader.torn,
  };
}
