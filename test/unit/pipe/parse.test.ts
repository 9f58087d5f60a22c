import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LineSplitter, parseTraceLine, type ParseResult, type ProbeSchemaMap } from '../../../src/pipe';
import type { TraceRecord } from '../../../src/types';
import { SCHEMAS, fixture } from './fixtures';

function lines(name: string): string[] {
  const s = new LineSplitter();
  return [...s.push(fixture(name)), ...s.end()];
}

function rec(line: string, schemas?: ProbeSchemaMap): TraceRecord {
  const r = parseTraceLine(line, schemas);
  if (!r.ok) assert.fail(`expected a record from ${JSON.stringify(line)}, got ${JSON.stringify(r)}`);
  return r.record;
}

const ENTRY_LOC = '0x7f429500e500';
const P = '/tmp/soload-pipetest';

test('default options (6.18): <...> comm, flags column, entry and return probes', () => {
  const l = lines('default.txt');
  assert.equal(l.length, 20); // 18 events, two of them split by a newline inside a path
  assert.deepEqual(rec(l[0], SCHEMAS), {
    comm: '<...>',
    tid: 20244,
    cpu: 0,
    timestampNs: 816_168_251_000n,
    event: 'e',
    location: ENTRY_LOC,
    fields: { name: `${P}/libplug.so`, flags: '0x2', comm: 'my worker-2' },
  });
  assert.deepEqual(rec(l[1], SCHEMAS), {
    comm: '<...>',
    tid: 20244,
    cpu: 0,
    timestampNs: 816_168_539_000n,
    event: 'r',
    location: '0x55614814f3dd <- 0x7f429500e500',
    fields: { h: '0x55615c39e2d0', path: `${P}/libplug.so` },
  });
  assert.equal(rec(l[2], SCHEMAS).fields.name, `${P}/dir with space/lib plug.so`);
  // comm with a space and dashes: `      a-b 3-4567-20246   [000]`
  const ab = rec(l[18], SCHEMAS);
  assert.equal(ab.comm, 'a-b 3-4567');
  assert.equal(ab.tid, 20246);
  assert.equal(ab.tgid, undefined);
  assert.equal(ab.fields.comm, 'a-b 3-4567');
});

test('schema splits string values that contain `" name=` (the kernel does not escape quotes)', () => {
  const l = lines('default.txt');
  assert.deepEqual(rec(l[4], SCHEMAS).fields, { name: `${P}/q" name="evil.so`, flags: '0x2', comm: 'my worker-2' });
  assert.deepEqual(rec(l[5], SCHEMAS).fields, { h: '0x55615c39f140', path: `${P}/q" name="evil.so` });
  // without a schema the generic split still keeps a repeated `name=` inside the value
  assert.deepEqual(rec(l[4]).fields, { name: `${P}/q" name="evil.so`, flags: '0x2', comm: 'my worker-2' });
  // ...but cannot know that `path` is the last field and ` name=` is not a new one
  assert.deepEqual(rec(l[5]).fields, { h: '0x55615c39f140', path: `${P}/q`, name: 'evil.so' });
});

test('non-UTF-8 bytes in a path survive as \\xNN escapes', () => {
  const l = lines('default.txt');
  assert.equal(rec(l[6], SCHEMAS).fields.name, `${P}/bad\\xff\\xfe-é.so`);
  assert.equal(rec(l[7], SCHEMAS).fields.path, `${P}/bad\\xff\\xfe-é.so`);
});

test('a newline inside a value: the first half is `incomplete`, the joined lines parse', () => {
  const l = lines('default.txt');
  const first = parseTraceLine(l[8], SCHEMAS);
  assert.equal(first.ok, false);
  assert.equal((first as { kind: string }).kind, 'incomplete');
  assert.equal((parseTraceLine(l[9], SCHEMAS) as { kind: string }).kind, 'malformed');
  assert.deepEqual(rec(`${l[8]}\n${l[9]}`, SCHEMAS).fields, { name: `${P}/nl\nname=x.so`, flags: '0x2', comm: 'my worker-2' });
  const r = rec(`${l[10]}\n${l[11]}`, SCHEMAS);
  assert.equal(r.event, 'r');
  assert.equal(r.fields.path, `${P}/nl\nname=x.so`);
  // generic split: same outcome for a string that simply has no closing quote yet
  assert.equal((parseTraceLine(l[10]) as { kind: string }).kind, 'incomplete');
  assert.equal(rec(`${l[10]}\n${l[11]}`).fields.path, `${P}/nl\nname=x.so`);
});

