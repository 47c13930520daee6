/**
 * Projection throughput: fold(new LogReader(path), projection) — reader validation included —
 * against the floor of JSON.parse-ing the same lines.
 */
import { LogReader } from '../src/store/logReader.js';
import { actorsProjection, fold, runsProjection } from '../src/store/projections.js';
import { demoLog, describeDemoLog, parseFloor } from './demoLog.js';
import { fmtMs, fmtPct, fmtRate, interleave, median, medianRate, printTable, ratioSpread, verdict, type Bench, type Result } from './stats.js';

const REPS = 7;
const WARMUP = 1;
const TARGET_RATIO = 0.5;

export const projectionBench: Bench = {
  name: 'projection',
  title: 'fold(LogReader, projection) vs JSON.parse of the same lines',
  async run() {
    const log = await demoLog();
    console.log(describeDemoLog(log));
    const samples = await interleave(
      [
        { label: 'floor: JSON.parse', fn: () => parseFloor(log.path) },
        {
          label: 'fold actorsProjection',
          fn: () => {
            const actors = fold(new LogReader(log.path), actorsProjection);
            if (actors.size !== log.actors) throw new Error(`projection bench: ${actors.size} actors, expected ${log.actors}`);
          },
        },
        {
          label: 'fold runsProjection',
          fn: () => {
            const runs = fold(new LogReader(log.path), runsProjection);
            if (runs.length !== log.runs) throw new Error(`projection bench: ${runs.length} runs, expected ${log.runs}`);
          },
        },
      ],
      REPS,
      WARMUP,
    );
    const floor = samples[0]!;
    const floorRate = medianRate(floor.seconds, log.records);
    const results: Result[] = [];
    const rows = samples.map((s, i) => {
      const rate = medianRate(s.seconds, log.records);
      const ratio = rate / floorRate;
      const [lo, hi] = ratioSpread(s.seconds, floor.seconds);
      if (i > 0) {
        results.push({
          bench: 'projection',
          case: s.label,
          unit: 'records/s',
          floor: floorRate,
          measured: rate,
          ratio,
          target: `>= ${fmtPct(TARGET_RATIO)} of floor`,
          pass: ratio >= TARGET_RATIO,
        });
      }
      return [
        s.label,
        fmtMs(median(s.seconds)),
        fmtRate(rate),
        fmtPct(ratio),
        i === 0 ? '-' : `${fmtPct(lo)}–${fmtPct(hi)}`,
        i === 0 ? '-' : `>= ${fmtPct(TARGET_RATIO)}`,
        i === 0 ? '' : verdict(ratio >= TARGET_RATIO),
      ];
    });
    printTable(
      `projection: ${log.records.toLocaleString('en-US')} records, median of ${REPS}`,
      ['case', 'ms', 'records/s', 'ratio', 'ratio range', 'target', 'verdict'],
      rows,
    );
    return results;
  },
};
