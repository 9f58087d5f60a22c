import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { LineSplitter, TraceStreamParser, parseTraceLine, type PipeStats, type ProbeSchema, type ProbeSchemaMap } from '../../../src/pipe';
import type { TraceRecord } from '../../../src/types';
import { mixSchemas } from '../../../bench/parser';
import { FIXTURES, fixture } from './fixtures';

const HDR = '             gen-4242    (   4242) [001]   694.274631: ';
const S = (...fields: Array<[string, boolean]>): ProbeSchema => ({ fields: fields.map(([name, string]) => ({ name, string })) });
const E = S(['name', true], ['flags', false], ['comm', true]);

function fields(body: string, schema: ProbeSchema = E, event = 'e'): Record<string, string | null> {
  const r = parseTraceLine(`${HDR}${event}: (0x7f00) ${body}`, new Map([[event, schema]]));
  if (!r.ok) assert.fail(`no record from ${JSON.stringify(body)}: ${JSON.stringify(r)}`);
  return r.record.fields;
}

test('common lines and the ones that need backtracking give the same kind of fields object', () => {
  const plain = fields('name="/lib/libz.so.1" flags=0x2 comm="python3"');
  assert.deepStrictEqual(plain, { name: '/lib/libz.so.1', flags: '0x2', comm: 'python3' });
  assert.equal(Object.getPrototypeOf(plain), Object.prototype);
  assert.deepStrictEqual(Object.keys(plain), ['name', 'flags', 'comm']);
  const hard = fields('name="q" flags=1 comm="x"" flags=0x2 comm="python3"');
  assert.deepStrictEqual(hard, { name: 'q" flags=1 comm="x"', flags: '0x2', comm: 'python3' });
  assert.deepStrictEqual(Object.keys(hard), ['name', 'flags', 'comm']);
  // What consumers do with fields: spread, entries, `in`.
  assert.deepStrictEqual({ ...plain }, plain);
  assert.deepStrictEqual(Object.entries(plain).length, 3);
  assert.ok('comm' in plain);
});

test('string values with spaces, `=`, look-alike names, quotes and a leading space', () => {
  assert.deepStrictEqual(fields('name="/a b/c=d flags=3.so" flags=0x1 comm="my worker-2"'), {
    name: '/a b/c=d flags=3.so',
    flags: '0x1',
    comm: 'my worker-2',
  });
  assert.deepStrictEqual(fields('name=" flags=1 x" flags=0x1 comm="c"'), { name: ' flags=1 x', flags: '0x1', comm: 'c' });
  assert.deepStrictEqual(fields('name=" lead" flags=0x1 comm=" c"'), { name: ' lead', flags: '0x1', comm: ' c' });
  assert.deepStrictEqual(fields('name="a"b" flags=0x1 comm="c"d"'), { name: 'a"b', flags: '0x1', comm: 'c"d' });
  assert.deepStrictEqual(fields('name="" flags=0x1 comm=""'), { name: '', flags: '0x1', comm: '' });
});

test('(fault) in any position and type, and a literal value that only starts like it', () => {
  assert.deepStrictEqual(fields('name=(fault) flags=(fault) comm=(fault)'), { name: null, flags: null, comm: null });
  assert.deepStrictEqual(fields('name="(fault)" flags=(fault)x comm="c"'), { name: '(fault)', flags: '(fault)x', comm: 'c' });
  const last = S(['a', true], ['n', false]);
  assert.deepStrictEqual(fields('a=(fault) n=(fault)', last), { a: null, n: null });
  assert.deepStrictEqual(fields('a="x" n=(fault)y', last), { a: 'x', n: '(fault)y' });
  assert.deepStrictEqual(fields('a="x" n=1 2 "3"', last), { a: 'x', n: '1 2 "3"' });
});

test('field names that are regular-expression syntax match only themselves', () => {
  const odd = S(['a.b', false], ['c+', true], ['(x)', false]);
  assert.deepStrictEqual(fields('a.b=1 c+="v" (x)=2', odd), { 'a.b': '1', 'c+': 'v', '(x)': '2' });
  const r = parseTraceLine(`${HDR}e: (0x7f00) aXb=1 c+="v" (x)=2`, new Map([['e', odd]]));
  assert.equal(r.ok, false);
});

test('duplicate field names keep the old behaviour (the later value wins)', () => {
  assert.deepStrictEqual(fields('x="a" x="b"', S(['x', true], ['x', true])), { x: 'b' });
});

test('a line ending inside a quoted value is incomplete on either path', () => {
  const schemas = new Map([['e', E]]);
  for (const body of ['name="/tmp/nl', 'name="a" flags=1 comm="c', 'name="a" flags=1 comm="']) {
    const r = parseTraceLine(`${HDR}e: (0x7f00) ${body}`, schemas);
    assert.equal(!r.ok && r.kind, 'incomplete', body);
  }
});

