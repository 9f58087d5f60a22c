import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { resolveInView } from '../../../src/enrich/canonical';
import { ProcReader } from '../../../src/host/proc-reader';
import { LOADER_LOCATIONS, loaderKey, loaderSetFiles, type LoaderFileOps, type LoaderRoot } from '../../../src/plan/discover';
import { layerLoaders } from '../../../src/plan/roots';

/** loaderSetFiles' reads the way soload does them: resolution inside the root, through the /proc reader. */
function ops(): LoaderFileOps & { canonicalCalls: Array<[string, string]> } {
  const proc = new ProcReader(fs.mkdtempSync(path.join(os.tmpdir(), 'soload-proc-')));
  const canonicalCalls: Array<[string, string]> = [];
  return {
    canonicalCalls,
    canonical(prefix, file) {
      canonicalCalls.push([prefix, file]);
      const r = resolveInView(prefix, file, proc);
      return r.exists ? r.path : undefined;
    },
    stat(p) {
      try {
        const st = fs.statSync(p);
        return { ino: st.ino, dev: st.dev, size: st.size, mtimeMs: st.mtimeMs, isFile: st.isFile() };
      } catch {
        return undefined;
      }
    },
  };
}

function tree(root: string, spec: Record<string, string | { link: string } | 'dir'>): void {
  for (const [rel, what] of Object.entries(spec)) {
    const p = path.join(root, rel);
    fs.mkdirSync(path.dirname(p), { recursive: true });
    if (what === 'dir') fs.mkdirSync(p, { recursive: true });
    else if (typeof what === 'string') fs.writeFileSync(p, what);
    else fs.symlinkSync(what.link, p);
  }
}

/** A Debian 11 root with merged /usr: the loader reached through an absolute symlink in /lib64. */
function bullseyeRoot(opts: { libdl?: boolean } = {}): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-root-'));
  tree(root, {
    'usr/lib/x86_64-linux-gnu/ld-2.31.so': 'ld.so 2.31',
    'usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2': { link: 'ld-2.31.so' },
    'usr/lib/x86_64-linux-gnu/libc-2.31.so': 'libc 2.31 (larger)',
    'usr/lib/x86_64-linux-gnu/libc.so.6': { link: 'libc-2.31.so' },
    ...(opts.libdl === false ? {} : { 'usr/lib/x86_64-linux-gnu/libdl.so.2': 'libdl' }),
    'usr/lib/x86_64-linux-gnu/libm.so.6': 'libm: not a companion',
    lib: { link: 'usr/lib' },
    'lib64/ld-linux-x86-64.so.2': { link: '/lib/x86_64-linux-gnu/ld-2.31.so' },
  });
  return root;
}

const GNU = '/usr/lib/x86_64-linux-gnu';

test('loaderSetFiles: glibc in a root — ld.so through an absolute in-root symlink and merged /usr, plus libc.so.6 and libdl.so.2', () => {
  const root = bullseyeRoot();
  const r: LoaderRoot = { prefix: root, origin: 'process', pids: [4242] };
  const o = ops();
  const files = loaderSetFiles(r, '/lib64/ld-linux-x86-64.so.2', o, 4242);
  const st = (rel: string) => fs.statSync(path.join(root, rel));
  assert.deepEqual(files, [
    { path: `${root}${GNU}/ld-2.31.so`, aliases: [`${GNU}/ld-2.31.so`, '/lib64/ld-linux-x86-64.so.2'], dev: st('usr/lib/x86_64-linux-gnu/ld-2.31.so').dev, ino: st('usr/lib/x86_64-linux-gnu/ld-2.31.so').ino, usedBy: [4242], root: r },
    { path: `${root}${GNU}/libc-2.31.so`, aliases: [`${GNU}/libc-2.31.so`, `${GNU}/libc.so.6`], dev: st('usr/lib/x86_64-linux-gnu/libc-2.31.so').dev, ino: st('usr/lib/x86_64-linux-gnu/libc-2.31.so').ino, usedBy: [4242], root: r },
    { path: `${root}${GNU}/libdl.so.2`, aliases: [`${GNU}/libdl.so.2`], dev: st('usr/lib/x86_64-linux-gnu/libdl.so.2').dev, ino: st('usr/lib/x86_64-linux-gnu/libdl.so.2').ino, usedBy: [4242], root: r },
  ]);
  assert.ok(o.canonicalCalls.every(([prefix]) => prefix === root), 'every name is resolved inside the root');
  for (const f of files) assert.ok(f.path.startsWith(root + '/') && fs.statSync(f.path).isFile(), f.path);
});

