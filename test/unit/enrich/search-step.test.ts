import { test } from 'node:test';
import assert from 'node:assert/strict';
import { resolveInView, type PathStat, type ResolveOps } from '../../../src/enrich/canonical';
import { deriveSearchStep, type SearchInput, type SearchObject } from '../../../src/enrich/search-step';

type Node = 'file' | 'dir' | { link: string };

/** canonical/exists over an in-memory tree (directories implied by their files). */
function tree(files: Record<string, Node>): { canonical: (p: string) => string; exists: (p: string) => boolean; calls: () => number } {
  const nodes = new Map<string, Node>(Object.entries(files));
  for (const p of Object.keys(files)) {
    for (let d = p.slice(0, p.lastIndexOf('/')); d !== ''; d = d.slice(0, d.lastIndexOf('/'))) if (!nodes.has(d)) nodes.set(d, 'dir');
  }
  nodes.set('/', 'dir');
  let calls = 0;
  const ops: ResolveOps = {
    lstat(p: string): PathStat | undefined {
      const n = nodes.get(p === '' ? '/' : p);
      if (n === undefined) return undefined;
      return { kind: n === 'file' ? 'file' : n === 'dir' ? 'dir' : 'symlink', dev: 1, ino: 1, size: 1, ctimeNs: 0n };
    },
    readlink: (p) => {
      const n = nodes.get(p);
      return typeof n === 'object' ? n.link : undefined;
    },
  };
  return {
    canonical: (p) => {
      calls++;
      return resolveInView('', p, ops).path;
    },
    exists: (p) => {
      const r = resolveInView('', p, ops);
      return r.exists && r.stat?.kind === 'file';
    },
    calls: () => calls,
  };
}

// A merged-/usr Debian 12 x86-64 root with an application that bundles libraries.
const fsTree = tree({
  '/lib': { link: 'usr/lib' },
  '/usr/lib/x86_64-linux-gnu/libc.so.6': 'file',
  '/usr/lib/x86_64-linux-gnu/libz.so.1': { link: 'libz.so.1.2.13' },
  '/usr/lib/x86_64-linux-gnu/libz.so.1.2.13': 'file',
  '/usr/lib/x86_64-linux-gnu/libssl.so.3': 'file',
  '/usr/lib/x86_64-linux-gnu/libfast.so.1': 'file',
  '/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libfast.so.1': 'file',
  '/usr/lib/x86_64-linux-gnu/haswell/x86_64/libold.so.1': 'file',
  '/usr/local/lib/libonlylocal.so': 'file',
  '/usr/lib/libmuslonly.so.1': 'file',
  '/opt/app/bin/app': 'file',
  '/opt/app/lib/libA.so': 'file',
  '/opt/app/lib/libB.so': 'file',
  '/opt/app/lib/libz.so.1': 'file',
  '/opt/app/lib/x86_64-linux-gnu/libarch.so': 'file',
  '/opt/app/plugins/plugin.so': 'file',
  '/opt/rpath/libr.so': 'file',
  '/opt/runpath/libr.so': 'file',
  '/opt/llp/libz.so.1': 'file',
  '/opt/llp/libr.so': 'file',
  '/opt/pre/libp.so': 'file',
  '/opt/pre/libf.so': 'file',
  '/srv/other/libz.so.1': 'file',
});

const DEBIAN_DIRS = ['/lib/x86_64-linux-gnu', '/usr/lib/x86_64-linux-gnu', '/lib', '/usr/lib'];
const CACHE: Record<string, string[]> = {
  'libz.so.1': ['/lib/x86_64-linux-gnu/libz.so.1'],
  'libc.so.6': ['/lib/x86_64-linux-gnu/libc.so.6'],
  'libfast.so.1': ['/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libfast.so.1', '/lib/x86_64-linux-gnu/libfast.so.1'],
  'libonlylocal.so': ['/usr/local/lib/libonlylocal.so'],
};
const exe: SearchObject = { path: '/opt/app/bin/app' };
const app = (o: Partial<SearchObject> = {}): SearchObject => ({ ...exe, ...o });

