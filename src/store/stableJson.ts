import * as crypto from 'node:crypto';
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

// crypto.hash (Node >= 20.12) hashes in one call, a third of createHash's cost; same digest.
const sha256Hex: (text: string) => string =
  typeof crypto.hash === 'function'
    ? (text) => crypto.hash('sha256', text, 'hex')
    : (text) => crypto.createHash('sha256').update(text).digest('hex');

/** A short content hash (sha256, 16 hex digits) of the stable JSON of `value`. */
export function stableHash(value: unknown): string {
  return sha256Hex(stableStringify(value)).slice(0, 16);
}

/** The same short hash of a text as it is (no JSON encoding). */
export function hashText(text: string): string {
  return sha256Hex(text).slice(0, 16);
}