test('loaderSetFiles: the PT_INTERP name a process asked for (requestedAs) joins the loader\'s aliases, once', () => {
  const root = bullseyeRoot();
  const r: LoaderRoot = { prefix: root, origin: 'process', pids: [7] };
  // processLoaders passes the canonical in-root path and the program's PT_INTERP.
  const [ld] = loaderSetFiles(r, `${GNU}/ld-2.31.so`, ops(), 7, '/lib64/ld-linux-x86-64.so.2');
  assert.deepEqual(ld!.aliases, [`${GNU}/ld-2.31.so`, '/lib64/ld-linux-x86-64.so.2']);
  const [again] = loaderSetFiles(r, '/lib64/ld-linux-x86-64.so.2', ops(), 7, '/lib64/ld-linux-x86-64.so.2');
  assert.deepEqual(again!.aliases, [`${GNU}/ld-2.31.so`, '/lib64/ld-linux-x86-64.so.2'], 'not listed twice');
  const [noPid] = loaderSetFiles({ prefix: root, origin: 'layer', pids: [] }, '/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', ops());
  assert.deepEqual(noPid!.usedBy, []);
  assert.deepEqual(noPid!.aliases, [`${GNU}/ld-2.31.so`, '/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2']);
});

test('loaderSetFiles: glibc >= 2.34 without libdl.so.2 — ld.so and libc only', () => {
  const root = bullseyeRoot({ libdl: false });
  const files = loaderSetFiles({ prefix: root, origin: 'chroot', pids: [] }, '/lib64/ld-linux-x86-64.so.2', ops());
  assert.deepEqual(files.map((f) => f.path), [`${root}${GNU}/ld-2.31.so`, `${root}${GNU}/libc-2.31.so`]);
  assert.ok(files.every((f) => f.root?.origin === 'chroot'));
});

test('loaderSetFiles: an absolute symlink is followed inside the root, never to the host file it names', () => {
  const host = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-hostside-'));
  fs.writeFileSync(path.join(host, 'ld.so'), 'the host\'s file');
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-root-'));
  tree(root, { 'lib64/ld-linux-x86-64.so.2': { link: path.join(host, 'ld.so') } });
  assert.ok(fs.statSync(path.join(root, 'lib64/ld-linux-x86-64.so.2')).isFile(), 'fixture: on the host the link does resolve');
  assert.deepEqual(loaderSetFiles({ prefix: root, origin: 'layer', pids: [] }, '/lib64/ld-linux-x86-64.so.2', ops()), []);
});

test('loaderSetFiles: musl — the loader is libc; nothing else of its directory is taken', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-musl-'));
  tree(root, {
    'usr/lib/x86_64-linux-musl/libc.so': 'musl libc',
    'usr/lib/x86_64-linux-musl/libc.so.6': 'decoy',
    'usr/lib/x86_64-linux-musl/libdl.so.2': 'decoy',
    'lib/ld-musl-x86_64.so.1': { link: '/usr/lib/x86_64-linux-musl/libc.so' },
  });
  const r: LoaderRoot = { prefix: root, origin: 'layer', pids: [] };
  const files = loaderSetFiles(r, '/lib/ld-musl-x86_64.so.1', ops());
  const st = fs.statSync(path.join(root, 'usr/lib/x86_64-linux-musl/libc.so'));
  assert.deepEqual(files, [{ path: `${root}/usr/lib/x86_64-linux-musl/libc.so`, aliases: ['/usr/lib/x86_64-linux-musl/libc.so', '/lib/ld-musl-x86_64.so.1'], dev: st.dev, ino: st.ino, usedBy: [], root: r }]);
});

