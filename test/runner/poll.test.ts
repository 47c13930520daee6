import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { pollDefinition, type PollContext } from '../../src/machines/poll.machine.js';
import { queueDefinition, type QueueContext } from '../../src/machines/queue.machine.js';
import { replayLog } from '../../src/runner/replay.js';
import { Runner } from '../../src/runner/runner.js';
import { meterEffects, pollConfigure } from '../../src/runner/scheduler.js';
import type { LogRecord } from '../../src/store/record.js';
import { simulatedClock } from '../helpers/demo.js';
import { exited, processesWithEnv } from '../helpers/processes.js';
import { useTempDirs } from '../helpers/tempDir.js';

const tempDir = useTempDirs();
const HANG = join(import.meta.dirname, '../fixtures/meter/hang.mjs');

type Reply = { status: number; body?: string } | 'hang';

/**
 * The meter effect arms its timeout on the real clock (the runner's simulated clock does not reach
 * it), so every poll races it in real time: a quick answer must come in before it, and a command
 * must have started all it starts before it. On a loaded 2-core machine either can take far
 * longer than a few hundred ms, so every rig uses this one generous timeout; only a 'hang' waits it
 * out, and its outcome does not depend on speed.
 */
const METER_TIMEOUT_MS = 2_000;
/** The same for a command meter, which must also start a process (node, under load) in time. */
const COMMAND_TIMEOUT_MS = 5_000;

