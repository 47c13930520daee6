/**
 * Workloads to run under `node --cpu-prof`, and a reader for the profiles they leave.
 * Not part of `npm run bench`; used to find where the time goes when a target is missed.
 *
 *   node dist-bench/bench/profile.js make-log /tmp/w/events.jsonl
 *   node --cpu-prof --cpu-prof-dir=/tmp/w/prof dist-bench/bench/profile.js replay /tmp/w/events.jsonl 10
 *   node --cpu-prof --cpu-prof-dir=/tmp/w/prof dist-bench/bench/profile.js append 10
 *   node dist-bench/bench/profile.js top /tmp/w/prof/CPU.*.cpuprofile 25
 *   node --cpu-prof --cpu-prof-dir=/tmp/w/prof dist-bench/bench/profile.js transition /tmp/w/events.jsonl 10
 *   node --expose-gc dist-bench/bench/profile.js breakdown /tmp/w/events.jsonl   # replay's layers, timed apart
 *   node --expose-gc dist-bench/bench/profile.js append-breakdown                 # append's parts, timed apart
 */
import { closeSync, constants, copyFileSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeRecords } from './append.bench.js';
import { demoLog, removeDemoLog } from './demoLog.js';
import { demoDefinition } from '../src/machines/demo.machine.js';
import { replayLog } from '../src/runner/replay.js';
import { LogWriter, type FsyncMode } from '../src/store/logWriter.js';
import { LogReader, parseRecord, readLog } from '../src/store/logReader.js';
import { Replayer, machineEventOf } from '../src/runner/replayer.js';
import { snapshotHash } from '../src/runner/step.js';
import { createActor, initialTransition, transition, type AnyActorScope, type AnyMachineSnapshot, type AnyStateMachine } from 'xstate';
import { median, timeOnce } from './stats.js';
import { actorsProjection, fold } from '../src/store/projections.js';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Self time per function and per origin (package or project folder), in descending order. */
function top(file: string, count: number): void {
  const profile = JSON.parse(readFileSync(file, 'utf8')) as CpuProfile;
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  profile.samples.forEach((id, i) => selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
  const perFunction = new Map<string, number>();
  const perOrigin = new Map<string, number>();
  for (const [id, us] of selfUs) {
    const { functionName, url, lineNumber } = byId.get(id)!.callFrame;
    const where = url.replace(/^file:\/\//, '').replace(/^.*\/(node_modules\/|dist-bench\/)/, '$1');
    const key = `${functionName || '(anonymous)'}  ${where ? `${where}:${lineNumber + 1}` : ''}`;
    perFunction.set(key, (perFunction.get(key) ?? 0) + us);
    const origin = where.startsWith('node_modules/')
      ? where.split('/').slice(0, 2).join('/')
      : where.startsWith('dist-bench/')
        ? where.split('/').slice(0, 3).join('/')
        : where.startsWith('node:')
          ? 'node: (builtins)'
          : functionName.startsWith('(') ? functionName : '(native / V8)';
    perOrigin.set(origin, (perOrigin.get(origin) ?? 0) + us);
  }
  const print = (title: string, map: Map<string, number>, n: number) => {
    console.log(`\n${title}`);
    for (const [key, us] of [...map].sort((a, b) => b[1] - a[1]).slice(0, n)) {
      console.log(`${((us / total) * 100).toFixed(1).padStart(5)}%  ${(us / 1000).toFixed(0).padStart(6)} ms  ${key}`);
    }
  };
  // Inclusive time of the project's own functions (a function counted once per stack, so recursion is not double counted).
  const inclusive = new Map<string, number>();
  const keyOf = (node: ProfileNode) => {
    const { functionName, url, lineNumber } = node.callFrame;
    return url.includes('/dist-bench/src/') ? `${functionName || '(anonymous)'}  ${url.replace(/^.*\/dist-bench\//, '')}:${lineNumber + 1}` : undefined;
  };
  const childIds = new Set(profile.nodes.flatMap((n) => n.children ?? []));
  const walk = (node: ProfileNode, stack: readonly string[]): number => {
    const key = keyOf(node);
    const here = key !== undefined && !stack.includes(key) ? [...stack, key] : stack;
    let sum = selfUs.get(node.id) ?? 0;
    for (const child of node.children ?? []) sum += walk(byId.get(child)!, here);
    if (key !== undefined && !stack.includes(key)) inclusive.set(key, (inclusive.get(key) ?? 0) + sum);
    return sum;
  };
  for (const root of profile.nodes.filter((n) => !childIds.has(n.id))) walk(root, []);
  console.log(`${file}: ${(total / 1e6).toFixed(2)} s sampled`);
  print('self time by origin', perOrigin, 15);
  print(`top ${count} functions by self time`, perFunction, count);
  print('project functions by inclusive time (GC not included: V8 books it apart)', inclusive, count);
}

/** Steps the log's inputs through the demo machine with xstate's pure functions and nothing else. */
function stepsOnly(records: ReturnType<typeof readLog>['records']) {
  const machine: AnyStateMachine = demoDefinition.machine;
  return (hash: boolean) => () => {
    const snapshots = new Map<string, AnyMachineSnapshot>();
    for (const r of records) {
      if (r.state === undefined) continue;
      const next =
        r.type === 'actor.started'
          ? initialTransition(machine, (r.data as { input: unknown }).input)[0]
          : transition(machine, snapshots.get(r.actor)!, machineEventOf(r))[0];
      if (hash) snapshotHash(next);
      snapshots.set(r.actor, next);
    }
  };
}

/**
 * An experiment, not a proposal of code: xstate's transition() builds a new inert actor scope per
 * call (createActor, which computes the machine's initial snapshot, plus two systems). This steps
 * with one scope made once, calling machine.transition(snapshot, event, scope) directly, and checks
 * it gives the same state, hash and actions as the records say.
 */
function stepsReusedScope(records: ReturnType<typeof readLog>['records']) {
  const machine: AnyStateMachine = demoDefinition.machine;
  let actions: { type: string; params?: unknown }[] = [];
  const self = createActor(machine);
  const scope = {
    self,
    defer: () => {},
    id: '',
    logger: () => {},
    sessionId: '',
    stopChild: () => {},
    system: self.system,
    emit: () => {},
    actionExecutor: (action: { type: string; params?: unknown }) => void actions.push(action),
  } as unknown as AnyActorScope;
  return (check: boolean) => () => {
    const snapshots = new Map<string, AnyMachineSnapshot>();
    for (const r of records) {
      if (r.state === undefined) continue;
      actions = [];
      const next: AnyMachineSnapshot =
        r.type === 'actor.started'
          ? machine.getInitialSnapshot(scope, (r.data as { input: unknown }).input)
          : machine.transition(snapshots.get(r.actor)!, machineEventOf(r), scope);
      if (check) {
        if (snapshotHash(next) !== r.hash) throw new Error(`reused scope: hash differs at seq ${r.seq}`);
        const kinds = actions.filter((a) => a.type !== 'xstate.raise' || typeof (a.params as { delay?: unknown })?.delay === 'number').length;
        if (kinds !== r.effects!.length) throw new Error(`reused scope: ${kinds} actions, record has ${r.effects!.length} effects at seq ${r.seq}`);
      }
      snapshots.set(r.actor, next);
    }
  };
}

async function main(): Promise<void> {
  const [command, arg, more] = process.argv.slice(2);
  switch (command) {
    case 'make-log': {
      const log = await demoLog();
      copyFileSync(log.path, arg!);
      removeDemoLog();
      console.log(`${arg}: ${log.records} records`);
      return;
    }
    case 'replay': {
      const reps = Number(more ?? 10);
      for (let i = 0; i < reps; i++) replayLog(arg!, [demoDefinition], { verify: true });
      return;
    }
    case 'projection': {
      const reps = Number(more ?? 20);
      for (let i = 0; i < reps; i++) fold(new LogReader(arg!), actorsProjection);
      return;
    }
    case 'append': {
      const reps = Number(arg ?? 10);
      const mode = (more ?? 'never') as FsyncMode;
      const records = makeRecords(20_000);
      const dir = mkdtempSync(join(tmpdir(), 'warden-profile-append-'));
      try {
        for (let i = 0; i < reps; i++) {
          const writer = LogWriter.open(join(dir, `log-${i}.jsonl`), { fsync: mode });
          for (const r of records) writer.append(r);
          writer.close();
          rmSync(join(dir, `log-${i}.jsonl`));
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      return;
    }
    case 'breakdown': {
      // The layers of a verified replay, each on records already in memory except the first.
      const { records } = readLog(arg!);
      const definitions = new Map([[demoDefinition.name, demoDefinition]]);
      const steps = stepsOnly(records);
      const reused = stepsReusedScope(records);
      reused(true)(); // same states, hashes and action counts as the log, or it throws
      const cases: [string, () => unknown][] = [
        ['readLog: file -> validated records', () => readLog(arg!)],
        ['JSON.parse floor (file)', () => readFileSync(arg!, 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as unknown)],
        ['xstate transition() only, in memory', steps(false)],
        ['transition() + snapshotHash', steps(true)],
        ['experiment: one reused actor scope', reused(false)],
        ['Replayer verify:false, in memory', () => { const r = new Replayer(definitions); for (const x of records) r.apply(x); }],
        ['Replayer verify:true, in memory', () => { const r = new Replayer(definitions, { verify: true }); for (const x of records) r.apply(x); }],
        ['replayLog verify:true (file)', () => replayLog(arg!, [demoDefinition], { verify: true })],
      ];
      for (const [, fn] of cases) await fn();
      for (const [label, fn] of cases) {
        const seconds: number[] = [];
        for (let i = 0; i < 7; i++) seconds.push(await timeOnce(fn));
        const s = median(seconds);
        console.log(`${label.padEnd(40)} ${(s * 1000).toFixed(0).padStart(6)} ms ${((s * 1e6) / records.length).toFixed(1).padStart(6)} µs/record ${Math.round(records.length / s).toLocaleString('en-US').padStart(9)}/s`);
      }
      return;
    }
    case 'transition': {
      // xstate's transition() alone over the log's inputs, records already in memory.
      const steps = stepsOnly(readLog(arg!).records);
      for (let i = 0; i < Number(more ?? 10); i++) steps(false)();
      return;
    }
    case 'append-breakdown': {
      // LogWriter.append('never') is serialise + read-back parseRecord + Buffer.from + writeSync:
      // each part alone, and the parts combined with the write, per record.
      const records = makeRecords(20_000);
      const lines = records.map((r, i) => JSON.stringify({ seq: i + 1, ...r }));
      const dir = mkdtempSync(join(tmpdir(), 'warden-profile-append-'));
      const withFd = (body: (fd: number) => void) => () => {
        const path = join(dir, 'f.jsonl');
        const fd = openSync(path, constants.O_RDWR | constants.O_CREAT | constants.O_APPEND, 0o600);
        try {
          body(fd);
        } finally {
          closeSync(fd);
          rmSync(path);
        }
      };
      const cases: [string, () => unknown][] = [
        ['floor: writeSync(prebuilt line)', withFd((fd) => { for (const l of lines) writeSync(fd, `${l}\n`); })],
        ['JSON.stringify record, no write', () => { for (const r of records) JSON.stringify({ seq: 1, ...r }); }],
        ['JSON.parse line, no write', () => { for (const l of lines) JSON.parse(l); }],
        ['parseRecord line (JSON+zod), no write', () => { for (const l of lines) parseRecord(l); }],
        ['Buffer.from line, no write', () => { for (const l of lines) Buffer.from(`${l}\n`); }],
        ['stringify + writeSync(string)', withFd((fd) => { for (const r of records) writeSync(fd, `${JSON.stringify({ seq: 1, ...r })}\n`); })],
        ['stringify + Buffer.from + writeSync', withFd((fd) => { for (const r of records) writeSync(fd, Buffer.from(`${JSON.stringify({ seq: 1, ...r })}\n`)); })],
        ['parseRecord + writeSync(prebuilt)', withFd((fd) => { for (const l of lines) { parseRecord(l); writeSync(fd, `${l}\n`); } })],
        ['LogWriter.append, fsync never', () => {
          const path = join(dir, 'w.jsonl');
          const writer = LogWriter.open(path, { fsync: 'never' });
          for (const r of records) writer.append(r);
          writer.close();
          rmSync(path);
        }],
      ];
      try {
        for (const [, fn] of cases) await fn();
        for (const [label, fn] of cases) {
          const seconds: number[] = [];
          for (let i = 0; i < 7; i++) seconds.push(await timeOnce(fn));
          console.log(`${label.padEnd(40)} ${((median(seconds) * 1e6) / records.length).toFixed(2).padStart(6)} µs/record`);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      return;
    }
    case 'top':
      top(arg!, Number(more ?? 25));
      return;
    default:
      console.error('usage: profile.js make-log <path> | breakdown <path> | append-breakdown | transition <path> [reps] | replay <path> [reps] | projection <path> [reps] | append [reps] [mode] | top <cpuprofile> [n]');
      process.exitCode = 2;
  }
}

await main();
