import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as v8 from 'node:v8';
import * as vm from 'node:vm';
import { resolveInView, type ResolveOps } from '../../../src/enrich/canonical';
import { nodeRootFs, PackageIndex, PackageIndexes, type RootFs } from '../../../src/enrich/packages';

/** test/fixtures/packages, found from both the sources and the compiled tests (dist/test/...). */
function fixtures(): string {
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'test', 'fixtures', 'packages');
    if (fs.existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) throw new Error(`test/fixtures/packages not found above ${__dirname}`);
  }
}
const DPKG_ROOT = path.join(fixtures(), 'dpkg');
const APK_ROOT = path.join(fixtures(), 'apk');

/** Debian 12's merged /usr: the top-level lib/bin directories are symlinks into /usr. */
const mergedUsr = (p: string): string => p.replace(/^\/(lib|lib32|lib64|libx32|bin|sbin)(?=\/|$)/, '/usr/$1');
const identity = (p: string): string => p;

/** lstat/readlink of the real system, for resolveInView over a temp root. */
const realOps: ResolveOps = {
  lstat(p) {
    try {
      const s = fs.lstatSync(p, { bigint: true });
      const kind = s.isSymbolicLink() ? 'symlink' : s.isDirectory() ? 'dir' : s.isFile() ? 'file' : 'other';
      return { kind, dev: Number(s.dev), ino: Number(s.ino), size: Number(s.size), ctimeNs: s.ctimeNs };
    } catch {
      return undefined;
    }
  },
  readlink(p) {
    try {
      return fs.readlinkSync(p);
    } catch {
      return undefined;
    }
  },
};

/** Wraps a RootFs, counting reads per path. */
function counting(inner: RootFs): RootFs & { reads: Map<string, number> } {
  const reads = new Map<string, number>();
  return {
    reads,
    readFile(p) {
      reads.set(p, (reads.get(p) ?? 0) + 1);
      return inner.readFile(p);
    },
    readdir: (p) => inner.readdir(p),
    stat: (p) => inner.stat(p),
    canonical: (p) => inner.canonical(p),
  };
}

/** An in-memory root: path → file contents (directories are implied, or listed as null). */
function memFs(files: Record<string, string | Buffer | null>, canonical: (p: string) => string = identity): RootFs & { files: typeof files; touch(p: string): void } {
  const mtimes = new Map<string, number>();
  const m = {
    files,
    touch(p: string) {
      mtimes.set(p, (mtimes.get(p) ?? 0) + 1);
    },
    readFile(p: string) {
      const v = files[p];
      return v === undefined || v === null ? undefined : Buffer.from(v);
    },
    readdir(p: string) {
      const pre = p + '/';
      const names = Object.keys(files).filter((k) => k.startsWith(pre)).map((k) => k.slice(pre.length).split('/')[0]);
      return names.length || files[p] === null ? [...new Set(names)] : undefined;
    },
    stat(p: string) {
      const v = files[p];
      if (v === undefined && !Object.keys(files).some((k) => k.startsWith(p + '/'))) return undefined;
      return { mtimeMs: mtimes.get(p) ?? 0, size: v ? Buffer.byteLength(v) : 0 };
    },
    canonical,
  };
  return m;
}

const md5 = (b: Buffer | string): string => createHash('md5').update(b).digest('hex');
const sha1 = (b: Buffer | string): string => createHash('sha1').update(b).digest('hex');

