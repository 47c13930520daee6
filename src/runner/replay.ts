import type { MachineDefinition } from '../machines/definition.js';
import { createRecordChecker } from '../store/catalogue.js';
import { LogReader } from '../store/logReader.js';
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
}

export interface ReplayResult {
  actors: ActorState[];
  pendingTimers: PendingTimer[];
  /** Seq of the last record folded. */
  lastSeq: number;
  records: number;
  /** A torn last line (crash mid-append), skipped. */
  torn: TornTail | undefined;
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
  for (const record of reader) {
    if (options.at !== undefined && record.seq > options.at) break;
    replayer.apply(record);
    records++;
  }
  return {
    actors: [...replayer.actors.values()],
    pendingTimers: replayer.timers.pending(),
    lastSeq: replayer.lastSeq,
    records,
    torn: reader.torn,
  };
}
