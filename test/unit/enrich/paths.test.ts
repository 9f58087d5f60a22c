import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MemfdTracker, ViewTracker } from '../../../src/capture/views';
import type { PathStat } from '../../../src/enrich/canonical';
import { LoadPathResolver } from '../../../src/enrich/paths';
import type { ProcReader } from '../../../src/host/proc-reader';
import { ViewRegistry } from '../../../src/enrich/views';
import type { LoadEvent } from '../../../src/types';

type Node = 'file' | 'dir' | { link: string } | { file: true; ctimeNs: bigint };

/**
 * A fake host reader: a file tree, live processes with a view identity and fd links. Only the
 * methods path resolution uses.
 */
function fakeProc(tree: Record<string, Node>, live: Record<number, { identity: string; fds?: Record<number, string> }> = {}) {
  const opened: number[] = [];
  let nextFd = 100;
  const proc = {
    root: '/proc',
    lstat(p: string): PathStat | undefined {
      const n = tree[p === '' ? '/' : p];
      if (n === undefined) return undefined;
      if (n === 'file' || n === 'dir') return { kind: n, dev: 0xfe01, ino: p.length, size: 7, ctimeNs: 1n };
      if ('link' in n) return { kind: 'symlink', dev: 0xfe01, ino: 1, size: 1, ctimeNs: 1n };
      return { kind: 'file', dev: 0xfe01, ino: 5, size: 7, ctimeNs: n.ctimeNs };
    },
    readlink(p: string): string | undefined {
      const n = tree[p];
      return n && typeof n === 'object' && 'link' in n ? n.link : undefined;
    },
    fdTarget(pid: number, fd: number): string | undefined {
      return live[pid]?.fds?.[fd];
    },
    viewIdentity(pid: number | 'self'): string | undefined {
      if (pid === 'self' || pid === 1) return 'mnt:[1]:1:2';
      return live[pid]?.identity;
    },
    pinView(pid: number) {
      const l = live[pid];
      if (!l) return undefined;
      const fds = [nextFd++, nextFd++];
      opened.push(...fds);
      return { identity: l.identity, fds, prefix: `/pinned${pid}` };
    },
    closeFds(fds: readonly number[]) {
      for (const fd of fds) opened.splice(opened.indexOf(fd), 1);
    },
  };
  return { proc: proc as unknown as ProcReader, opened };
}

const TREE: Record<string, Node> = {
  '/': 'dir',
  '/lib': { link: 'usr/lib' },
  '/usr': 'dir',
  '/usr/lib': 'dir',
  '/usr/lib/libz.so.1': { link: 'libz.so.1.2.13' },
  '/usr/lib/libz.so.1.2.13': 'file',
  '/usr/lib/libnew.so': { file: true, ctimeNs: 5_000_000_000n },
  // a chroot below the host root
  '/srv/jail': 'dir',
  '/srv/jail/lib': { link: '/usr/lib' },
  '/srv/jail/usr': 'dir',
  '/srv/jail/usr/lib': 'dir',
  '/srv/jail/usr/lib/libj.so': 'file',
  // a pinned mount namespace where /mnt/bound is a bind mount (absent on the host)
  '/pinned42': 'dir',
  '/pinned42/mnt': 'dir',
  '/pinned42/mnt/bound': 'dir',
  '/pinned42/mnt/bound/libb.so': 'file',
};

function setup(live: Parameters<typeof fakeProc>[1] = {}) {
  const { proc, opened } = fakeProc(TREE, live);
  const views = new ViewRegistry(proc);
  const viewOf = new ViewTracker();
  const memfds = new MemfdTracker();
  const paths = new LoadPathResolver({ proc, views, viewOf, memfds, toWallNs: (ns) => ns, now: () => 0 });
  return { proc, opened, views, viewOf, memfds, paths };
}

const ev = (pid: number, p: string, more: Partial<LoadEvent> = {}): LoadEvent => ({
  timestampNs: 2_000_000_000n,
  pid,
  tid: pid,
  comm: 'x',
  method: 'needed',
  path: p,
  result: 'ok',
  probe: 'loader_add',
  ...more,
});