test('a value containing newlines parses once joined, with the newline kept', () => {
  assert.deepStrictEqual(fields('name="/tmp/nl\nname=x.so" flags=0x2 comm="c"'), { name: '/tmp/nl\nname=x.so', flags: '0x2', comm: 'c' });
});

test('a CR before the LF is not a line terminator: it stays in the line, and the line does not parse', () => {
  const s = new LineSplitter();
  const lines = s.push(Buffer.from(`${HDR}e: (0x7f00) name="a" flags=1 comm="c"\r\n`));
  assert.equal(lines.length, 1);
  assert.ok(lines[0].endsWith('"\r'));
  const r = parseTraceLine(lines[0], new Map([['e', E]]));
  assert.equal(r.ok, false);
});

test('very long lines: one 64 KiB list-like line parses; longer lines are cut and counted', () => {
  const many = S(...Array.from({ length: 120 }, (_, i): [string, boolean] => [`p${i}`, i % 2 === 0]));
  const body = many.fields.map((f, i) => `${f.name}=${f.string ? `"/${'x'.repeat(400)}/${i}"` : String(i)}`).join(' ');
  const f = fields(body, many);
  assert.equal(f.p0, `/${'x'.repeat(400)}/0`);
  assert.equal(f.p119, '119');

  const records: TraceRecord[] = [];
  const malformed: string[] = [];
  const p = new TraceStreamParser({ schemas: new Map([['e', E]]), maxLineLength: 100, onRecord: (r) => records.push(r), onMalformed: (_l, why) => malformed.push(why) });
  const good = `${HDR}e: (0x7f00) name="a" flags=1 comm="c"\n`;
  assert.ok(good.length < 100);
  p.write(Buffer.from(good + `${HDR}e: (0x7f00) name="${'y'.repeat(300)}" flags=1 comm="c"\n` + good));
  p.end();
  assert.equal(records.length, 2);
  assert.deepStrictEqual(malformed, ['line longer than 100 bytes (cut)']);
  assert.equal(p.stats.truncated, 1);
});

test('splitter: an invalid line among valid ones in one chunk, and sequences cut between chunks', () => {
  const bad = Buffer.concat([Buffer.from('a\n'), Buffer.from([0x62, 0xff, 0xfe, 0x0a]), Buffer.from('é\n\uFFFD\n')]);
  const whole = new LineSplitter().push(bad);
  assert.deepStrictEqual(whole, ['a', 'b\\xff\\xfe', 'é', '\uFFFD']);
  for (let i = 0; i <= bad.length; i++) {
    const s = new LineSplitter();
    assert.deepStrictEqual([...s.push(bad.subarray(0, i)), ...s.push(bad.subarray(i)), ...s.end()], whole, `split at ${i}`);
  }
  // A 2-byte character whose bytes arrive in two reads, followed by valid lines.
  const s = new LineSplitter();
  assert.deepStrictEqual(s.push(Buffer.from([0x78, 0xc3])), []);
  assert.deepStrictEqual(s.push(Buffer.from([0xa9, 0x0a, 0x79, 0x0a])), ['xé', 'y']);
});

function mixRecords(chunkSize: number): { records: TraceRecord[]; stats: PipeStats } {
  const schemas: ProbeSchemaMap = mixSchemas(fs.readFileSync(path.join(FIXTURES, 'mix.probes'), 'utf8'));
  const data = fixture('mix.txt');
  const records: TraceRecord[] = [];
  const p = new TraceStreamParser({ schemas, onRecord: (r) => records.push(r) });
  for (let o = 0; o < data.length; o += chunkSize) p.write(Buffer.from(data.subarray(o, o + chunkSize)));
  p.end();
  return { records, stats: p.stats };
}

test('the benchmark mix: every recorded line is a record, the derived broken ones are counted', () => {
  const { records, stats } = mixRecords(64 * 1024);
  assert.equal(stats.records, 1661);
  assert.equal(stats.joined, 4);
  assert.equal(stats.malformed, 6);
  assert.equal(stats.lostReports, 2);
  const list = records.find((r) => r.event === 'loader_state_list0' && r.fields.p1 !== null);
  assert.ok(list);
  assert.equal(Object.keys(list.fields).length, 27);
  assert.equal(typeof list.fields.i1, 'string');
  // Chunk boundaries anywhere (partial tails carried across writes) change nothing.
  for (const size of [1, 7, 4096, 65_521]) assert.deepStrictEqual(mixRecords(size).records, records, `chunks of ${size}`);
});