test('(fault) becomes null, never the string', () => {
  const l = lines('default.txt');
  assert.deepEqual(rec(l[13], SCHEMAS).fields, { h: '0x0', path: null });
  // a 5005-byte path: the kernel garbles it and faults the next string field
  assert.deepEqual(rec(l[14], SCHEMAS).fields, { name: '/tmp/LLLLLL', flags: '0x2', comm: null });
  assert.deepEqual(rec(l[13]).fields, { h: '0x0', path: null });
  assert.deepEqual(rec(l[14]).fields, { name: '/tmp/LLLLLL', flags: '0x2', comm: null });
});

test('record-tgid: `(  tgid)` column and `(-------)` when unknown', () => {
  const l = lines('tgid.txt');
  const unknown = rec(l[0], SCHEMAS);
  assert.equal(unknown.tgid, undefined);
  assert.equal(unknown.tid, 20254);
  assert.equal(unknown.cpu, 1);
  assert.equal(unknown.timestampNs, 817_313_081_000n);
  // a thread: header comm is the stale cached one, $comm the real one
  assert.deepEqual(rec(l[16], SCHEMAS), {
    comm: 'my worker-2',
    tid: 20255,
    tgid: 20254,
    cpu: 1,
    timestampNs: 817_313_890_000n,
    event: 'e',
    location: '0x7efff8ade500',
    fields: { name: `${P}/libplug.so`, flags: '0x2', comm: 'thr-1-22' },
  });
  const ab = rec(l[18], SCHEMAS);
  assert.equal(ab.comm, 'a-b 3-4567');
  assert.equal(ab.tid, 20256);
  assert.equal(ab.tgid, 20256);
});

test('irq-info=0: no flags column, with and without tgid', () => {
  const n = lines('noirq.txt');
  assert.deepEqual(rec(n[17], SCHEMAS), {
    comm: 'thr-1-22',
    tid: 20271,
    cpu: 1,
    timestampNs: 818_450_490_000n,
    event: 'r',
    location: '0x55754e5161ef <- 0x7f91c4098500',
    fields: { h: '0x7f91bc000ba0', path: `${P}/libplug.so` },
  });
  const t = lines('tgid-noirq.txt');
  const r = rec(t[2], SCHEMAS);
  assert.equal(r.comm, 'my worker-2');
  assert.equal(r.tid, 20297);
  assert.equal(r.tgid, 20297);
  assert.equal(r.cpu, 0);
  assert.equal(r.timestampNs, 819_613_324_000n);
  assert.equal(r.fields.name, `${P}/dir with space/lib plug.so`);
  assert.equal(rec(t[19], SCHEMAS).tgid, undefined);
});

test('every line of every recorded fixture parses (after joining split values)', () => {
  for (const name of ['default.txt', 'tgid.txt', 'noirq.txt', 'tgid-noirq.txt', 'lost.txt', 'sched.txt']) {
    for (const schemas of [SCHEMAS, undefined]) {
      let records = 0;
      let pending: string | null = null;
      for (const line of lines(name)) {
        const text: string = pending === null ? line : `${pending}\n${line}`;
        const r = parseTraceLine(text, schemas);
        if (!r.ok && r.kind === 'incomplete') {
          pending = text;
          continue;
        }
        pending = null;
        if (r.ok) records++;
        else if (r.kind !== 'lost') assert.fail(`${name}: ${text} → ${JSON.stringify(r)}`);
      }
      assert.equal(pending, null);
      assert.equal(records, { 'lost.txt': 114, 'sched.txt': 6 }[name] ?? 18, name);
    }
  }
});

test('LOST notices are a distinct result carrying cpu and count', () => {
  const l = lines('lost.txt');
  assert.deepEqual(parseTraceLine(l[0]), { ok: false, kind: 'lost', reason: 'kernel dropped events', cpu: 0, lost: 3886, exact: true });
  const r = parseTraceLine('CPU:1 [LOST 123 EVENTS]');
  assert.ok(!r.ok && r.kind === 'lost' && r.cpu === 1 && r.lost === 123);
  assert.deepEqual(parseTraceLine('CPU:12 [LOST EVENTS]'), { ok: false, kind: 'lost', reason: 'kernel dropped events', cpu: 12, lost: 1, exact: false });
  const big = parseTraceLine('[LINE TOO BIG]');
  assert.ok(!big.ok && big.kind === 'lost' && big.cpu === -1 && big.lost === 1);
  assert.equal((parseTraceLine('CPU:x [LOST 1 EVENTS]') as { kind: string }).kind, 'malformed');
  assert.equal((parseTraceLine('CPU:1 [LOST 1 EVENTS] junk') as { kind: string }).kind, 'malformed');
});