test('host process: canonical path, loader string kept, file facts from the resolved file', () => {
  const { paths, viewOf } = setup();
  viewOf.set(7, 'host');
  const out = paths.resolve(ev(7, '/lib/libz.so.1', { loadedBy: '/lib/libz.so.1' }));
  assert.equal(out.path, '/usr/lib/libz.so.1.2.13');
  assert.equal(out.loaderPath, '/lib/libz.so.1');
  assert.equal(out.loadedBy, '/usr/lib/libz.so.1.2.13', 'loaded_by is canonical too');
  assert.deepEqual(out.file, { dev: 0xfe01, ino: '/usr/lib/libz.so.1.2.13'.length, size: 7 });
  assert.equal(out.hostPath, undefined);
  const same = paths.resolve(ev(7, '/usr/lib/libz.so.1.2.13'));
  assert.equal(same.loaderPath, undefined, 'no loader_path when the loader string is already canonical');
});

test('a gone process soload never saw is resolved in the host view and counted', () => {
  const { paths } = setup();
  assert.equal(paths.resolve(ev(99, '/lib/libz.so.1')).path, '/usr/lib/libz.so.1.2.13');
  assert.equal(paths.stats.viewFallback, 1);
});

test('deleted and replaced files: flagged, never reported with another file’s facts', () => {
  const { paths } = setup();
  const gone = paths.resolve(ev(7, '/lib/libgone.so'));
  assert.equal(gone.path, '/usr/lib/libgone.so');
  assert.equal(gone.deleted, true);
  assert.equal(gone.file, undefined);
  const replaced = paths.resolve(ev(7, '/lib/libnew.so'));
  assert.equal(replaced.replaced, true, 'ctime (5 s) after the load (2 s): not the file that was mapped');
  assert.equal(replaced.file, undefined);
  const snap = paths.resolve(ev(7, '/lib/libnew.so', { snapshot: true }));
  assert.equal(snap.replaced, undefined, 'a snapshot describes the file as it is now');
});

test('memfd: live fd link first, then memfd_create history; never /proc/self/fd/N', () => {
  const { paths, memfds } = setup({ 50: { identity: 'mnt:[1]:1:2', fds: { 4: '/memfd:live.so (deleted)' } } });
  const live = paths.resolve(ev(50, '/proc/self/fd/4', { method: 'dlopen' }));
  assert.deepEqual([live.path, live.memfd, live.deleted, live.loaderPath], ['/memfd:live.so', true, true, '/proc/self/fd/4']);
  memfds.onEntry(60, 'libmemfd.so');
  memfds.onReturn(60, 60, 3);
  const dead = paths.resolve(ev(60, '/proc/self/fd/3', { method: 'dlopen' }));
  assert.deepEqual([dead.path, dead.memfd, dead.deleted], ['/memfd:libmemfd.so', true, true]);
  const unknown = paths.resolve(ev(61, '/dev/fd/9', { method: 'dlopen' }));
  assert.equal(unknown.path, undefined, 'an fd soload cannot name leaves file.path unset');
  assert.equal(unknown.loaderPath, '/dev/fd/9');
  assert.deepEqual(unknown.unresolved, ['file.path']);
});

test('chroot: resolved inside the new root with no /proc, host path reported', () => {
  const { paths, views, viewOf } = setup();
  viewOf.set(8, 'host');
  viewOf.set(8, views.chroot('host', '/srv/jail'));
  const out = paths.resolve(ev(8, '/lib/libj.so'));
  assert.equal(out.path, '/usr/lib/libj.so');
  assert.equal(out.hostPath, '/srv/jail/usr/lib/libj.so');
  assert.equal(out.deleted, undefined, 'found inside the jail (the host has no /usr/lib/libj.so)');
});

