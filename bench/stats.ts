/**
 * Small helpers shared by the benchmarks: timing, medians, paired floor/measured runs and
 * plain-text tables. No dependencies beyond node.
 */

/** One benchmark file: a name for the argv filter, and a run that prints its tables and returns its results. */
export interface Bench {
  name: string;
  title: string;
  run(): Promise<Result[]>;
}

/** One line of the final summary: a measured case next to its floor, with the target it is judged against. */
export interface Result {
  bench: string;
  case: string;
  unit: string;
  floor: number;
  measured: number;
  /** measured / floor (both are throughputs, higher is better). */
  ratio: number;
  /** What the case must reach, in words; undefined for informative rows. */
  target?: string;
  pass?: boolean;
}

export function median(values: readonly number[]): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
}

export function min(values: readonly number[]): number {
  return Math.min(...values);
}

export function max(values: readonly number[]): number {
  return Math.max(...values);
}

const gc = (globalThis as { gc?: () => void }).gc;

/** Seconds taken by one call of `fn` (after a GC when node runs with --expose-gc). */
export async function timeOnce(fn: () => unknown): Promise<number> {
  gc?.();
  const start = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - start) / 1e9;
}

/** A function timed in a group; `work` is how many units (records, bytes) one call handles. */
export interface Contender {
  label: string;
  fn: () => unknown;
}

export interface Samples {
  label: string;
  /** Seconds per call, one per repetition. */
  seconds: number[];
}

/**
 * Times a floor and the functions measured against it, interleaved: every repetition runs each
 * of them once, in an order rotated per repetition, so a noisy neighbour hurts all of them alike.
 * `warmup` untimed rounds come first.
 */
export async function interleave(contenders: readonly Contender[], reps: number, warmup: number): Promise<Samples[]> {
  for (let w = 0; w < warmup; w++) for (const c of contenders) await c.fn();
  const samples = contenders.map((c) => ({ label: c.label, seconds: [] as number[] }));
  for (let r = 0; r < reps; r++) {
    for (let k = 0; k < contenders.length; k++) {
      const i = (k + r) % contenders.length;
      samples[i]!.seconds.push(await timeOnce(contenders[i]!.fn));
    }
  }
  return samples;
}

/** Median throughput (units per second) of a set of timings of `units` each. */
export function medianRate(seconds: readonly number[], units: number): number {
  return median(seconds.map((s) => units / s));
}

/** The ratio of each repetition's pair (measured rate / floor rate of the same round): min and max. */
export function ratioSpread(measured: readonly number[], floor: readonly number[]): [number, number] {
  const ratios = measured.map((s, i) => floor[i]! / s);
  return [min(ratios), max(ratios)];
}

export function fmtRate(perSecond: number): string {
  if (!Number.isFinite(perSecond)) return String(perSecond);
  if (perSecond >= 100) return Math.round(perSecond).toLocaleString('en-US');
  return perSecond.toFixed(1);
}

export function fmtMB(bytesPerSecond: number): string {
  return (bytesPerSecond / 1e6).toFixed(1);
}

export function fmtPct(ratio: number): string {
  if (ratio < 0.01) return `${(ratio * 100).toFixed(2)}%`;
  return `${(ratio * 100).toFixed(1)}%`;
}

export function fmtMs(seconds: number): string {
  return (seconds * 1000).toFixed(1);
}

export function verdict(pass: boolean | undefined): string {
  if (pass === undefined) return 'info';
  return pass ? 'PASS' : 'BELOW';
}

/** Prints rows as an aligned table; numbers-looking cells are right-aligned. */
export function printTable(title: string, header: readonly string[], rows: readonly (readonly string[])[]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const numeric = header.map((_, i) => rows.length > 0 && rows.every((r) => /^[-\d.,%–\s]+$|^$/.test(r[i] ?? '')));
  const line = (cells: readonly string[], isHeader: boolean) =>
    cells
      .map((c, i) => (numeric[i] && !isHeader ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  console.log(`\n${title}`);
  console.log(line(header, true));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row, false));
}
