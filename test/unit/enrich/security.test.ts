import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { DynamicInfo } from '../../../src/elf/metadata';
import type { EnrichedLoad } from '../../../src/enrich/enricher';
import { FirstSeenStore } from '../../../src/enrich/first-seen';
import type { FileHasher, HashOutcome } from '../../../src/enrich/hasher';
import { PackageIndexes, type RootFs } from '../../../src/enrich/packages';
import { defaultRiskRules } from '../../../src/enrich/risk';
import { LoadSecurity, writableByNonRoot, type SecurityHost } from '../../../src/enrich/security';
import type { FileFacts, ProcessInfo } from '../../../src/host/proc-reader';
import type { LoadEvent } from '../../../src/types';

/** A root: files with facts and dynamic sections, a dpkg database. Paths are canonical already. */
function fixture() {
  const files = new Map<string, { facts: FileFacts; dyn?: DynamicInfo }>();
  const file = (p: string, over: Partial<FileFacts> = {}, dyn?: DynamicInfo) =>
    files.set(p, { facts: { kind: 'file', mode: 0o100644, uid: 0, gid: 0, dev: 1, ino: files.size + 100, size: 1000, mtimeNs: 1n, ...over }, ...(dyn ? { dyn } : {}) });
  const dir = (p: string, over: Partial<FileFacts> = {}) => files.set(p, { facts: { kind: 'dir', mode: 0o40755, uid: 0, gid: 0, dev: 1, ino: files.size + 100, size: 4096, mtimeNs: 1n, ...over } });
  for (const d of ['/usr/bin', '/usr/lib/x86_64-linux-gnu', '/opt/app/lib', '/tmp/x']) dir(d);
  dir('/tmp/x', { mode: 0o41777 });
  file('/usr/bin/app', {}, { needed: ['libapp.so', 'libc.so.6'], runpath: '/opt/app/lib', interp: '/lib64/ld-linux-x86-64.so.2' });
  file('/opt/app/lib/libapp.so', {}, { needed: ['libz.so.1'], buildId: 'aa11' });
  file('/usr/lib/x86_64-linux-gnu/libz.so.1', {}, { needed: [], buildId: 'bb22' });
  file('/usr/lib/x86_64-linux-gnu/libc.so.6', {}, { needed: [], buildId: 'cc33' });
  file('/tmp/x/libevil.so', { mode: 0o100666 }, { needed: [] });
  const db: Record<string, string> = {
    '/var/lib/dpkg/status': 'Package: libc6\nStatus: install ok installed\nArchitecture: amd64\nVersion: 2.36-9\n\nPackage: zlib1g\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1:1.2.13\n\n',
    '/var/lib/dpkg/info/libc6:amd64.list': '/usr/lib/x86_64-linux-gnu/libc.so.6\n',
    '/var/lib/dpkg/info/libc6:amd64.md5sums': `${'1'.repeat(32)}  usr/lib/x86_64-linux-gnu/libc.so.6\n`,
    '/var/lib/dpkg/info/zlib1g:amd64.list': '/usr/lib/x86_64-linux-gnu/libz.so.1\n',
    '/var/lib/dpkg/info/zlib1g:amd64.md5sums': `${'2'.repeat(32)}  usr/lib/x86_64-linux-gnu/libz.so.1\n`,
  };
  const rootFs: RootFs = {
    readFile: (p) => (db[p] !== undefined ? Buffer.from(db[p]!) : undefined),
    readdir: (p) => (p === '/var/lib/dpkg/info' ? Object.keys(db).filter((k) => k.startsWith('/var/lib/dpkg/info/')).map((k) => path.basename(k)) : undefined),
    stat: (p) => (db[p] !== undefined || p === '/var/lib/dpkg/info' ? { mtimeMs: 1, size: db[p]?.length ?? 0 } : undefined),
    canonical: (p) => p,
  };
  const host: SecurityHost = {
    viewOf: () => ({ id: 'host', prefix: '' }),
    canonicalIn: (_id, _prefix, f) => f,
    fileFacts: (p) => files.get(p)?.facts,
    readSmallFile: () => undefined,
    dynamicInfo: (p) => files.get(p)?.dyn,
    execOf: () => '/usr/bin/app',
    rootFs: () => rootFs,
  };
  return { files, host };
}