test('another mount namespace: pinned while alive, used after the process is gone, released by the sweep', () => {
  const { paths, views, viewOf, opened } = setup({ 42: { identity: 'mnt:[9]:3:4' } });
  const id = views.identify(42)!;
  viewOf.set(42, id);
  viewOf.onFork(42, 43);
  assert.equal(opened.length, 2, 'namespace + root fds held');
  // 43 exited long ago: its view is known from the fork, the namespace from the pinned fds.
  const out = paths.resolve(ev(43, '/mnt/bound/libb.so'));
  assert.equal(out.path, '/mnt/bound/libb.so');
  assert.equal(out.deleted, undefined, 'exists in that namespace although not on the host');
  assert.equal(out.hostPath, undefined, 'no plain host path for another mount namespace');
  assert.equal(views.identify(42), id, 'the same identity reuses the pinned view');
  viewOf.onExit(42);
  assert.deepEqual(views.sweep(viewOf.inUse()), [], 'still used by 43');
  viewOf.onExit(43);
  assert.deepEqual(views.sweep(viewOf.inUse()), [id]);
  assert.equal(opened.length, 0, 'fds closed when the last process using the view is gone');
});

test('a process in the host view identified alive does not pin anything', () => {
  const { views, opened } = setup({ 5: { identity: 'mnt:[1]:1:2' } });
  assert.equal(views.identify(5), 'host');
  assert.equal(opened.length, 0);
});

test('ld.so\'s l_file_id decides: same inode → facts; other inode at the name → deleted + replaced; cache re-checked', () => {
  const { paths } = setup();
  const inode = '/usr/lib/libz.so.1.2.13'.length; // the fake tree's inode of that file
  const ok = paths.resolve(ev(7, '/lib/libz.so.1', { mapped: { dev: 0xfe01, ino: inode } }));
  assert.deepEqual([ok.deleted, ok.replaced, ok.file?.size], [undefined, undefined, 7]);
  const swapped = paths.resolve(ev(7, '/lib/libz.so.1', { mapped: { dev: 0xfe01, ino: 31337 } }));
  assert.equal(swapped.path, '/usr/lib/libz.so.1.2.13');
  assert.deepEqual([swapped.deleted, swapped.replaced], [true, true], 'the mapped file was unlinked, another one is there now');
  assert.deepEqual(swapped.file, { dev: 0xfe01, ino: 31337 }, 'inode and device of the mapped file, no size from the other one');
  const gone = paths.resolve(ev(7, '/lib/libgone.so', { mapped: { ino: 5 } }));
  assert.deepEqual([gone.deleted, gone.replaced, gone.file], [true, undefined, { ino: 5 }]);
  const walks = paths.cache.stats.walks;
  paths.resolve(ev(7, '/lib/libz.so.1', { mapped: { dev: 0xfe01, ino: 31337 } }));
  assert.equal(paths.cache.stats.walks, walks + 1, 'a cached answer that disagrees with ld.so is walked again');
});

test('/proc ahead of the records: an object mapped before the move is named in the previous view', () => {
  const { paths, views, viewOf } = setup({ 42: { identity: 'mnt:[9]:3:4' } });
  viewOf.set(42, 'host');
  viewOf.set(42, views.identify(42)!, 10n); // the exec record was read after the process moved
  const inode = '/usr/lib/libz.so.1.2.13'.length;
  const before = paths.resolve(ev(42, '/lib/libz.so.1', { mapped: { dev: 0xfe01, ino: inode } }));
  assert.deepEqual([before.path, before.deleted], ['/usr/lib/libz.so.1.2.13', undefined]);
  assert.equal(paths.stats.previousView, 1);
  const after = paths.resolve(ev(42, '/mnt/bound/libb.so', { mapped: { dev: 0xfe01, ino: '/pinned42/mnt/bound/libb.so'.length } }));
  assert.deepEqual([after.path, after.deleted], ['/mnt/bound/libb.so', undefined], 'mapped after the move: the new view');
});

test('a move soload could not see in time: marked as a guess, never as a deletion', () => {
  const { paths, viewOf } = setup();
  viewOf.set(70, 'host');
  paths.identify(70, true); // unshare seen, process already gone
  const out = paths.resolve(ev(70, '/mnt/bound/libb.so', { mapped: { ino: 99 } }));
  assert.equal(out.viewLost, true);
  assert.equal(out.deleted, undefined);
  assert.deepEqual(out.file, { ino: 99 });
  assert.equal(paths.stats.viewLost, 1);
});
