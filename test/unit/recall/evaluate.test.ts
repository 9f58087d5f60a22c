/**
 * The recall harness's arithmetic (test/recall/evaluate.ts): exact-string matching of file.path with
 * the truth (only " (deleted)" is normalised), duplicates and extras against precision, method and
 * flag accuracy on the first record, path hygiene, micro-averaged totals (informational rows apart),
 * bars at their boundaries.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  checkBars,
  DEFAULT_BARS,
  evaluateRun,
  expectedMethod,
  fmtPct,
  formatTable,
  idealRecord,
  parseTruth,
  pathProblems,
  totals,
  type ReportedLoad,
  type RunExpectations,
} from '../../recall/evaluate';

const exp: RunExpectations = {
  executable: new Set(['/tmp/x/prog']),
  interpreter: new Set(['/usr/lib/ld.so']),
  preload: new Set(['/tmp/x/libpre.so']),
  dlopen: new Set(['/tmp/x/libplug.so', '/memfd:libm.so', '/usr/lib/libtest.so']),
  hostPath: new Map([['/usr/lib/libtest.so', '/tmp/x/chroot/usr/lib/libtest.so']]),
};

const TRUTH = parseTruth(
  ['/tmp/x/prog', '/usr/lib/ld.so', '/usr/lib/libc.so.6', '/tmp/x/libpre.so', '/tmp/x/libplug.so', '/tmp/x/libdep.so', '/tmp/x/ext.so\tdlopen', ''].join('\n'),
);

const rec = (p: string, method: string, t = 1, more: Partial<ReportedLoad> = {}): ReportedLoad => ({ path: p, method, timeUnixNano: String(t), ...more });

test('parseTruth: one path per line, optional method hint, deduplicated, blank lines ignored', () => {
  assert.deepEqual(parseTruth('/a\n\n/b\tdlopen\n/a\n/c\r\n'), [{ path: '/a' }, { path: '/b', hint: 'dlopen' }, { path: '/c' }]);
  assert.throws(() => parseTruth('/a\tbogus\n'), /unknown method hint/);
  assert.deepEqual(parseTruth(''), []);
});

test('parseTruth strips a trailing " (deleted)" (only trailing) and records it', () => {
  assert.deepEqual(parseTruth('/memfd:libm.so (deleted)\n/tmp/x/gone.so (deleted)\tdlopen\n/tmp/x/a (deleted) b\n'), [
    { path: '/memfd:libm.so', deleted: true },
    { path: '/tmp/x/gone.so', hint: 'dlopen', deleted: true },
    { path: '/tmp/x/a (deleted) b' },
  ]);
  // the same object before and after its unlink counts once (the first line wins)
  assert.deepEqual(parseTruth('/tmp/x/l.so\n/tmp/x/l.so (deleted)\n'), [{ path: '/tmp/x/l.so' }]);
});

test('expectedMethod: hint, then executable, interpreter, preload, dlopen, else needed; by exact path', () => {
  const m = (p: string, hint?: 'dlopen') => expectedMethod(hint ? { path: p, hint } : { path: p }, exp);
  assert.equal(m('/tmp/x/prog'), 'executable');
  assert.equal(m('/usr/lib/ld.so'), 'interpreter');
  assert.equal(m('/lib/ld.so'), 'needed'); // an alias is not the interpreter's path
  assert.equal(m('/tmp/x/libpre.so'), 'preload');
  assert.equal(m('/tmp/x/libplug.so'), 'dlopen');
  assert.equal(m('/tmp/x/libdep.so'), 'needed');
  assert.equal(m('/tmp/x/prog', 'dlopen'), 'dlopen');
});

test('idealRecord: method, deleted from the truth, memfd from "/memfd:", host path from the expectations', () => {
  assert.deepEqual(idealRecord({ path: '/tmp/x/libdep.so' }, exp), { path: '/tmp/x/libdep.so', method: 'needed' });
  assert.deepEqual(idealRecord({ path: '/memfd:libm.so', deleted: true }, exp), { path: '/memfd:libm.so', method: 'dlopen', deleted: true, memfd: true });
  assert.deepEqual(idealRecord({ path: '/usr/lib/libtest.so' }, exp), { path: '/usr/lib/libtest.so', method: 'dlopen', hostPath: '/tmp/x/chroot/usr/lib/libtest.so' });
});

test('the truth against itself scores 100 % throughout', () => {
  const e = evaluateRun(TRUTH, TRUTH.map((t) => idealRecord(t, exp)), exp);
  assert.deepEqual([e.truth, e.reported, e.matched, e.methodOk, e.flagsOk], [7, 7, 7, 7, 7]);
  assert.deepEqual([e.missed, e.extra, e.duplicate, e.wrongMethod, e.wrongFlags, e.badPath], [[], [], [], [], [], []]);
  const t = totals([e]);
  assert.deepEqual([t.recall, t.precision, t.methodAccuracy, t.flagAccuracy, t.pathHygiene], [100, 100, 100, 100, 100]);
  assert.deepEqual(checkBars(t), []);
});

test('paths match by exact string only: a merged-/usr alias, a symlink or an unclean spelling is a miss plus an extra', () => {
  const truth = parseTruth('/usr/lib/x86_64-linux-gnu/libc.so.6\n/usr/lib/ld.so\n/tmp/x/libplug.so\n');
  const e = evaluateRun(
    truth,
    [rec('/lib/x86_64-linux-gnu/libc.so.6', 'needed', 1), rec('/usr/lib/ld.so', 'interpreter', 2), rec('/tmp/x//libplug.so', 'dlopen', 3)],
    exp,
  );
  assert.equal(e.matched, 1);
  assert.deepEqual(e.missed.map((n) => n.path), ['/usr/lib/x86_64-linux-gnu/libc.so.6', '/tmp/x/libplug.so']);
  assert.deepEqual(e.extra.map((n) => n.path), ['/lib/x86_64-linux-gnu/libc.so.6', '/tmp/x//libplug.so']);
  const t = totals([e]);
  assert.equal(t.recall, 100 / 3);
  assert.equal(t.precision, 100 / 3);
});

test('missed, extra, duplicate and wrong-method objects, and what they do to each ratio', () => {
  const reported = [
    rec('/tmp/x/prog', 'executable', 1),
    rec('/usr/lib/ld.so', 'needed', 2), // wrong method (interpreter expected)
    rec('/tmp/x/libplug.so', 'dlopen', 3),
    rec('/tmp/x/libplug.so', 'dlopen', 4), // duplicate: lowers precision, not recall
    rec('/tmp/x/libother.so', 'dlopen', 5), // extra
    rec('/tmp/x/libdep.so', 'dlopen', 6), // wrong method (needed expected)
  ];
  const e = evaluateRun(TRUTH, reported, exp);
  assert.equal(e.truth, 7);
  assert.equal(e.reported, 6);
  assert.equal(e.matched, 4);
  assert.equal(e.methodOk, 2);
  assert.equal(e.flagsOk, 4);
  assert.deepEqual(e.missed.map((n) => [n.path, n.expected]), [
    ['/usr/lib/libc.so.6', 'needed'],
    ['/tmp/x/libpre.so', 'preload'],
    ['/tmp/x/ext.so', 'dlopen'],
  ]);
  assert.deepEqual(e.extra.map((n) => n.path), ['/tmp/x/libother.so']);
  assert.deepEqual(e.duplicate.map((n) => n.path), ['/tmp/x/libplug.so']);
  assert.deepEqual(e.wrongMethod.map((n) => [n.path, n.expected, n.reported]), [
    ['/usr/lib/ld.so', 'interpreter', 'needed'],
    ['/tmp/x/libdep.so', 'needed', 'dlopen'],
  ]);
  const t = totals([e]);
  assert.equal(t.recall, (100 * 4) / 7);
  assert.equal(t.precision, (100 * 4) / 6);
  assert.equal(t.methodAccuracy, 50);
  assert.equal(t.flagAccuracy, 100);
});

test('method accuracy is judged on the first record by timestamp, whatever the input order', () => {
  const truth = parseTruth('/tmp/x/libdep.so\n');
  const e = evaluateRun(truth, [rec('/tmp/x/libdep.so', 'dlopen', 9), rec('/tmp/x/libdep.so', 'needed', 3)], exp);
  assert.equal(e.methodOk, 1);
  assert.deepEqual(e.duplicate.map((n) => n.reported), ['dlopen']);
});

test('file flags: deleted and memfd must match the truth both ways; host path only checked when reported', () => {
  const truth = parseTruth('/memfd:libm.so (deleted)\n/tmp/x/gone.so (deleted)\n/tmp/x/libdep.so\n/usr/lib/libtest.so\n');
  const e = evaluateRun(
    truth,
    [
      rec('/memfd:libm.so', 'dlopen', 1, { deleted: true }), // memfd flag missing
      rec('/tmp/x/gone.so', 'needed', 2), // deleted flag missing
      rec('/tmp/x/libdep.so', 'needed', 3, { deleted: true }), // deleted although maps did not say so
      rec('/usr/lib/libtest.so', 'dlopen', 4, { hostPath: '/usr/lib/libtest.so' }), // wrong host path
    ],
    exp,
  );
  assert.equal(e.matched, 4);
  assert.equal(e.flagsOk, 0);
  assert.deepEqual(e.wrongFlags.map((n) => [n.path, n.expected]), [
    ['/memfd:libm.so', 'soload.file.memfd=true'],
    ['/tmp/x/gone.so', 'soload.file.deleted=true'],
    ['/tmp/x/libdep.so', 'soload.file.deleted=false'],
    ['/usr/lib/libtest.so', 'soload.host_path=/tmp/x/chroot/usr/lib/libtest.so'],
  ]);
  assert.equal(totals([e]).flagAccuracy, 0);
  assert.match(checkBars({ ...totals([e]), recall: 100, precision: 100, methodAccuracy: 100 }).join(), /flagAccuracy 0\.00 < 100/);

  // without soload.host_path the chroot object's flags are right; with the right one too
  const ok = evaluateRun(parseTruth('/usr/lib/libtest.so\n'), [rec('/usr/lib/libtest.so', 'dlopen')], exp);
  assert.equal(ok.flagsOk, 1);
  const ok2 = evaluateRun(parseTruth('/usr/lib/libtest.so\n'), [rec('/usr/lib/libtest.so', 'dlopen', 1, { hostPath: '/tmp/x/chroot/usr/lib/libtest.so' })], exp);
  assert.equal(ok2.flagsOk, 1);
});

test('pathProblems: clean kernel paths pass; fd indirection, "//", ".", "..", " (deleted)", relative fail', () => {
  for (const p of ['/usr/lib/x86_64-linux-gnu/libc.so.6', '/memfd:libmemfd.so', '/tmp/x/lib..so', '/tmp/x/.hidden/l.so', '/a b/l.so']) assert.deepEqual(pathProblems(p), [], p);
  assert.deepEqual(pathProblems('/proc/self/fd/3'), ['/proc/.../fd/ path']);
  assert.deepEqual(pathProblems('/proc/4242/fd/3'), ['/proc/.../fd/ path']);
  assert.deepEqual(pathProblems('/tmp//x/l.so'), ['"//"']);
  assert.deepEqual(pathProblems('/tmp/./x/l.so'), ['"." component']);
  assert.deepEqual(pathProblems('/tmp/x/bin/../lib/libA.so'), ['".." component']);
  assert.deepEqual(pathProblems('/memfd:libmemfd.so (deleted)'), ['" (deleted)" suffix']);
  assert.deepEqual(pathProblems('lib/l.so'), ['not absolute']);
});

test('path hygiene counts every unclean record (duplicates too) against the records reported', () => {
  const truth = parseTruth('/tmp/x/libA.so\n');
  const e = evaluateRun(truth, [rec('/tmp/x/libA.so', 'needed', 1), rec('/tmp/x/bin/../libA.so', 'needed', 2), rec('/tmp/x/bin/../libA.so', 'needed', 3), rec('/proc/self/fd/3', 'dlopen', 4)], exp);
  assert.deepEqual(e.badPath.map((n) => n.path), ['/tmp/x/bin/../libA.so', '/tmp/x/bin/../libA.so', '/proc/self/fd/3']);
  const t = totals([e]);
  assert.equal(t.badPath, 3);
  assert.equal(t.pathHygiene, 25);
  assert.equal(t.recall, 100);
  assert.match(checkBars(t).join(), /pathHygiene 25\.00 < 100/);
});

test('truth entries with the same path count once', () => {
  const truth = parseTruth('/usr/lib/libc.so.6\n/usr/lib/libc.so.6\n');
  const e = evaluateRun(truth, [], exp);
  assert.equal(e.truth, 1);
  assert.equal(e.missed.length, 1);
  const t = totals([e]);
  assert.equal(t.recall, 0);
  assert.equal(t.precision, null);
  assert.equal(t.methodAccuracy, null);
  assert.equal(t.pathHygiene, null);
});

test('totals are micro-averaged over runs', () => {
  const a = evaluateRun(parseTruth('/a\n/b\n/c\n/d\n'), [rec('/a', 'needed')], exp); // 1/4
  const b = evaluateRun(parseTruth('/e\n'), [rec('/e', 'needed')], exp); // 1/1
  const t = totals([a, b]);
  assert.equal(t.runs, 2);
  assert.equal(t.truth, 5);
  assert.equal(t.matched, 2);
  assert.equal(t.recall, 40);
  assert.equal(t.precision, 100);
});

test('bars at their boundaries; n/a fails; percentages never round up to 100', () => {
  const mk = (recall: number | null, precision: number | null, methodAccuracy: number | null, flagAccuracy: number | null = 100, pathHygiene: number | null = 100) => ({
    ...totals([]),
    recall,
    precision,
    methodAccuracy,
    flagAccuracy,
    pathHygiene,
  });
  assert.deepEqual(DEFAULT_BARS, { recall: 99.5, precision: 100, methodAccuracy: 99, flagAccuracy: 100, pathHygiene: 100 });
  assert.deepEqual(checkBars(mk(99.5, 100, 99)), []);
  assert.equal(checkBars(mk((100 * 1990) / 2000, 100, 99)).length, 0); // exactly 99.5
  assert.match(checkBars(mk((100 * 1989) / 2000, 100, 99)).join(), /recall 99\.45 < 99\.5/);
  assert.match(checkBars(mk(100, (100 * 999) / 1000, 100)).join(), /precision 99\.90 < 100/);
  assert.match(checkBars(mk(100, 100, 98.99)).join(), /methodAccuracy/);
  assert.match(checkBars(mk(100, 100, 100, 100, (100 * 9999) / 10000)).join(), /pathHygiene 99\.99 < 100/);
  assert.match(checkBars(mk(100, 100, 100, null)).join(), /flagAccuracy: n\/a/);
  assert.match(checkBars(mk(null, 100, 100)).join(), /recall: n\/a/);
  assert.equal(fmtPct((100 * 9999) / 10000), '99.99');
  assert.equal(fmtPct((100 * 99999) / 100000), '99.99');
  assert.equal(fmtPct(100), '100');
  assert.equal(fmtPct(null), 'n/a');
});

test('formatTable: informational rows are marked, printed, and kept out of TOTAL by the caller', () => {
  const judged = totals([evaluateRun(parseTruth('/a\n/b\n'), [rec('/a', 'needed'), rec('/b', 'needed')], exp)]);
  const info = totals([evaluateRun(parseTruth('/c\n/d\n'), [], exp)]);
  const text = formatTable(
    [
      { name: 'judged', t: judged, failed: 1 },
      { name: 'racy', t: info, failed: 5, informational: true },
    ],
    totals([evaluateRun(parseTruth('/a\n/b\n'), [rec('/a', 'needed'), rec('/b', 'needed')], exp)]),
  );
  const lines = text.split('\n');
  const row = (name: string) => lines.find((l) => l.startsWith(name))!.trim().split(/\s+/);
  assert.equal(row('racy')[1], '(i)');
  assert.equal(row('racy')[5], '0.00'); // its recall is shown ("racy", "(i)", runs, truth, reported, recall)
  assert.equal(row('TOTAL')[4], '100'); // TOTAL recall: the judged row only
  assert.equal(row('TOTAL').at(-1), '1'); // failed-dlopen total leaves the informational row out
  assert.match(lines.at(-1)!, /^\(i\) informational: .*not in TOTAL/);
});