function input(o: Partial<SearchInput> & Pick<SearchInput, 'loadedPath'>): SearchInput {
  return {
    libc: 'glibc',
    method: 'needed',
    requesters: [o.executable ?? exe],
    executable: exe,
    ldLibraryPath: '',
    cache: (n) => CACHE[n] ?? [],
    defaultDirs: DEBIAN_DIRS,
    canonical: fsTree.canonical,
    exists: fsTree.exists,
    lib: 'lib/x86_64-linux-gnu',
    platform: 'haswell',
    ...o,
  };
}
const LIBZ = '/usr/lib/x86_64-linux-gnu/libz.so.1.2.13';

test('default dirs: the first system directory that has the name, through merged /usr', () => {
  assert.deepEqual(deriveSearchStep(input({ requestedName: 'libssl.so.3', loadedPath: '/usr/lib/x86_64-linux-gnu/libssl.so.3' })), {
    step: 'default_dirs',
    dir: '/lib/x86_64-linux-gnu',
  });
  assert.deepEqual(deriveSearchStep(input({ requestedName: 'libssl.so.3', loadedPath: '/usr/lib/x86_64-linux-gnu/libssl.so.3', cache: undefined })).step, 'default_dirs');
});

test('ld.so.cache: the cached path (a versioned symlink) resolves to the mapped file', () => {
  assert.deepEqual(deriveSearchStep(input({ requestedName: 'libz.so.1', loadedPath: LIBZ })), { step: 'ld_so_cache', dir: '/lib/x86_64-linux-gnu' });
  // Only in the cache, not in a default directory (ld.so.conf's /usr/local/lib).
  assert.equal(deriveSearchStep(input({ requestedName: 'libonlylocal.so', loadedPath: '/usr/local/lib/libonlylocal.so' })).step, 'ld_so_cache');
});

test('ld.so.cache: a stale entry falls through to the default dirs; another existing file there shadows them', () => {
  const stale = deriveSearchStep(input({ requestedName: 'libssl.so.3', loadedPath: '/usr/lib/x86_64-linux-gnu/libssl.so.3', cache: () => ['/usr/lib/gone/libssl.so.3'] }));
  assert.equal(stale.step, 'default_dirs');
  const other = deriveSearchStep(input({ requestedName: 'libz.so.1', loadedPath: LIBZ, cache: () => ['/srv/other/libz.so.1'] }));
  assert.equal(other.step, undefined);
  assert.match(other.reason!, /\/srv\/other\/libz\.so\.1 \(ld_so_cache\)/);
  // Entries after the first ordinary one are never used by ld.so.
  const second = deriveSearchStep(input({ requestedName: 'libz.so.1', loadedPath: '/srv/other/libz.so.1', defaultDirs: [], cache: () => ['/lib/x86_64-linux-gnu/libz.so.1', '/srv/other/libz.so.1'] }));
  assert.equal(second.step, undefined);
});

test('DF_1_NODEFLIB: no default dirs, and cache answers inside them are rejected', () => {
  const nodeflib = app({ nodeflib: true });
  const r = deriveSearchStep(input({ requestedName: 'libz.so.1', loadedPath: LIBZ, executable: nodeflib, requesters: [nodeflib] }));
  assert.equal(r.step, undefined);
  assert.equal(deriveSearchStep(input({ requestedName: 'libonlylocal.so', loadedPath: '/usr/local/lib/libonlylocal.so', requesters: [nodeflib] })).step, 'ld_so_cache');
});

test('DT_RPATH of the requester, and up the loader chain', () => {
  const withRpath = app({ rpath: '/opt/app/lib' });
  assert.deepEqual(deriveSearchStep(input({ requestedName: 'libz.so.1', loadedPath: '/opt/app/lib/libz.so.1', executable: withRpath, requesters: [withRpath] })), {
    step: 'rpath',
    dir: '/opt/app/lib',
    requester: '/opt/app/bin/app',
  });
  // libB.so (no rpath) needs libr.so; libB was needed by libA (RPATH /opt/rpath), needed by the executable.
  const libA: SearchObject = { path: '/opt/app/lib/libA.so', rpath: '/opt/rpath/' };
  const libB: SearchObject = { path: '/opt/app/lib/libB.so' };
  assert.deepEqual(deriveSearchStep(input({ requestedName: 'libr.so', loadedPath: '/opt/rpath/libr.so', requesters: [libB, libA, exe] })), {
    step: 'rpath',
    dir: '/opt/rpath',
    requester: '/opt/app/lib/libA.so',
  });
});