test('sched tracepoints: no location, unquoted %s values with spaces (schema and generic)', () => {
  const l = lines('sched.txt');
  for (const schemas of [SCHEMAS, undefined]) {
    assert.deepEqual(rec(l[0], schemas), {
      comm: 'my worker-2',
      tid: 20309,
      cpu: 0,
      timestampNs: 821_947_971_000n,
      event: 'sched_process_exec',
      location: '',
      fields: { filename: `${P}/my worker-2`, pid: '20309', old_pid: '20309' },
    });
    assert.deepEqual(rec(l[5], schemas).fields, { comm: 'my worker-2', pid: '20309', prio: '120', group_dead: 'true' });
  }
});

test('lines recorded by the brief (other probe names, extra (fault) fields)', () => {
  const l = lines('kernel-6.18-brief.txt');
  assert.deepEqual(rec(l[0]), {
    comm: 'timeout',
    tid: 2074,
    cpu: 0,
    timestampNs: 196_402_101_000n,
    event: 'dbg',
    location: '0x7ff8daac2060',
    fields: { st: '1' },
  });
  assert.equal(rec(l[1]).comm, '<...>');
  assert.equal(rec(l[1]).cpu, 1);
  assert.deepEqual(rec(l[2]).fields, { name: '/tmp/exp/libplug.so', flags: '0x2' });
  assert.deepEqual(rec(l[3]).fields, { h: '0x564a01f302c0', path: '/tmp/exp/libplug.so', lib2: '/tmp/exp/libplug.so' });
  assert.equal(rec(l[3]).location, '0x5649dcb62185 <- 0x7f2df5a01500');
  assert.deepEqual(rec(l[4]).fields, { h: '0x0', path: null, lib: null, lib2: null });
  const schema: ProbeSchemaMap = {
    dlo_r: { fields: [{ name: 'h', string: false }, { name: 'path', string: true }, { name: 'lib', string: true }, { name: 'lib2', string: true }] },
  };
  assert.deepEqual(rec(l[4], schema).fields, { h: '0x0', path: null, lib: null, lib2: null });
  // the schema says `lib` must be there: l[3] lacks it, so it does not match
  assert.equal((parseTraceLine(l[3], schema) as { kind: string }).kind, 'incomplete');
});

test('3.x layout (crafted from the kernel docs): no flags, 4-char flags, padded names, kprobe locations', () => {
  const l = lines('kernel-3x-crafted.txt').filter((x) => !x.startsWith('#'));
  assert.deepEqual(rec(l[0]), {
    comm: 'zsh',
    tid: 24842,
    cpu: 6,
    timestampNs: 258_544_995_456_000n,
    event: 'zfree_entry',
    location: '0x446420',
    fields: { arg1: '446420', arg2: '79' },
  });
  const exit = rec(l[1]);
  assert.equal(exit.event, 'zfree_exit');
  assert.equal(exit.location, '0x446540 <- 0x446420');
  assert.equal(exit.cpu, 7);
  assert.deepEqual(rec(l[2]), {
    comm: 'bash',
    tid: 1234,
    cpu: 1,
    timestampNs: 1_234_567_890_000n,
    event: 'probe',
    location: '0x400570',
    fields: { a: '1' },
  });
  assert.equal(rec(l[3]).location, 'do_sys_open+0x0/0xe0');
  assert.equal(rec(l[3]).timestampNs, 1_021_980_946_046_000n);
  const d = rec(l[4], { dlo_e: { fields: [{ name: 'name', string: true }, { name: 'flags', string: false }] } });
  assert.equal(d.comm, 'bash');
  assert.equal(d.tid, 1977);
  assert.equal(d.timestampNs, 2_128_457_823_000n);
  assert.deepEqual(d.fields, { name: '/usr/lib/x86_64-linux-gnu/libm.so.6', flags: '0x1' });
  const k = rec(l[5]);
  assert.equal(k.comm, 'kworker/u8:2');
  assert.equal(k.tid, 31337);
  assert.equal(k.cpu, 3);
  assert.equal(k.timestampNs, 5_000_001_000n);
  assert.deepEqual(k.fields, { h: '0x0', path: null });
  const w = rec(l[6]);
  assert.equal(w.comm, 'my-worker-2-12');
  assert.equal(w.tid, 4242);
  assert.deepEqual(w.fields, { name: '', flags: '0x101' });
});

