#!/usr/bin/env node
// Writes the golden logs under test/fixtures/logs/ and the example log under examples/.
// They are part of the log format: re-run this (after `npm run build`) only for a deliberate
// format change, and say so in the commit. Clocks are simulated so the dates are fixed.
import { appendFileSync, copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromCallback, fromPromise } from 'xstate';
import { Runner, SimulatedClock, demoDefinition } from '../dist/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const logs = join(root, 'test/fixtures/logs');
const input = { maxAttempts: 3, replyTimeoutMs: 1000, retryDelayMs: 500 };
const start = Date.parse('2026-11-23T09:00:00.000Z');

function clockAt(ms) {
  const clock = new SimulatedClock();
  clock.set(ms);
  return clock;
}

/** A peer that answers pings from attempt `answerFrom` on. */
function peer(answerFrom) {
  return {
    sendPing: fromCallback(({ input: effect }) => {
      if (effect.params.attempt >= answerFrom) effect.send({ type: 'demo.pong', attempt: effect.params.attempt });
    }),
    report: fromPromise(async () => {}),
  };
}

function fresh(name) {
  const path = join(logs, name);
  rmSync(path, { force: true });
  rmSync(`${path}.mark`, { force: true });
  return path;
}

/** The fixtures are the logs alone: their commit marks (events.jsonl.mark) are not kept. */
function dropMarks() {
  for (const name of ['demo-answered.jsonl', 'demo-gave-up.jsonl', 'demo-resumed.jsonl']) rmSync(join(logs, `${name}.mark`), { force: true });
}

function answered() {
  const log = fresh('demo-answered.jsonl');
  const clock = clockAt(start);
  const runner = Runner.open({ log, machines: [demoDefinition], effects: peer(2), clock, runId: 'golden-answered', epoch: 1 });
  runner.start('demo', 'demo', input);
  runner.send('demo', { type: 'demo.start' });
  clock.increment(1000);
  clock.increment(500);
  runner.close('done');
}

function gaveUp() {
  const log = fresh('demo-gave-up.jsonl');
  const clock = clockAt(start);
  const runner = Runner.open({ log, machines: [demoDefinition], effects: peer(Infinity), clock, runId: 'golden-gave-up', epoch: 1 });
  runner.start('demo', 'demo', input);
  runner.send('demo', { type: 'demo.start' });
  for (let i = 0; i < 5; i++) clock.increment(1000);
  runner.close('done');
}

/** The first life of the resumed log: arm a timer, then die without closing. */
function crashingRun(log) {
  const clock = clockAt(start);
  const runner = Runner.open({ log, machines: [demoDefinition], effects: peer(2), clock, runId: 'golden-crashed', epoch: 1 });
  runner.start('demo', 'demo', input);
  runner.send('demo', { type: 'demo.start' });
  process.kill(process.pid, 'SIGKILL');
}

function resumed() {
  const log = fresh('demo-resumed.jsonl');
  spawnSync(process.execPath, [fileURLToPath(import.meta.url), '--crashing-run', log], { stdio: 'inherit' });
  // Half a record, as a write cut off by the crash would leave it.
  appendFileSync(log, '{"seq":4,"ts":"2026-11-23T09:00:00.4');
  // The next life starts a minute later: the reply timer is overdue and fires at once.
  const clock = clockAt(start + 60_000);
  const runner = Runner.open({ log, machines: [demoDefinition], effects: peer(2), clock, runId: 'golden-resumed', epoch: 2 });
  clock.increment(0);
  clock.increment(500);
  runner.close('done');
  mkdirSync(join(root, 'examples'), { recursive: true });
  copyFileSync(log, join(root, 'examples/demo-events.jsonl'));
}

if (process.argv[2] === '--crashing-run') {
  crashingRun(process.argv[3]);
} else {
  mkdirSync(logs, { recursive: true });
  answered();
  gaveUp();
  resumed();
  dropMarks();
  console.log('wrote test/fixtures/logs/demo-{answered,gave-up,resumed}.jsonl and examples/demo-events.jsonl');
}
