/**
 * The security signal on real loads by real programs: how each library was found (every search
 * step by a program built for it: RPATH, RUNPATH, $ORIGIN, LD_LIBRARY_PATH, the cache, the default
 * directories, LD_PRELOAD and /etc/ld.so.preload in a scratch root), its package (the host's dpkg
 * database, and a scratch root's own database with a modified file), digest, build-id, owner and
 * permissions, memfd and deleted loads, a setuid program given LD_LIBRARY_PATH, first sight across
 * a restart, the risk and the severity it maps to. Expectations come from the system's own tools
 * (dpkg-query, sha256 of the file, the ELF note) — never from soload.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { FIXTURES_C, gcc, requireLiveKernel, soloadLeftovers, startSoload, type ConsoleLine, type SoloadProcess } from '../helpers/soload';

const LIBC = '/usr/lib/x86_64-linux-gnu/libc.so.6';
const attr = (r: ConsoleLine, k: string) => r.attributes[k];
const pidOf = (r: ConsoleLine) => (r.attributes['process.pid'] ?? r.resource['process.pid']) as number;

let D = '';
let R = '';
let STATE = '';

function sh(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): { pid: number; status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(cmd, args, { env: { ...process.env, ...env }, encoding: 'utf8' });
  return { pid: Number(/^(\d+) /m.exec(r.stdout)?.[1] ?? -1), status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** A program that calls into libsstep.so and prints its pid, lingering so /proc can be read. */
const MAIN_C = `#include <stdio.h>
#include <unistd.h>
int sstep(void);
int main(void) { printf("%d %d\\n", (int)getpid(), sstep()); fflush(stdout); usleep(700000); return 0; }
`;

/** Runs a program without blocking the test's event loop (soload's output keeps being read). */
function runAsync(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd, args, { env: { ...process.env, ...env } });
    let out = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.on('error', reject);
    c.on('exit', () => resolve(out));
  });
}

function sha256(file: string): string {
  return crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex');
}

function md5(file: string): string {
  return crypto.createHash('md5').update(fs.readFileSync(file)).digest('hex');
}

function buildIdOf(file: string): string {
  const out = spawnSync('readelf', ['-n', file], { encoding: 'utf8' }).stdout;
  const m = /Build ID: ([0-9a-f]+)/.exec(out);
  if (!m) throw new Error(`no build id in ${file}`);
  return m[1]!;
}

