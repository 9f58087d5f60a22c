import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LineSplitter, TraceStreamParser, parseTraceLine } from '../../../src/pipe';
import { mixSchemas } from '../../../bench/parser';
import { fixture } from './fixtures';

// TraceStreamParser parses soload's own lines in place inside multi-line segment strings
// (parseSegmentLine); these tests hold it to what parsing each line alone gives, on the recorded mix
// and on mutations of it that hit every early exit (quotes, spaces, newlines, brackets, colons,
// non-ASCII bytes, `#`, `CPU:`), at chunk sizes that cut lines anywhere.

const SCHEMAS = mixSchemas(fixture('mix.probes').toString('utf8'));
type Out = Array<[string, unknown]>;

function viaStream(buf: Buffer, sizes: number[], maxLineLength?: number): Out {
  const out: Out = [];
  const p = new TraceStreamParser({
    schemas: SCHEMAS,
    maxJoinedLines: 1,
    ...(maxLineLength !== undefined ? { maxLineLength } : {}),
    onRecord: (r) => out.push(['record', r]),
    onLost: (l) => out.push(['lost', l]),
    onMalformed: (line, reason) => out.push(['malformed', [line, reason]]),
  });
  for (let o = 0, k = 0; o < buf.length; k++) {
    const n = sizes[k % sizes.length]!;
    p.write(buf.subarray(o, o + n));
    o += n;
  }
  p.end();
  return out;
}

/** Each line alone (joins off: an incomplete line is malformed), as the stream reports it. */
function lineByLine(buf: Buffer, maxLineLength?: number): Out {
  const out: Out = [];
  const s = new LineSplitter(maxLineLength !== undefined ? { maxLineLength } : {});
  const each = (line: string, truncated: boolean): void => {
    if (truncated) {
      out.push(['malformed', [line, `line longer than ${maxLineLength} bytes (cut)`]]);
      return;
    }
    const r = parseTraceLine(line, SCHEMAS);
    if (r.ok) out.push(['record', r.record]);
    else if (r.kind === 'lost') out.push(['lost', { cpu: r.cpu, lost: r.lost, exact: r.exact }]);
    else if (r.kind !== 'comment') out.push(['malformed', [line, r.reason]]);
  };
  s.write(buf, each);
  s.flush(each);
  return out;
}

function same(a: Out, b: Out): void {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) {
    assert.deepStrictEqual(a[i], b[i]);
    // Same key order too (consumers spread and iterate records and fields).
    if (a[i]![0] === 'record') {
      const x = a[i]![1] as { fields: object };
      const y = b[i]![1] as { fields: object };
      assert.deepEqual(Object.keys(x), Object.keys(y));
      assert.deepEqual(Object.keys(x.fields), Object.keys(y.fields));
    }
  }
}

test('the recorded mix gives, in segments, the records of each line parsed alone', () => {
  const mix = fixture('mix.txt');
  const want = lineByLine(mix);
  assert.ok(want.filter(([k]) => k === 'record').length > 1500);
  for (const sizes of [[65536], [2048], [2049], [1], [7], [211], [1000, 3, 65536]]) same(viaStream(mix, sizes), want);
  same(viaStream(mix, [4096], 300), lineByLine(mix, 300));
});

test('mutated lines give, in segments, what each line parsed alone gives', () => {
  const lines = fixture('mix.txt').toString('latin1').split('\n');
  let seed = 12345;
  const rnd = (n: number): number => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const pieces = ['"', ' ', '\n', ')', '(', ':', '-', '=', '#', '\xff', 'é', '(fault)', ' name=', '" ', '0', '\t', '\r', 'CPU:', '[', ']', 'x'];
  const out: string[] = [];
  for (let i = 0; i < 20000; i++) {
    let l = lines[rnd(lines.length)]!;
    if (rnd(3) > 0) {
      for (let j = 1 + rnd(3); j > 0; j--) {
        const at = rnd(l.length + 1);
        const op = rnd(3);
        const piece = pieces[rnd(pieces.length)]!;
        l = op === 0 ? l.slice(0, at) + piece + l.slice(at) : op === 1 ? l.slice(0, at) + l.slice(at + 1 + rnd(3)) : l.slice(0, at) + piece + l.slice(at + 1);
      }
    }
    out.push(l);
  }
  const buf = Buffer.from(out.join('\n') + '\n', 'utf8');
  const want = lineByLine(buf);
  for (const sizes of [[65536], [977], [5], [2048, 13]]) same(viaStream(buf, sizes), want);
  same(viaStream(buf, [65536], 500), lineByLine(buf, 500));
});
