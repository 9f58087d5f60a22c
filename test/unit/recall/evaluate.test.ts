/**
 * The recall harness's arithmetic (test/recall/evaluate.ts) and path identity (corpus.ts makeKeyOf):
 * set intersection by identity key, duplicates and extras against precision, method accuracy on the
 * first record, micro-averaged totals, bars at their boundaries.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { makeKeyOf } from '../../recall/corpus';
import { checkBars, evaluateRun, expectedMethod, fmtPct, parseTruth, totals, type ReportedLoad, type RunExpectations } from '../../recall/evaluate';

// /lib and /usr/lib name the same files (merged /usr); everything else is its own identity.
const keyOf = (p: string): string => p.replace(/^\/lib\//, '/usr/lib/');

const exp: RunExpectations = {
  executable: new Set(['/tmp/x/prog']),
  interpreter: new Set(['/usr/lib/ld.so']),
  preload: new Set(['/tmp/x/libpre.so']),
  dlopen: new Set(['/tmp/x/libplug.so']),
};

const TRUTH = parseTruth(
  ['/tmp/x/prog', '/usr/lib/ld.so', '/usr/lib/libc.so.6', '/tmp/x/libpre.so', '/tmp/x/libplug.so', '/tmp/x/libdep.so', '/tmp/x/ext.so\tdlopen', ''].join('\n'),
);

const rec = (p: string, method: string, t = 1): ReportedLoad => ({ path: p, method, timeUnixNano: String(t) });

test('parseTruth: one path per line, optional method hint, deduplicated, blank lines ignored', () => {
  assert.deepEqual(parseTruth('/a\n\n/b\tdlopen\n/a\n/c\r\n'), [{ path: '/a' }, { path: '/b', hint: 'dlopen' }, { path: '/c' }]);
  assert.throws(() => parseTruth('/a\tbogus\n'), /unknown method hint/);
  assert.deepEqual(parseTruth(''), []);
});

test('expectedMethod: hint, then executable, interpreter, preload, dlopen, else needed', () => {
  const m = (p: string, hint?: 'dlopen') => expectedMethod(hint ? { path: p, hint } : { path: p }, keyOf(p), exp);
  assert.equal(m('/tmp/x/prog'), 'executable');
  assert.equal(m('/lib/ld.so'), 'interpreter');
  assert.equal(m('/tmp/x/libpre.so'), 'preload');
  assert.equal(m('/tmp/x/libplug.so'), 'dlopen');
  assert.equal(m('/tmp/x/libdep.so'), 'needed');
  assert.equal(m('/tmp/x/prog', 'dlopen'), 'dlopen');
});

test('the truth against itself scores 100/100/100', () => {
  const self = TRUTH.map((t) => rec(t.path, expectedMethod(t, keyOf(t.path), exp)));
  const e = evaluateRun(TRUTH, self, exp, keyOf);
  assert.deepEqual([e.truth, e.reported, e.matched, e.methodOk], [7, 7, 7, 7]);
  assert.deepEqual([e.missed, e.extra, e.duplicate, e.wrongMethod], [[], [], [], []]);
  const t = totals([e]);
  assert.deepEqual([t.recall, t.precision, t.methodAccuracy], [100, 100, 100]);
  assert.deepEqual(checkBars(t), []);
});

test('loader paths match /proc/<pid>/maps paths by identity, not by string', () => {
  const truth = parseTruth('/usr/lib/libc.so.6\n/usr/lib/ld.so\n');
  const e = evaluateRun(truth, [rec('/lib/libc.so.6', 'needed'), rec('/lib/ld.so', 'interpreter')], exp, keyOf);
  assert.equal(e.matched, 2);
  assert.equal(e.methodOk, 2);
  assert.equal(e.extra.length, 0);
});

test('missed, extra, duplicate and wrong-method objects, and what they do to each ratio', () => {
  const reported = [
    rec('/tmp/x/prog', 'executable', 1),
    rec('/lib/ld.so', 'needed', 2), // wrong method (interpreter expected)
    rec('/tmp/x/libplug.so', 'dlopen', 3),
    rec('/tmp/x/libplug.so', 'dlopen', 4), // duplicate: lowers precision, not recall
    rec('/tmp/x/libother.so', 'dlopen', 5), // extra
    rec('/tmp/x/libdep.so', 'dlopen', 6), // wrong method (needed expected)
  ];
  const e = evaluateRun(TRUTH, reported, exp, keyOf);
  assert.equal(e.truth, 7);
  assert.equal(e.reported, 6);
  assert.equal(e.matched, 4);
  assert.equal(e.methodOk, 2);
  assert.deepEqual(e.missed.map((n) => [n.path, n.expected]), [
    ['/usr/lib/libc.so.6', 'needed'],
    ['/tmp/x/libpre.so', 'preload'],
    ['/tmp/x/ext.so', 'dlopen'],
  ]);
  assert.deepEqual(e.extra.map((n) => n.path), ['/tmp/x/libother.so']);
  assert.deepEqual(e.duplicate.map((n) => n.path), ['/tmp/x/libplug.so']);
  assert.deepEqual(e.wrongMethod.map((n) => [n.path, n.expected, n.reported]), [
    ['/lib/ld.so', 'interpreter', 'needed'],
    ['/tmp/x/libdep.so', 'needed', 'dlopen'],
  ]);
  const t = totals([e]);
  assert.equal(t.recall, (100 * 4) / 7);
  assert.equal(t.precision, (100 * 4) / 6);
  assert.equal(t.methodAccuracy, 50);
});

test('method accuracy is judged on the first record by timestamp, whatever the input order', () => {
  const truth = parseTruth('/tmp/x/libdep.so\n');
  const e = evaluateRun(truth, [rec('/tmp/x/libdep.so', 'dlopen', 9), rec('/tmp/x/libdep.so', 'needed', 3)], exp, keyOf);
  assert.equal(e.methodOk, 1);
  assert.deepEqual(e.duplicate.map((n) => n.reported), ['dlopen']);
});

test('truth entries with the same identity count once', () => {
  const truth = parseTruth('/lib/libc.so.6\n/usr/lib/libc.so.6\n');
  const e = evaluateRun(truth, [], exp, keyOf);
  assert.equal(e.truth, 1);
  assert.equal(e.missed.length, 1);
  const t = totals([e]);
  assert.equal(t.recall, 0);
  assert.equal(t.precision, null);
  assert.equal(t.methodAccuracy, null);
});

test('totals are micro-averaged over runs', () => {
  const a = evaluateRun(parseTruth('/a\n/b\n/c\n/d\n'), [rec('/a', 'needed')], exp, keyOf); // 1/4
  const b = evaluateRun(parseTruth('/e\n'), [rec('/e', 'needed')], exp, keyOf); // 1/1
  const t = totals([a, b]);
  assert.equal(t.runs, 2);
  assert.equal(t.truth, 5);
  assert.equal(t.matched, 2);
  assert.equal(t.recall, 40);
  assert.equal(t.precision, 100);
});

test('bars at their boundaries; n/a fails; percentages never round up to 100', () => {
  const mk = (recall: number | null, precision: number | null, methodAccuracy: number | null) => ({
    ...totals([]),
    recall,
    precision,
    methodAccuracy,
  });
  assert.deepEqual(checkBars(mk(99.5, 100, 99)), []);
  assert.equal(checkBars(mk((100 * 1990) / 2000, 100, 99)).length, 0); // exactly 99.5
  assert.match(checkBars(mk((100 * 1989) / 2000, 100, 99)).join(), /recall 99\.45 < 99\.5/);
  assert.match(checkBars(mk(100, (100 * 999) / 1000, 100)).join(), /precision 99\.90 < 100/);
  assert.match(checkBars(mk(100, 100, 98.99)).join(), /methodAccuracy/);
  assert.match(checkBars(mk(null, 100, 100)).join(), /recall: n\/a/);
  assert.equal(fmtPct((100 * 9999) / 10000), '99.99');
  assert.equal(fmtPct((100 * 99999) / 100000), '99.99');
  assert.equal(fmtPct(100), '100');
  assert.equal(fmtPct(null), 'n/a');
});

test('makeKeyOf: a symlink and its target are one object; a relative or vanished path is its own', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-recall-unit-'));
  try {
    const real = path.join(dir, 'libreal.so');
    fs.writeFileSync(real, 'x');
    fs.symlinkSync('libreal.so', path.join(dir, 'liblink.so'));
    const k = makeKeyOf();
    assert.equal(k(path.join(dir, 'liblink.so')), k(real));
    assert.equal(k(path.join(dir, '.', 'sub', '..', 'libreal.so')), k(real));
    assert.equal(k(`${real} (deleted)`), k(real));
    assert.equal(k('libreal.so'), 'unresolved:libreal.so');
    assert.notEqual(k('libreal.so'), k(real));
    assert.equal(k(path.join(dir, 'gone.so')), `path:${path.join(dir, 'gone.so')}`);
    if (fs.existsSync('/lib/x86_64-linux-gnu/libc.so.6') && fs.realpathSync('/lib') === '/usr/lib') {
      assert.equal(k('/lib/x86_64-linux-gnu/libc.so.6'), k('/usr/lib/x86_64-linux-gnu/libc.so.6'));
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
