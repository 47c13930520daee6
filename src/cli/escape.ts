/**
 * Text that came from outside — a log record, a job file, an agent, a lock file, a file name — is
 * shown on a terminal only with its control characters escaped, so that it cannot forge lines
 * (LF, CR), move the cursor or change colours (ESC, CSI), ring the bell, or reorder what is shown
 * (bidirectional overrides). Every line the CLI prints passes through {@link escapeControls}.
 *
 * The escapes are JSON's (`\n`, `\r`, `\t`, `\u001b`), so a JSON line stays valid JSON with the
 * same meaning after escaping, and text reads the way JSON would show it.
 */

/**
 * C0 controls and DEL, C1 controls, and the Unicode characters that change how text around them
 * is laid out: line and paragraph separators, directional marks, embeddings, overrides and
 * isolates (U+061C, U+200E–U+200F, U+2028–U+202E, U+2066–U+2069).
 */
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/g;

const SHORT: Readonly<Record<string, string>> = { '\n': '\\n', '\r': '\\r', '\t': '\\t' };

/**
 * `text` with every control or layout-changing character written as an escape; nothing else
 * changes (a string without them is returned as it is, and escaping twice changes nothing more).
 * @example escapeControls('stuck\n\u001b[31mfake line') // 'stuck\\n\\u001b[31mfake line'
 */
export function escapeControls(text: string): string {
  return text.replace(UNSAFE, (char) => SHORT[char] ?? `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** One JSON line with nothing a terminal would act on: JSON.stringify leaves C1 controls and bidi characters raw. */
export function jsonLine(value: unknown): string {
  return escapeControls(JSON.stringify(value));
}