test('DT_RPATH before LD_LIBRARY_PATH (glibc): a library in both comes from the rpath', () => {
  const withRpath = app({ rpath: '/opt/app/lib' });
  const base = { requestedName: 'libz.so.1', ldLibraryPath: '/opt/llp', executable: withRpath, requesters: [withRpath] };
  assert.equal(deriveSearchStep(input({ ...base, loadedPath: '/opt/app/lib/libz.so.1' })).step, 'rpath');
  const llp = deriveSearchStep(input({ ...base, loadedPath: '/opt/llp/libz.so.1' }));
  assert.equal(llp.step, undefined, 'the rpath copy would have been found first');
  assert.match(llp.reason!, /\/opt\/app\/lib\/libz\.so\.1 \(rpath\)/);
});

test("RUNPATH after LD_LIBRARY_PATH; the requester's RUNPATH turns off every RPATH, the executable's too", () => {
  const libA: SearchObject = { path: '/opt/app/lib/libA.so', runpath: '/opt/runpath' };
  const withRpath = app({ rpath: '/opt/rpath' });
  const base = { requestedName: 'libr.so', executable: withRpath, requesters: [libA, withRpath] };
  assert.deepEqual(deriveSearchStep(input({ ...base, loadedPath: '/opt/runpath/libr.so' })), { step: 'runpath', dir: '/opt/runpath', requester: '/opt/app/lib/libA.so' });
  assert.equal(deriveSearchStep(input({ ...base, loadedPath: '/opt/rpath/libr.so' })).step, undefined);
  assert.equal(deriveSearchStep(input({ ...base, ldLibraryPath: '/opt/llp', loadedPath: '/opt/llp/libr.so' })).step, 'ld_library_path');
  assert.equal(deriveSearchStep(input({ ...base, ldLibraryPath: '/opt/llp', loadedPath: '/opt/runpath/libr.so' })).step, undefined, 'LD_LIBRARY_PATH has one first');
  // Without the RUNPATH on the requester, the executable's RPATH applies again.
  const libA2: SearchObject = { path: '/opt/app/lib/libA.so' };
  assert.deepEqual(deriveSearchStep(input({ ...base, requesters: [libA2, withRpath], loadedPath: '/opt/rpath/libr.so' })).requester, '/opt/app/bin/app');
});

test("an object's DT_RPATH is ignored when it also has DT_RUNPATH", () => {
  const both: SearchObject = { path: '/opt/app/lib/libA.so', rpath: '/opt/rpath', runpath: '/opt/runpath' };
  assert.equal(deriveSearchStep(input({ requestedName: 'libr.so', loadedPath: '/opt/runpath/libr.so', requesters: [both, exe] })).step, 'runpath');
  const r = deriveSearchStep(input({ requestedName: 'libr.so', loadedPath: '/opt/rpath/libr.so', requesters: [both, exe] }));
  assert.equal(r.step, undefined);
  // Higher up the chain, too: libA (RPATH+RUNPATH) loaded libB, which needs libr.so.
  const libB: SearchObject = { path: '/opt/app/lib/libB.so' };
  assert.equal(deriveSearchStep(input({ requestedName: 'libr.so', loadedPath: '/opt/rpath/libr.so', requesters: [libB, both, exe] })).step, undefined);
});

test("dlopen: the executable's DT_RPATH is tried after the caller's chain", () => {
  const plugin: SearchObject = { path: '/opt/app/plugins/plugin.so' };
  const withRpath = app({ rpath: '/opt/app/lib' });
  const base = { method: 'dlopen' as const, requestedName: 'libA.so', loadedPath: '/opt/app/lib/libA.so', executable: withRpath };
  assert.deepEqual(deriveSearchStep(input({ ...base, requesters: [plugin] })), { step: 'rpath', dir: '/opt/app/lib', requester: '/opt/app/bin/app' });
  assert.equal(deriveSearchStep(input({ ...base, requesters: [] })).step, 'rpath', 'unknown caller: the executable');
  assert.equal(deriveSearchStep(input({ ...base, requesters: [{ ...plugin, runpath: '/opt/runpath' }] })).step, undefined, 'a RUNPATH on the caller turns it off');
});