/** A hasher that answers md5 from a table, after `delayMs`. */
function fakeHasher(md5: Record<number, string>, delayMs = 0): FileHasher & { calls: number } {
  const h = {
    calls: 0,
    cached: () => undefined,
    hash(_p: string, id: { ino: number }): Promise<HashOutcome> {
      h.calls++;
      return new Promise((r) => setTimeout(() => r({ ok: true, digests: { sha256: 'f'.repeat(64), md5: md5[id.ino] ?? '0'.repeat(32) }, cached: false }), delayMs));
    },
  };
  return h as unknown as FileHasher & { calls: number };
}

const proc = (over: Partial<ProcessInfo> = {}): ProcessInfo => ({ pid: 7, uid: 0, missing: [], loaderEnv: {}, secure: false, ...over });

function load(p: string, method: LoadEvent['method'], requestedName: string, files: Map<string, { facts: FileFacts }>, over: Partial<LoadEvent> = {}): EnrichedLoad {
  const f = files.get(p)?.facts;
  return {
    event: { timestampNs: 1n, pid: 7, tid: 7, comm: 'app', method, path: p, requestedName, result: 'ok', probe: 'x', ...over },
    process: proc(),
    ...(f ? { file: { inode: f.ino, dev: f.dev, size: f.size } } : {}),
    missing: [],
  };
}

async function verdictOf(sec: LoadSecurity, l: EnrichedLoad) {
  const v = sec.assess(l, { 'file.path': l.event.path!, 'soload.load.method': l.event.method, 'soload.result': 'ok' }, { 'process.user.id': 0 });
  return v.pending ? await v.pending : v;
}

test('the requester graph gives each DT_NEEDED load its step; packages, modified files, risk and severity', async () => {
  const { files, host } = fixture();
  const libc = files.get('/usr/lib/x86_64-linux-gnu/libc.so.6')!.facts.ino;
  const zlib = files.get('/usr/lib/x86_64-linux-gnu/libz.so.1')!.facts.ino;
  const sec = new LoadSecurity(host, {
    rules: defaultRiskRules(),
    severity: { low: 'INFO', medium: 'WARN', high: 'ERROR' },
    packages: new PackageIndexes(),
    hasher: fakeHasher({ [libc]: '1'.repeat(32), [zlib]: '9'.repeat(32) }),
    hashWaitMs: 1000,
  });
  const early = await verdictOf(sec, load('/usr/lib/x86_64-linux-gnu/libc.so.6', 'needed', 'libc.so.6', files, { pid: 8 }));
  assert.deepEqual(early.attributes['soload.enrichment.missing'], ['soload.package'], 'a root first met is indexed later, off its start-up burst');
  sec.warmPackages({ id: 'host', prefix: '' });
  const app = await verdictOf(sec, load('/opt/app/lib/libapp.so', 'needed', 'libapp.so', files));
  assert.equal(app.attributes['soload.search.step'], 'runpath');
  assert.equal(app.attributes['soload.search.requester'], '/usr/bin/app');
  assert.equal(app.attributes['soload.build_id'], 'aa11');
  assert.deepEqual(app.attributes['soload.risk.reasons'], ['not_packaged']);
  assert.equal(app.risk, 'low');
  // libz is needed by libapp.so (not by the program): default dirs, with libapp.so as requester;
  // no ld.so.cache in this root
  const z = await verdictOf(sec, load('/usr/lib/x86_64-linux-gnu/libz.so.1', 'needed', 'libz.so.1', files));
  assert.equal(z.attributes['soload.search.step'], 'default_dirs');
  assert.equal(z.attributes['soload.search.requester'], '/opt/app/lib/libapp.so');
  assert.equal(z.attributes['soload.package.name'], 'zlib1g');
  assert.equal(z.attributes['soload.package.modified'], true);
  assert.equal(z.risk, 'high');
  assert.equal(z.severity, 'ERROR');
  const c = await verdictOf(sec, load('/usr/lib/x86_64-linux-gnu/libc.so.6', 'needed', 'libc.so.6', files));
  assert.equal(c.attributes['soload.package.version'], '2.36-9');
  assert.equal(c.attributes['soload.package.modified'], false);
  assert.equal(c.attributes['file.hash.sha256'], 'f'.repeat(64));
  assert.equal(c.risk, 'none');
  assert.equal(c.severity, undefined);
});

