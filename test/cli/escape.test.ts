import { describe, expect, it } from 'vitest';
import { escapeControls, jsonLine } from '../../src/cli/escape.js';

describe('escapeControls', () => {
  it.each([
    ['LF', 'a\nb', 'a\\nb'],
    ['CR', 'a\rb', 'a\\rb'],
    ['TAB', 'a\tb', 'a\\tb'],
    ['ESC (a colour)', '\u001b[31mred', '\\u001b[31mred'],
    ['BEL', 'ding\u0007', 'ding\\u0007'],
    ['NUL', 'a\u0000b', 'a\\u0000b'],
    ['DEL', 'a\u007fb', 'a\\u007fb'],
    ['C1 NEL', 'a\u0085b', 'a\\u0085b'],
    ['C1 CSI', '\u009b2J', '\\u009b2J'],
    ['C1 OSC (a title or a link)', '\u009d0;pwned\u009c', '\\u009d0;pwned\\u009c'],
    ['RIGHT-TO-LEFT OVERRIDE', 'abc\u202Etxt.exe', 'abc\\u202etxt.exe'],
    ['directional isolates and marks', '\u2066a\u2069\u200e\u200f\u061c', '\\u2066a\\u2069\\u200e\\u200f\\u061c'],
    ['line and paragraph separators', 'a\u2028b\u2029c', 'a\\u2028b\\u2029c'],
  ])('escapes %s', (_what, text, shown) => {
    expect(escapeControls(text)).toBe(shown);
  });

  it('leaves printable text alone, other scripts and emoji included, and escaping twice changes nothing more', () => {
    const text = 'Café — 東京 ✓ 🚀 "quoted" \\n as typed';
    expect(escapeControls(text)).toBe(text);
    const once = escapeControls('x\u001b[2J\ny\u202e');
    expect(escapeControls(once)).toBe(once);
  });

  it('a JSON line stays valid JSON with the same content, and carries nothing a terminal acts on', () => {
    const value = { reason: 'stuck\n\u001b[31mforged\u0085\u009b\u202e\u2028' };
    const line = jsonLine(value);
    expect(line).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u202e\u2028]/);
    expect(JSON.parse(line)).toEqual(value);
  });
});