test('LD_LIBRARY_PATH: used, split on : and ;, an empty element is the working directory; ignored when AT_SECURE', () => {
  const base = { requestedName: 'libz.so.1', loadedPath: '/opt/llp/libz.so.1' };
  assert.deepEqual(deriveSearchStep(input({ ...base, ldLibraryPath: '/nowhere;/opt/llp/' })), { step: 'ld_library_path', dir: '/opt/llp' });
  assert.deepEqual(deriveSearchStep(input({ ...base, ldLibraryPath: '/nowhere::/x', cwd: '/opt/llp' })), { step: 'ld_library_path', dir: '' });
  assert.equal(deriveSearchStep(input({ ...base, ldLibraryPath: '/opt/llp', secure: true })).step, undefined);
  assert.equal(deriveSearchStep(input({ requestedName: 'libz.so.1', loadedPath: LIBZ, ldLibraryPath: '/opt/llp', secure: true })).step, 'ld_so_cache', 'and does not shadow');
});

test('shadowing: an earlier directory with another file of that name means the later step did not load it', () => {
  const r = deriveSearchStep(input({ requestedName: 'libz.so.1', loadedPath: LIBZ, ldLibraryPath: '/opt/llp' }));
  assert.equal(r.step, undefined);
  assert.match(r.reason!, /\/opt\/llp\/libz\.so\.1 \(ld_library_path\)/);
  // Without an exists() callback only the matching candidate is known to exist.
  assert.equal(deriveSearchStep(input({ requestedName: 'libz.so.1', loadedPath: LIBZ, ldLibraryPath: '/opt/llp', exists: undefined })).step, 'ld_so_cache');
  // exists() may also refuse files of the wrong ELF class (open_verify skips them): no shadow then.
  const exists = (p: string) => p !== '/opt/llp/libz.so.1' && fsTree.exists(p);
  assert.equal(deriveSearchStep(input({ requestedName: 'libz.so.1', loadedPath: LIBZ, ldLibraryPath: '/opt/llp', exists })).step, 'ld_so_cache');
});

test('$ORIGIN in DT_RPATH/DT_RUNPATH gives step origin, with the expanded directory', () => {
  for (const rpath of ['$ORIGIN/../lib', '${ORIGIN}/../lib']) {
    const withOrigin = app({ rpath });
    assert.deepEqual(deriveSearchStep(input({ requestedName: 'libA.so', loadedPath: '/opt/app/lib/libA.so', executable: withOrigin, requesters: [withOrigin] })), {
      step: 'origin',
      dir: '/opt/app/bin/../lib',
      requester: '/opt/app/bin/app',
    });
  }
  const libA: SearchObject = { path: '/opt/app/lib/libA.so', runpath: '/nowhere:$ORIGIN' };
  assert.deepEqual(deriveSearchStep(input({ requestedName: 'libB.so', loadedPath: '/opt/app/lib/libB.so', requesters: [libA, exe] })), {
    step: 'origin',
    dir: '/opt/app/lib',
    requester: '/opt/app/lib/libA.so',
  });
  // $ORIGINAL is not the token (identifier rule), and stays literal.
  const lookalike = app({ rpath: '$ORIGINAL/lib' });
  assert.equal(deriveSearchStep(input({ requestedName: 'libA.so', loadedPath: '/opt/app/lib/libA.so', executable: lookalike, requesters: [lookalike] })).step, undefined);
});

test('AT_SECURE: $ORIGIN only as the first component, and for the executable only inside a trusted directory', () => {
  const withOrigin = app({ rpath: '$ORIGIN/../lib' });
  const base = { requestedName: 'libA.so', loadedPath: '/opt/app/lib/libA.so', secure: true };
  assert.equal(deriveSearchStep(input({ ...base, executable: withOrigin, requesters: [withOrigin] })).step, undefined, '/opt is not a system directory');
  const lib: SearchObject = { path: '/opt/app/plugins/plugin.so', runpath: '$ORIGIN/../lib' };
  assert.equal(deriveSearchStep(input({ ...base, requesters: [lib, exe] })).step, 'origin', "a library's $ORIGIN is allowed");
  const inside: SearchObject = { path: '/opt/app/plugins/plugin.so', runpath: '/opt/app/x/../$ORIGIN/../lib' };
  assert.equal(deriveSearchStep(input({ ...base, requesters: [inside, exe] })).step, undefined, '$ORIGIN not at the start is dropped');
  const alone: SearchObject = { path: '/opt/app/lib/libB.so', rpath: '$ORIGIN' };
  assert.equal(deriveSearchStep(input({ ...base, requesters: [alone, exe] })).dir, '/opt/app/lib', '$ORIGIN as the whole element');
});

