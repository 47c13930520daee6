/**
 * `warden doctor`: every worker lock under a root, judged, with findings — stale, orphaned,
 * foreign, unreadable, undecidable — and, with `fix`, stale locks removed. A lock is removed only
 * after it is re-read and re-judged stale under its flock (see workerLock.ts); a session probe
 * that fails makes nothing stale, and is itself a finding.
 */
import { findAllLocks, type ScanOptions } from './lockScan.js';
import { defaultProbes, takeSnapshots, type SessionProbe } from './sessionProbes.js';
import { judgeLock, removeIfStillStale, type LockJudgement, type WorkerLockOptions } from './workerLock.js';

export type DoctorLockState = 'live' | 'stale' | 'orphaned' | 'foreign' | 'unknown' | 'corrupt';

export interface DoctorLock {
  worker: string;
  pid: unknown;
  session_id: string | null;
  hostname: string | null;
  acquired_at: string | null;
  state: DoctorLockState;
  reason: string;
}

export type FindingKind =
  | 'stale'
  | 'orphaned'
  | 'foreign'
  | 'unknown'
  | 'corrupt'
  | 'probe-failed'
  | 'unreadable-dir'
  | 'lock-path-symlink'
  | 'symlinks'
  | 'dead-exec';

export interface Finding {
  kind: FindingKind;
  /** 'problem' findings make the doctor exit 1; 'note's are reported only. */
  severity: 'problem' | 'note';
  worker?: string;
  path?: string;
  message: string;
  /** Set when `fix` resolved it. */
  fixed?: boolean;
}

export interface DoctorReport {
  root: string;
  locks: DoctorLock[];
  findings: Finding[];
  /** Worker dirs whose stale lock was removed. */
  cleaned: string[];
  probes: Array<{ probe: string; ok: boolean; detail: string }>;
  scanned: { dirs: number; skipped: number };
}

export interface DoctorOptions extends ScanOptions, Pick<WorkerLockOptions, 'flockTimeoutMs'> {
  fix?: boolean;
  probes?: readonly SessionProbe[];
  /** Symbolic links listed one by one up to this many (the rest are counted). */
  maxListedSymlinks?: number;
}

/**
 * Scans `root`, judges every lock, and with `fix` removes the stale ones.
 * @example const report = await doctor('/town', { fix: true }); report.cleaned
 */
export async function doctor(root: string, options: DoctorOptions = {}): Promise<DoctorReport> {
  const probes = options.probes ?? defaultProbes();
  const scan = findAllLocks(root, options);
  const needsProbes = [...scan.locks.values()].some((l) => l.state.kind === 'lock' && l.state.info.session_id);
  const snapshots = needsProbes ? await takeSnapshots(probes) : new Map();
  const report: DoctorReport = {
    root,
    locks: [],
    findings: [],
    cleaned: [],
    probes: [...snapshots.values()].map((s) => ({ probe: s.probe, ok: s.ok, detail: s.ok ? (s.note ?? 'ok') : s.reason })),
    scanned: { dirs: scan.dirs, skipped: scan.skipped },
  };
  for (const s of snapshots.values()) {
    if (!s.ok) {
      report.findings.push({ kind: 'probe-failed', severity: 'problem', message: `session probe ${s.probe} failed: ${s.reason}; no lock is judged stale by its sessions` });
    }
  }

  for (const found of scan.locks.values()) {
    const { worker, path, state } = found;
    if (state.kind === 'corrupt') {
      report.locks.push({ worker, pid: null, session_id: null, hostname: null, acquired_at: null, state: 'corrupt', reason: state.reason });
      report.findings.push({ kind: 'corrupt', severity: 'problem', worker, path, message: `unreadable lock ${path}: ${state.reason}` });
      continue;
    }
    const { info } = state;
    const judgement = judgeLock(info, probes, snapshots, { lockUid: state.uid });
    report.locks.push({
      worker,
      pid: info.pid,
      session_id: info.session_id ?? null,
      hostname: info.hostname ?? null,
      acquired_at: info.acquired_at,
      state: judgement.state,
      reason: judgement.reason,
    });
    const finding = findingFor(worker, path, info.pid, judgement);
    if (!finding) continue;
    report.findings.push(finding);
    if (options.fix && judgement.state === 'stale') {
      const outcome = await removeIfStillStale(path, state.bytes, { probes, flockTimeoutMs: options.flockTimeoutMs });
      if (outcome.kind === 'removed') {
        finding.fixed = true;
        finding.message += '; removed';
        report.cleaned.push(worker);
      } else {
        finding.message += outcome.kind === 'changed' ? '; not removed: the lock changed meanwhile' : `; not removed: now ${outcome.judgement.state} (${outcome.judgement.reason})`;
      }
    }
  }

  for (const problem of scan.problems) {
    if (problem.kind === 'symlink') continue;
    report.findings.push({ kind: problem.kind, severity: 'problem', path: problem.path, message: problem.message });
  }
  const symlinks = scan.problems.filter((p) => p.kind === 'symlink');
  if (symlinks.length > 0) {
    const listed = symlinks.slice(0, options.maxListedSymlinks ?? 20).map((p) => p.path);
    const more = symlinks.length - listed.length;
    report.findings.push({
      kind: 'symlinks',
      severity: 'note',
      message: `${symlinks.length} symbolic links not followed (workers behind them are not scanned): ${listed.join(', ')}${more > 0 ? ` and ${more} more` : ''}`,
    });
  }
  return report;
}

/** Exit code for a report: 0 clean (or everything fixed), 1 a problem remains. */
export function doctorExitCode(report: DoctorReport): 0 | 1 {
  return report.findings.some((f) => f.severity === 'problem' && !f.fixed) ? 1 : 0;
}

function findingFor(worker: string, path: string, pid: unknown, judgement: LockJudgement): Finding | undefined {
  switch (judgement.state) {
    case 'live':
      return undefined;
    case 'stale':
      return { kind: 'stale', severity: 'problem', worker, path, message: `stale lock in ${worker}: ${judgement.reason}` };
    case 'orphaned':
      return { kind: 'orphaned', severity: 'problem', worker, path, message: `orphaned lock in ${worker}: ${judgement.reason}` };
    case 'unknown':
      return { kind: 'unknown', severity: 'problem', worker, path, message: `undecided lock in ${worker}, kept: ${judgement.reason}` };
    case 'foreign':
      return { kind: 'foreign', severity: 'note', worker, path, message: `lock in ${worker} held by PID ${String(pid)} on another host: ${judgement.reason}` };
  }
}

/**
 * gastown's DetectCollisions: stale, orphaned, undecided and foreign locks (and what kept the
 * scan or the probes from seeing everything), as findings with a message each. Changes nothing.
 * @example (await detectCollisions('/town')).map((f) => f.message)
 */
export async function detectCollisions(root: string, options: Omit<DoctorOptions, 'fix'> = {}): Promise<Finding[]> {
  return (await doctor(root, { ...options, fix: false })).findings;
}

/**
 * gastown's CleanStaleLocks: removes every lock under `root` whose PID is dead (or reused) and
 * whose session is not alive, each re-judged under its flock first; returns the worker dirs
 * cleaned and what was found.
 * @example const { cleaned } = await cleanStaleLocks('/town', { probes: defaultProbes({ tmuxSocket: 'gt' }) })
 */
export async function cleanStaleLocks(root: string, options: Omit<DoctorOptions, 'fix'> = {}): Promise<{ cleaned: string[]; findings: Finding[] }> {
  const report = await doctor(root, { ...options, fix: true });
  return { cleaned: report.cleaned, findings: report.findings };
}