test('dpkg fixture: libc.so.6 at its merged-/usr canonical path is libc6 with its Version, arch and md5', () => {
  const idx = new PackageIndex(nodeRootFs(DPKG_ROOT, mergedUsr));
  assert.deepEqual(idx.lookup('/usr/lib/x86_64-linux-gnu/libc.so.6'), {
    name: 'libc6',
    version: '2.36-9+deb12u14',
    manager: 'dpkg',
    arch: 'amd64',
    digest: { algorithm: 'md5', hex: '33f1cb6525f26614bd3a334d63632484' },
  });
  assert.deepEqual(idx.lookup('/usr/lib/x86_64-linux-gnu/libz.so.1.2.13'), {
    name: 'zlib1g',
    version: '1:1.2.13.dfsg-1',
    manager: 'dpkg',
    arch: 'amd64',
    digest: { algorithm: 'md5', hex: 'c7c774d91213e966a04b2e51c787be23' },
  });
  // A symlink the package ships has no md5 (dpkg records none), but is owned.
  assert.deepEqual(idx.lookup('/usr/lib/x86_64-linux-gnu/libz.so.1'), { name: 'zlib1g', version: '1:1.2.13.dfsg-1', manager: 'dpkg', arch: 'amd64' });
  // base-files is not Multi-Arch: same: its info files are `base-files.*`, without `:amd64`.
  assert.deepEqual(idx.lookup('/usr/lib/os-release'), {
    name: 'base-files',
    version: '12.4+deb12u11',
    manager: 'dpkg',
    arch: 'amd64',
    digest: { algorithm: 'md5', hex: '07d31e7e63800ab1b7966980709c51eb' },
  });
  const st = idx.status();
  assert.equal(st.manager, 'dpkg');
  assert.equal(st.indexed, true);
  assert.equal(st.truncated, false);
  assert.equal(st.reason, undefined);
  const s = idx.stats();
  assert.equal(s.packages, 3);
  assert.equal(s.malformed, 0);
  assert.equal(s.rebuilds, 0);
  // 302 + 12 + 88 listed lines, minus the "/." entries and the directories holding indexed files.
  assert.ok(s.files > 250 && s.files < 400, `files ${s.files}`);
});

test('dpkg fixture: dpkg names, directories and unpackaged paths are not found', () => {
  const idx = new PackageIndex(nodeRootFs(DPKG_ROOT, mergedUsr));
  assert.equal(idx.lookup('/lib/x86_64-linux-gnu/libc.so.6'), undefined, 'the index is keyed by canonical path only');
  assert.equal(idx.lookup('/usr/lib/x86_64-linux-gnu/libnotpackaged.so.1'), undefined);
  assert.equal(idx.lookup('/opt/app/lib/libc.so.6'), undefined);
  assert.equal(idx.lookup('/usr/lib/x86_64-linux-gnu'), undefined, 'directories are dropped');
  assert.equal(idx.lookup('/usr/lib'), undefined);
  assert.equal(idx.lookup('usr/lib/x86_64-linux-gnu/libc.so.6'), undefined);
  assert.equal(idx.lookup(''), undefined);
});

test('dpkg: nothing is read before the first lookup; md5sums are read once per package, on its first lookup', () => {
  const rfs = counting(nodeRootFs(DPKG_ROOT, mergedUsr));
  const idx = new PackageIndex(rfs);
  assert.equal(rfs.reads.size, 0);
  assert.equal(idx.lookup('/usr/lib/x86_64-linux-gnu/libc.so.6')?.name, 'libc6');
  assert.equal(rfs.reads.get('/var/lib/dpkg/status'), 1);
  assert.equal(rfs.reads.get('/var/lib/dpkg/info/libc6:amd64.list'), 1);
  assert.equal(rfs.reads.get('/var/lib/dpkg/info/libc6:amd64.md5sums'), 1);
  assert.equal(rfs.reads.get('/var/lib/dpkg/info/zlib1g:amd64.md5sums'), undefined);
  assert.equal(idx.lookup('/usr/lib/x86_64-linux-gnu/libm.so.6')?.digest?.algorithm, 'md5');
  assert.equal(rfs.reads.get('/var/lib/dpkg/info/libc6:amd64.md5sums'), 1);
  assert.equal(rfs.reads.get('/var/lib/dpkg/status'), 1);
  assert.equal(idx.stats().digestLoads, 1);
});

test('dpkg: the md5sums cache is bounded (least recently used package parsed again)', () => {
  const rfs = counting(nodeRootFs(DPKG_ROOT, mergedUsr));
  const idx = new PackageIndex(rfs, { maxDigestPackages: 1 });
  idx.lookup('/usr/lib/x86_64-linux-gnu/libc.so.6');
  idx.lookup('/usr/lib/x86_64-linux-gnu/libz.so.1.2.13');
  assert.equal(idx.lookup('/usr/lib/x86_64-linux-gnu/libc.so.6')?.digest?.hex, '33f1cb6525f26614bd3a334d63632484');
  assert.equal(rfs.reads.get('/var/lib/dpkg/info/libc6:amd64.md5sums'), 2);
  assert.equal(idx.stats().digestLoads, 3);
});

