/**
 * A big, realistic event log for the replay and projection benchmarks, written by the real
 * Runner driving many demo actors on a SimulatedClock (fsync 'never'): staggered starts, pings
 * answered on time, late (stale) answers, failed pings, reply timeouts and retries, actors that
 * give up — and two runner lives, the second resuming (verified) with overdue timers.
 * Generated once per process and shared; removed by {@link removeDemoLog}.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fromCallback, fromPromise, SimulatedClock } from 'xstate';
import { demoDefinition } from '../src/machines/demo.machine.js';
import { Runner, type EffectHandlers } from '../src/runner/runner.js';

export const DEMO_ACTORS = 2_000;
const STAGGER_MS = 40; // between two actor starts
const TICK_MS = 10; // simulated time per clock step
const MAX_ATTEMPTS = 10;
const T0 = Date.parse('2026-11-23T09:00:00.000Z');
const RESTART_AT = T0 + 40_000; // the first runner life ends here…
const RESTART_GAP_MS = 250; // …and the second starts this much later: some timers are overdue

export interface DemoLog {
  path: string;
  records: number;
  transitions: number;
  bytes: number;
  byType: Record<string, number>;
  runs: number;
  actors: number;
  generateSeconds: number;
}

let cached: Promise<DemoLog> | undefined;
let dir: string | undefined;

export function demoLog(): Promise<DemoLog> {
  cached ??= generate();
  return cached;
}

export function removeDemoLog(): void {
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  dir = undefined;
  cached = undefined;
}

function inputOf(i: number) {
  return { maxAttempts: MAX_ATTEMPTS, replyTimeoutMs: 800 + (i % 5) * 100, retryDelayMs: 300 + (i % 3) * 100 };
}

function indexOf(actor: string): number {
  return Number(actor.slice('demo:'.length));
}

/**
 * The peers: actor i answers from attempt 1 + (i % 12) on (so 2 in 12 never answer within 10
 * attempts and give up); every 5th answers its first answered attempt too late (a stale pong);
 * every 7th fails its first ping outright (effect.failed).
 */
function peers(clock: SimulatedClock): EffectHandlers {
  return {
    sendPing: fromCallback(({ input }) => {
      const effect = input as { actor: string; params: { attempt: number }; send: (e: { type: string; attempt: number }) => void };
      const i = indexOf(effect.actor);
      const attempt = effect.params.attempt;
      if (i % 7 === 3 && attempt === 1) throw new Error('peer unreachable: ECONNREFUSED');
      const answerFrom = 1 + (i % 12);
      if (attempt < answerFrom) return;
      const late = i % 5 === 0 && attempt === answerFrom;
      const delay = late ? inputOf(i).replyTimeoutMs + 100 : 150 + (i % 4) * 50;
      clock.setTimeout(() => effect.send({ type: 'demo.pong', attempt }), delay);
    }),
    report: fromPromise(async () => {}),
  };
}

function clockAt(ms: number): SimulatedClock {
  const clock = new SimulatedClock();
  clock.set(ms);
  return clock;
}

async function generate(): Promise<DemoLog> {
  dir = mkdtempSync(join(tmpdir(), 'warden-bench-demo-'));
  const path = join(dir, 'events.jsonl');
  const started = process.hrtime.bigint();
  const end = T0 + DEMO_ACTORS * STAGGER_MS + MAX_ATTEMPTS * 2_000;
  let next = 0; // the next actor to start

  const life = async (clock: SimulatedClock, runId: string, epoch: number, until: number, reason: string) => {
    const runner = Runner.open({ log: path, machines: [demoDefinition], effects: peers(clock), clock, runId, epoch, fsync: 'never' });
    clock.increment(0); // overdue timers re-armed by a resume fire now
    for (let now = clock.now(); now < until; now = clock.now()) {
      while (next < DEMO_ACTORS && T0 + next * STAGGER_MS <= now) {
        const actor = `demo:${next}`;
        runner.start(actor, 'demo', inputOf(next));
        runner.send(actor, { type: 'demo.start' });
        next++;
      }
      clock.increment(TICK_MS);
      // Let effect actors settle (report's promise) now and then.
      if ((now - T0) % 1_000 === 0) await new Promise<void>((resolve) => setImmediate(resolve));
    }
    runner.close(reason);
  };

  await life(clockAt(T0), 'bench-life-1', 1, RESTART_AT, 'restart');
  await life(clockAt(RESTART_AT + RESTART_GAP_MS), 'bench-life-2', 2, end, 'done');
  const generateSeconds = Number(process.hrtime.bigint() - started) / 1e9;

  const text = readFileSync(path, 'utf8');
  const byType: Record<string, number> = {};
  let records = 0;
  let transitions = 0;
  let runs = 0;
  for (const line of text.split('\n')) {
    if (line.length === 0) continue;
    const r = JSON.parse(line) as { type: string; state?: unknown };
    records++;
    if (r.state !== undefined) transitions++;
    if (r.type === 'run.started') runs++;
    byType[r.type] = (byType[r.type] ?? 0) + 1;
  }
  return { path, records, transitions, bytes: Buffer.byteLength(text), byType, runs, actors: next, generateSeconds };
}

/** The floor every read benchmark is measured against: read the file, split lines, JSON.parse each. */
export function parseFloor(path: string): number {
  const lines = readFileSync(path, 'utf8').split('\n');
  let n = 0;
  for (const line of lines) {
    if (line.length === 0) continue;
    JSON.parse(line);
    n++;
  }
  return n;
}

export function describeDemoLog(log: DemoLog): string {
  const types = Object.entries(log.byType)
    .sort((a, b) => b[1] - a[1])
    .map(([t, n]) => `${t} ${n}`)
    .join(', ');
  return (
    `  demo log: ${log.records.toLocaleString('en-US')} records (${log.transitions.toLocaleString('en-US')} transitions), ` +
    `${(log.bytes / 1e6).toFixed(2)} MB, ${log.actors} actors, ${log.runs} runner lives; ` +
    `written by the Runner in ${log.generateSeconds.toFixed(1)} s ` +
    `(${Math.round(log.records / log.generateSeconds).toLocaleString('en-US')} records/s, fsync never, SimulatedClock)\n` +
    `  types: ${types}`
  );
}
