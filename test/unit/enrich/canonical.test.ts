import { test } from 'node:test';
import assert from 'node:assert/strict';
import { normalise, parseFdPath, parseFdTarget, PathCache, resolveInView, type PathStat, type ResolveOps } from '../../../src/enrich/canonical';

/** An in-memory file tree: path → 'file' | 'dir' | { link: target }. Paths are host paths. */
export function fakeFs(tree: Record<string, 'file' | 'dir' | { link: string }>): ResolveOps & { calls: number } {
  const ino = new Map(Object.keys(tree).map((k, i) => [k, i + 10]));
  const ops = {
    calls: 0,
    lstat(p: string): PathStat | undefined {
      ops.calls++;
      const key = p === '' ? '/' : p;
      const n = tree[key];
      if (n === undefined) return undefined;
      const kind = n === 'file' ? 'file' : n === 'dir' ? 'dir' : 'symlink';
      return { kind, dev: 0xfe01, ino: ino.get(key)!, size: 100, ctimeNs: 0n };
    },
    readlink(p: string): string | undefined {
      const n = tree[p];
      return typeof n === 'object' ? n.link : undefined;
    },
  };
  return ops;
}

// A merged-/usr Debian host, with the cases of issue 7.
const host = fakeFs({
  '/': 'dir',
  '/lib': { link: 'usr/lib' },
  '/lib64': { link: 'usr/lib64' },
  '/usr': 'dir',
  '/usr/lib': 'dir',
  '/usr/lib64': 'dir',
  '/usr/lib64/ld-linux-x86-64.so.2': { link: '/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2' },
  '/usr/lib/x86_64-linux-gnu': 'dir',
  '/usr/lib/x86_64-linux-gnu/libc.so.6': 'file',
  '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2': 'file',
  '/usr/lib/x86_64-linux-gnu/libtinfo.so.6': { link: 'libtinfo.so.6.4' },
  '/usr/lib/x86_64-linux-gnu/libtinfo.so.6.4': 'file',
  '/opt': 'dir',
  '/opt/app': 'dir',
  '/opt/app/bin': 'dir',
  '/opt/app/lib': 'dir',
  '/opt/app/lib/libA.so': 'file',
  '/opt/link': { link: '/opt/app/bin' },
  '/d': 'dir',
  '/d/symlink': { link: 'symreal' },
  '/d/symreal': 'dir',
  '/d/symreal/libsym.so': { link: 'libsymreal.so.1.0' },
  '/d/symreal/libsymreal.so.1.0': 'file',
  '/loop': { link: '/loop2' },
  '/loop2': { link: '/loop' },
  '/f': 'file',
});

test('resolves what the kernel resolves: merged /usr, versioned chains, .., //, /./, symlinked dirs', () => {
  const r = (p: string) => resolveInView('', p, host);
  assert.deepEqual(r('/lib/x86_64-linux-gnu/libc.so.6'), { path: '/usr/lib/x86_64-linux-gnu/libc.so.6', exists: true, stat: host.lstat('/usr/lib/x86_64-linux-gnu/libc.so.6'), links: 1 });
  assert.equal(r('/lib/x86_64-linux-gnu/libtinfo.so.6').path, '/usr/lib/x86_64-linux-gnu/libtinfo.so.6.4');
  assert.equal(r('/opt/app/bin/../lib/libA.so').path, '/opt/app/lib/libA.so');
  assert.equal(r('/d/symlink/libsym.so').path, '/d/symreal/libsymreal.so.1.0');
  assert.equal(r('//usr/./lib//x86_64-linux-gnu/./libc.so.6').path, '/usr/lib/x86_64-linux-gnu/libc.so.6');
  assert.equal(r('/lib64/ld-linux-x86-64.so.2').path, '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', 'absolute target restarts at the root');
  assert.equal(r('/usr/lib/x86_64-linux-gnu/libc.so.6').links, 0);
});

test('.. after a symlinked directory is physical (the parent of the target), as in the kernel', () => {
  assert.equal(resolveInView('', '/opt/link/../lib/libA.so', host).path, '/opt/app/lib/libA.so');
});