test('dpkg: a rewritten status is noticed after recheckMs and the index rebuilt', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-pkg-'));
  try {
    fs.cpSync(DPKG_ROOT, tmp, { recursive: true });
    let now = 1000;
    const idx = new PackageIndex(nodeRootFs(tmp, mergedUsr), { now: () => now, recheckMs: 5000 });
    assert.equal(idx.lookup('/usr/lib/x86_64-linux-gnu/libz.so.1.2.13')?.name, 'zlib1g');
    // `dpkg --remove zlib1g`: its stanza goes to config-files state, its lists go away.
    const status = path.join(tmp, 'var/lib/dpkg/status');
    fs.writeFileSync(status, fs.readFileSync(status, 'utf8').replace('Package: zlib1g\nStatus: install ok installed', 'Package: zlib1g\nStatus: deinstall ok config-files'));
    const later = new Date(Date.now() + 60_000);
    fs.utimesSync(status, later, later);
    now += 4999;
    assert.equal(idx.lookup('/usr/lib/x86_64-linux-gnu/libz.so.1.2.13')?.name, 'zlib1g', 'not re-checked before recheckMs');
    assert.equal(idx.stats().rebuilds, 0);
    now += 1;
    assert.equal(idx.lookup('/usr/lib/x86_64-linux-gnu/libz.so.1.2.13'), undefined);
    assert.equal(idx.lookup('/usr/lib/x86_64-linux-gnu/libc.so.6')?.name, 'libc6');
    assert.equal(idx.stats().rebuilds, 1);
    assert.equal(idx.stats().packages, 2);
    // Unchanged database: re-checked, not rebuilt.
    now += 10_000;
    idx.lookup('/usr/lib/x86_64-linux-gnu/libc.so.6');
    assert.equal(idx.stats().rebuilds, 1);
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});

test('dpkg: a change of info/ alone (a new .list) also triggers a rebuild', () => {
  let now = 0;
  const rfs = memFs({
    '/var/lib/dpkg/status': 'Package: liba\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1\n\n',
    '/var/lib/dpkg/info/liba.list': '/.\n/usr\n/usr/lib\n/usr/lib/liba.so.1\n',
  });
  const idx = new PackageIndex(rfs, { now: () => now, recheckMs: 10 });
  assert.equal(idx.lookup('/usr/lib/liba.so.1')?.version, '1');
  rfs.files['/var/lib/dpkg/info/liba.list'] += '/usr/lib/liba.so.1.0\n';
  rfs.touch('/var/lib/dpkg/info');
  now = 10;
  assert.equal(idx.lookup('/usr/lib/liba.so.1.0')?.name, 'liba');
  assert.equal(idx.stats().rebuilds, 1);
});

test('dpkg: Multi-Arch: same packages of two architectures, name:arch info files, other want states', () => {
  const rfs = memFs({
    '/var/lib/dpkg/status': [
      'Package: libfoo1\nStatus: install ok installed\nArchitecture: amd64\nMulti-Arch: same\nVersion: 2.0-1\n',
      'Package: libfoo1\nStatus: install ok installed\nArchitecture: i386\nMulti-Arch: same\nVersion: 2.0-1\n',
      'Package: held\nStatus: hold ok installed\nArchitecture: amd64\nVersion: 3\n',
      'Package: upgrading\nStatus: install ok unpacked\nArchitecture: amd64\nVersion: 4\n',
      'Package: gone\nStatus: deinstall ok config-files\nArchitecture: amd64\nVersion: 5\n',
      'Package: broken\nStatus: install reinstreq half-installed\nArchitecture: amd64\nVersion: 6\n',
    ].join('\n'),
    '/var/lib/dpkg/info/libfoo1:amd64.list': '/.\n/usr/lib/x86_64-linux-gnu/libfoo.so.1\n/usr/share/doc/libfoo1/copyright\n',
    '/var/lib/dpkg/info/libfoo1:i386.list': '/.\n/usr/lib/i386-linux-gnu/libfoo.so.1\n/usr/share/doc/libfoo1/copyright\n',
    '/var/lib/dpkg/info/libfoo1:i386.md5sums': '0123456789abcdef0123456789abcdef  usr/lib/i386-linux-gnu/libfoo.so.1\n',
    '/var/lib/dpkg/info/held.list': '/usr/bin/held\n',
    '/var/lib/dpkg/info/upgrading.list': '/usr/bin/upgrading\n',
    '/var/lib/dpkg/info/gone.list': '/usr/bin/gone\n',
    '/var/lib/dpkg/info/broken.list': '/usr/bin/broken\n',
  });
  const idx = new PackageIndex(rfs);
  assert.equal(idx.lookup('/usr/lib/x86_64-linux-gnu/libfoo.so.1')?.arch, 'amd64');
  assert.deepEqual(idx.lookup('/usr/lib/i386-linux-gnu/libfoo.so.1'), {
    name: 'libfoo1',
    version: '2.0-1',
    manager: 'dpkg',
    arch: 'i386',
    digest: { algorithm: 'md5', hex: '0123456789abcdef0123456789abcdef' },
  });
  assert.equal(idx.lookup('/usr/share/doc/libfoo1/copyright')?.name, 'libfoo1', 'shared file: first owner kept');
  assert.equal(idx.lookup('/usr/bin/held')?.version, '3');
  assert.equal(idx.lookup('/usr/bin/upgrading')?.version, '4');
  assert.equal(idx.lookup('/usr/bin/gone'), undefined);
  assert.equal(idx.lookup('/usr/bin/broken'), undefined);
  assert.equal(idx.stats().packages, 4);
  assert.equal(idx.stats().malformed, 0);
});