before(() => {
  requireLiveKernel();
  // /tmp on purpose for the planted libraries; the search-step programs live there too (the risk
  // rules are asserted where they matter).
  D = fs.mkdtempSync('/tmp/soload-sec-');
  fs.chmodSync(D, 0o755);
  STATE = path.join(D, 'state');
  fs.writeFileSync(path.join(D, 'lib.c'), 'int sstep(void) { return 42; }\n');
  fs.writeFileSync(path.join(D, 'main.c'), MAIN_C);
  gcc(['-shared', '-fPIC', '-Wl,-soname,libsstep.so', '-o', path.join(D, 'libsstep.so'), path.join(D, 'lib.c')]);
  gcc(['-O1', '-o', path.join(D, 'secload'), path.join(FIXTURES_C, 'secload.c')]);
  for (const sub of ['rp', 'rn', 'origin/lib', 'llp', 'evil', 'del', 'ww', 'suid']) {
    fs.mkdirSync(path.join(D, sub), { recursive: true });
    fs.copyFileSync(path.join(D, 'libsstep.so'), path.join(D, sub, 'libsstep.so'));
  }
  const main = path.join(D, 'main.c');
  const link = (out: string, dir: string, extra: string[]) => gcc(['-o', out, main, `-L${dir}`, '-lsstep', ...extra]);
  link(path.join(D, 'prog-rpath'), path.join(D, 'rp'), [`-Wl,-rpath,${D}/rp`, '-Wl,--disable-new-dtags']);
  link(path.join(D, 'prog-runpath'), path.join(D, 'rn'), [`-Wl,-rpath,${D}/rn`, '-Wl,--enable-new-dtags']);
  link(path.join(D, 'origin', 'prog-origin'), path.join(D, 'origin', 'lib'), ['-Wl,-rpath,$ORIGIN/lib', '-Wl,--disable-new-dtags']);
  link(path.join(D, 'prog-llp'), path.join(D, 'llp'), []);
  // a setuid-root program run by nobody with LD_LIBRARY_PATH (AT_SECURE: ld.so ignores the variable)
  link(path.join(D, 'suid', 'prog-suid'), path.join(D, 'suid'), [`-Wl,-rpath,${D}/suid`]);
  fs.chmodSync(path.join(D, 'suid', 'prog-suid'), 0o4755);
  fs.chmodSync(path.join(D, 'ww'), 0o777);
  fs.chmodSync(path.join(D, 'ww', 'libsstep.so'), 0o666);

  // A scratch root (merged /usr like Debian 12) with no ld.so.cache, an /etc/ld.so.preload and
  // its own dpkg database, in which libsstep.so's recorded md5 is not the file's.
  R = path.join(D, 'root');
  const lib = path.join(R, 'usr', 'lib', 'x86_64-linux-gnu');
  fs.mkdirSync(lib, { recursive: true });
  fs.symlinkSync('usr/lib', path.join(R, 'lib'));
  fs.mkdirSync(path.join(R, 'lib64'));
  fs.symlinkSync('../usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', path.join(R, 'lib64', 'ld-linux-x86-64.so.2'));
  for (const f of ['libc.so.6', 'ld-linux-x86-64.so.2']) fs.copyFileSync(path.join('/usr/lib/x86_64-linux-gnu', f), path.join(lib, f));
  fs.copyFileSync(path.join(D, 'libsstep.so'), path.join(lib, 'libsstep.so'));
  gcc(['-shared', '-fPIC', '-o', path.join(lib, 'libpre.so'), path.join(D, 'lib.c')]);
  link(path.join(R, 'prog-plain'), path.join(D), []);
  fs.mkdirSync(path.join(R, 'etc'));
  fs.writeFileSync(path.join(R, 'etc', 'ld.so.preload'), '/usr/lib/x86_64-linux-gnu/libpre.so\n');
  const dpkg = path.join(R, 'var', 'lib', 'dpkg');
  fs.mkdirSync(path.join(dpkg, 'info'), { recursive: true });
  fs.writeFileSync(path.join(dpkg, 'status'), 'Package: scratch-libs\nStatus: install ok installed\nPriority: optional\nArchitecture: amd64\nVersion: 9.9-test1\nDescription: test\n\n');
  fs.writeFileSync(path.join(dpkg, 'info', 'scratch-libs.list'), '/.\n/lib\n/lib/x86_64-linux-gnu\n/lib/x86_64-linux-gnu/libc.so.6\n/lib/x86_64-linux-gnu/libsstep.so\n');
  fs.writeFileSync(
    path.join(dpkg, 'info', 'scratch-libs.md5sums'),
    `${md5(path.join(lib, 'libc.so.6'))}  lib/x86_64-linux-gnu/libc.so.6\n${'0'.repeat(32)}  lib/x86_64-linux-gnu/libsstep.so\n`,
  );
});

after(() => {
  if (D) fs.rmSync(D, { recursive: true, force: true });
  assert.deepEqual(soloadLeftovers(), { probes: [], instances: [] }, 'soload left probes or instances in the kernel');
});

function config(extra: object = {}): object {
  return {
    otel: { exporters: ['console'] },
    capture: { snapshot: false },
    security: { stateDir: STATE, hash: { maxFileBytes: 4 * 1024 * 1024 * 1024 } },
    ...extra,
  };
}

/** The load record of `file` by process `pid`. */
async function loadOf(s: SoloadProcess, pid: number, file: string, opts: { inode?: number; timeoutMs?: number } = {}): Promise<ConsoleLine> {
  const [r] = await s.waitFor(
    (x) => x.eventName === 'so.load' && pidOf(x) === pid && attr(x, 'file.path') === file && (opts.inode === undefined || attr(x, 'file.inode') === opts.inode),
    opts.timeoutMs ?? 8000,
  );
  assert.ok(r, `no so.load record of ${file} by pid ${pid}; soload stderr:\n${s.stderr().slice(-2000)}`);
  return r;
}

