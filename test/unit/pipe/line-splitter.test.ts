import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Readable } from 'node:stream';
import { LineSplitter, LineSplitterStream, decodeLineBytes, toRawBytes } from '../../../src/pipe';
import { fixture } from './fixtures';

function splitAll(chunks: Buffer[], max?: number): { lines: string[]; truncated: number } {
  const s = new LineSplitter({ maxLineLength: max });
  const lines: string[] = [];
  for (const c of chunks) lines.push(...s.push(c));
  lines.push(...s.end());
  return { lines, truncated: s.truncatedLines };
}

test('splits on \\n and keeps the partial tail across chunks', () => {
  const s = new LineSplitter();
  assert.deepEqual(s.push(Buffer.from('ab')), []);
  assert.deepEqual(s.push(Buffer.from('c\nde')), ['abc']);
  assert.deepEqual(s.push(Buffer.from('\n\nf')), ['de', '']);
  assert.deepEqual(s.end(), ['f']);
  assert.deepEqual(s.end(), []);
  assert.equal(s.bytes, 9);
});

test('does not retain the caller\'s chunk (read buffers are reused)', () => {
  const s = new LineSplitter();
  const buf = Buffer.from('hello');
  s.push(buf);
  buf.fill(0x78);
  assert.deepEqual(s.push(Buffer.from(' world\n')), ['hello world']);
});

test('splitting a recorded fixture at every byte boundary gives identical lines', () => {
  const data = fixture('default.txt');
  const whole = splitAll([data]).lines;
  assert.equal(whole.length, 20);
  for (let i = 0; i <= data.length; i++) {
    assert.deepEqual(splitAll([data.subarray(0, i), data.subarray(i)]).lines, whole, `split at ${i}`);
  }
  // and byte by byte
  const bytes: Buffer[] = [];
  for (let i = 0; i < data.length; i++) bytes.push(data.subarray(i, i + 1));
  assert.deepEqual(splitAll(bytes).lines, whole);
});

test('over-long lines are cut, counted, and the rest up to \\n discarded', () => {
  const { lines, truncated } = splitAll([Buffer.from('0123456789abc\nok\n0123456789\n')], 10);
  assert.deepEqual(lines, ['0123456789', 'ok', '0123456789']);
  assert.equal(truncated, 1);
  // across chunks: the discarded remainder spans several pushes
  const r2 = splitAll([Buffer.from('01234'), Buffer.from('56789XY'), Buffer.from('ZZZZ'), Buffer.from('Z\nnext\n')], 10);
  assert.deepEqual(r2.lines, ['0123456789', 'next']);
  assert.equal(r2.truncated, 1);
});

test('memory stays bounded by maxLineLength while a line never ends', () => {
  const s = new LineSplitter({ maxLineLength: 1024 });
  const chunk = Buffer.alloc(64 * 1024, 0x41);
  let emitted = 0;
  for (let i = 0; i < 160; i++) emitted += s.push(chunk).length; // 10 MiB without a newline
  assert.equal(emitted, 1);
  assert.equal(s.truncatedLines, 1);
  const internal = s as unknown as { partLen: number; parts: Buffer[] };
  assert.equal(internal.partLen, 0);
  assert.equal(internal.parts.length, 0);
  assert.deepEqual(s.push(Buffer.from('tail\nnext\n')), ['next']);
});

test('a line of exactly maxLineLength bytes is not truncated', () => {
  const r = splitAll([Buffer.from('0123456789'), Buffer.from('\n')], 10);
  assert.deepEqual(r.lines, ['0123456789']);
  assert.equal(r.truncated, 0);
});

test('valid UTF-8 is decoded; invalid bytes become \\xNN and round-trip with toRawBytes', () => {
  const raw = Buffer.concat([Buffer.from('/tmp/bad'), Buffer.from([0xff, 0xfe]), Buffer.from('-é-\uFFFD-'), Buffer.from([0xc3])]);
  const line = decodeLineBytes(raw, 0, raw.length);
  assert.equal(line, '/tmp/bad\\xff\\xfe-é-\uFFFD-\\xc3');
  assert.deepEqual(toRawBytes(line), raw);
  assert.equal(decodeLineBytes(Buffer.from('naïve ✓ 𝄞'), 0, Buffer.byteLength('naïve ✓ 𝄞')), 'naïve ✓ 𝄞');
  // overlong encodings and UTF-16 surrogates are not valid UTF-8
  const bad = Buffer.from([0xc0, 0xaf, 0xed, 0xa0, 0x80, 0x41]);
  assert.equal(decodeLineBytes(bad, 0, bad.length), '\\xc0\\xaf\\xed\\xa0\\x80A');
  assert.deepEqual(toRawBytes('\\xc0\\xaf\\xed\\xa0\\x80A'), bad);
  // upper-case escapes are never produced, so they stay text
  assert.deepEqual(toRawBytes('a\\xAB'), Buffer.from('a\\xAB'));
});

test('a UTF-8 sequence split across chunks is decoded as one character', () => {
  const data = Buffer.from('x é y\n');
  for (let i = 0; i <= data.length; i++) {
    assert.deepEqual(splitAll([data.subarray(0, i), data.subarray(i)]).lines, ['x é y']);
  }
});

test('LineSplitterStream emits one string per line', async () => {
  const out: string[] = [];
  const src = Readable.from([Buffer.from('a\nb'), Buffer.from('c\n'), Buffer.from('d')]);
  const stream = src.pipe(new LineSplitterStream());
  for await (const line of stream) out.push(line as string);
  assert.deepEqual(out, ['a', 'bc', 'd']);
});

test('rejects a non-positive maxLineLength', () => {
  assert.throws(() => new LineSplitter({ maxLineLength: 0 }), /SOLOAD_ERR_INTERNAL|positive integer/);
});
