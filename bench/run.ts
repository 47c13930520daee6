/**
 * Runs the benchmarks and prints a summary.
 *
 *   npm run bench                 # all of them
 *   npm run bench -- replay       # only those whose name contains one of the arguments
 */
import { cpus, totalmem } from 'node:os';
import { appendBench } from './append.bench.js';
import { removeDemoLog } from './demoLog.js';
import { doctorBench } from './doctor.bench.js';
import { jobBench } from './job.bench.js';
import { leaseBench } from './lease.bench.js';
import { projectionBench } from './projection.bench.js';
import { queueBench } from './queue.bench.js';
import { replayBench } from './replay.bench.js';
import { fmtPct, fmtRate, printTable, verdict, type Bench, type Result } from './stats.js';

const benches: readonly Bench[] = [appendBench, replayBench, projectionBench, leaseBench, doctorBench, jobBench, queueBench];

async function main(): Promise<number> {
  const filters = process.argv.slice(2).map((a) => a.toLowerCase());
  const selected = filters.length === 0 ? benches : benches.filter((b) => filters.some((f) => b.name.includes(f)));
  if (selected.length === 0) {
    console.error(`no benchmark matches ${filters.join(', ')}; there are: ${benches.map((b) => b.name).join(', ')}`);
    return 2;
  }
  const cpu = cpus();
  console.log('Warden benchmarks');
  console.log(`  date:    ${new Date().toISOString()}`);
  console.log(`  node:    ${process.version} (${process.platform} ${process.arch})`);
  console.log(`  cpu:     ${cpu[0]?.model ?? 'unknown'} x ${cpu.length}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB`);
  console.log(`  gc:      ${typeof (globalThis as { gc?: unknown }).gc === 'function' ? 'forced before each sample (--expose-gc)' : 'not forced'}`);
  console.log('  every figure is a median; floor and measured run interleaved in the same rounds');

  const started = process.hrtime.bigint();
  const results: Result[] = [];
  try {
    for (const bench of selected) {
      console.log(`\n== ${bench.name}: ${bench.title}`);
      const t = process.hrtime.bigint();
      results.push(...(await bench.run()));
      console.log(`  (${(Number(process.hrtime.bigint() - t) / 1e9).toFixed(1)} s)`);
    }
  } finally {
    removeDemoLog();
  }

  printTable(
    'summary (medians)',
    ['bench', 'case', 'floor', 'measured', 'unit', 'ratio', 'target', 'verdict'],
    results.map((r) => [r.bench, r.case, fmtRate(r.floor), fmtRate(r.measured), r.unit, fmtPct(r.ratio), r.target ?? '-', verdict(r.pass)]),
  );
  console.log(`\ntotal ${(Number(process.hrtime.bigint() - started) / 1e9).toFixed(1)} s`);
  return 0;
}

process.exitCode = await main();