test('$ORIGIN in the requested name: step origin; other names with a slash: absolute', () => {
  const libA: SearchObject = { path: '/opt/app/lib/libA.so' };
  assert.deepEqual(deriveSearchStep(input({ requestedName: '$ORIGIN/libB.so', loadedPath: '/opt/app/lib/libB.so', requesters: [libA, exe] })), {
    step: 'origin',
    dir: '/opt/app/lib',
    requester: '/opt/app/lib/libA.so',
  });
  assert.deepEqual(deriveSearchStep(input({ method: 'dlopen', requestedName: '/lib/x86_64-linux-gnu/libz.so.1', loadedPath: LIBZ })), { step: 'absolute' });
  const wrong = deriveSearchStep(input({ method: 'dlopen', requestedName: '/opt/llp/libz.so.1', loadedPath: LIBZ }));
  assert.equal(wrong.step, 'absolute');
  assert.match(wrong.reason!, /does not resolve/);
  assert.deepEqual(deriveSearchStep(input({ method: 'dlopen', requestedName: './libz.so.1', loadedPath: '/opt/llp/libz.so.1' })), { step: 'absolute' });
  // musl opens the string as written: no origin step.
  assert.equal(deriveSearchStep(input({ libc: 'musl', requestedName: '$ORIGIN/libB.so', loadedPath: '/opt/app/lib/libB.so', requesters: [libA] })).step, 'absolute');
});

test('$LIB and $PLATFORM expand from the inputs; an element using an unknown one is skipped', () => {
  const withLib = app({ rpath: '/opt/app/$LIB:/opt/app/${PLATFORM}' });
  const base = { requestedName: 'libarch.so', loadedPath: '/opt/app/lib/x86_64-linux-gnu/libarch.so', executable: withLib, requesters: [withLib] };
  assert.deepEqual(deriveSearchStep(input(base)), { step: 'rpath', dir: '/opt/app/lib/x86_64-linux-gnu', requester: '/opt/app/bin/app' });
  assert.equal(deriveSearchStep(input({ ...base, lib: undefined })).step, undefined);
});

test('hwcaps subdirectories: a glibc-hwcaps or legacy file counts as found in its directory', () => {
  const fast = '/usr/lib/x86_64-linux-gnu/glibc-hwcaps/x86-64-v3/libfast.so.1';
  assert.deepEqual(deriveSearchStep(input({ requestedName: 'libfast.so.1', loadedPath: fast, cache: undefined })), {
    step: 'default_dirs',
    dir: '/lib/x86_64-linux-gnu',
    hwcaps: 'glibc-hwcaps/x86-64-v3',
  });
  // The plain file in the same directory does not shadow the hwcaps one (it comes after it).
  assert.equal(deriveSearchStep(input({ requestedName: 'libfast.so.1', loadedPath: fast })).step, 'ld_so_cache');
  // And unknown hwcaps never shadow the plain file: the CPU may not support x86-64-v3.
  assert.equal(deriveSearchStep(input({ requestedName: 'libfast.so.1', loadedPath: '/usr/lib/x86_64-linux-gnu/libfast.so.1', cache: undefined })).step, 'default_dirs');
  assert.deepEqual(deriveSearchStep(input({ requestedName: 'libold.so.1', loadedPath: '/usr/lib/x86_64-linux-gnu/haswell/x86_64/libold.so.1' })), {
    step: 'default_dirs',
    dir: '/lib/x86_64-linux-gnu',
    hwcaps: 'haswell/x86_64',
  });
});

