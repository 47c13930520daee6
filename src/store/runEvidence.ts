/**
 * The per-run files beside a log are evidence of what it held. A job's `.meta.json` under
 * `runs/<runId>/` names its jobId, and a job gets its files only after the record that started
 * it (carrying that jobId) was committed. So a meta file whose jobId the log never mentions
 * means the log lost committed records — whether or not a commit mark is there to say so.
 */
import { closeSync, existsSync, readdirSync, readSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { openStateFile } from './stateFile.js';

const META_SUFFIX = '.meta.json';
const META_MAX_BYTES = 64 * 1024;

/** What a log's records say about runs and jobs: the runIds that wrote it and the jobIds it started. */
export interface RunsSeen {
  runIds: Set<string>;
  jobIds: Set<string>;
}

export function noRunsSeen(): RunsSeen {
  return { runIds: new Set(), jobIds: new Set() };
}

/** Notes a record's runId and the jobId its data carries (`data.jobId`, or a job actor's `data.input.jobId`). */
export function noteRecord(record: { runId: string; data: unknown }, seen: RunsSeen): void {
  seen.runIds.add(record.runId);
  const data = record.data;
  if (data === null || typeof data !== 'object') return;
  const { jobId, input } = data as { jobId?: unknown; input?: { jobId?: unknown } | null };
  if (typeof jobId === 'string') seen.jobIds.add(jobId);
  const started = input !== null && typeof input === 'object' ? input.jobId : undefined;
  if (typeof started === 'string') seen.jobIds.add(started);
}

/**
 * The first meta file beside `logPath` whose jobId is not in `known`, as one line saying so;
 * undefined when every one is known (or there are none). Unreadable meta files are not evidence.
 */
export function unknownRunEvidence(logPath: string, seen: RunsSeen): string | undefined {
  const runsDir = join(dirname(logPath), 'runs');
  const execDir = join(dirname(logPath), 'exec');
  let runs: string[];
  try {
    runs = readdirSync(runsDir).sort();
  } catch {
    return undefined;
  }
  for (const run of runs) {
    // A `warden exec` run keeps its files here too, but its records in exec/<runId>.jsonl.
    if (!seen.runIds.has(run) && existsSync(join(execDir, `${run}.jsonl`))) continue;
    let files: string[];
    try {
      files = readdirSync(join(runsDir, run)).filter((f) => f.endsWith(META_SUFFIX)).sort();
    } catch {
      continue;
    }
    for (const file of files) {
      const path = join(runsDir, run, file);
      const jobId = metaJobId(path);
      if (jobId !== undefined && !seen.jobIds.has(jobId)) {
        return `${join('runs', run, file)} beside it records job ${JSON.stringify(jobId)}, which the log never started: committed records were lost (the log was cut, emptied or replaced); restore it from a copy`;
      }
    }
  }
  return undefined;
}

function metaJobId(path: string): string | undefined {
  let fd: number;
  try {
    fd = openStateFile(path);
  } catch {
    return undefined;
  }
  try {
    const buffer = Buffer.alloc(META_MAX_BYTES);
    const n = readSync(fd, buffer, 0, buffer.length, 0);
    const jobId = (JSON.parse(buffer.toString('utf8', 0, n)) as { jobId?: unknown } | null)?.jobId;
    return typeof jobId === 'string' ? jobId : undefined;
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}