test('every search step, by programs built for each, with the requesting object named', async () => {
  const s = await startSoload(config());
  try {
    const cases: Array<{ run: () => ReturnType<typeof sh>; file: string; step: string; dir?: string }> = [
      { run: () => sh(path.join(D, 'prog-rpath'), []), file: path.join(D, 'rp', 'libsstep.so'), step: 'rpath', dir: `${D}/rp` },
      { run: () => sh(path.join(D, 'prog-runpath'), []), file: path.join(D, 'rn', 'libsstep.so'), step: 'runpath', dir: `${D}/rn` },
      { run: () => sh(path.join(D, 'origin', 'prog-origin'), []), file: path.join(D, 'origin', 'lib', 'libsstep.so'), step: 'origin' },
      { run: () => sh(path.join(D, 'prog-llp'), [], { LD_LIBRARY_PATH: path.join(D, 'llp') }), file: path.join(D, 'llp', 'libsstep.so'), step: 'ld_library_path' },
      { run: () => sh(path.join(D, 'prog-rpath'), []), file: LIBC, step: 'ld_so_cache' },
      { run: () => sh('chroot', [R, '/prog-plain']), file: '/usr/lib/x86_64-linux-gnu/libsstep.so', step: 'default_dirs' },
      { run: () => sh('chroot', [R, '/prog-plain']), file: '/usr/lib/x86_64-linux-gnu/libpre.so', step: 'preload_file' },
      { run: () => sh('sleep', ['0.7'], { LD_PRELOAD: path.join(D, 'evil', 'libsstep.so') }), file: path.join(D, 'evil', 'libsstep.so'), step: 'preload_env' },
    ];
    const failures: string[] = [];
    for (const c of cases) {
      const ran = c.run();
      const pid = ran.pid > 0 ? ran.pid : Number(/^(\d+)/.exec(ran.stdout)?.[1]);
      if (c.step === 'preload_env') {
        // sleep prints nothing: find the preload by path
        const [r] = await s.waitFor((x) => x.eventName === 'so.load' && attr(x, 'file.path') === c.file, 8000);
        if (!r) failures.push(`${c.step}: no record of ${c.file}`);
        else if (attr(r, 'soload.search.step') !== c.step) failures.push(`${c.step}: got ${String(attr(r, 'soload.search.step'))} (${JSON.stringify(r.attributes)})`);
        continue;
      }
      assert.ok(pid > 0, `${c.step}: the program did not run: ${ran.stderr}`);
      const [r] = await s.waitFor((x) => x.eventName === 'so.load' && attr(x, 'file.path') === c.file && (pidOf(x) === pid || attr(x, 'soload.process.ns_pid') === pid), 8000);
      if (!r) {
        failures.push(`${c.step}: no record of ${c.file} by ${pid}`);
        continue;
      }
      if (attr(r, 'soload.search.step') !== c.step) failures.push(`${c.step}: got ${String(attr(r, 'soload.search.step'))} for ${c.file} (${JSON.stringify(r.attributes)})`);
      if (c.dir && attr(r, 'soload.search.dir') !== c.dir) failures.push(`${c.step}: search dir ${String(attr(r, 'soload.search.dir'))}, want ${c.dir}`);
      if (attr(r, 'soload.search.inferred') === true && c.step !== 'ld_so_cache') failures.push(`${c.step}: inferred although the environment was readable`);
    }
    assert.deepEqual(failures, []);
  } finally {
    await s.stop();
  }
});