test('hwcaps subdirectories given explicitly: tried first in each directory, and they shadow', () => {
  const hwcaps = ['glibc-hwcaps/x86-64-v3', 'glibc-hwcaps/x86-64-v2'];
  const r = deriveSearchStep(input({ requestedName: 'libfast.so.1', loadedPath: '/usr/lib/x86_64-linux-gnu/libfast.so.1', cache: undefined, hwcaps }));
  assert.equal(r.step, undefined);
  assert.match(r.reason!, /glibc-hwcaps\/x86-64-v3\/libfast\.so\.1/);
  assert.equal(deriveSearchStep(input({ requestedName: 'libfast.so.1', loadedPath: '/usr/lib/x86_64-linux-gnu/libfast.so.1', cache: undefined, hwcaps: ['glibc-hwcaps/x86-64-v2'] })).step, 'default_dirs');
});

test('musl: LD_LIBRARY_PATH first, then RUNPATH-or-RPATH up the needed_by chain, then the path file; no cache', () => {
  const musl = (o: Partial<SearchInput> & Pick<SearchInput, 'loadedPath'>) =>
    input({ libc: 'musl', defaultDirs: ['/lib', '/usr/local/lib', '/usr/lib'], cache: () => ['/opt/app/lib/libz.so.1'], ...o });
  const withRpath = app({ rpath: '/opt/app/lib' });
  const base = { requestedName: 'libz.so.1', ldLibraryPath: '/opt/llp', executable: withRpath, requesters: [withRpath] };
  assert.deepEqual(deriveSearchStep(musl({ ...base, loadedPath: '/opt/llp/libz.so.1' })), { step: 'ld_library_path', dir: '/opt/llp' });
  assert.equal(deriveSearchStep(musl({ ...base, loadedPath: '/opt/app/lib/libz.so.1' })).step, undefined, 'LD_LIBRARY_PATH had one first');
  assert.equal(deriveSearchStep(musl({ ...base, ldLibraryPath: '', loadedPath: '/opt/app/lib/libz.so.1' })).step, 'rpath');
  assert.equal(deriveSearchStep(musl({ ...base, secure: true, loadedPath: '/opt/app/lib/libz.so.1' })).step, 'rpath', 'AT_SECURE: no LD_LIBRARY_PATH');
  // RUNPATH wins over RPATH in one object, and the chain's RUNPATHs are walked too (unlike glibc).
  const libA: SearchObject = { path: '/opt/app/lib/libA.so' };
  const both = app({ rpath: '/opt/rpath', runpath: '/opt/runpath' });
  const chain = { requestedName: 'libr.so', executable: both, requesters: [libA, both] };
  assert.deepEqual(deriveSearchStep(musl({ ...chain, loadedPath: '/opt/runpath/libr.so' })), { step: 'runpath', dir: '/opt/runpath', requester: '/opt/app/bin/app' });
  assert.equal(deriveSearchStep(input({ ...chain, loadedPath: '/opt/runpath/libr.so' })).step, undefined, "glibc uses only the requester's RUNPATH");
  // No cache: a library only ld.so.cache knows is not musl's.
  assert.equal(deriveSearchStep(musl({ requestedName: 'libonlylocal.so', loadedPath: '/usr/local/lib/libonlylocal.so' })).step, 'default_dirs');
  assert.deepEqual(deriveSearchStep(musl({ requestedName: 'libmuslonly.so.1', loadedPath: '/usr/lib/libmuslonly.so.1' })), { step: 'default_dirs', dir: '/lib' });
});

test('musl: dlopen searches from the main program; $ORIGIN only; any other $ token voids the rpath', () => {
  const musl = (o: Partial<SearchInput> & Pick<SearchInput, 'loadedPath'>) => input({ libc: 'musl', defaultDirs: ['/lib', '/usr/lib'], cache: undefined, ...o });
  const plugin: SearchObject = { path: '/opt/app/plugins/plugin.so', rpath: '/opt/rpath' };
  const withRunpath = app({ runpath: '/opt/runpath' });
  assert.deepEqual(deriveSearchStep(musl({ method: 'dlopen', requestedName: 'libr.so', loadedPath: '/opt/runpath/libr.so', executable: withRunpath, requesters: [plugin, withRunpath] })), {
    step: 'runpath',
    dir: '/opt/runpath',
    requester: '/opt/app/bin/app',
  });
  const origin = app({ rpath: '$ORIGIN/../lib' });
  assert.deepEqual(deriveSearchStep(musl({ requestedName: 'libA.so', loadedPath: '/opt/app/lib/libA.so', executable: origin, requesters: [origin] })), {
    step: 'origin',
    dir: '/opt/app/bin/../lib',
    requester: '/opt/app/bin/app',
  });
  assert.equal(deriveSearchStep(musl({ requestedName: 'libA.so', loadedPath: '/opt/app/lib/libA.so', secure: true, executable: origin, requesters: [origin] })).step, undefined);
  const mixed = app({ rpath: '/opt/app/lib:$LIB' });
  assert.equal(deriveSearchStep(musl({ requestedName: 'libA.so', loadedPath: '/opt/app/lib/libA.so', executable: mixed, requesters: [mixed] })).step, undefined);
});

