import { createHash } from 'node:crypto';
import { configure } from 'safe-stable-stringify';

// safe-stable-stringify: JSON.stringify's output with keys sorted at every depth, and fast;
// a circular value is a bug in a machine's context, so it throws rather than printing "[Circular]".
const stringify = configure({ deterministic: true, circularValue: Error });

/**
 * JSON with object keys sorted at every depth, so equal values always give equal text.
 * `undefined` and functions are dropped as JSON.stringify drops them.
 */
export function stableStringify(value: unknown): string {
  return stringify(value) ?? 'null';
}

/** A short content hash (sha256, 16 hex digits) of the stable JSON of `value`. */
export function stableHash(value: unknown): string {
  return createHash('sha256').update(stableStringify(value)).digest('hex').slice(0, 16);
}