test('comm handling: dashes/digits, the tid is the last -digits; non-ASCII and escaped comms', () => {
  const r = rec('     my-worker-2-1234    [003] .....    10.000001: e: (0x1) a=1');
  assert.equal(r.comm, 'my-worker-2');
  assert.equal(r.tid, 1234);
  assert.equal(r.cpu, 3);
  // `wörker` is 7 bytes, so the kernel pads it with 9 spaces: the dash is not at column 16
  const u = rec('         wörker-77      [000]    1.5: e: (0x1)');
  assert.equal(u.comm, 'wörker');
  assert.equal(u.tid, 77);
  assert.equal(u.timestampNs, 1_500_000_000n);
  assert.deepEqual(u.fields, {});
  const x = rec('     a\\xff-b [1]-88      (     88) [001]    1.000002: e: (0x1) a=1');
  assert.equal(x.comm, 'a\\xff-b [1]');
  assert.equal(x.tid, 88);
  assert.equal(x.tgid, 88);
  // an ASCII comm that mimics a header cannot move the columns: the kernel pads to column 16
  const m = rec(' x-1 [000] 1.0: -99      [002]    3.000000: e: (0x1) a=1');
  assert.equal(m.comm, 'x-1 [000] 1.0: ');
  assert.equal(m.tid, 99);
  assert.equal(m.cpu, 2);
  // empty comm (prctl(PR_SET_NAME, ""))
  assert.equal(rec('                -5       [000]    1.000000: e: (0x1)').comm, '');
  // an event with no location and no output (a tracepoint with an empty format)
  assert.deepEqual(rec('            bash-1       [000]    1.0: e: ').fields, {});
});

test('timestamps: fraction scaled to ns, raw counter clocks, large values', () => {
  const at = (ts: string): bigint => rec(`            bash-1       [000] ${ts}: e: (0x1)`).timestampNs;
  assert.equal(at('0.000001'), 1_000n);
  assert.equal(at('12.5'), 12_500_000_000n);
  assert.equal(at('12.123456789'), 12_123_456_789n);
  assert.equal(at('12.1234567891'), 12_123_456_789n);
  assert.equal(at('123456789'), 123_456_789n); // trace_clock=counter/x86-tsc: no dot, not ns
  assert.equal(at('98765432109876543210'), 98_765_432_109_876_543_210n);
  assert.equal(at('31536000.000001'), 31_536_000_000_001_000n); // a year of uptime
  assert.equal(at('1234567890123456789.000001'), 1_234_567_890_123_456_789_000_001_000n);
});

test('comments, blank lines and non-probe text are not records', () => {
  const kinds = (line: string): string => (parseTraceLine(line) as { kind: string }).kind;
  assert.equal(kinds('# tracer: nop'), 'comment');
  assert.equal(kinds(''), 'comment');
  assert.equal(kinds('     '), 'comment');
  assert.equal(kinds('name=x.so" flags=0x2 comm="my worker-2"'), 'malformed');
  assert.equal(kinds('            bash-1       [000]    1.0: tracing_mark_write: hello world'), 'malformed');
  assert.equal(kinds('            bash-1       [000]    1.0: e: (0x1'), 'malformed');
  assert.equal(kinds('            bash-1       [000]    1.0: e:'), 'malformed');
  assert.equal(kinds('            bash-1       [000]    x.0: e: (0x1)'), 'malformed');
  assert.equal(kinds('            bash-x       [000]    1.0: e: (0x1)'), 'malformed');
});