test('dpkg-divert: a diverted path is indexed under its new name for other packages, the diverter keeps the original', () => {
  const rfs = memFs(
    {
      '/var/lib/dpkg/status': 'Package: dash\nStatus: install ok installed\nVersion: 0.5.12-2\n\nPackage: bash\nStatus: install ok installed\nVersion: 5.2.15-2\n\nPackage: libx\nStatus: install ok installed\nVersion: 9\n',
      '/var/lib/dpkg/info/dash.list': '/.\n/bin\n/bin/dash\n/bin/sh\n',
      '/var/lib/dpkg/info/bash.list': '/.\n/bin\n/bin/bash\n/bin/sh\n',
      '/var/lib/dpkg/info/bash.md5sums': 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa  bin/sh\n',
      '/var/lib/dpkg/info/libx.list': '/lib/libx.so.1\n',
      '/var/lib/dpkg/info/libx.md5sums': 'bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb  lib/libx.so.1\n',
      // dash diverts /bin/sh away from every other package; the admin diverted libx locally.
      '/var/lib/dpkg/diversions': '/bin/sh\n/bin/sh.distrib\ndash\n/lib/libx.so.1\n/lib/libx.so.1.orig\n:\n',
    },
    mergedUsr,
  );
  const idx = new PackageIndex(rfs);
  assert.equal(idx.lookup('/usr/bin/sh')?.name, 'dash');
  assert.deepEqual(idx.lookup('/usr/bin/sh.distrib'), { name: 'bash', version: '5.2.15-2', manager: 'dpkg', digest: { algorithm: 'md5', hex: 'a'.repeat(32) } });
  assert.equal(idx.lookup('/usr/lib/libx.so.1'), undefined);
  assert.equal(idx.lookup('/usr/lib/libx.so.1.orig')?.digest?.hex, 'b'.repeat(32));
  assert.equal(idx.stats().diverted, 2);
});

test('apk fixture: musl and zlib with name, version, arch and the sha1 of the Z: line', () => {
  const idx = new PackageIndex(nodeRootFs(APK_ROOT, identity));
  assert.deepEqual(idx.lookup('/lib/ld-musl-x86_64.so.1'), {
    name: 'musl',
    version: '1.2.5-r1',
    manager: 'apk',
    arch: 'x86_64',
    digest: { algorithm: 'sha1', hex: sha1('ld-musl-x86_64.so.1 contents') },
  });
  assert.equal(sha1('ld-musl-x86_64.so.1 contents'), '001f3e48a3623edd20d16b41aa7e5e5b875fdaf8');
  // apk records a symlink's checksum as the sha1 of its target.
  assert.equal(idx.lookup('/lib/libc.musl-x86_64.so.1')?.digest?.hex, sha1('ld-musl-x86_64.so.1'));
  assert.deepEqual(idx.lookup('/usr/lib/libz.so.1.3.1'), {
    name: 'zlib',
    version: '1.3.1-r1',
    manager: 'apk',
    arch: 'x86_64',
    digest: { algorithm: 'sha1', hex: '29f81d5f8d93bf164ba7e98433530079b5343de3' },
  });
  assert.equal(idx.lookup('/usr/lib/libz.so.1')?.name, 'zlib');
  assert.equal(idx.lookup('/usr/lib'), undefined);
  assert.equal(idx.lookup('/lib/libz.so.1'), undefined);
  assert.deepEqual(idx.status(), { manager: 'apk', indexed: true, files: 4, truncated: false });
  assert.equal(idx.stats().packages, 2);
  assert.equal(idx.stats().malformed, 0);
});

