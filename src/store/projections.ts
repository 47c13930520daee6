import { isTransitionRecord, type LogRecord, type StateValue } from './record.js';
import { RUNNER_ACTOR } from './runnerEvents.js';

/**
 * Projections: state folded from the log and nothing else, so any view of the queue or of the
 * runs can be rebuilt from `events.jsonl` at any time. Each is a pure reducer over records.
 */
export interface Projection<S> {
  initial(): S;
  apply(state: S, record: LogRecord): S;
}

export function fold<S>(records: Iterable<LogRecord>, projection: Projection<S>): S {
  let state = projection.initial();
  for (const record of records) state = projection.apply(state, record);
  return state;
}

/** The latest recorded state of each actor, as the log says (no machine needed). */
export interface ActorView {
  actor: string;
  machine: string;
  state: StateValue;
  lastSeq: number;
  lastType: string;
  events: number;
}

export const actorsProjection: Projection<Map<string, ActorView>> = {
  initial: () => new Map(),
  apply(actors, record) {
    if (!isTransitionRecord(record)) return actors;
    const known = actors.get(record.actor);
    if (known) {
      known.state = record.state;
      known.lastSeq = record.seq;
      known.lastType = record.type;
      known.events++;
    } else if (record.type === 'actor.started') {
      actors.set(record.actor, {
        actor: record.actor,
        machine: (record.data as { machine: string }).machine,
        state: record.state,
        lastSeq: record.seq,
        lastType: record.type,
        events: 1,
      });
    }
    return actors;
  },
};

/** One life of a writer of the log: when it started, whether it stopped cleanly. */
export interface RunView {
  runId: string;
  epoch: number;
  pid: number;
  hostname: string;
  startedAt: string;
  firstSeq: number;
  lastSeq: number;
  records: number;
  stopped?: { at: string; reason: string };
}

export const runsProjection: Projection<RunView[]> = {
  initial: () => [],
  apply(runs, record) {
    if (record.actor === RUNNER_ACTOR && record.type === 'run.started') {
      const data = record.data as { pid: number; hostname: string };
      runs.push({
        runId: record.runId,
        epoch: record.epoch,
        pid: data.pid,
        hostname: data.hostname,
        startedAt: record.ts,
        firstSeq: record.seq,
        lastSeq: record.seq,
        records: 0,
      });
    }
    const run = runs[runs.length - 1];
    if (!run || run.runId !== record.runId) return runs;
    run.lastSeq = record.seq;
    run.records++;
    if (record.actor === RUNNER_ACTOR && record.type === 'run.stopped') {
      run.stopped = { at: record.ts, reason: (record.data as { reason: string }).reason };
    }
    return runs;
  },
};