test('unknown environment: LD_LIBRARY_PATH inferred when nothing else explains the load; later steps are inferred too', () => {
  const llp = deriveSearchStep(input({ requestedName: 'libz.so.1', loadedPath: '/opt/llp/libz.so.1', ldLibraryPath: undefined }));
  assert.equal(llp.step, 'ld_library_path');
  assert.equal(llp.inferred, true);
  const cache = deriveSearchStep(input({ requestedName: 'libz.so.1', loadedPath: LIBZ, ldLibraryPath: undefined }));
  assert.equal(cache.step, 'ld_so_cache');
  assert.equal(cache.inferred, true);
  assert.match(cache.reason!, /LD_LIBRARY_PATH unknown/);
  // An RPATH is searched before LD_LIBRARY_PATH: exact.
  const withRpath = app({ rpath: '/opt/app/lib' });
  assert.deepEqual(deriveSearchStep(input({ requestedName: 'libz.so.1', loadedPath: '/opt/app/lib/libz.so.1', ldLibraryPath: undefined, executable: withRpath, requesters: [withRpath] })), {
    step: 'rpath',
    dir: '/opt/app/lib',
    requester: '/opt/app/bin/app',
  });
  // Shadowed after LD_LIBRARY_PATH: only LD_LIBRARY_PATH could have produced it.
  const shadow = deriveSearchStep(input({ requestedName: 'libz.so.1', loadedPath: '/srv/other/libz.so.1', ldLibraryPath: undefined }));
  assert.deepEqual([shadow.step, shadow.inferred], ['ld_library_path', true]);
  // ... but an RPATH shadow before it cannot be undone by it.
  assert.equal(deriveSearchStep(input({ requestedName: 'libz.so.1', loadedPath: '/opt/llp/libz.so.1', ldLibraryPath: undefined, executable: withRpath, requesters: [withRpath] })).step, undefined);
  // AT_SECURE: LD_LIBRARY_PATH cannot have been used, so nothing is inferred.
  const secure = deriveSearchStep(input({ requestedName: 'libz.so.1', loadedPath: '/opt/llp/libz.so.1', ldLibraryPath: undefined, secure: true }));
  assert.equal(secure.step, undefined);
  assert.equal(deriveSearchStep(input({ requestedName: 'libz.so.1', loadedPath: LIBZ, ldLibraryPath: undefined, secure: true })).inferred, undefined);
  // musl searches LD_LIBRARY_PATH first: even its rpath steps are inferred.
  const musl = deriveSearchStep(input({ libc: 'musl', requestedName: 'libz.so.1', loadedPath: '/opt/app/lib/libz.so.1', ldLibraryPath: undefined, executable: withRpath, requesters: [withRpath] }));
  assert.deepEqual([musl.step, musl.inferred], ['rpath', true]);
});

test('nothing explains the load: no step, with a reason', () => {
  const r = deriveSearchStep(input({ requestedName: 'libz.so.1', loadedPath: '/srv/other/libz.so.1' }));
  assert.equal(r.step, undefined);
  assert.match(r.reason!, /comes first|no search step/);
  const none = deriveSearchStep(input({ requestedName: 'libmissing.so', loadedPath: '/srv/other/libz.so.1' }));
  assert.match(none.reason!, /no search step finds libmissing\.so/);
  assert.deepEqual(deriveSearchStep(input({ loadedPath: LIBZ })), { reason: 'the requested name is unknown' });
});

