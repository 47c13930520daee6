/**
 * Verified replay of a big demo log against the floor of JSON.parse-ing its lines, with the
 * layers in between timed in the same rounds so the cost can be attributed:
 * reader (JSON + envelope schema) → + catalogue check → + machine steps → + verification.
 */
import { demoDefinition } from '../src/machines/demo.machine.js';
import { replayLog } from '../src/runner/replay.js';
import { createRecordChecker } from '../src/store/catalogue.js';
import { LogReader, readLog } from '../src/store/logReader.js';
import { demoLog, describeDemoLog, parseFloor } from './demoLog.js';
import { fmtMs, fmtPct, fmtRate, interleave, median, medianRate, printTable, ratioSpread, verdict, type Bench, type Result } from './stats.js';

const REPS = 7;
const WARMUP = 1;
const TARGET_EVENTS_PER_S = 30_000;

export const replayBench: Bench = {
  name: 'replay',
  title: 'replayLog(verify) vs JSON.parse of the same lines',
  async run() {
    const log = await demoLog();
    console.log(describeDemoLog(log));
    const definitions = new Map([[demoDefinition.name, demoDefinition]]);
    const expect = (what: string, n: number) => {
      if (n !== log.records) throw new Error(`replay bench: ${what} saw ${n} records, the log has ${log.records}`);
    };
    const samples = await interleave(
      [
        { label: 'floor: JSON.parse', fn: () => expect('floor', parseFloor(log.path)) },
        { label: 'readLog (JSON + envelope schema)', fn: () => expect('readLog', readLog(log.path).records.length) },
        {
          label: 'LogReader + catalogue check',
          fn: () => {
            let n = 0;
            for (const _ of new LogReader(log.path, { check: createRecordChecker(definitions) })) n++;
            expect('LogReader', n);
          },
        },
        { label: 'replayLog verify:false', fn: () => expect('replay', replayLog(log.path, [demoDefinition]).records) },
        { label: 'replayLog verify:true', fn: () => expect('replay', replayLog(log.path, [demoDefinition], { verify: true }).records) },
      ],
      REPS,
      WARMUP,
    );
    const floor = samples[0]!;
    const floorRate = medianRate(floor.seconds, log.records);
    const rows = samples.map((s, i) => {
      const rate = medianRate(s.seconds, log.records);
      const [lo, hi] = ratioSpread(s.seconds, floor.seconds);
      const isTarget = i === samples.length - 1;
      return [
        s.label,
        fmtMs(median(s.seconds)),
        fmtRate(rate),
        fmtPct(rate / floorRate),
        i === 0 ? '-' : `${fmtPct(lo)}–${fmtPct(hi)}`,
        fmtRate((median(s.seconds) * 1e9) / log.records / 1000),
        isTarget ? `>= ${fmtRate(TARGET_EVENTS_PER_S)}/s` : '-',
        isTarget ? verdict(rate >= TARGET_EVENTS_PER_S) : '',
      ];
    });
    printTable(
      `replay: ${log.records.toLocaleString('en-US')} records, median of ${REPS}`,
      ['case', 'ms', 'events/s', 'ratio', 'ratio range', 'µs/event', 'target', 'verdict'],
      rows,
    );
    const results: Result[] = samples.slice(1).map((s, i) => {
      const measured = medianRate(s.seconds, log.records);
      const isTarget = i === samples.length - 2;
      return {
        bench: 'replay',
        case: s.label,
        unit: 'events/s',
        floor: floorRate,
        measured,
        ratio: measured / floorRate,
        ...(isTarget ? { target: `>= ${fmtRate(TARGET_EVENTS_PER_S)} events/s`, pass: measured >= TARGET_EVENTS_PER_S } : {}),
      };
    });
    return results;
  },
};
