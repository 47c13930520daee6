import { UsageError } from '../errors.js';
import { runJob } from '../runner/jobSession.js';
import { loadConfig } from '../store/configFile.js';
import type { DeadExec } from '../runner/execRecovery.js';
import { displayPath, duration } from './args.js';
import { escapeControls, jsonLine } from './escape.js';
import { parseCommand } from './parse.js';
import { warn } from './output.js';

const EXIT = { completed: 0, failed: 1, deferred: 75, interrupted: 1 } as const;

/**
 * `warden exec [--dir D] [--max-duration T] [--idle T] [--grace T] [--kill-after T] [--prompt-file F] [--json] -- CMD…`:
 * one command as a supervised job, in the foreground, its output passing through.
 */
export async function execCommand(argv: string[]): Promise<number> {
  const { values, command } = parseCommand('exec', argv);
  const via = values['prompt-via'];
  if (via !== undefined && via !== 'stdin' && via !== 'file' && via !== 'argv') throw new UsageError(`--prompt-via: expected stdin, file or argv, got "${via}"`);
  const timeouts = Object.fromEntries(
    Object.entries({
      maxDurationMs: duration('max-duration', values['max-duration']),
      idleOutputMs: duration('idle', values.idle),
      postResultGraceMs: duration('grace', values.grace),
      killAfterMs: duration('kill-after', values['kill-after']),
    }).filter(([, v]) => v !== undefined),
  );

  // Flags win over the project config, which wins over Warden's defaults.
  const config = await loadConfig(values.dir ?? '.');
  const controller = new AbortController();
  const stop = (signal: NodeJS.Signals) => controller.abort(`${signal} to warden exec`);
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, stop);
  try {
    const run = await runJob({
      dir: values.dir,
      cwd: values.cwd,
      slug: values.slug,
      command,
      promptFile: values['prompt-file'],
      promptVia: via,
      timeouts: { ...config.timeouts, ...timeouts },
      env: config.env,
      rateLimitPatterns: config.rateLimitPatterns?.map((p) => ({ name: p.name, regex: new RegExp(p.regex) })),
      passThrough: true,
      signal: controller.signal,
      onRecovered: (dead) => warn(describeRecovery(dead)),
    });
    if (values.json) process.stdout.write(`${jsonLine(run.meta)}\n`);
    else if (run.outcome !== 'completed' || run.meta.mappedFromSignal) warn(`job ${run.outcome}: ${run.meta.reason} (log: ${run.log})`);
    return EXIT[run.outcome];
  } finally {
    for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.off(signal, stop);
  }
}

/** One line on a dead exec whose leftovers this one killed before starting. */
export function describeRecovery(dead: DeadExec): string {
  const jobs = dead.jobs.map((job) => {
    const killed = job.recovered?.killed ?? [];
    const survivors = job.recovered?.survivors ?? [];
    return `${job.actor} ${job.state} → ${job.recovered?.state ?? 'unchanged'}${killed.length > 0 ? `, killed ${killed.join(' ')}` : ''}${survivors.length > 0 ? `, still running after SIGKILL: ${survivors.join(' ')}` : ''}`;
  });
  return `a dead exec${dead.pid === null ? '' : ` (pid ${dead.pid})`} left ${displayPath(dead.log)} unfinished: ${dead.problem === undefined ? jobs.join('; ') : escapeControls(dead.problem)}`;
}
