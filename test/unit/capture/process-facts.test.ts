import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ProcessFacts, type FactsHost } from '../../../src/capture/process-facts';
import type { TraceRecord } from '../../../src/types';

const rec = (event: string, fields: Record<string, string | null>, pid: number, ts = 5n): TraceRecord => ({ comm: 'x', tid: pid, tgid: pid, cpu: 0, timestampNs: ts, event, location: '', fields });

function host() {
  const calls: string[] = [];
  const h: FactsHost = {
    identify: (pid, moved) => void calls.push(`identify ${pid}${moved ? ' moved' : ''}`),
    chroot: (pid, dir) => void calls.push(`chroot ${pid} ${dir}`),
    cwdOf: (pid) => (pid === 1 ? '/home/u' : undefined),
  };
  return { h, calls };
}

test('fork seeds and inherits cwd, views and memfds; an unknown parent is identified while alive', () => {
  const { h, calls } = host();
  const f = new ProcessFacts(h);
  f.memfds.onEntry(1, 'libmem.so');
  f.memfds.onReturn(1, 1, 4);
  f.onFork(1, 2);
  assert.equal(f.cwd.get(2), '/home/u');
  assert.equal(f.memfds.nameOf(2, 4), 'libmem.so');
  assert.deepEqual(calls, ['identify 1']);
});

test('chroot: relative directory made absolute from the followed cwd; faulted string → identify as moved', () => {
  const { h, calls } = host();
  const f = new ProcessFacts(h);
  f.cwd.seed(7, '/srv');
  f.handle('chroot.entry', rec('chroot_entry', { path: 'jail' }, 7));
  f.handle('chroot.return', rec('chroot_return', { rc: '0' }, 7));
  f.handle('chroot.entry', rec('chroot_entry', { path: null }, 8));
  f.handle('chroot.return', rec('chroot_return', { rc: '0' }, 8));
  f.handle('chroot.entry', rec('chroot_entry', { path: '/x' }, 9));
  f.handle('chroot.return', rec('chroot_return', { rc: '-1' }, 9));
  assert.deepEqual(calls, ['chroot 7 /srv/jail', 'identify 8 moved']);
});

test('unshare/setns: only mount-namespace changes, and not when /proc was already read after them', () => {
  const { h, calls } = host();
  const f = new ProcessFacts(h);
  f.handle('view.entry', rec('unshare_entry', { flags: '0x40000000' }, 3));
  f.handle('view.return', rec('unshare_return', { rc: '0' }, 3));
  f.handle('view.entry', rec('unshare_entry', { flags: '0x20000' }, 3));
  f.handle('view.return', rec('unshare_return', { rc: '0' }, 3));
  f.views.set(4, 'ns1', 100n);
  f.handle('view.entry', rec('setns_entry', { flags: '0' }, 4, 50n));
  f.handle('view.return', rec('setns_return', { rc: '0' }, 4, 50n));
  assert.deepEqual(calls, ['identify 3 moved']);
});

test('exec is remembered for the mechanisms (start-up phase) and checked against /proc; exit forgets', () => {
  const { h, calls } = host();
  const f = new ProcessFacts(h, 2);
  f.onExec(5, '/bin/a');
  assert.equal(f.execOf(5), '/bin/a');
  assert.deepEqual(calls, ['identify 5']);
  f.onExec(6, undefined);
  assert.equal(f.execOf(6), '', 'an exec with an unreadable name still starts a fresh image');
  f.onExec(7, '/bin/c');
  assert.equal(f.execOf(5), undefined, 'bounded');
  f.onExit(7);
  assert.equal(f.execOf(7), undefined);
});