test('first sight is decided once per record, also when the record waited for its digest', async () => {
  const { files, host } = fixture();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-fs-'));
  const store = new FirstSeenStore({ dir: path.join(dir, 'state') });
  store.open();
  const sec = new LoadSecurity(host, { rules: defaultRiskRules(), severity: { low: 'INFO', medium: 'WARN', high: 'ERROR' }, hasher: fakeHasher({}, 20), hashWaitMs: 1000, firstSeen: store });
  const l = load('/tmp/x/libevil.so', 'preload', '/tmp/x/libevil.so', files);
  const first = sec.assess(l, { 'file.path': '/tmp/x/libevil.so', 'soload.load.method': 'preload', 'soload.result': 'ok' }, { 'process.user.id': 0 });
  assert.ok(first.pending, 'a file not hashed before: the record waits');
  assert.equal(first.attributes['soload.first_seen'], undefined, 'not decided before the digest');
  const done = await first.pending!;
  assert.equal(done.attributes['soload.first_seen'], true);
  assert.equal(done.attributes['soload.file.world_writable'], true);
  assert.equal(done.attributes['soload.file.writable_dir'], true);
  assert.deepEqual(done.attributes['soload.risk.reasons'], ['tmp_path', 'world_writable', 'writable_dir', 'preload']);
  const again = await verdictOf(sec, l);
  assert.equal(again.attributes['soload.first_seen'], false);
  store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

test('a digest that takes longer than waitMs: the record goes without it, marked pending', async () => {
  const { files, host } = fixture();
  const sec = new LoadSecurity(host, { rules: defaultRiskRules(), severity: { low: 'INFO', medium: 'WARN', high: 'ERROR' }, hasher: fakeHasher({}, 200), hashWaitMs: 20 });
  const v = await verdictOf(sec, load('/usr/lib/x86_64-linux-gnu/libc.so.6', 'needed', 'libc.so.6', files));
  assert.equal(v.attributes['soload.file.hash.skipped'], 'pending');
  assert.equal(v.attributes['file.hash.sha256'], undefined);
  assert.equal(sec.stats.hashTimeouts, 1);
});

test('memfd and deleted loads are not read, and say why', async () => {
  const { files, host } = fixture();
  const sec = new LoadSecurity(host, { rules: defaultRiskRules(), severity: { low: 'INFO', medium: 'WARN', high: 'ERROR' }, hasher: fakeHasher({}), hashWaitMs: 100 });
  const m = await verdictOf(sec, load('/memfd:x', 'dlopen', '/proc/self/fd/3', files, { memfd: true, deleted: true }));
  assert.equal(m.attributes['soload.file.hash.skipped'], 'memfd');
  const d = await verdictOf(sec, load('/opt/app/lib/gone.so', 'dlopen', '/opt/app/lib/gone.so', files, { deleted: true }));
  assert.equal(d.attributes['soload.file.hash.skipped'], 'deleted');
});

test('writableByNonRoot: other-writable, non-root group-writable, non-root owner', () => {
  assert.equal(writableByNonRoot({ mode: 0o40755, uid: 0, gid: 0 }), false);
  assert.equal(writableByNonRoot({ mode: 0o41777, uid: 0, gid: 0 }), true);
  assert.equal(writableByNonRoot({ mode: 0o40775, uid: 0, gid: 0 }), false);
  assert.equal(writableByNonRoot({ mode: 0o40775, uid: 0, gid: 50 }), true);
  assert.equal(writableByNonRoot({ mode: 0o40755, uid: 1000, gid: 1000 }), true);
});