test('loaderSetFiles: a missing interpreter (or a directory in its place) gives nothing', () => {
  const root = bullseyeRoot();
  const r: LoaderRoot = { prefix: root, origin: 'layer', pids: [] };
  assert.deepEqual(loaderSetFiles(r, '/lib/ld-linux-aarch64.so.1', ops()), []);
  assert.deepEqual(loaderSetFiles(r, '/lib64', ops()), []);
  fs.unlinkSync(path.join(root, 'usr/lib/x86_64-linux-gnu/ld-2.31.so'));
  assert.deepEqual(loaderSetFiles(r, '/lib64/ld-linux-x86-64.so.2', ops()), [], 'dangling link: libc alone is no loader set');
});

test('LOADER_LOCATIONS: relative to a root; in a merged-/usr root several name one file, which has one loaderKey', () => {
  for (const loc of LOADER_LOCATIONS) assert.ok(!loc.startsWith('/') && !loc.includes('..'), loc);
  for (const must of ['lib64/ld-linux-x86-64.so.2', 'lib/ld-linux-aarch64.so.1', 'lib/ld-musl-x86_64.so.1', 'lib/ld-musl-aarch64.so.1']) assert.ok(LOADER_LOCATIONS.includes(must), must);
  const root = bullseyeRoot();
  const o = ops();
  // Resolved inside the root (lib64's link is absolute: on the host it names another file or none).
  const found = LOADER_LOCATIONS.map((loc) => [loc, o.canonical(root, '/' + loc)] as const).filter(([, c]) => c !== undefined);
  assert.deepEqual(found, [
    ['lib64/ld-linux-x86-64.so.2', `${GNU}/ld-2.31.so`],
    ['lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', `${GNU}/ld-2.31.so`],
    ['usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', `${GNU}/ld-2.31.so`],
  ]);
  const sets = found.map(([loc]) => loaderSetFiles({ prefix: root, origin: 'layer', pids: [] }, '/' + loc, o));
  assert.equal(new Set(sets.map((s) => loaderKey(fs.statSync(s[0]!.path)))).size, 1, 'one loader, one key');
});

test('loaderKey: inode, size and whole-ms mtime — not the device (overlayfs shows one per container)', () => {
  const a = { dev: 0x2b, ino: 1319045, size: 202_616, mtimeMs: 1_700_000_000_123.4 };
  const b = { ...a, dev: 0x31, mtimeMs: 1_700_000_000_123.9 };
  assert.equal(loaderKey(a), loaderKey(b));
  assert.equal(loaderKey(a), '1319045:202616:1700000000123');
  assert.notEqual(loaderKey(a), loaderKey({ ...a, ino: 1319046 }));
  assert.notEqual(loaderKey(a), loaderKey({ ...a, size: 202_617 }));
  assert.notEqual(loaderKey(a), loaderKey({ ...a, mtimeMs: 1_700_000_000_124 }), 'a replaced file (same inode reused) differs');
  assert.equal(loaderKey({ ino: 1319045n, size: 202616n, mtimeMs: 1_700_000_000_123.4 }), loaderKey(a), 'bigint stats give the same key');
});

test('an image layer whose loader link is absolute is keyed by its own file, not by what the link names on the host', () => {
  // Debian's musl package: /lib/ld-musl-x86_64.so.1 -> /usr/lib/x86_64-linux-musl/libc.so. Stat'ing the
  // link from the host follows it to the host's file (or to nothing), as LOADER_LOCATIONS are probed.
  const layer = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-layer-'));
  tree(layer, {
    'usr/lib/x86_64-linux-musl/libc.so': 'the layer\'s musl',
    'lib/ld-musl-x86_64.so.1': { link: '/usr/lib/x86_64-linux-musl/libc.so' },
  });
  const own = fs.statSync(path.join(layer, 'usr/lib/x86_64-linux-musl/libc.so'));
  const found = layerLoaders([layer], new ProcReader(fs.mkdtempSync(path.join(os.tmpdir(), 'soload-proc-'))));
  assert.deepEqual(
    found.map((l) => [l.key, l.files.map((f) => f.path)]),
    [[loaderKey(own), [`${layer}/usr/lib/x86_64-linux-musl/libc.so`]]],
  );
});
