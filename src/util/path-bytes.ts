/**
 * How soload spells a name that is arbitrary bytes (file paths, comms, readlink targets) as a
 * string, and back.
 *
 * Linux names are byte strings; OTLP and JSON need valid UTF-8. The escaping ("soload path
 * escaping", documented in the README's "File names" section):
 *
 * - well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF) passes
 *   through unchanged — spaces, quotes, `%`, newlines and most backslashes included;
 * - every byte that is not part of a well-formed sequence becomes `\xhh` (two lower-case hex digits);
 * - a literal backslash becomes `\x5c` only where it is followed by `x` and two lower-case hex
 *   digits, i.e. exactly where it would otherwise read as an escape.
 *
 * So a valid UTF-8 name is its own spelling unless it contains the text `\xhh`, and the inverse
 * ({@link unescapePathBytes}) is unambiguous: every `\xhh` in an escaped string is an escape. A
 * literal backslash in the output is never followed by `x`+hex (that case was escaped), and the hex
 * digits after an escape's `\x` are its own.
 *
 * {@link escapeForLog} is the stricter form for soload's diagnostic lines: the same escaping, plus
 * C0/C1 control characters and DEL written as `\xhh` of their UTF-8 bytes, so a name cannot split
 * or forge a log line or send terminal escape sequences. {@link unescapePathBytes} inverts both.
 */

const HEX = '0123456789abcdef';

/** Escapes `buf[start, end)` (see the module comment). */
export function escapePathBytes(buf: Buffer, start = 0, end = buf.length): string {
  const s = buf.toString('utf8', start, end);
  // Node substitutes U+FFFD for malformed sequences; only then, for a genuine U+FFFD (re-decoded
  // faithfully by the slow path) or for a backslash followed by `x`, take the byte-by-byte path.
  if (s.indexOf('\uFFFD') === -1 && s.indexOf('\\x') === -1) return s;
  return escapeSlow(buf, start, end);
}

/** Escapes a string that is already valid text (a JS string, e.g. from JSON): only `\` before `x`+hex changes. */
export function escapePathString(s: string): string {
  if (s.indexOf('\\x') === -1) return s;
  return s.replace(/\\(?=x[0-9a-f]{2})/g, '\\x5c');
}

/**
 * The bytes an escaped string stands for: each `\xhh` (lower-case hex) is one byte, everything
 * else its UTF-8. The exact inverse of {@link escapePathBytes} and {@link escapeForLog}; use it to
 * hand a path from a record back to the file system (`fs.openSync(unescapePathBytes(p))`).
 */
export function unescapePathBytes(value: string): Buffer {
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

/** True when `value` holds at least one escape (its bytes differ from its UTF-8). */
export function hasPathEscapes(value: string): boolean {
  return /\\x[0-9a-f]{2}/.test(value);
}

/** The name to give the file system for an escaped path: the string itself, or its raw bytes. */
export function fsName(value: string): string | Buffer {
  return hasPathEscapes(value) ? unescapePathBytes(value) : value;
}

// C0 controls, DEL, C1 controls (U+0080–U+009F), and the line/paragraph separators some viewers
// break lines at.
// eslint-disable-next-line no-control-regex
const LOG_UNSAFE = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
// eslint-disable-next-line no-control-regex
const LOG_UNSAFE_G = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g;

/**
 * A string (already escaped, or any JS text) made safe for one diagnostic line: control characters
 * become the `\xhh` escapes of their UTF-8 bytes, and a backslash that would read as an escape is
 * escaped first — so {@link unescapePathBytes} of the result gives back the text's bytes exactly
 * when the input was an escaped path.
 */
export function escapeForLog(s: string): string {
  if (!LOG_UNSAFE.test(s)) return s;
  return s.replace(LOG_UNSAFE_G, (c) => {
    let out = '';
    for (const b of Buffer.from(c, 'utf8')) out += '\\x' + HEX[b >> 4] + HEX[b & 15];
    return out;
  });
}

function escapeSlow(buf: Buffer, start: number, end: number): string {
  let out = '';
  let run = start;
  let i = start;
  while (i < end) {
    const b = buf[i]!;
    if (b === 0x5c) {
      if (i + 3 < end && buf[i + 1] === 0x78 && isLowerHex(buf[i + 2]!) && isLowerHex(buf[i + 3]!)) {
        if (run < i) out += buf.toString('utf8', run, i);
        out += '\\x5c';
        i++;
        run = i;
      } else i++;
      continue;
    }
    const n = utf8SeqLen(buf, i, end);
    if (n > 0) {
      i += n;
      continue;
    }
    if (run < i) out += buf.toString('utf8', run, i);
    out += '\\x' + HEX[b >> 4] + HEX[b & 15];
    i++;
    run = i;
  }
  if (run < end) out += buf.toString('utf8', run, end);
  return out;
}

function isLowerHex(c: number): boolean {
  return (c >= 48 && c <= 57) || (c >= 97 && c <= 102);
}

/** Length of the well-formed UTF-8 sequence at `i` (RFC 3629: no overlongs, surrogates, > U+10FFFF), or 0. */
function utf8SeqLen(buf: Buffer, i: number, end: number): number {
  const b0 = buf[i]!;
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
  const b1 = buf[i + 1]!;
  if (b1 < lo || b1 > hi) return 0;
  for (let k = 2; k < n; k++) {
    const b = buf[i + k]!;
    if (b < 0x80 || b > 0xbf) return 0;
  }
  return n;
}

function hexPair(s: string, i: number): number {
  if (i + 2 > s.length) return -1;
  const a = hexVal(s.charCodeAt(i));
  const b = hexVal(s.charCodeAt(i + 1));
  return a < 0 || b < 0 ? -1 : (a << 4) | b;
}

function hexVal(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  // Lower case only: the escaper never emits upper-case digits, so a literal `\xAB` stays text.
  if (c >= 97 && c <= 102) return c - 87;
  return -1;
}

/**
 * Undoes the kernel's `seq_path` escaping of a `/proc/<pid>/maps` (or mountinfo-style) path field:
 * maps writes a newline in a name as `\012`; every other byte is printed raw. (A name that really
 * contains the four characters `\012` cannot be told apart by anyone reading maps; it is read as a
 * newline.)
 */
export function unescapeMapsPath(field: Buffer): Buffer {
  if (field.indexOf('\\012') === -1) return field;
  const parts: Buffer[] = [];
  let run = 0;
  for (let i = field.indexOf('\\012'); i !== -1; i = field.indexOf('\\012', run)) {
    parts.push(field.subarray(run, i), NL);
    run = i + 4;
  }
  parts.push(field.subarray(run));
  return Buffer.concat(parts);
}

const NL = Buffer.of(10);
