import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildProbeLine, parseProbeListing, probeAliases } from '../../../src/tracefs/probe-line';
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
