/**
 * Byte → string decoding for trace_pipe lines.
 *
 * Linux file names (and comms, which any process can set with prctl) are arbitrary bytes, and the
 * kernel prints `ustring` fetch args and comms raw, unescaped. Choice made here:
 *
 * - a line that is valid UTF-8 is decoded as UTF-8, verbatim (fast path, the common case);
 * - otherwise every byte that is not part of a well-formed UTF-8 sequence becomes the 4-character
 *   escape `\xNN` (lower-case hex) and the well-formed parts are still decoded as UTF-8.
 *
 * This keeps invalid paths readable in logs and in OTLP (which requires valid UTF-8), and
 * {@link toRawBytes} turns such a value back into the exact bytes (e.g. to open the file).
 * The one ambiguity: a value that contains a literal backslash followed by `xNN` AND sits on a line
 * with invalid UTF-8 cannot be told apart from an escape. Backslashes are deliberately not escaped,
 * so that the far more common valid-UTF-8 paths stay byte-for-byte what the process passed.
 */

const HEX = '0123456789abcdef';

/** Decodes `buf[start, end)` as described in the module comment. */
export function decodeLineBytes(buf: Buffer, start: number, end: number): string {
  const s = buf.toString('utf8', start, end);
  // Node substitutes U+FFFD for malformed sequences; only then (or for a genuine U+FFFD in the
  // input, which the slow path re-decodes faithfully) take the byte-by-byte path.
  if (s.indexOf('\uFFFD') === -1) return s;
  return decodeSlow(buf, start, end);
}

function decodeSlow(buf: Buffer, start: number, end: number): string {
  let out = '';
  let run = start;
  let i = start;
  while (i < end) {
    const n = utf8SeqLen(buf, i, end);
    if (n > 0) {
      i += n;
      continue;
    }
    if (run < i) out += buf.toString('utf8', run, i);
    const b = buf[i];
    out += '\\x' + HEX[b >> 4] + HEX[b & 15];
    i++;
    run = i;
  }
  if (run < end) out += buf.toString('utf8', run, end);
  return out;
}

/** Length of the well-formed UTF-8 sequence at `i` (RFC 3629: no overlongs, surrogates, > U+10FFFF), or 0. */
function utf8SeqLen(buf: Buffer, i: number, end: number): number {
  const b0 = buf[i];
  if (b0 < 0x80) return 1;
  let n: number;
  let lo = 0x80;
  let hi = 0xbf;
  if (b0 >= 0xc2 && b0 <= 0xdf) n = 2;
  else if (b0 >= 0xe0 && b0 <= 0xef) {
    n = 3;
    if (b0 === 0xe0) lo = 0xa0;
    else if (b0 === 0xed) hi = 0x9f;
  } else if (b0 >= 0xf0 && b0 <= 0xf4) {
    n = 4;
    if (b0 === 0xf0) lo = 0x90;
    else if (b0 === 0xf4) hi = 0x8f;
  } else return 0;
  if (i + n > end) return 0;
  const b1 = buf[i + 1];
  if (b1 < lo || b1 > hi) return 0;
  for (let k = 2; k < n; k++) {
    const b = buf[i + k];
    if (b < 0x80 || b > 0xbf) return 0;
  }
  return n;
}

/**
 * Inverse of the decoding above: the bytes a decoded value stands for (`\xNN` → one byte, everything
 * else → UTF-8). Use it to hand a path from a record back to the file system.
 */
export function toRawBytes(value: string): Buffer {
  if (value.indexOf('\\x') === -1) return Buffer.from(value, 'utf8');
  const parts: Buffer[] = [];
  let run = 0;
  let i = value.indexOf('\\x');
  while (i !== -1) {
    const h = hexPair(value, i + 2);
    if (h >= 0) {
      if (run < i) parts.push(Buffer.from(value.slice(run, i), 'utf8'));
      parts.push(Buffer.of(h));
      run = i + 4;
      i = value.indexOf('\\x', run);
    } else {
      i = value.indexOf('\\x', i + 1);
    }
  }
  if (run < value.length) parts.push(Buffer.from(value.slice(run), 'utf8'));
  return Buffer.concat(parts);
}

function hexPair(s: string, i: number): number {
  if (i + 2 > s.length) return -1;
  const a = hexVal(s.charCodeAt(i));
  const b = hexVal(s.charCodeAt(i + 1));
  return a < 0 || b < 0 ? -1 : (a << 4) | b;
}

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  // Lower case only: the decoder never emits upper-case escapes, so a literal `\xAB` stays text.
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}