test('apk: Q2 (sha256) and legacy md5 checksums, files before any F: (root), a rewritten installed file', () => {
  let now = 0;
  const z256 = 'Q2' + createHash('sha256').update('x').digest('base64');
  const rfs = memFs({
    '/lib/apk/db/installed': `P:a\nV:1-r0\nR:rootfile\nZ:${md5('r')}\nF:usr/lib\nR:liba.so\na:0:0:755\nZ:${z256}\nR:nosum.so\n\nP:b\nV:2-r0\nF:usr/lib\nR:libb.so\nZ:Q1bogus\n`,
  });
  const idx = new PackageIndex(rfs, { now: () => now });
  assert.deepEqual(idx.lookup('/rootfile')?.digest, { algorithm: 'md5', hex: md5('r') });
  assert.deepEqual(idx.lookup('/usr/lib/liba.so')?.digest, { algorithm: 'sha256', hex: createHash('sha256').update('x').digest('hex') });
  assert.deepEqual(idx.lookup('/usr/lib/nosum.so'), { name: 'a', version: '1-r0', manager: 'apk' });
  assert.deepEqual(idx.lookup('/usr/lib/libb.so'), { name: 'b', version: '2-r0', manager: 'apk' }, 'an undecodable Z: is no digest');
  rfs.files['/lib/apk/db/installed'] = 'P:a\nV:1-r1\nF:usr/lib\nR:liba.so\n';
  rfs.touch('/lib/apk/db/installed');
  now = 5000;
  assert.equal(idx.lookup('/usr/lib/liba.so')?.version, '1-r1');
  assert.equal(idx.lookup('/usr/lib/libb.so'), undefined);
  assert.equal(idx.stats().rebuilds, 1);
});

test('hostile dpkg input: truncated status, NUL, CRLF, 10 MB lines, relative paths, bad names are counted, not thrown', () => {
  const rfs = memFs({
    '/var/lib/dpkg/status': [
      'Package: good\r\nStatus: install ok installed\r\nArchitecture: amd64\r\nVersion: 1.0\r\nDescription: x\r\n continuation\r\n\r\n',
      'Package: ../../etc/evil\nStatus: install ok installed\nVersion: 1\n\n',
      'Package: nover\nStatus: install ok installed\n\n',
      'no colon here\n\n',
      'Package: nul\u0000\nStatus: install ok installed\nVersion: 1\n\n',
      'Package: cut\nStatus: install ok installed\nVersion: 7',
    ].join(''),
    '/var/lib/dpkg/info/good.list': Buffer.concat([
      Buffer.from('/.\r\n/usr/lib/libgood.so.1\r\nrelative/path.so\r\n/usr/lib/x' + 'y'.repeat(10 * 1024 * 1024) + '\n/usr/lib/with\u0000nul.so\n/usr/./lib/dot.so\n/usr/lib/../../etc/passwd\n/usr/lib/trailing/\n'),
      Buffer.from([0x2f, 0xff, 0xfe, 0x0a]),
      Buffer.from('/usr/lib/libgood.so.2'),
    ]),
    '/var/lib/dpkg/info/good.md5sums': 'nothex  usr/lib/libgood.so.1\n' + md5('g') + '  usr/lib/libgood.so.2\n\n',
    '/var/lib/dpkg/info/cut.list': '/usr/bin/cut\n',
    '/var/lib/dpkg/diversions': '/usr/lib/a\n/usr/lib/b\n',
  });
  const idx = new PackageIndex(rfs);
  assert.deepEqual(idx.lookup('/usr/lib/libgood.so.1'), { name: 'good', version: '1.0', manager: 'dpkg', arch: 'amd64' });
  assert.equal(idx.lookup('/usr/lib/libgood.so.2')?.digest?.hex, md5('g'), 'last line without newline');
  assert.equal(idx.lookup('/usr/bin/cut')?.version, '7', 'status cut short after its last field');
  assert.equal(idx.lookup('/usr/lib/dot.so'), undefined);
  assert.equal(idx.lookup('/etc/passwd'), undefined);
  const s = idx.stats();
  assert.equal(s.packages, 2);
  // status 5: bad name, no Version, no colon, the NUL line and its stanza left without Package;
  // list 6: relative, 10 MB, NUL, /./, /../, trailing slash; md5sums 1: not hex; diversions 1: short.
  assert.equal(s.malformed, 13);
  assert.equal(idx.status().indexed, true);
});