test('interpreter and executable are paths', () => {
  assert.deepEqual(deriveSearchStep(input({ method: 'interpreter', loadedPath: '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2' })), { step: 'absolute' });
  assert.deepEqual(deriveSearchStep(input({ method: 'executable', loadedPath: '/opt/app/bin/app' })), { step: 'absolute' });
});

test('preload: LD_PRELOAD entries (split on spaces and colons) vs /etc/ld.so.preload, compared canonically', () => {
  const pre = (o: Partial<SearchInput> & Pick<SearchInput, 'loadedPath'>) => deriveSearchStep(input({ method: 'preload', ...o }));
  assert.deepEqual(pre({ loadedPath: '/opt/pre/libp.so', requestedName: '/opt/pre/libp.so', ldPreload: 'libx.so /opt/pre/libp.so:liby.so' }), { step: 'preload_env' });
  assert.deepEqual(pre({ loadedPath: '/opt/pre/libp.so', ldPreload: '/opt/./pre//libp.so' }), { step: 'preload_env' });
  assert.deepEqual(pre({ loadedPath: '/opt/pre/libf.so', ldPreload: '/opt/pre/libp.so', preloadFile: ['/opt/pre/libf.so'] }), { step: 'preload_file' });
  assert.deepEqual(pre({ loadedPath: LIBZ, ldPreload: '', preloadFile: ['/lib/x86_64-linux-gnu/libz.so.1'] }), { step: 'preload_file' });
  // A bare name is searched for from the main program.
  assert.deepEqual(pre({ loadedPath: LIBZ, ldPreload: 'libz.so.1' }), { step: 'preload_env' });
  assert.equal(pre({ loadedPath: LIBZ, ldPreload: 'libc.so.6' }).step, undefined);
  // In LD_PRELOAD and the file: LD_PRELOAD came first.
  assert.deepEqual(pre({ loadedPath: '/opt/pre/libf.so', ldPreload: '/opt/pre/libf.so', preloadFile: ['/opt/pre/libf.so'] }), { step: 'preload_env' });
});

test('preload with unknown LD_PRELOAD, AT_SECURE and musl', () => {
  const pre = (o: Partial<SearchInput> & Pick<SearchInput, 'loadedPath'>) => deriveSearchStep(input({ method: 'preload', ...o }));
  assert.deepEqual(pre({ loadedPath: '/opt/pre/libp.so', preloadFile: ['/opt/pre/libf.so'] }), {
    step: 'preload_env',
    inferred: true,
    reason: 'LD_PRELOAD unknown and the object is not in /etc/ld.so.preload',
  });
  const file = pre({ loadedPath: '/opt/pre/libf.so', preloadFile: ['/opt/pre/libf.so'] });
  assert.deepEqual([file.step, file.inferred], ['preload_file', true]);
  const neither = pre({ loadedPath: '/opt/pre/libp.so', ldPreload: '/opt/pre/libf.so', preloadFile: [] });
  assert.equal(neither.step, undefined);
  assert.match(neither.reason!, /neither/);
  // glibc drops LD_PRELOAD entries with a slash when AT_SECURE.
  assert.equal(pre({ loadedPath: '/opt/pre/libp.so', ldPreload: '/opt/pre/libp.so', secure: true }).step, undefined);
  // musl has no /etc/ld.so.preload and ignores LD_PRELOAD when AT_SECURE.
  assert.equal(pre({ libc: 'musl', loadedPath: '/opt/pre/libf.so', ldPreload: '', preloadFile: ['/opt/pre/libf.so'] }).step, undefined);
  assert.deepEqual(pre({ libc: 'musl', loadedPath: '/opt/pre/libp.so', ldPreload: '\t/opt/pre/libp.so\n' }), { step: 'preload_env' });
  assert.equal(pre({ libc: 'musl', loadedPath: '/opt/pre/libp.so', secure: true }).step, undefined);
});

test('cost: one canonical() call per candidate tried, none after the match', () => {
  const before = fsTree.calls();
  deriveSearchStep(input({ requestedName: 'libssl.so.3', loadedPath: '/usr/lib/x86_64-linux-gnu/libssl.so.3', cache: undefined, exists: undefined }));
  assert.equal(fsTree.calls() - before, 1);
});
