import { queueStatus } from '../runner/queueStatus.js';
import { displayPath } from './args.js';
import { parseCommand } from './parse.js';
import { escapeControls } from './escape.js';
import { Output } from './output.js';

/** `warden status [--dir D] [--json]`: the lease holder, pauses and every job, from the log alone. */
export async function statusCommand(argv: string[]): Promise<number> {
  const { values } = parseCommand('status', argv);
  const status = queueStatus(values.dir ?? '.');
  const out = new Output();
  // A damaged log still shows what it can, but never as a clean answer: exit 2.
  const code = status.damage ? 2 : 0;
  if (values.json) {
    out.line(JSON.stringify(status));
    await out.end();
    return code;
  }
  const d = status.damage;
  if (d) out.line(`LOG DAMAGED: ${displayPath(d.file)}${d.line > 0 ? `:${d.line}` : ''}: ${d.reason} — shown as of seq ${d.lastGoodSeq}, the last good record`);
  const owner = status.lease.owner;
  out.line(owner ? `lease: held by ${owner.ownerId} (pid ${String(owner.pid)}, epoch ${owner.epoch})${status.lease.live ? '' : ' — owner gone'}` : `lease: not held (${status.lease.basis})`);
  if (status.paused) out.line(`paused: ${status.paused.reason}${status.paused.until ? ` until ${status.paused.until}` : ''} (${status.paused.message})`);
  else out.line(`queue: ${status.runId ? `driven by run ${status.runId}` : 'no run driving it'}${status.cap ? `, cap ${status.cap}` : ''}`);
  if (status.gate && status.gate.firePolicy !== 'immediate') out.line(`fire policy: ${status.gate.firePolicy}: ${status.gate.open ? 'open' : 'closed'} (${status.gate.reason}${status.gate.opensAt ? `; opens ${status.gate.opensAt}` : ''})`);
  if (status.meter) {
    const m = status.meter;
    const last = m.lastPoll ? `last poll ${m.lastPoll.at}: ${m.lastPoll.ok ? `utilization ${m.lastPoll.utilization}%${m.lastPoll.resetsAt ? `, resets ${m.lastPoll.resetsAt}` : ''}` : `failed (${m.lastPoll.kind}: ${m.lastPoll.reason})`}` : 'not polled yet';
    const failing = m.failures > 0 ? `; ${m.failures} failure(s) in a row (${m.failureKind})${m.failingSince ? ` since ${m.failingSince}` : ''}` : '';
    out.line(`meter: ${last}${failing}${m.nextPollAt ? `; next poll ${m.nextPollAt}` : ` (${m.state})`}${m.pausedAs ? `; paused the queue as ${m.pausedAs}` : ''}`);
  }
  for (const p of status.problems) out.line(`bad job file ${p.file}: ${p.problem}`);
  const rows = [['JOB', 'GROUP', 'STATUS', 'ATTEMPTS', 'EXIT', 'COST', 'WHY']];
  for (const j of status.jobs) {
    const inv = j.investigation;
    const investigated = inv ? `; investigation ${inv.status}${inv.status === 'skipped' ? ` (${inv.reason})` : ''}: fix plan ${inv.fixSlug}${inv.fixWritten === true ? ' (written)' : inv.fixWritten === false ? ' (not written)' : ''}` : '';
    const why = (j.waitsFor ? `waits for ${j.waitsFor}` : (j.reason ?? '')) + investigated;
    rows.push([j.slug, String(j.group), j.status + (j.removed && j.status !== 'cancelled' ? ' (file removed)' : ''), String(j.attempts), j.exitCode === null ? '' : String(j.exitCode), j.costUsd === null ? '' : `$${j.costUsd.toFixed(4)}`, why]);
  }
  if (status.jobs.length === 0) out.line('no jobs');
  else {
    // Escaped before measuring, so the columns line up with what is printed.
    for (const r of rows) r.forEach((cell, i) => (r[i] = escapeControls(cell)));
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const r of rows) out.line(r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd());
  }
  await out.end();
  return code;
}
