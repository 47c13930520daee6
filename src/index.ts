/**
 * Warden's public API: the runner that drives machines through the write-ahead event log,
 * replay with verification, the log reader and writer, and the machines Warden ships.
 */
export { Runner, type RunnerOptions, type EffectHandlers, type EffectInput, type InputEvent } from './runner/runner.js';
export { replayLog, type ReplayOptions, type ReplayResult } from './runner/replay.js';
export { Replayer, machineEventOf, type ActorState } from './runner/replayer.js';
export type { PendingTimer } from './runner/timerBook.js';
export { systemClock, type Clock } from './effects/clock.js';
export { acquireLease, type AcquireLeaseOptions, type LeaseHandle, type LeaseState } from './runner/leaseSession.js';
export { LeaseOps, DEFAULT_LEASE_TIMINGS, type LeaseTimings, type LeaseStatus, type AcquireOutcome } from './effects/leaseOps.js';
export { leaseLockSchema, type LeaseLock } from './effects/leaseFile.js';
export { judgeOwner, currentIdentity, type ProcessIdentity, type OwnerLiveness } from './effects/processIdentity.js';
export {
  acquireWorkerLock,
  releaseWorkerLock,
  forceReleaseWorkerLock,
  checkWorkerLock,
  workerLockStatus,
  readWorkerLock,
  judgeLock,
  ownerOf,
  lockPathOf,
  parseWorkerLock,
  inspectLockFile,
  type WorkerLockInfo,
  type LockOwner,
  type LockState,
  type LockJudgement,
  type AcquireResult,
  type CheckResult,
  type WorkerLockStatus,
  type WorkerLockOptions,
} from './effects/workerLock.js';
export { findAllLocks, DEFAULT_SKIP_DIRS, type ScanResult, type FoundLock, type ScanProblem, type ScanOptions } from './effects/lockScan.js';
export { doctor, doctorExitCode, detectCollisions, cleanStaleLocks, type DoctorReport, type DoctorLock, type Finding, type DoctorOptions } from './effects/doctor.js';
export {
  tmuxProbe,
  wardenJobProbe,
  defaultProbes,
  takeSnapshots,
  sessionVerdict,
  WARDEN_JOB_SESSION_PREFIX,
  type SessionProbe,
  type SessionSnapshot,
  type SessionVerdict,
} from './effects/sessionProbes.js';
export { withFlock } from './effects/flock.js';
export { runJob, type RunJobOptions, type JobRun } from './runner/jobSession.js';
export { jobEffects, type JobEffectsOptions } from './effects/jobProcess.js';
export { jobEnvironment, DEFAULT_ENV_DENY, DEFAULT_ENV_ALLOW, type JobEnvOptions } from './effects/jobEnv.js';
export { LineScanner, type RateLimitPattern, type RateLimitSignal } from './effects/agentOutput.js';
export { jobProcesses, signalJobProcesses, killJobRemains } from './effects/processTree.js';
export { SimulatedClock } from 'xstate';

export { LogWriter, type FsyncMode, type LogWriterOptions, type TornTail } from './store/logWriter.js';
export { LogReader, readLog, type ReadOptions } from './store/logReader.js';
export { followLog } from './store/logFollow.js';
export { createRecordChecker, type Catalogue, type MachineSchemas, type EventSchemas } from './store/catalogue.js';
export { renderEventCatalogue } from './store/eventCatalogue.js';
export { recordSchema, type LogRecord, type Effect, type StateValue } from './store/record.js';
export { fold, actorsProjection, runsProjection, type Projection, type ActorView, type RunView } from './store/projections.js';

export { defineMachine, type MachineDefinition } from './machines/definition.js';
export { builtInMachines } from './machines/catalogue.js';
export { demoMachine, demoDefinition } from './machines/demo.machine.js';
export { leaseMachine, leaseDefinition } from './machines/lease.machine.js';
export { jobMachine, jobDefinition, verdict, metaOf, type JobMeta, type JobOutcome, type JobContext } from './machines/job.machine.js';
export { DEFAULT_JOB_TIMEOUTS, type JobInput, type JobTimeouts, type JobResult, type KilledBy } from './store/events/job.events.js';
export { runScheduler, QUEUE_ACTOR, type SchedulerOptions, type SchedulerResult, type SchedulerView } from './runner/scheduler.js';
export { queueStatus, type QueueStatus, type JobStatus } from './runner/queueStatus.js';
export { queueMachine, queueDefinition, pickBatch, reconcile, isDrained, type QueueContext, type QueueJob, type QueueJobStatus, type QueuePause } from './machines/queue.machine.js';
export { type JobSpec, type PauseReason } from './store/events/queue.events.js';
export { scanJobs, type ScanResult as JobScanResult } from './effects/queueEffects.js';
export { serveControl, sendControl, controlSocketPath, type ControlRequest, type ControlReply, type ControlServer } from './effects/controlSocket.js';
export { parseJobFile, readJobsDir, SLUG_PATTERN, type JobFile, type JobFrontmatter } from './store/jobFile.js';
export { loadConfig, concurrencyCapOf } from './store/configFile.js';
export { configSchema, DEFAULT_AGENT_COMMAND, CONFIG_DEFAULTS, type WardenConfig } from './store/config.js';

export {
  WardenError,
  LogFormatError,
  NonDeterminismError,
  UsageError,
  MachineContractError,
  RecordTooLargeError,
  LogBusyError,
  LockPathError,
  LeaseFormatError,
  LeaseHeldError,
  LeaseLostError,
  LockHeldError,
  LockFormatError,
  FlockTimeoutError,
  ControlPathError,
  ControlReplyError,
  ToolError,
} from './errors.js';
