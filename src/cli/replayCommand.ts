import { NonDeterminismError, UsageError } from '../errors.js';
import { replayLog } from '../runner/replay.js';
import type { StateValue } from '../store/record.js';
import { displayPath, logPathOf, positiveInteger } from './args.js';
import { parseCommand } from './parse.js';
import { formatActor, formatTimer } from './format.js';
import { machinesFor } from './machinesOption.js';
import { Output, warn } from './output.js';

/** `warden replay`: fold the log through the machines; with --verify, check every step. */
export async function replayCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand('replay', argv);
  const path = logPathOf('replay', values.dir, positionals);
  const at = positiveInteger('at', values.at);
  const machines = await machinesFor(values.machines);
  const verify = values.verify ?? false;
  const out = new Output();
  let result;
  try {
    result = replayLog(path, machines, { verify, at, displayName: displayPath(path) });
  } catch (error) {
    if (error instanceof NonDeterminismError && values.json) {
      const { code, seq, actor, field, expected, actual } = error;
      out.line(JSON.stringify({ ok: false, error: { code, seq, actor, field, expected, actual } }));
      await out.end();
    }
    throw error;
  }
  if (at !== undefined && at > result.lastSeq) {
    throw new UsageError(`--at ${at}: ${displayPath(path)} ends at seq ${result.lastSeq}`);
  }

  if (values.json) {
    out.line(
      JSON.stringify({
        ok: true,
        verified: verify,
        records: result.records,
        lastSeq: result.lastSeq,
        at: at ?? null,
        actors: result.actors.map((a) => ({
          id: a.id,
          machine: a.machine,
          state: a.snapshot.value as StateValue,
          status: a.snapshot.status,
          context: a.snapshot.context,
          lastSeq: a.lastSeq,
        })),
        pendingTimers: result.pendingTimers,
        torn: result.torn ?? null,
      }),
    );
  } else {
    const how = verify ? 'every step verified' : 'not verified (add --verify)';
    out.line(`${at !== undefined ? `at seq ${at}` : `replayed to seq ${result.lastSeq}`}: ${result.records} records, ${how}`);
    out.line(`actors (${result.actors.length}):`);
    for (const actor of result.actors) out.line(`  ${formatActor(actor)}`);
    if (result.pendingTimers.length > 0) {
      out.line(`pending timers (${result.pendingTimers.length}):`);
      for (const timer of result.pendingTimers) out.line(`  ${formatTimer(timer)}`);
    }
  }
  await out.end();
  if (result.torn) warn(`${displayPath(path)}: torn last line at byte ${result.torn.offset} (${result.torn.bytes} bytes) skipped`);
  return 0;
}