test('schema: look-alike separators, empty strings, unknown events fall back to generic', () => {
  const s: ProbeSchemaMap = new Map([
    ['e', { fields: [{ name: 'name', string: true }, { name: 'flags', string: false }, { name: 'comm', string: true }] }],
    ['two', { fields: [{ name: 'a', string: true }, { name: 'b', string: true }] }],
    ['none', { fields: [] }],
  ]);
  const hdr = '            bash-1       [000]    1.0: ';
  // the path mimics the rest of the line; the comm (≤15 bytes) is the short field
  assert.deepEqual(rec(`${hdr}e: (0x1) name="/a" flags=0x1 comm="x" flags=0x2 comm="bash"`, s).fields, {
    name: '/a" flags=0x1 comm="x',
    flags: '0x2',
    comm: 'bash',
  });
  assert.deepEqual(rec(`${hdr}two: (0x1) a="" b=""`, s).fields, { a: '', b: '' });
  assert.deepEqual(rec(`${hdr}two: (0x1) a="x" b=(fault)`, s).fields, { a: 'x', b: null });
  assert.deepEqual(rec(`${hdr}two: (0x1) a="(fault)" b="y"`, s).fields, { a: '(fault)', b: 'y' });
  assert.deepEqual(rec(`${hdr}none: (0x1)`, s).fields, {});
  assert.equal((parseTraceLine(`${hdr}none: (0x1) a=1`, s) as { kind: string }).kind, 'malformed');
  assert.equal((parseTraceLine(`${hdr}two: (0x1) a=1 b="y"`, s) as { kind: string }).kind, 'malformed');
  assert.deepEqual(rec(`${hdr}other: (0x1) q="1 2" r=3`, s).fields, { q: '1 2', r: '3' });
  // a record-style schema map works too
  assert.deepEqual(rec(`${hdr}two: (0x1) a="x" b="y"`, { two: s.get('two')! }).fields, { a: 'x', b: 'y' });
});

test('a field named __proto__ is an own data property', () => {
  const r = rec('            bash-1       [000]    1.0: e: (0x1) __proto__=1 constructor="x"');
  assert.equal(Object.getOwnPropertyDescriptor(r.fields, '__proto__')?.value, '1');
  assert.equal(r.fields.constructor, 'x');
  assert.equal(Object.getPrototypeOf(r.fields), Object.prototype);
});

test('fuzz: random bytes and mangled recorded lines never throw and never yield records from garbage', () => {
  let seed = 0x2545f491;
  const rnd = (n: number): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) % n;
  };
  const alphabet = ' -[]()"=:.<>x0123456789abcdefLOSTCPU\\\u00e9\t#';
  const s = new LineSplitter();
  let malformed = 0;
  let total = 0;
  for (let i = 0; i < 3000; i++) {
    const n = rnd(200);
    const b = Buffer.alloc(n);
    for (let k = 0; k < n; k++) b[k] = i % 2 ? rnd(256) : alphabet.charCodeAt(rnd(alphabet.length)) & 0xff;
    for (const line of [...s.push(b), ...s.push(Buffer.from('\n'))]) {
      total++;
      const r = parseTraceLine(line, i % 3 ? SCHEMAS : undefined);
      assert.equal(typeof r.ok, 'boolean');
      if (!r.ok && (r.kind === 'malformed' || r.kind === 'incomplete')) malformed++;
      else if (!r.ok) assert.ok(r.kind === 'comment' || r.kind === 'lost', r.kind);
      else assert.fail(`record from garbage: ${JSON.stringify(line)}`);
    }
  }
  assert.ok(malformed > total * 0.8, `${malformed}/${total}`);
  // mangled real lines: truncations and single-character edits
  const real = lines('tgid.txt').concat(lines('kernel-3x-crafted.txt'));
  for (const line of real) {
    for (let cut = 0; cut <= line.length; cut += 3) {
      const r: ParseResult = parseTraceLine(line.slice(0, cut), SCHEMAS);
      assert.equal(typeof r.ok, 'boolean');
      const m = parseTraceLine(line.slice(0, cut) + String.fromCharCode(rnd(128)) + line.slice(cut + 1));
      assert.equal(typeof m.ok, 'boolean');
    }
  }
});

test('splitting a recorded fixture at every byte boundary gives identical records', () => {
  const data = fixture('tgid.txt');
  const parseAll = (chunks: Buffer[]): unknown[] => {
    const s = new LineSplitter();
    const out: unknown[] = [];
    for (const c of chunks) for (const l of s.push(c)) out.push(parseTraceLine(l, SCHEMAS));
    for (const l of s.end()) out.push(parseTraceLine(l, SCHEMAS));
    return out;
  };
  const whole = parseAll([data]);
  assert.equal(whole.filter((r) => (r as ParseResult).ok).length, 16); // 18 events, 2 split by a newline
  for (let i = 0; i <= data.length; i++) {
    assert.deepEqual(parseAll([data.subarray(0, i), data.subarray(i)]), whole, `split at ${i}`);
  }
});

test('hot path: parsing is fast enough for a busy host', () => {
  const l = lines('default.txt').filter((x) => parseTraceLine(x, SCHEMAS).ok);
  const n = 200_000;
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < n; i++) parseTraceLine(l[i % l.length], SCHEMAS);
  const perLineNs = Number(process.hrtime.bigint() - t0) / n;
  assert.ok(perLineNs < 20_000, `${perLineNs} ns/line`);
});
