import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LineSplitter, TraceStreamParser, decodeLineBytes, toRawBytes } from '../../../src/pipe';
import type { TraceRecord } from '../../../src/types';
import { SCHEMAS } from './fixtures';

// trace_pipe prints `ustring` values raw: every path below reaches the parser as the process's bytes,
// and must come out in soload's path escaping (util/path-bytes.ts) whichever decoding path the
// stream takes (the ASCII segment fast path, the per-chunk UTF-8 check, a line held across chunks).

const HEAD = '           <...>-20244   [000] DBZff   816.168620: ';
const entry = (name: Buffer) => Buffer.concat([Buffer.from(`${HEAD}e: (0x7f429500e500) name="`), name, Buffer.from('" flags=0x2 comm="w"\n')]);
const ret = (p: Buffer) => Buffer.concat([Buffer.from(`${HEAD}r: (0x55614814f3dd <- 0x7f429500e500) h=0x55615c39e2d0 path="`), p, Buffer.from('"\n')]);

const NAMES: Array<[string, Buffer, string]> = [
  ['plain', Buffer.from('/usr/lib/libz.so.1'), '/usr/lib/libz.so.1'],
  ['literal \\x41', Buffer.from('/tmp/a\\x41/lib.so'), '/tmp/a\\x5cx41/lib.so'],
  ['backslash not before x+hex', Buffer.from('/tmp/a\\b\\xZ/lib.so'), '/tmp/a\\b\\xZ/lib.so'],
  ['0xff 0xfe', Buffer.concat([Buffer.from('/tmp/bad'), Buffer.of(0xff, 0xfe), Buffer.from('/lib.so')]), '/tmp/bad\\xff\\xfe/lib.so'],
  ['backslash then 0xff', Buffer.concat([Buffer.from('/tmp/\\'), Buffer.of(0xff), Buffer.from('\\xff')]), '/tmp/\\\\xff\\x5cxff'],
  ['quote name= and %', Buffer.from('/tmp/q" name="x %s/lib.so'), '/tmp/q" name="x %s/lib.so'],
  ['newline', Buffer.from('/tmp/new\nline/lib.so'), '/tmp/new\nline/lib.so'],
];

function viaStream(buf: Buffer, chunk: number): TraceRecord[] {
  const out: TraceRecord[] = [];
  const p = new TraceStreamParser({ schemas: SCHEMAS, onRecord: (r) => out.push(r) });
  for (let o = 0; o < buf.length; o += chunk) p.write(buf.subarray(o, o + chunk));
  p.end();
  return out;
}

test('every decoding path of the stream gives the escaped name, and toRawBytes gives the bytes back', () => {
  for (const [what, raw, escaped] of NAMES) {
    // the hostile line between plain ASCII ones, so the segment fast path sees its neighbours
    const plain = ret(Buffer.from('/usr/lib/libc.so.6'));
    const buf = Buffer.concat([plain, entry(raw), ret(raw), plain]);
    for (const chunk of [1, 7, 64, 333, buf.length]) {
      const recs = viaStream(buf, chunk);
      assert.equal(recs.length, 4, `${what} @${chunk}`);
      assert.equal(recs[1]!.fields.name, escaped, `${what} @${chunk}: entry`);
      assert.equal(recs[2]!.fields.path, escaped, `${what} @${chunk}: return`);
      assert.deepEqual(toRawBytes(String(recs[2]!.fields.path)), raw, `${what} @${chunk}: bytes`);
      assert.equal(recs[3]!.fields.path, '/usr/lib/libc.so.6');
    }
  }
});

test('LineSplitter: a chunk with a backslash takes the escaping path, also when the chunk is valid UTF-8', () => {
  const s = new LineSplitter();
  assert.deepEqual(s.push(Buffer.from('a\\x41\nb\\c\n')), ['a\\x5cx41', 'b\\c']);
  assert.deepEqual(s.push(Buffer.from('x\\x')), []);
  assert.deepEqual(s.push(Buffer.from('ff\n')), ['x\\x5cxff'], 'a line held across chunks');
  assert.equal(decodeLineBytes(Buffer.from('\\x5c'), 0, 4), '\\x5cx5c');
});