test('provenance and file facts of a package-owned libc: none; the scratch root uses its own dpkg database and sees the modified file', async () => {
  const version = spawnSync('dpkg-query', ['-W', '-f', '${Version}', 'libc6'], { encoding: 'utf8' }).stdout.trim();
  assert.ok(version, 'dpkg-query knows libc6');
  const s = await startSoload(config());
  try {
    const host = sh(path.join(D, 'prog-rpath'), []);
    const libc = await loadOf(s, host.pid, LIBC);
    assert.equal(attr(libc, 'soload.package.name'), 'libc6');
    assert.equal(attr(libc, 'soload.package.version'), version);
    assert.equal(attr(libc, 'soload.package.manager'), 'dpkg');
    assert.equal(attr(libc, 'soload.package.modified'), false);
    assert.equal(attr(libc, 'file.hash.sha256'), sha256(LIBC));
    assert.equal(attr(libc, 'soload.build_id'), buildIdOf(LIBC));
    assert.equal(attr(libc, 'soload.file.owner_uid'), 0);
    assert.equal(attr(libc, 'soload.file.world_writable'), false);
    assert.equal(attr(libc, 'soload.file.writable_dir'), false);
    assert.equal(attr(libc, 'soload.risk'), 'none', JSON.stringify(libc.attributes));
    assert.equal(attr(libc, 'soload.risk.reasons'), undefined);
    assert.equal(libc.severityText, 'INFO');

    const mine = await loadOf(s, host.pid, path.join(D, 'rp', 'libsstep.so'));
    assert.equal(attr(mine, 'soload.package.name'), undefined, 'a locally built library belongs to no package');
    assert.equal(attr(mine, 'soload.package.manager'), 'dpkg');
    assert.ok((attr(mine, 'soload.risk.reasons') as string[]).includes('not_packaged'));

    // a root first met is indexed a second later (off its start-up burst): its first process says
    // so, the next ones have provenance
    const first = sh('chroot', [R, '/prog-plain']);
    const early = await loadOf(s, first.pid, '/usr/lib/x86_64-linux-gnu/libsstep.so');
    assert.ok((attr(early, 'soload.enrichment.missing') as string[]).includes('soload.package'), JSON.stringify(early.attributes));
    await new Promise((r) => setTimeout(r, 1500));
    const scratch = sh('chroot', [R, '/prog-plain']);
    // chroot(8) loaded the host's libc in the same pid first: the scratch root's copy is told by its inode
    const rootLibc = await loadOf(s, scratch.pid, '/usr/lib/x86_64-linux-gnu/libc.so.6', { inode: fs.statSync(path.join(R, 'usr/lib/x86_64-linux-gnu/libc.so.6')).ino });
    assert.equal(attr(rootLibc, 'soload.package.name'), 'scratch-libs', "the root's own database, not the host's");
    assert.equal(attr(rootLibc, 'soload.package.version'), '9.9-test1');
    assert.equal(attr(rootLibc, 'soload.package.modified'), false, JSON.stringify(rootLibc.attributes));
    const modified = await loadOf(s, scratch.pid, '/usr/lib/x86_64-linux-gnu/libsstep.so');
    assert.equal(attr(modified, 'soload.package.name'), 'scratch-libs');
    assert.equal(attr(modified, 'soload.package.modified'), true);
    assert.equal(attr(modified, 'soload.risk'), 'high');
    assert.ok((attr(modified, 'soload.risk.reasons') as string[]).includes('modified_package_file'));
    assert.equal(modified.severityText, 'ERROR');
  } finally {
    await s.stop();
  }
});

test('risky loads: LD_PRELOAD from /tmp, memfd, deleted, world-writable file in a writable dir, setuid with LD_LIBRARY_PATH; first sight survives a restart', async () => {
  fs.rmSync(STATE, { recursive: true, force: true });
  let s = await startSoload(config());
  const evil = path.join(D, 'evil', 'libsstep.so');
  try {
    assert.equal(fs.statSync(STATE).mode & 0o777, 0o700, 'state directory created 0700');
    sh('sleep', ['0.7'], { LD_PRELOAD: evil });
    const [pre] = await s.waitFor((x) => x.eventName === 'so.load' && attr(x, 'file.path') === evil, 8000);
    assert.ok(pre, 'preload record');
    assert.equal(attr(pre, 'soload.load.method'), 'preload');
    assert.equal(attr(pre, 'soload.risk'), 'high');
    for (const r of ['preload', 'tmp_path', 'not_packaged']) assert.ok((attr(pre, 'soload.risk.reasons') as string[]).includes(r), `${r} in ${JSON.stringify(attr(pre, 'soload.risk.reasons'))}`);
    assert.equal(attr(pre, 'soload.process.ld_preload'), evil);
    assert.equal(pre.severityText, 'ERROR');
    assert.equal(attr(pre, 'soload.first_seen'), true, JSON.stringify(pre.attributes));
    sh('sleep', ['0.7'], { LD_PRELOAD: evil });
    const again = await s.waitFor((x) => x.eventName === 'so.load' && attr(x, 'file.path') === evil, 8000, 2);
    assert.equal(again.length, 2);
    assert.equal(attr(again[1]!, 'soload.first_seen'), false);

    const memfd = sh(path.join(D, 'secload'), ['memfd', path.join(D, 'libsstep.so')]);
    const [m] = await s.waitFor((x) => x.eventName === 'so.load' && pidOf(x) === memfd.pid && attr(x, 'soload.file.memfd') === true, 8000);
    assert.ok(m, `memfd record (${memfd.stdout})`);
    assert.equal(attr(m, 'soload.risk'), 'high');
    assert.ok((attr(m, 'soload.risk.reasons') as string[]).includes('memfd'));

    const victim = path.join(D, 'del', 'libsstep.so');
    const del = sh(path.join(D, 'secload'), ['delete', victim]);
    const [d] = await s.waitFor((x) => x.eventName === 'so.load' && pidOf(x) === del.pid && attr(x, 'file.path') === victim, 8000);
    assert.ok(d, 'record of the deleted library');
    assert.equal(attr(d, 'soload.file.deleted'), true);
    assert.ok((attr(d, 'soload.risk.reasons') as string[]).includes('deleted'));

    const ww = path.join(D, 'ww', 'libsstep.so');
    const wwRun = sh('sh', ['-c', `exec ${path.join(D, 'prog-llp')}`], { LD_LIBRARY_PATH: path.join(D, 'ww') });
    const wr = await loadOf(s, wwRun.pid, ww);
    assert.equal(attr(wr, 'soload.file.world_writable'), true);
    assert.equal(attr(wr, 'soload.file.writable_dir'), true);
    for (const r of ['world_writable', 'writable_dir', 'ld_library_path']) assert.ok((attr(wr, 'soload.risk.reasons') as string[]).includes(r), `${r} in ${JSON.stringify(attr(wr, 'soload.risk.reasons'))}`);

    const suid = sh('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', path.join(D, 'suid', 'prog-suid')], { LD_LIBRARY_PATH: '/nonexistent-dir' });
    assert.ok(suid.pid > 0, `setuid program ran: ${suid.stderr}`);
    const sr = await loadOf(s, suid.pid, path.join(D, 'suid', 'libsstep.so'));
    assert.equal(attr(sr, 'soload.process.secure'), true);
    assert.equal(attr(sr, 'soload.process.ld_library_path'), '/nonexistent-dir');
    assert.ok((attr(sr, 'soload.risk.reasons') as string[]).includes('ld_library_path_in_setuid'));
    assert.equal(attr(sr, 'soload.search.step'), 'runpath', "Debian's gcc links with --enable-new-dtags: -rpath writes DT_RUNPATH");
  } finally {
    await s.stop();
  }
  // first sight is host state: a restarted soload still knows the preload
  s = await startSoload(config());
  try {
    sh('sleep', ['0.7'], { LD_PRELOAD: evil });
    const [after] = await s.waitFor((x) => x.eventName === 'so.load' && attr(x, 'file.path') === evil, 8000);
    assert.ok(after);
    assert.equal(attr(after, 'soload.first_seen'), false);
  } finally {
    await s.stop();
  }
});