/** A meter on 127.0.0.1 answering from a script, one reply per request; counts requests in flight. */
class ScriptedMeter {
  private server: Server;
  private script: Reply[] = [];
  private open = new Set<ServerResponse>();
  inFlight = 0;
  mostInFlight = 0;
  requests = 0;
  headers: IncomingMessage['headers'][] = [];
  private closedWaiters: Array<() => void> = [];
  constructor() {
    this.server = createServer((request, response) => {
      this.requests++;
      this.headers.push(request.headers);
      this.inFlight++;
      this.mostInFlight = Math.max(this.mostInFlight, this.inFlight);
      response.on('close', () => {
        this.inFlight--;
        this.open.delete(response);
        for (const waiter of this.closedWaiters.splice(0)) waiter();
      });
      const reply = this.script.shift() ?? { status: 500, body: 'script ran out' };
      if (reply === 'hang') {
        this.open.add(response);
        return;
      }
      response.writeHead(reply.status, { 'content-type': 'application/json' });
      response.end(reply.body ?? '');
    });
  }
  async start(): Promise<string> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/usage`;
  }
  then(...replies: Reply[]): this {
    this.script.push(...replies);
    return this;
  }
  /** Resolves once no request is in flight (the server saw the last connection close). */
  async idle(): Promise<void> {
    while (this.inFlight > 0) await new Promise<void>((resolve) => this.closedWaiters.push(resolve));
  }
  async stop(): Promise<void> {
    for (const response of this.open) response.destroy();
    this.server.closeAllConnections();
    await new Promise((resolve) => this.server.close(resolve));
  }
}

const ok = (utilization: number, resetsAt: string | number = '2026-11-23T12:00:00.000Z'): Reply => ({ status: 200, body: JSON.stringify({ utilization, resetsAt }) });
const status = (code: number): Reply => ({ status: code, body: '{"error":"x"}' });

let meter: ScriptedMeter | undefined;
afterEach(async () => {
  await meter?.stop();
  meter = undefined;
});

/** A runner with the poll and queue machines on a simulated clock, polling a real meter. */
async function pollRig(settings: Record<string, unknown> = {}, meterConfig?: Parameters<typeof meterEffects>[0]) {
  meter = new ScriptedMeter();
  const url = await meter.start();
  const log = join(tempDir(), 'events.jsonl');
  const clock = simulatedClock();
  const config = meterConfig ?? { url, headers: { authorization: 'Bearer s3cret' }, timeoutMs: METER_TIMEOUT_MS, ...settings };
  let runner: Runner | undefined;
  runner = Runner.open({ log, machines: [pollDefinition, queueDefinition], clock, effects: meterEffects(config as never, () => runner!) });
  runner.start('queue', 'queue', {});
  runner.start('poll', 'poll', {});
  const records: LogRecord[] = [];
  runner.subscribe((r) => records.push(r));
  const poll = () => runner!.snapshot('poll')!.context as PollContext;
  const queue = () => runner!.snapshot('queue')!.context as QueueContext;
  const settled = () => runner!.waitFor('poll', (s) => s.value !== 'polling');
  /** Starts polling; resolves when the first poll has settled. */
  const begin = async () => {
    runner!.send('poll', pollConfigure(config as never, new Date(clock.now()).toISOString()));
    await settled();
  };
  /** Moves the clock to the next poll; resolves when it has settled. */
  const next = async () => {
    expect(runner!.state('poll')).not.toBe('polling');
    await meter!.idle();
    clock.increment(poll().delayMs);
    expect(runner!.state('poll')).toBe('polling');
    await settled();
  };
  return { runner, clock, log, records, poll, queue, begin, next, meter: meter!, elapsedS: (since: number) => (clock.now() - since) / 1000 };
}

describe('the usage meter poll loop (a real HTTP meter, a simulated clock)', () => {
  it('backs off 30, 60, 120, 240, 480, 480 s on failures, and a success goes back to the interval', async () => {
    const rig = await pollRig();
    rig.meter.then(status(500), status(500), { status: 200, body: 'garbage' }, status(502), 'hang', status(500), ok(40));
    await rig.begin();
    const waits = [rig.poll().delayMs];
    for (let i = 0; i < 5; i++) {
      await rig.next();
      waits.push(rig.poll().delayMs);
    }
    expect(waits).toEqual([30_000, 60_000, 120_000, 240_000, 480_000, 480_000]);
    // The timers in the log say the same.
    const armed = rig.records.filter((r) => r.actor === 'poll' && r.type === 'poll.failed').map((r) => (r.effects ?? []).find((e) => e.type === 'timer.arm')?.params as { delayMs: number });
    expect(armed.map((a) => a.delayMs)).toEqual([30_000, 60_000, 120_000, 240_000, 480_000, 480_000]);
    const kinds = rig.records.filter((r) => r.type === 'poll.failed').map((r) => (r.data as { kind: string }).kind);
    expect(kinds).toEqual(['http', 'http', 'malformed', 'http', 'timeout', 'http']);
    await rig.next();
    expect(rig.poll()).toMatchObject({ failures: 0, delayMs: 60_000, lastOk: { utilization: 40 } });
    expect(rig.queue().usage).toMatchObject({ utilization: 40, resetsAt: '2026-11-23T12:00:00.000Z' });
    expect(rig.meter.mostInFlight).toBe(1);
    // The header went to the meter; its value never reached the log.
    expect(rig.meter.headers[0]?.authorization).toBe('Bearer s3cret');
    expect(readFileSync(rig.log, 'utf8')).not.toContain('s3cret');
    rig.runner.close();
    replayLog(rig.log, [pollDefinition, queueDefinition], { verify: true });
  });

  it('pauses the queue as network after 30 minutes of failures and not one poll earlier; a success clears it', async () => {
    const rig = await pollRig();
    rig.meter.then(...Array(8).fill(status(500)), ok(10));
    const start = rig.clock.now();
    await rig.begin();
    const failuresAt: number[] = [rig.elapsedS(start)];
    while (rig.queue().paused === null) {
      await rig.next();
      failuresAt.push(rig.elapsedS(start));
      expect(failuresAt.length).toBeLessThan(20);
    }
    expect(failuresAt).toEqual([0, 30, 90, 210, 450, 930, 1410, 1890]);
    expect(rig.queue().paused).toMatchObject({ reason: 'network' });
    expect(rig.runner.state('queue')).toBe('paused');
    await rig.next();
    expect(rig.queue().paused).toBeNull();
    expect(rig.runner.state('queue')).toBe('active');
    expect(rig.records.filter((r) => r.type === 'queue.clearPause')).toHaveLength(1);
    rig.runner.close();
  });

  it('429s never count toward the network pause (on429: transient, the default) and tell the queue nothing', async () => {
    const rig = await pollRig();
    rig.meter.then(...Array(10).fill(status(429)));
    const start = rig.clock.now();
    await rig.begin();
    for (let i = 0; i < 9; i++) await rig.next();
    expect(rig.elapsedS(start)).toBeGreaterThan(1800 * 1.5);
    expect(rig.poll()).toMatchObject({ failures: 10, streakSince: null, pausedAs: null });
    expect(rig.queue()).toMatchObject({ paused: null, usage: null });
    rig.runner.close();
  });

  it('on429: safe takes a meter 429 as utilization 0 (the seed rule, opt-in)', async () => {
    const rig = await pollRig({ on429: 'safe' });
    rig.meter.then(status(429));
    await rig.begin();
    expect(rig.queue().usage).toMatchObject({ utilization: 0 });
    expect(rig.poll()).toMatchObject({ failures: 0, delayMs: 60_000 });
    rig.runner.close();
  });

  it('401 pauses the queue as auth at once; the next success clears it', async () => {
    const rig = await pollRig();
    rig.meter.then(status(401), ok(20));
    await rig.begin();
    expect(rig.queue().paused).toMatchObject({ reason: 'auth', message: expect.stringContaining('HTTP 401') });
    await rig.next();
    expect(rig.queue().paused).toBeNull();
    rig.runner.close();
  });

  it('abandons a hanging meter at its timeout, and never has two polls in flight', async () => {
    const rig = await pollRig();
    rig.meter.then('hang', 'hang', ok(5, 1_764_000_000));
    await rig.begin();
    expect(rig.poll().lastPoll).toMatchObject({ ok: false, kind: 'timeout', reason: `no answer within ${METER_TIMEOUT_MS} ms` });
    await rig.next();
    await rig.next();
    expect(rig.queue().usage).toMatchObject({ utilization: 5, resetsAt: new Date(1_764_000_000 * 1000).toISOString() });
    expect(rig.meter.requests).toBe(3);
    expect(rig.meter.mostInFlight).toBe(1);
    rig.runner.close();
  });

  it('a command meter: its answer is read from stdout; one that hangs is killed at its timeout with all it started', async () => {
    const dir = tempDir();
    const pids = join(dir, 'pids.txt');
    const rig = await pollRig({}, { command: ['node', HANG, pids], timeoutMs: COMMAND_TIMEOUT_MS } as never);
    await rig.begin();
    expect(rig.poll().lastPoll).toMatchObject({ ok: false, kind: 'timeout' });
    const started = readFileSync(pids, 'utf8').trim().split('\n').map(Number);
    expect(started).toHaveLength(2); // the command and the setsid'd sleep it left
    // The poll reports at its timeout; the kill follows at once: wait for it.
    for (const pid of started) while (!exited(pid)) await new Promise((r) => setTimeout(r, 10));
    expect(processesWithEnv('MARK', pids)).toEqual([]);
    rig.runner.close();

    const answering = await pollRig({}, { command: ['node', '-e', 'console.log(JSON.stringify({utilization: 12.5, resetsAt: "2026-11-23T14:00:00Z"}))'], timeoutMs: COMMAND_TIMEOUT_MS } as never);
    await answering.begin();
    expect(answering.queue().usage).toMatchObject({ utilization: 12.5, resetsAt: '2026-11-23T14:00:00.000Z' });
    answering.runner.close();
    const failing = await pollRig({}, { command: ['sh', '-c', 'echo nope >&2; exit 3'], timeoutMs: COMMAND_TIMEOUT_MS } as never);
    await failing.begin();
    expect(failing.poll().lastPoll).toMatchObject({ ok: false, kind: 'command', status: 3, reason: 'the meter command exited 3: nope' });
    failing.runner.close();
  });
});
