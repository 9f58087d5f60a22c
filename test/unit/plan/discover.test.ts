import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { globToRegExp, inventoryLibraries, selectLibraries, type LibraryFile } from '../../../src/plan/discover';
import { LoadFilter } from '../../../src/capture/filters';
import { assertPlanUsable, planProbes } from '../../../src/plan/plan';
import { ProcReader } from '../../../src/host/proc-reader';
import { isSoloadError } from '../../../src/errors';
import type { LoadEvent } from '../../../src/types';

const lib = (p: string, aliases: string[] = [p], ino = 1): LibraryFile => ({ path: p, aliases, dev: 1, ino, usedBy: [] });

test('globToRegExp: * stays within a path element, ** crosses them', () => {
  assert.ok(globToRegExp('/tmp/*').test('/tmp/x.so'));
  assert.ok(!globToRegExp('/tmp/*').test('/tmp/a/x.so'));
  assert.ok(globToRegExp('/tmp/**').test('/tmp/a/x.so'));
  assert.ok(globToRegExp('libssl.so.[13]').test('libssl.so.3'));
  assert.ok(!globToRegExp('lib?.so').test('libab.so'));
  assert.ok(globToRegExp('a+b(c).so').test('a+b(c).so'));
});

test('selectLibraries: soname, absolute path by alias, basename glob, full-path glob', () => {
  const inv = [lib('/usr/lib/x86_64-linux-gnu/libc.so.6', ['/lib/x86_64-linux-gnu/libc.so.6'], 1), lib('/usr/lib/x86_64-linux-gnu/libdl.so.2', undefined, 2), lib('/opt/app/libc.so.6', undefined, 3)];
  assert.deepEqual(selectLibraries('libc.so.6', inv).map((l) => l.ino), [1, 3]);
  assert.deepEqual(selectLibraries('/lib/x86_64-linux-gnu/libc.so.6', inv).map((l) => l.ino), [1]);
  assert.deepEqual(selectLibraries('libd*.so*', inv).map((l) => l.ino), [2]);
  assert.deepEqual(selectLibraries('/opt/**', inv).map((l) => l.ino), [3]);
  assert.deepEqual(selectLibraries('libnothing.so', inv), []);
});

test('inventoryLibraries dedupes one inode reached by two paths and records who maps it', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-inv-'));
  const libdir = path.join(root, 'lib');
  fs.mkdirSync(libdir);
  const real = path.join(libdir, 'libfoo.so.1');
  fs.writeFileSync(real, 'x');
  fs.symlinkSync(libdir, path.join(root, 'lib64'));
  const proc = path.join(root, 'proc');
  fs.mkdirSync(path.join(proc, '42'), { recursive: true });
  fs.writeFileSync(
    path.join(proc, '42', 'maps'),
    `7f00-7f01 r-xp 00000000 08:01 123 ${path.join(root, 'lib64', 'libfoo.so.1')}\n7f02-7f03 rw-p 00000000 00:00 0 [heap]\n`,
  );
  const inv = inventoryLibraries(new ProcReader(proc), [libdir]);
  const foo = inv.filter((l) => l.path.endsWith('libfoo.so.1'));
  assert.equal(foo.length, 1);
  assert.equal(foo[0]!.path, real);
  assert.deepEqual(foo[0]!.usedBy, [42]);
  assert.ok(foo[0]!.aliases.includes(path.join(root, 'lib64', 'libfoo.so.1')));
});

test('planProbes: one probe per matching file, symbol offsets, skips with reasons', () => {
  const inv = [lib('/a/libc.so.6', undefined, 1), lib('/b/libc.so.6', undefined, 2), lib('/a/libdl.so.2', undefined, 3)];
  const symbols = {
    resolve(file: string, symbol: string) {
      if (file === '/a/libdl.so.2') throw Object.assign(new Error(`symbol ${symbol} not found in ${file}`), { code: 'SOLOAD_ERR_SYMBOL_NOT_FOUND' });
      return { fileOffset: file === '/a/libc.so.6' ? 0x85500 : 0x1000, table: 'dynsym' };
    },
  };
  const plan = planProbes(
    [
      { name: 'e', library: 'libc.so.6', symbol: 'dlopen', kind: 'entry', fetch: { name: '+0(%di):ustring' }, role: 'dlopen.entry' },
      { name: 'd', library: 'libdl.so.2', symbol: 'dlopen', kind: 'entry', fetch: {}, optional: true },
      { name: 'o', library: '/a/libdl.so.2', offset: '0x20', kind: 'return', fetch: { r: '$retval' } },
      { name: 'm', library: 'libmissing.so', symbol: 'f', kind: 'entry', fetch: {}, optional: true },
    ],
    inv,
    symbols,
  );
  assert.deepEqual(plan.specs.map((s) => `${s.event}@${s.path}:${s.offset.toString(16)}:${s.role}:${s.symbolSource}`), [
    'e@/a/libc.so.6:85500:dlopen.entry:dynsym',
    'e_1@/b/libc.so.6:1000:dlopen.entry:dynsym',
    'o@/a/libdl.so.2:20:custom:config offset',
  ]);
  assert.deepEqual(plan.skipped.map((s) => [s.probe, s.code, s.optional]), [
    ['d', 'SOLOAD_ERR_SYMBOL_NOT_FOUND', true],
    ['m', 'SOLOAD_ERR_LIBRARY_NOT_FOUND', true],
  ]);
  assert.doesNotThrow(() => assertPlanUsable(plan));
  const strict = planProbes([{ name: 'm', library: 'libmissing.so', symbol: 'f', kind: 'entry', fetch: {} }], inv, symbols);
  assert.throws(() => assertPlanUsable(strict), (e: unknown) => isSoloadError(e, 'SOLOAD_ERR_LIBRARY_NOT_FOUND') && /libmissing/.test(e.message));
  assert.throws(() => assertPlanUsable({ specs: [], skipped: [] }), (e: unknown) => isSoloadError(e, 'SOLOAD_ERR_NOTHING_TO_PROBE'));
});

test('LoadFilter: pids, comms, path globs, self', () => {
  const ev = (o: Partial<LoadEvent>): LoadEvent => ({ timestampNs: 0n, pid: 5, tid: 5, comm: 'app', method: 'dlopen', result: 'ok', probe: 'p', path: '/tmp/evil.so', ...o });
  const base = { pids: [], excludePids: [], comms: [], excludeComms: [], pathInclude: [], pathExclude: [], excludeSelf: true };
  assert.ok(new LoadFilter(base, 99).accepts(ev({})));
  assert.ok(!new LoadFilter(base, 5).accepts(ev({})), 'self excluded');
  assert.ok(new LoadFilter({ ...base, excludeSelf: false }, 5).accepts(ev({})));
  assert.ok(!new LoadFilter({ ...base, pids: [6] }).accepts(ev({})));
  assert.ok(!new LoadFilter({ ...base, excludeComms: ['app'] }).accepts(ev({})));
  assert.ok(new LoadFilter({ ...base, pathInclude: ['/tmp/*'] }).accepts(ev({})));
  assert.ok(!new LoadFilter({ ...base, pathExclude: ['/tmp/*'] }).accepts(ev({})));
  assert.ok(!new LoadFilter({ ...base, pathInclude: ['/usr/**'] }).accepts(ev({})));
  assert.ok(new LoadFilter({ ...base, pathInclude: ['libfoo*'] }).accepts(ev({ path: undefined, requestedName: 'libfoo.so' })));
});
