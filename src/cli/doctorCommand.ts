import { lstatSync } from 'node:fs';
import { resolve } from 'node:path';
import { UsageError } from '../errors.js';
import { doctor, doctorExitCode } from '../effects/doctor.js';
import { DEFAULT_SKIP_DIRS } from '../effects/lockScan.js';
import { defaultProbes } from '../effects/sessionProbes.js';
import { deadExecs, type DeadExec } from '../runner/execRecovery.js';
import { loadConfig } from '../store/configFile.js';
import { displayPath, positiveInteger } from './args.js';
import { escapeControls } from './escape.js';
import { parseCommand } from './parse.js';
import { Output } from './output.js';

/**
 * `warden doctor [ROOT] [--fix] [--json]`: every worker lock under ROOT, judged, and every exec in
 * the project dir that died with its job unfinished; with --fix stale locks are removed and dead
 * execs' leftovers killed (their logs ended).
 */
export async function doctorCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseCommand('doctor', argv);
  if (positionals.length > 1) throw new UsageError(`doctor: expected at most one ROOT, got ${positionals.length}`);
  const root = resolve(positionals[0] ?? '.');
  let rootStat;
  try {
    rootStat = lstatSync(root);
  } catch (error) {
    throw new UsageError(`doctor: ${root}: ${(error as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such directory' : String((error as Error).message)}`);
  }
  if (!rootStat.isDirectory() && !rootStat.isSymbolicLink()) throw new UsageError(`doctor: ${root}: not a directory`);
  for (const name of values.skip ?? []) {
    if (name === '' || name.includes('/')) throw new UsageError(`doctor: --skip: expected a directory name, got "${name}"`);
  }
  const config = await loadConfig(resolve(values.dir ?? '.'));
  const base = values['no-default-skips'] ? [] : (config.doctor?.skipDirs ?? DEFAULT_SKIP_DIRS);
  const report = await doctor(root, {
    fix: values.fix ?? false,
    probes: defaultProbes({ tmuxSocket: values['tmux-socket'] ?? config.tmux?.socket, timeoutMs: positiveInteger('probe-timeout-ms', values['probe-timeout-ms']) }),
    skipDirs: [...base, ...(values.skip ?? [])],
  });

  // Execs in the project dir that died with their job unfinished: their leftovers, from their logs.
  const execs = await deadExecs(resolve(values.dir ?? '.'), { recover: values.fix ?? false, by: 'warden doctor --fix' });
  for (const dead of execs) {
    const fixed = dead.problem === undefined && dead.jobs.every((job) => job.recovered !== undefined && job.recovered.survivors.length === 0);
    report.findings.push({ kind: 'dead-exec', severity: 'problem', path: dead.log, message: deadExecMessage(dead), ...(values.fix && fixed ? { fixed: true } : {}) });
  }

  const out = new Output();
  if (values.json) {
    out.line(JSON.stringify({ ...report, execs }));
  } else {
    out.line(`${report.locks.length} worker lock${report.locks.length === 1 ? '' : 's'} under ${displayPath(root)} (${report.scanned.dirs} directories read, ${report.scanned.skipped} skipped by name)`);
    for (const lock of report.locks) {
      const who = lock.state === 'corrupt' ? '' : ` PID ${String(lock.pid)}${lock.session_id ? ` session ${lock.session_id}` : ''}${lock.hostname ? ` on ${lock.hostname}` : ''}`;
      out.line(`  ${lock.state.padEnd(8)} ${displayPath(lock.worker)}${who} — ${lock.reason}`);
    }
    for (const probe of report.probes) out.line(`probe ${probe.probe}: ${probe.ok ? probe.detail : `FAILED: ${probe.detail}`}`);
    for (const finding of report.findings) out.line(`${finding.fixed ? 'fixed' : finding.severity}: ${finding.message}`);
    if (report.findings.length === 0) out.line('no findings');
  }
  await out.end();
  return doctorExitCode(report);
}

/** A dead exec as a finding: what it left, and (after --fix) what became of it. */
function deadExecMessage(dead: DeadExec): string {
  const who = `dead exec${dead.pid === null ? '' : ` (pid ${dead.pid})`} left ${displayPath(dead.log)} unfinished`;
  if (dead.problem !== undefined) return `${who}; its log cannot be read: ${escapeControls(dead.problem)}`;
  const jobs = dead.jobs.map((job) => {
    const found = `${job.actor} in ${job.state}, ${job.leftovers.length === 0 ? 'no process left' : `processes left: ${job.leftovers.join(' ')}`}`;
    if (!job.recovered) return found;
    const { killed, survivors } = job.recovered;
    return `${found}; ${job.recovered.state}${killed.length > 0 ? `, killed ${killed.join(' ')}` : ''}${survivors.length > 0 ? `, still running after SIGKILL: ${survivors.join(' ')}` : ''}`;
  });
  return `${who}: ${jobs.join('; ')}`;
}

