import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemfdTracker, ViewTracker } from '../../../src/capture/views';

test('views are inherited at fork, set by chroot, forgotten at exit, counted for the sweep', () => {
  const v = new ViewTracker();
  v.set(1, 'host');
  v.onFork(1, 2);
  assert.equal(v.get(2), 'host');
  v.onChrootEntry(2, 2, '/srv/jail');
  assert.deepEqual(v.onChrootReturn(2, 0), { pid: 2, path: '/srv/jail' });
  v.onChrootEntry(2, 2, '/nope');
  assert.equal(v.onChrootReturn(2, -1), undefined, 'a failed chroot changes nothing');
  assert.equal(v.onChrootReturn(3, 0), undefined, 'a return without an entry changes nothing');
  v.set(2, 'host>/srv/jail');
  v.onFork(2, 3);
  assert.deepEqual([...v.inUse()].sort(), [['host', 1], ['host>/srv/jail', 2]]);
  v.onExit(2);
  v.onExit(3);
  assert.deepEqual([...v.inUse()], [['host', 1]]);
  assert.equal(v.get(9), undefined, 'unknown processes stay unknown');
});

test('ViewTracker is bounded', () => {
  const v = new ViewTracker(4);
  for (let i = 0; i < 100; i++) v.set(i, 'host');
  assert.equal(v.size, 4);
  assert.equal(v.get(99), 'host');
});

test('memfds: name from the entry, fd from the return, inherited at fork, gone at exit', () => {
  const m = new MemfdTracker();
  m.onEntry(11, 'libmemfd.so');
  m.onReturn(10, 11, 4);
  assert.equal(m.nameOf(10, 4), 'libmemfd.so');
  assert.equal(m.nameOf(10, 5), undefined);
  m.onEntry(11, 'x');
  m.onReturn(10, 11, -24);
  assert.equal(m.nameOf(10, -24), undefined, 'a failed memfd_create records nothing');
  m.onFork(10, 20);
  assert.equal(m.nameOf(20, 4), 'libmemfd.so');
  m.onExit(10);
  assert.equal(m.nameOf(10, 4), undefined);
  assert.equal(m.nameOf(20, 4), 'libmemfd.so');
});

test('MemfdTracker is bounded per process and in processes', () => {
  const m = new MemfdTracker(2, 3);
  for (let fd = 0; fd < 10; fd++) {
    m.onEntry(1, `m${fd}`);
    m.onReturn(1, 1, fd);
  }
  assert.equal(m.nameOf(1, 9), 'm9');
  assert.equal(m.nameOf(1, 0), undefined);
  for (let pid = 2; pid < 10; pid++) {
    m.onEntry(pid, 'x');
    m.onReturn(pid, pid, 3);
  }
  assert.equal(m.size, 2);
});

test('a view read from /proc after an event already contains it (observedAfter)', () => {
  const v = new ViewTracker();
  v.set(4, 'ns1', 1000n);
  assert.equal(v.observedAfter(4, 999n), true, 'a chroot at 999 was already in the /proc look at 1000');
  assert.equal(v.observedAfter(4, 1001n), false);
  v.set(4, 'host>/jail');
  assert.equal(v.observedAfter(4, 0n), false, 'a view set from an event carries no /proc time');
  v.onExit(4);
  assert.equal(v.observedAfter(4, 0n), false);
});

test('unshare/setns: only a mount-namespace change (or an unknown one) moves the process', () => {
  const v = new ViewTracker();
  v.onNamespaceEntry(1, 0x40000000); // CLONE_NEWNET
  assert.equal(v.onNamespaceReturn(1, 0), false);
  v.onNamespaceEntry(1, 0x20000 | 0x10000000); // CLONE_NEWNS | CLONE_NEWUSER
  assert.equal(v.onNamespaceReturn(1, 0), true);
  v.onNamespaceEntry(1, 0); // setns(fd, 0): any type
  assert.equal(v.onNamespaceReturn(1, 0), true);
  v.onNamespaceEntry(1, 0x20000);
  assert.equal(v.onNamespaceReturn(1, -1), false, 'failed: nothing moved');
  assert.equal(v.onNamespaceReturn(2, 0), true, 'no entry seen: assume it may have');
});

test('a view read from /proc that differs keeps the previous one (objects mapped before a move)', () => {
  const v = new ViewTracker();
  v.set(3, 'host');
  v.set(3, 'ns2', 50n);
  assert.equal(v.previousOf(3), 'host');
  v.set(3, 'host>/jail');
  assert.equal(v.previousOf(3), undefined, 'an event-driven change supersedes it');
});

test('bounded: exit drops a view with its /proc observation; calls in flight of a gone thread are dropped; fork copies of memfds are bounded', () => {
  const v = new ViewTracker();
  v.set(5, 'host');
  v.set(5, 'v1', 100n); // /proc showed it in another view
  assert.equal(v.previousOf(5), 'host');
  v.onChrootEntry(5, 6, '/jail');
  v.onNamespaceEntry(7, 0x20000);
  v.onThreadGone(6);
  v.onThreadGone(7);
  assert.deepEqual(v.sizes(), { views: 1, viewObserved: 1, viewPrevious: 1, pendingChroot: 0, pendingNs: 0 });
  v.onExit(5);
  assert.deepEqual(v.sizes(), { views: 0, viewObserved: 0, viewPrevious: 0, pendingChroot: 0, pendingNs: 0 });

  const m = new MemfdTracker(2);
  m.onEntry(1, 'jit');
  m.onReturn(1, 1, 3);
  for (const child of [2, 3, 4]) m.onFork(1, child);
  assert.equal(m.size, 2, 'fork copies count against the process bound');
  m.onEntry(9, 'never');
  m.onThreadGone(9);
  assert.equal(m.inFlight, 0);
});