/** Resident and peak memory of a process, in KiB (VmRSS, VmHWM). */
function memoryOf(pid: number): { rss: number; hwm: number } {
  const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  return { rss: Number(/^VmRSS:\s+(\d+)/m.exec(status)![1]), hwm: Number(/^VmHWM:\s+(\d+)/m.exec(status)![1]) };
}

test('a 2 GB sparse library being hashed delays the records of the libraries loaded after it by < 100 ms', async () => {
  const big = path.join(D, 'big', 'libbig.so');
  fs.mkdirSync(path.dirname(big), { recursive: true });
  fs.copyFileSync(path.join(D, 'libsstep.so'), big);
  fs.truncateSync(big, 2 * 1024 * 1024 * 1024); // sparse: the loader maps only the ELF's segments
  const smalls = (tag: string) =>
    [0, 1, 2].map((i) => {
      const f = path.join(D, `small-${tag}`, `lib${i}.so`);
      fs.mkdirSync(path.dirname(f), { recursive: true });
      fs.copyFileSync(path.join(D, 'libsstep.so'), f);
      return f;
    });
  const dlopener = path.join(D, 'dlopener');
  gcc(['-o', dlopener, path.join(FIXTURES_C, 'dlopener.c')]);
  // no byte budget: the big file really is hashed while the small ones arrive
  const s = await startSoload(config({ security: { stateDir: STATE, hash: { maxFileBytes: 4 * 1024 * 1024 * 1024, bytesPerSecond: 0, waitMs: 30000 } } }));
  const latency = (r: ConsoleLine) => r.seenAt - Number(BigInt(r.timeUnixNano) / 1_000_000n);
  try {
    const base = smalls('base');
    await runAsync(dlopener, base, { SOLOAD_TEST_LINGER_MS: '300' });
    const baseline = await s.waitFor((x) => x.eventName === 'so.load' && base.includes(attr(x, 'file.path') as string), 8000, 3);
    assert.equal(baseline.length, 3);
    const after = smalls('after');
    const t0 = Date.now();
    void runAsync(dlopener, [big, ...after], { SOLOAD_TEST_LINGER_MS: '300' });
    const smallRecs = await s.waitFor((x) => x.eventName === 'so.load' && after.includes(attr(x, 'file.path') as string), 8000, 3);
    assert.equal(smallRecs.length, 3, 'records of the small libraries');
    for (const r of smallRecs) assert.match(String(attr(r, 'file.hash.sha256')), /^[0-9a-f]{64}$/, 'the small files are hashed meanwhile');
    const worstBase = Math.max(...baseline.map(latency));
    const worst = Math.max(...smallRecs.map(latency));
    const [bigRec] = await s.waitFor((x) => x.eventName === 'so.load' && attr(x, 'file.path') === big, 30000);
    assert.ok(bigRec, 'record of the big library');
    console.log(`# small-library record latency: ${worst} ms while a 2 GB file was hashed (baseline ${worstBase} ms); the 2 GB record came after ${bigRec.seenAt - t0} ms with ${attr(bigRec, 'file.hash.sha256') ? 'its sha256' : `hash skipped: ${String(attr(bigRec, 'soload.file.hash.skipped'))}`}`);
    assert.ok(worst - worstBase < 100, `small records delayed by ${worst - worstBase} ms (latency ${worst} ms vs baseline ${worstBase} ms)`);
    assert.ok(bigRec.seenAt > Math.max(...smallRecs.map((r) => r.seenAt)), 'the big record waited for its digest, the small ones did not wait for it');
  } finally {
    const t = Date.now();
    const code = await s.stop();
    console.log(`# soload stopped (${String(code)}) in ${Date.now() - t} ms; stderr tail: ${s.stderr().slice(-600).replace(/\n/g, ' | ')}`);
    fs.rmSync(path.dirname(big), { recursive: true, force: true });
  }
});