test('missing or unreadable database files: no throw, status says why', () => {
  const noStatus = new PackageIndex(memFs({ '/var/lib/dpkg/info/x.list': '/x\n' }));
  assert.equal(noStatus.lookup('/x'), undefined);
  assert.deepEqual(noStatus.status(), { manager: undefined, indexed: false, files: 0, truncated: false, reason: 'no package database (dpkg, apk or rpm) in this root' });
  // status present (stat answers) but unreadable; a package whose .list is missing.
  const unreadable = memFs({ '/var/lib/dpkg/status': null });
  assert.equal(new PackageIndex(unreadable).status().reason, 'dpkg status is unreadable or too large');
  const noList = new PackageIndex(memFs({ '/var/lib/dpkg/status': 'Package: a\nStatus: install ok installed\nVersion: 1\n' }));
  assert.equal(noList.lookup('/usr/bin/a'), undefined);
  assert.equal(noList.status().indexed, true);
  const throwing: RootFs = {
    readFile: () => {
      throw new Error('EIO');
    },
    readdir: () => undefined,
    stat: () => ({ mtimeMs: 0, size: 1 }),
    canonical: identity,
  };
  const t = new PackageIndex(throwing);
  assert.equal(t.lookup('/usr/lib/libc.so.6'), undefined);
  assert.ok(t.stats().malformed >= 1);
  assert.match(t.status().reason ?? '', /reading the package database failed: EIO/);
  assert.equal(new PackageIndex(memFs({ '/var/lib/dpkg/status': 'x'.repeat(100) }), { maxFileBytes: 10 }).status().indexed, false);
});

test('rpm roots are detected and reported as not indexed', () => {
  for (const dir of ['/var/lib/rpm/rpmdb.sqlite', '/usr/lib/sysimage/rpm/Packages.db']) {
    const idx = new PackageIndex(memFs({ [dir]: 'SQLite format 3\u0000' }));
    assert.equal(idx.lookup('/usr/lib64/libc.so.6'), undefined);
    assert.deepEqual(idx.status(), { manager: 'rpm', indexed: false, files: 0, truncated: false, reason: 'rpm databases are not read yet' });
  }
});

test('maxFiles bounds the index and status() says it was truncated', () => {
  const list = Array.from({ length: 100 }, (_, i) => `/usr/lib/plugins/p${i}.so`).join('\n');
  const idx = new PackageIndex(memFs({ '/var/lib/dpkg/status': 'Package: many\nStatus: install ok installed\nVersion: 1\n', '/var/lib/dpkg/info/many.list': list }), { maxFiles: 10 });
  assert.equal(idx.lookup('/usr/lib/plugins/p0.so')?.name, 'many');
  assert.equal(idx.lookup('/usr/lib/plugins/p50.so'), undefined);
  const st = idx.status();
  assert.equal(st.truncated, true);
  assert.equal(st.files, 10);
  assert.match(st.reason ?? '', /truncated at maxFiles=10/);
});

test('nodeRootFs reads through canonical(): an absolute symlink in a root stays inside it; FIFOs are not read', () => {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-root-'));
  try {
    fs.mkdirSync(path.join(root, 'var/lib'), { recursive: true });
    fs.mkdirSync(path.join(root, 'data/dpkg/info'), { recursive: true });
    fs.symlinkSync('/data/dpkg', path.join(root, 'var/lib/dpkg')); // absolute: means <root>/data/dpkg
    fs.writeFileSync(path.join(root, 'data/dpkg/status'), 'Package: inroot\nStatus: install ok installed\nVersion: 1\n');
    fs.writeFileSync(path.join(root, 'data/dpkg/info/inroot.list'), '/usr/lib/libin.so\n');
    const rfs = nodeRootFs(root, (p) => resolveInView(root, p, realOps).path);
    assert.equal(new PackageIndex(rfs).lookup('/usr/lib/libin.so')?.name, 'inroot');
    execFileSync('mkfifo', [path.join(root, 'data/dpkg/fifo')]);
    assert.equal(rfs.readFile('/var/lib/dpkg/fifo'), undefined);
    assert.equal(rfs.readFile('/var/lib/dpkg/absent'), undefined);
    assert.equal(rfs.readdir('/nope'), undefined);
    assert.equal(rfs.stat('/nope'), undefined);
  } finally {
    fs.rmSync(root, { recursive: true, force: true });
  }
});

