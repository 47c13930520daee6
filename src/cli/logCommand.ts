import { createRecordChecker } from '../store/catalogue.js';
import { followLog } from '../store/logFollow.js';
import { LogReader } from '../store/logReader.js';
import type { LogRecord } from '../store/record.js';
import { displayPath, logPathOf } from './args.js';
import { parseCommand } from './parse.js';
import { formatRecord } from './format.js';
import { machinesFor } from './machinesOption.js';
import { Output, warn } from './output.js';

/** `warden log`: the event log, one readable line (or one JSON object) per record. */
export async function logCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand('log', argv);
  const path = logPathOf('log', values.dir, positionals);
  const machines = await machinesFor(values.machines);
  const options = { check: createRecordChecker(new Map(machines.map((d) => [d.name, d]))), displayName: displayPath(path) };
  const show = values.json ? (r: LogRecord) => JSON.stringify(r) : formatRecord;
  const out = new Output();

  if (values.follow) {
    const stop = new AbortController();
    const abort = () => stop.abort();
    process.once('SIGINT', abort);
    process.once('SIGTERM', abort);
    try {
      for await (const record of followLog(path, { ...options, signal: stop.signal })) {
        out.line(show(record));
        out.flush();
      }
    } finally {
      process.off('SIGINT', abort);
      process.off('SIGTERM', abort);
    }
    await out.end();
    return 0;
  }

  const reader = new LogReader(path, options);
  for (const record of reader) out.line(show(record));
  await out.end();
  if (reader.torn) warn(`${options.displayName}: torn last line at byte ${reader.torn.offset} (${reader.torn.bytes} bytes) skipped`);
  return 0;
}