test('10,000 distinct new libraries at 1,000 a second (10× the bar\'s rate): every record delivered, soload within its memory bound', async () => {
  const dir = path.join(D, 'many');
  fs.mkdirSync(dir, { recursive: true });
  const src = fs.readFileSync(path.join(D, 'libsstep.so'));
  for (let i = 0; i < 10000; i++) fs.writeFileSync(path.join(dir, `f${i}.so`), src);
  const s = await startSoload(config({ otel: { exporters: ['console'] }, filters: { pathInclude: [`${dir}/*`] } }));
  try {
    const before = memoryOf(s.pid);
    const t0 = Date.now();
    // asynchronously: the test must keep reading soload's output while the flood runs
    const child = spawn(path.join(D, 'secload'), ['many', dir, '10000'], { env: { ...process.env, SOLOAD_TEST_LINGER_MS: '0', SOLOAD_TEST_PACE_US: '900' } });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    let peakHwm = 0;
    const sampler = setInterval(() => (peakHwm = Math.max(peakHwm, memoryOf(s.pid).hwm)), 250);
    const recs = await s.waitFor((x) => x.eventName === 'so.load' && String(attr(x, 'file.path')).startsWith(`${dir}/`), 60000, 10000);
    clearInterval(sampler);
    await new Promise((r) => (child.exitCode !== null ? r(undefined) : child.on('exit', r)));
    assert.match(out, /many ok/);
    const took = Date.now() - t0;
    const peak = Math.max(peakHwm, memoryOf(s.pid).hwm);
    const hashed = recs.filter((r) => attr(r, 'file.hash.sha256') !== undefined).length;
    const skipped: Record<string, number> = {};
    for (const r of recs) {
      const why = attr(r, 'soload.file.hash.skipped');
      if (why !== undefined) skipped[String(why)] = (skipped[String(why)] ?? 0) + 1;
    }
    console.log(`# 10,000 new files in ${took} ms: ${hashed} hashed, skipped ${JSON.stringify(skipped)}; soload RSS ${before.rss} KiB before, peak ${peak} KiB (+${peak - before.rss} KiB)`);
    assert.equal(new Set(recs.map((r) => attr(r, 'file.path'))).size, 10000, `one record per distinct file; soload: ${s.stderr().slice(-800)}`);
    assert.equal(hashed + Object.values(skipped).reduce((a, b) => a + b, 0), 10000, 'every record has a digest or says why not');
    // the bound: the hash queue (256), the digest cache (8192 identities), the first-seen state
    // (100,000 keys) and the per-process object list (1024) — far below this
    assert.ok(peak - before.rss < 200 * 1024, `soload grew by ${peak - before.rss} KiB`);
  } finally {
    await s.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