test('PackageIndexes: one index per root, least recently used root evicted, drop', () => {
  const reg = new PackageIndexes({ maxRoots: 2 });
  let made = 0;
  const make = (): RootFs => {
    made++;
    return memFs({});
  };
  const a = reg.forRoot('a', make);
  assert.equal(reg.forRoot('a', make), a);
  reg.forRoot('b', make);
  reg.forRoot('a', make); // a is now the most recently used
  reg.forRoot('c', make); // evicts b
  assert.equal(reg.size, 2);
  assert.equal(made, 3);
  assert.equal(reg.forRoot('a', make), a);
  assert.notEqual(reg.forRoot('b', make), undefined);
  assert.equal(made, 4);
  assert.equal(reg.drop('a'), true);
  assert.equal(reg.drop('a'), false);
  assert.notEqual(reg.forRoot('a', make), a);
});

/** realpath inside the host root; for a missing path, its deepest existing parent resolved. */
function realCanonical(p: string): string {
  try {
    return fs.realpathSync.native(p);
  } catch {
    const d = path.dirname(p);
    return d === p ? p : path.join(realCanonical(d), path.basename(p));
  }
}

test('this machine: the real /var/lib/dpkg finds libc.so.6 and its md5 matches the file', { skip: !fs.existsSync('/var/lib/dpkg/status') && 'not a dpkg host' }, (t) => {
  v8.setFlagsFromString('--expose-gc');
  const gc = vm.runInNewContext('gc') as () => void;
  gc();
  const heap0 = process.memoryUsage().heapUsed;
  const t0 = process.hrtime.bigint();
  const idx = new PackageIndex(nodeRootFs('', realCanonical));
  const libc = '/usr/lib/x86_64-linux-gnu/libc.so.6';
  const hit = idx.lookup(libc);
  const buildMs = Number(process.hrtime.bigint() - t0) / 1e6;
  gc();
  const heapMb = (process.memoryUsage().heapUsed - heap0) / 1024 / 1024;
  const s = idx.stats();
  t.diagnostic(`dpkg index: ${s.files} files, ${s.directories} dirs, ${s.packages} packages, ${s.diverted} diverted, ${s.malformed} malformed; first lookup (build + libc6 md5sums) ${buildMs.toFixed(0)} ms; heap +${heapMb.toFixed(1)} MiB`);
  assert.equal(hit?.name, 'libc6');
  assert.equal(hit?.manager, 'dpkg');
  assert.equal(hit?.digest?.algorithm, 'md5');
  assert.equal(hit?.digest?.hex, md5(fs.readFileSync(libc)));
  const version = /^Package: libc6\n(?:[^\n]+\n)*?Version: (\S+)/m.exec(fs.readFileSync('/var/lib/dpkg/status', 'utf8'));
  assert.equal(hit?.version, version?.[1]);
  assert.equal(idx.status().indexed, true);
  assert.equal(idx.status().truncated, false);
  assert.ok(s.files > 1000, `files ${s.files}`);
  // Loose bounds, so that a slow CI box passes but a regression (a canonical() per file, sliced
  // strings keeping every .list alive) does not.
  assert.ok(buildMs < 10_000, `build ${buildMs} ms`);
  assert.ok(heapMb < 200, `heap ${heapMb} MiB`);
  // Repeated lookups are map lookups: no rebuild, no re-read.
  const t1 = process.hrtime.bigint();
  for (let i = 0; i < 10_000; i++) idx.lookup(libc);
  t.diagnostic(`10,000 cached lookups: ${(Number(process.hrtime.bigint() - t1) / 1e6).toFixed(1)} ms`);
  assert.equal(idx.stats().rebuilds, 0);
});