test('.. never climbs above the view root; absolute links stay inside a chroot-like prefix', () => {
  const chroot = fakeFs({
    '/srv/root': 'dir',
    '/srv/root/lib': { link: '/usr/lib' },
    '/srv/root/usr': 'dir',
    '/srv/root/usr/lib': 'dir',
    '/srv/root/usr/lib/libq.so': 'file',
    '/usr/lib/libq.so': 'file', // the host's file of the same name must not be picked
  });
  assert.deepEqual(
    { ...resolveInView('/srv/root', '/lib/libq.so', chroot), stat: undefined },
    { path: '/usr/lib/libq.so', exists: true, stat: undefined, links: 1 },
  );
  assert.equal(resolveInView('/srv/root', '/../../lib/libq.so', chroot).path, '/usr/lib/libq.so');
});

test('a deleted file keeps its canonical directory and is marked as not existing', () => {
  const r = resolveInView('', '/lib/x86_64-linux-gnu/libgone.so.1', host);
  assert.deepEqual(r, { path: '/usr/lib/x86_64-linux-gnu/libgone.so.1', exists: false, links: 1 });
  assert.equal(resolveInView('', '/nodir/a/../b.so', host).path, '/nodir/b.so');
});

test('symlink loops and files used as directories end with a normalised path, never a hang', () => {
  const loop = resolveInView('', '/loop/x.so', host);
  assert.equal(loop.exists, false);
  assert.equal(loop.incomplete, true);
  assert.ok(loop.links > 40);
  const notDir = resolveInView('', '/f/x/../y.so', host);
  assert.equal(notDir.exists, false);
  assert.equal(notDir.path, '/f/y.so');
});

test('normalise, fd paths and fd link targets', () => {
  assert.equal(normalise('//a/./b/../c/'), '/a/c');
  assert.equal(normalise('/../..'), '/');
  assert.deepEqual(parseFdPath('/proc/self/fd/4'), { fd: 4, owner: 'self' });
  assert.deepEqual(parseFdPath('/proc/thread-self/fd/12'), { fd: 12, owner: 'self' });
  assert.deepEqual(parseFdPath('/dev/fd/3'), { fd: 3, owner: 'self' });
  assert.deepEqual(parseFdPath('/proc/4242/fd/7'), { fd: 7, owner: 4242 });
  assert.deepEqual(parseFdPath('/proc/self/task/99/fd/5'), { fd: 5, owner: 'self' });
  assert.equal(parseFdPath('/proc/self/maps'), undefined);
  assert.equal(parseFdPath('/usr/lib/fd/3'), undefined);
  assert.deepEqual(parseFdTarget('/memfd:libmemfd.so (deleted)'), { path: '/memfd:libmemfd.so', deleted: true, memfd: true });
  assert.deepEqual(parseFdTarget('/opt/x.so'), { path: '/opt/x.so', deleted: false, memfd: false });
});

test('PathCache: steady state is a lookup; entries expire after the TTL; views are dropped', () => {
  const cache = new PathCache({ ttlMs: 1000, maxEntries: 2 });
  const before = host.calls;
  cache.resolve('host', '', '/lib/x86_64-linux-gnu/libc.so.6', host, 0);
  const walk = host.calls - before;
  assert.ok(walk >= 4);
  for (let i = 0; i < 100; i++) cache.resolve('host', '', '/lib/x86_64-linux-gnu/libc.so.6', host, 999);
  assert.equal(host.calls - before, walk, 'no file-system call within the TTL');
  cache.resolve('host', '', '/lib/x86_64-linux-gnu/libc.so.6', host, 1000);
  assert.equal(host.calls - before, 2 * walk, 'walked again after the TTL');
  assert.deepEqual(cache.stats, { hits: 100, walks: 2 });
  cache.resolve('ns1', '/x', '/a', host, 0);
  cache.resolve('ns2', '/y', '/b', host, 0);
  assert.equal(cache.size, 2, 'bounded');
  cache.dropView('ns1');
  assert.equal(cache.size, 1);
});

test('PathCache.prune drops resolutions older than the TTL', () => {
  const c = new PathCache({ ttlMs: 100 });
  const ops = fakeFs({ '/': 'dir', '/lib': 'dir', '/lib/a.so': 'file', '/lib/b.so': 'file' });
  c.resolve('host', '', '/lib/a.so', ops, 0);
  c.resolve('host', '', '/lib/b.so', ops, 50);
  c.prune(120);
  assert.equal(c.size, 1);
  c.prune(150);
  assert.equal(c.size, 0);
});
