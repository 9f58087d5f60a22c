import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildProbeLine, checkFilter, isProbeablePath, parseProbeListing, probeAliases } from '../../../src/tracefs/probe-line';
import type { SoloadError } from '../../../src/errors';
import type { ProbeSpec } from '../../../src/types';

test('buildProbeLine renders entry and return probes exactly as uprobe_events wants them', () => {
  const fetch = [{ name: 'name', arg: '+0(%di):ustring' }, { name: 'flags', arg: '%si:x32' }];
  assert.equal(
    buildProbeLine('soload_1', { event: 'dlopen_entry', kind: 'entry', path: '/lib/libc.so.6', offset: 0x85500, fetch, role: 'dlopen.entry' }),
    'p:soload_1/dlopen_entry /lib/libc.so.6:0x85500 name=+0(%di):ustring flags=%si:x32',
  );
  assert.equal(buildProbeLine('g', { event: 'r', kind: 'return', path: '/l.so', offset: 16, fetch: [], role: 'custom' }), 'r:g/r /l.so:0x10');
  assert.throws(() => buildProbeLine('g', { event: 'r', kind: 'entry', path: '/a b/l.so', offset: 1, fetch: [], role: 'custom' }), /SOLOAD_ERR_PATH_NOT_PROBEABLE|whitespace/);
  assert.equal(buildProbeLine('g', { event: 'r', kind: 'entry', path: '/a b/l.so', offset: 1, fetch: [], role: 'custom' }, '/run/soload/g/0-l.so'), 'p:g/r /run/soload/g/0-l.so:0x1');
});


test('defect 3: files whose paths hold whitespace get deterministic aliases, in order of first appearance', () => {
  const s = (p: string, event: string): ProbeSpec => ({ event, kind: 'entry', path: p, offset: 1, fetch: [], role: 'custom' });
  const a = probeAliases([s('/usr/lib/libc.so.6', 'a'), s('/opt/my app/lib/libc.so.6', 'b'), s('/opt/my app/lib/libc.so.6', 'c'), s('/x\ty/ld linux.so', 'd')], '/run/soload/soload_1');
  assert.deepEqual([...a], [
    ['/opt/my app/lib/libc.so.6', '/run/soload/soload_1/0-libc.so.6'],
    ['/x\ty/ld linux.so', '/run/soload/soload_1/1-ld_linux.so'],
  ]);
  assert.equal(parseProbeListing('p:soload_1/b /run/soload/soload_1/0-libc.so.6:0x0000000000000001\n')[0]!.event, 'b');
});

test('hostile library paths never reach uprobe_events verbatim: each is aliased, and refused without an alias', () => {
  const s = (p: string, event: string): ProbeSpec => ({ event, kind: 'entry', path: p, offset: 1, fetch: [], role: 'custom' });
  const hostile = [
    '/r/new\nline/ld.so', // a newline would end the definition and start another
    '/r/q"uo\'te/libc.so.6',
    '/r/back\\slash/libc.so.6',
    '/r/bad\\xff\\xfe/libc.so.6', // soload's escape of non-UTF-8 bytes: the text names another file
    '/r/pct%s/libc.so.6',
    '/r/é/libc.so.6',
    '/r/tab\there/libc.so.6',
    '/r/ansi\u001b[31m/libc.so.6',
    '/r/colon:0x10/libc.so.6',
  ];
  for (const p of hostile) {
    assert.equal(isProbeablePath(p), false, JSON.stringify(p));
    assert.throws(() => buildProbeLine('g', s(p, 'e')), (e: SoloadError) => e.code === 'SOLOAD_ERR_PATH_NOT_PROBEABLE', JSON.stringify(p));
  }
  const aliases = probeAliases([s('/usr/lib/x86_64-linux-gnu/libc.so.6', 'a'), ...hostile.map((p, i) => s(p, `h${i}`))], '/run/soload/g');
  assert.equal(aliases.size, hostile.length);
  for (const [i, p] of hostile.entries()) {
    const alias = aliases.get(p)!;
    assert.match(alias, /^\/run\/soload\/g\/\d+-[A-Za-z0-9._+-]+$/);
    const line = buildProbeLine('g', s(p, `h${i}`), alias);
    assert.equal(line, `p:g/h${i} ${alias}:0x1`);
    assert.ok(!line.includes('\n') && !line.includes('"') && !line.includes('\\'));
  }
  assert.equal(aliases.get('/r/new\nline/ld.so'), '/run/soload/g/0-ld.so');
  assert.equal(isProbeablePath('/usr/lib/x86_64-linux-gnu/libc.so.6'), true);
  assert.equal(isProbeablePath('/opt/app-1.2/lib/libstdc++.so.6'), true);
});

test('probe names, fetch arguments and filters with line breaks or control characters are refused', () => {
  const p: ProbeSpec = { event: 'e', kind: 'entry', path: '/l.so', offset: 1, fetch: [], role: 'custom' };
  const invalid = (e: SoloadError) => e.code === 'SOLOAD_ERR_PROBE_INVALID';
  assert.throws(() => buildProbeLine('g\nx', p), invalid);
  assert.throws(() => buildProbeLine('g', { ...p, event: 'e\n-:other/ev' }), invalid);
  assert.throws(() => buildProbeLine('g', { ...p, fetch: [{ name: 'a', arg: '%di\np:x/y /bin/sh:0x1' }] }), invalid);
  assert.throws(() => checkFilter('e', 'n > 0\nx'), invalid);
  assert.equal(checkFilter('e', 'handle != 0 && x1 != 0'), 'handle != 0 && x1 != 0');
});
