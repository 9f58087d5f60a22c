import { test } from 'node:test';
import assert from 'node:assert/strict';
import { escapeForLog, escapePathBytes, escapePathString, fsName, hasPathEscapes, unescapeMapsPath, unescapePathBytes } from '../../../src/util/path-bytes';

const b = (...parts: Array<string | number[]>) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));

test('valid UTF-8 passes unchanged: spaces, quotes, %, newline, backslashes not before x+hex, non-ASCII', () => {
  for (const s of ['/usr/lib/libc.so.6', '/a b/"q" \'s\'/%d%n/new\nline/é€𝄞', 'C:\\dir\\lib.so', '\\xZZ', '\\X41', '\\xA1', '\\x4', '/tmp/\uFFFD.so']) {
    assert.equal(escapePathBytes(Buffer.from(s, 'utf8')), s, JSON.stringify(s));
    assert.equal(escapePathString(s), s);
  }
});

test('invalid bytes become \\xhh; a backslash before x+hex becomes \\x5c; the inverse recovers the bytes', () => {
  const cases: Array<[Buffer, string]> = [
    [b('/tmp/', [0xff, 0xfe], '/lib.so'), '/tmp/\\xff\\xfe/lib.so'],
    [b('a', [0x80], 'b'), 'a\\x80b'], // lone continuation byte
    [b([0xc0, 0xaf]), '\\xc0\\xaf'], // overlong '/'
    [b([0xe0, 0x80, 0xaf]), '\\xe0\\x80\\xaf'], // overlong, 3 bytes
    [b([0xed, 0xa0, 0x80]), '\\xed\\xa0\\x80'], // surrogate
    [b([0xf4, 0x90, 0x80, 0x80]), '\\xf4\\x90\\x80\\x80'], // > U+10FFFF
    [b('é', [0xc3]), 'é\\xc3'], // truncated sequence
    [b('\\xff'), '\\x5cxff'], // the literal text that would read as an escape
    [b('\\\\xff'), '\\\\x5cxff'],
    [b('\\x5c'), '\\x5cx5c'],
    [b('\\', [0xff]), '\\\\xff'], // a literal backslash followed by an escape
    [b('\\xf', [0xff]), '\\xf\\xff'],
  ];
  for (const [raw, esc] of cases) {
    assert.equal(escapePathBytes(raw), esc, raw.toString('hex'));
    assert.deepEqual(unescapePathBytes(esc), raw, esc);
    assert.equal(hasPathEscapes(esc), true);
  }
  assert.equal(escapePathString('\\xff'), '\\x5cxff');
  assert.deepEqual(fsName('/a\\xffb'), b('/a', [0xff], 'b'));
  assert.equal(fsName('/plain\\dir'), '/plain\\dir');
  assert.equal(escapePathBytes(b('xx/', [0xff], '/yy'), 3, 4), '\\xff', 'a sub-range');
});

/** Deterministic PRNG (mulberry32) so a failure names a reproducible seed. */
function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('property: unescape(escape(bytes)) == bytes, the escape is valid UTF-8, and the log form inverts the same', () => {
  // Bytes drawn to hit the interesting cases often: backslash, x, hex digits, UTF-8 lead and continuation bytes, controls.
  const alphabet = [0x5c, 0x78, 0x30, 0x35, 0x61, 0x66, 0x41, 0x0a, 0x1b, 0x00, 0x7f, 0x80, 0xbf, 0xc2, 0xc3, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xff, 0x2f, 0x20, 0x22];
  for (let seed = 1; seed <= 3000; seed++) {
    const r = rng(seed);
    const len = Math.floor(r() * 40);
    const raw = Buffer.alloc(len);
    for (let i = 0; i < len; i++) raw[i] = r() < 0.6 ? alphabet[Math.floor(r() * alphabet.length)]! : Math.floor(r() * 256);
    const esc = escapePathBytes(raw);
    assert.deepEqual(unescapePathBytes(esc), raw, `seed ${seed}: ${raw.toString('hex')} -> ${JSON.stringify(esc)}`);
    // no replacement character unless the bytes held a real U+FFFD: nothing was decoded lossily
    assert.ok(!esc.includes('\uFFFD') || raw.includes(Buffer.from('\uFFFD')), `seed ${seed}: lossy`);
    const log = escapeForLog(esc);
    // eslint-disable-next-line no-control-regex
    assert.ok(!/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(log), `seed ${seed}: control character in the log form ${JSON.stringify(log)}`);
    assert.deepEqual(unescapePathBytes(log), raw, `seed ${seed}: log form does not invert`);
    // concatenation at '/' is the escape of the concatenation (how canonical paths are joined)
    const half = Math.floor(len / 2);
    const joined = Buffer.concat([raw.subarray(0, half), Buffer.from('/'), raw.subarray(half)]);
    assert.equal(escapePathBytes(raw.subarray(0, half)) + '/' + escapePathBytes(raw.subarray(half)), escapePathBytes(joined), `seed ${seed}: join`);
  }
});

test('escapeForLog: newline, CR, ESC (ANSI), NUL, C1 and U+2028 are written as the \\xhh of their bytes', () => {
  assert.equal(escapeForLog('a\nb'), 'a\\x0ab');
  assert.equal(escapeForLog('\u001b[31mred\r'), '\\x1b[31mred\\x0d');
  assert.equal(escapeForLog('\u0085\u2028'), '\\xc2\\x85\\xe2\\x80\\xa8');
  assert.equal(escapeForLog('plain /a b/"q"'), 'plain /a b/"q"');
});

test('unescapeMapsPath: the kernel\'s \\012 in /proc/<pid>/maps is a newline; nothing else changes', () => {
  assert.deepEqual(unescapeMapsPath(b('/tmp/new\\012line/a\\012\\012b')), b('/tmp/new\nline/a\n\nb'));
  assert.deepEqual(unescapeMapsPath(b('/tmp/\\x41\\01')), b('/tmp/\\x41\\01'));
});
