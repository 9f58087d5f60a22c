/**
 * Processes with their own loader: real Debian 11 (glibc 2.31, dlopen in libdl.so.2) and Debian 13
 * (glibc 2.41) root filesystems made by debootstrap, entered with new mount and pid namespaces
 * (+ chroot, and once through an overlayfs with the root as lower layer, as container runtimes
 * do), a musl program, and a real debuginfod server. Every expectation is the exact string the
 * process's own /proc/self/maps printed (read inside the root, so in-container paths).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { startDebuginfod } from '../helpers/debuginfod';
import { cleanHostEnv, ensureRoots, inRoot, rootDir, debugDir, ROOTS_DIR } from '../helpers/roots';
import { requireLiveKernel, soloadLeftovers, startSoload, tmpDir, type ConsoleLine, type SoloadProcess } from '../helpers/soload';

const str = (r: ConsoleLine, k: string) => r.attributes[k] as string | undefined;
const num = (r: ConsoleLine, k: string) => r.attributes[k] as number | undefined;

before(() => {
  requireLiveKernel();
  ensureRoots();
});

after(() => {
  assert.deepEqual(soloadLeftovers(), { probes: [], instances: [] }, 'soload left probes or instances in the kernel');
});

/** soload with the console exporter, executables reported, loaders swept quickly. */
function config(extra: { imageLayers?: string[]; debuginfodCache?: string; debuginfod?: boolean } = {}): object {
  return {
    otel: { exporters: ['console'] },
    log: { level: 'info' },
    capture: { reportExecutable: true, snapshot: false },
    discovery: { imageLayers: extra.imageLayers ?? [], sweepIntervalMs: 500, layerScanIntervalMs: 300 },
    debuginfod: { enabled: extra.debuginfod ?? false, ...(extra.debuginfodCache ? { cacheDir: extra.debuginfodCache } : {}) },
  };
}

/** What one program in a root saw: its pid there, and the file-backed executable mappings. */
interface Truth {
  pid: number;
  comm: string;
  paths: Set<string>;
  /** Wall-clock window of the run that printed it (ms since the epoch). */
  window?: [number, number];
}

/** Parses `pid N` + maps dumps written by the programs run through {@link TRUTH_SH}. */
function parseTruths(out: string): Truth[] {
  const truths: Truth[] = [];
  let cur: Truth | undefined;
  for (const line of out.split('\n')) {
    const m = /^== (\S+) (\d+)$/.exec(line);
    if (m) {
      cur = { comm: m[1]!, pid: Number(m[2]), paths: new Set() };
      truths.push(cur);
      continue;
    }
    const f = /^\S+ (\S+) \S+ \S+ (\d+)\s+(\/.*)$/.exec(line);
    if (cur && f && f[1]!.includes('x') && f[2] !== '0') cur.paths.add(f[3]!.replace(/ \(deleted\)$/, ''));
  }
  return truths;
}

/**
 * Run inside a root by its own sh: a shell (first process, long enough to be read), then `cat` of
 * its own maps (DT_NEEDED only), and perl loading POSIX (perl's DynaLoader: dlopen, in libdl.so.2
 * on glibc 2.31), each printing its pid as seen in the root first.
 */
const TRUTH_SH = [
  'sleep 0.6',
  'cat /proc/self/stat /proc/self/maps | sed "1s/^\\([0-9]*\\) (\\([^)]*\\)).*/== \\2 \\1/"',
  'perl -MPOSIX -e \'print "== perl $$\\n"; open(F, "/proc/self/maps"); print <F>;\'',
  // The shell prints its own maps with builtins: a second `cat` would be a second process named cat.
  'echo "== sh $$"; while read -r l; do echo "$l"; done < /proc/$$/maps',
].join('; ');

/** The truths of one run, each with that run's time window. */
async function truthsOfRun(root: string, opts: { pidNs?: boolean; overlay?: boolean } = {}): Promise<Truth[]> {
  const start = Date.now();
  const out = await runInRootAsync(root, opts);
  const window: [number, number] = [start, Date.now()];
  return parseTruths(out).map((t) => ({ ...t, window }));
}

/** Runs TRUTH_SH (or `script`) in `root`; resolves with its stdout once it exited. */
async function runInRootAsync(root: string, opts: { pidNs?: boolean; overlay?: boolean; script?: string } = {}): Promise<string> {
  const cmd = inRoot(root, ['/bin/sh', '-c', opts.script ?? TRUTH_SH], opts);
  try {
    return await new Promise((resolve, reject) => {
      const c = spawn(cmd.file, cmd.args, { env: cleanHostEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      c.stdout.on('data', (d: Buffer) => (out += d.toString()));
      c.stderr.on('data', (d: Buffer) => (err += d.toString()));
      c.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`in ${root}: exit ${code}\n${err}`))));
    });
  } finally {
    cmd.cleanup();
  }
}

/**
 * Records of the process a truth came from: by host pid, or — in a pid namespace, where the
 * program only knows its pid there — by comm, and by `soload.process.ns_pid` when /proc could
 * still be read (a process that exits at once is enriched without it). Each test runs its
 * programs once, under one soload.
 */
function recordsOf(s: SoloadProcess, t: Truth, pidNs: boolean): ConsoleLine[] {
  return s.records.filter((r) => {
    if (str(r, 'soload.comm') !== t.comm || str(r, 'soload.result') !== 'ok') return false;
    // The root's loader only (probes planned for it carry an `_l<N>` suffix; memory reads say
    // `recovered`): the host's sh and chroot(8) ran in the same pid on the way in.
    if (pidNs && !/_l\d+($|_)|^recovered$/.test(str(r, 'soload.probe') ?? '')) return false;
    if (t.window) {
      // Another program of the same name elsewhere on the host is not this one.
      const ms = Number(BigInt(r.timeUnixNano) / 1_000_000n);
      if (ms < t.window[0] - 100 || ms > t.window[1] + 100) return false;
    }
    if (!pidNs) return num(r, 'process.pid') === t.pid;
    const nsPid = num(r, 'soload.process.ns_pid');
    return nsPid === undefined || nsPid === t.pid;
  });
}

/** Waits until every truth's objects were reported (or the deadline), then compares exactly. */
async function expectExact(s: SoloadProcess, truths: Truth[], pidNs: boolean, label: string): Promise<Map<string, ConsoleLine[]>> {
  const byComm = new Map<string, ConsoleLine[]>();
  const deadline = Date.now() + 8000;
  for (const t of truths) {
    let recs = recordsOf(s, t, pidNs);
    while (Date.now() < deadline && !([...t.paths].every((p) => recs.some((r) => str(r, 'file.path') === p)))) {
      await new Promise((r) => setTimeout(r, 100));
      recs = recordsOf(s, t, pidNs);
    }
    const reported = new Set(recs.map((r) => str(r, 'file.path')!));
    assert.deepEqual([...reported].sort(), [...t.paths].sort(), `${label}: ${t.comm} (pid ${t.pid} in the root): file.path must be exactly what its /proc/self/maps printed\n${s.stderr()}`);
    assert.equal(recs.length, reported.size, `${label}: ${t.comm}: one record per object, no duplicates`);
    byComm.set(t.comm, recs);
  }
  return byComm;
}

const methodOf = (recs: ConsoleLine[], file: RegExp) => recs.filter((r) => file.test(str(r, 'file.path') ?? '')).map((r) => str(r, 'soload.load.method'));

test('Debian 11 in new mount + pid namespaces, loader never seen before: the first process is recovered from memory, the next ones come from probes, exact in-container paths, libdl dlopen, in-namespace pid; the loader is swept after', async () => {
  const root = rootDir('bullseye');
  const s = await startSoload(config());
  try {
    const truths = await truthsOfRun(root, { pidNs: true });
    assert.deepEqual(truths.map((t) => t.comm), ['cat', 'perl', 'sh'], 'the corpus ran');
    const got = await expectExact(s, truths, true, 'bullseye');
    const sh = got.get('sh')!;
    assert.ok(sh.every((r) => r.attributes['soload.load.recovered'] === true), 'the first process (whose loader had no probes at its exec) is reported from its memory, and says so');
    assert.ok(sh.some((r) => str(r, 'soload.load.method') === 'interpreter' && str(r, 'file.path') === '/usr/lib/x86_64-linux-gnu/ld-2.31.so'));
    const perl = got.get('perl')!;
    assert.ok(perl.every((r) => r.attributes['soload.load.recovered'] === undefined), 'later processes come from the probes');
    assert.deepEqual(methodOf(perl, /POSIX\.so$/), ['dlopen'], 'POSIX.so is dlopened (through libdl.so.2 on glibc 2.31)');
    assert.deepEqual(methodOf(perl, /libm-2\.31\.so$/), ['needed']);
    assert.deepEqual(methodOf(perl, /ld-2\.31\.so$/), ['interpreter']);
    assert.deepEqual(methodOf(perl, /\/perl$/), ['executable']);
    for (const r of sh) {
      assert.equal(num(r, 'soload.process.ns_pid'), truths.find((t) => t.comm === 'sh')!.pid, 'the pid inside the container is reported');
      assert.notEqual(num(r, 'process.pid'), num(r, 'soload.process.ns_pid'));
      assert.equal(typeof num(r, 'soload.process.mnt_ns'), 'number');
    }
    assert.match(s.stderr(), /loader \S+ld-2\.31\.so \(process\): \S+: search-lists \(link_map\.l_searchlist at offset \d+ \(calibrated against pid \d+, a live process/, 'no debug symbols: search lists, calibrated against the live process of that root (no helper from the host)');
    // Sweep: nothing uses that loader any more → its probes go.
    const until = Date.now() + 5000;
    while (!/ld-2\.31\.so: no process uses it any more/.test(s.stderr()) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    assert.match(s.stderr(), /ld-2\.31\.so: no process uses it any more; its \d+ probes were removed/);
    const probes = fs.readFileSync('/sys/kernel/tracing/uprobe_events', 'utf8').split('\n').filter((l) => l.includes(`soload_${s.pid}/`));
    assert.ok(probes.length > 0 && probes.every((l) => !/_l\d+ /.test(l)), `only the host's probes remain:\n${probes.join('\n')}`);
  } finally {
    await s.stop();
  }
});

test('Debian 13 through an overlayfs (root as the lower layer, as a container runtime mounts it), pre-armed from the image layer: the first process is complete from the probes themselves', async () => {
  const root = rootDir('trixie');
  const s = await startSoload(config({ imageLayers: [path.join(ROOTS_DIR, '*')] }), { readyTimeoutMs: 60_000 });
  try {
    assert.match(s.stderr(), /loader \S+trixie\/usr\/lib\/x86_64-linux-gnu\/ld-linux-x86-64\.so\.2 \(layer\)/, 'the layer was pre-armed at start');
    assert.match(s.stderr(), /trixie\/usr\/lib\/x86_64-linux-gnu: search-lists \(link_map\.l_searchlist at offset \d+ \(calibrated against pid \d+, helper `chroot \S+trixie \/usr\/lib\/x86_64-linux-gnu\/ld-linux-x86-64\.so\.2 \/bin\/sleep 10`/, 'no process yet: calibrated against the layer\'s own sleep under its own loader');
    const truths = await truthsOfRun(root, { pidNs: true, overlay: true });
    const got = await expectExact(s, truths, true, 'trixie overlay');
    for (const [comm, recs] of got) assert.ok(recs.every((r) => r.attributes['soload.load.recovered'] === undefined), `${comm}: reported by the pre-armed probes, nothing recovered`);
    assert.deepEqual(methodOf(got.get('perl')!, /POSIX\.so$/), ['dlopen']);
    assert.doesNotMatch(s.stderr(), /exited before its loads could be read/);
  } finally {
    await s.stop();
  }
});

test('musl: 13 DT_NEEDED, LD_PRELOAD and dlopen of a musl-gcc program are reported with the same methods as glibc, exact paths', async (t) => {
  const dir = tmpDir('soload-musl-');
  const c = (name: string, src: string) => fs.writeFileSync(path.join(dir, name), src);
  c('a.c', 'int a_fn(void){return 1;}\n');
  c('b.c', 'int b_fn(void){return 2;}\n');
  c('pre.c', 'int pre_fn(void){return 3;}\n');
  c(
    'main.c',
    [
      '#include <dlfcn.h>',
      '#include <stdio.h>',
      'int a_fn(void);',
      'int main(int argc, char **argv) {',
      '  void *h = dlopen(argv[1], RTLD_NOW);',
      '  if (!h) return 2;',
      '  if (dlopen("/nonexistent/libno.so", RTLD_NOW)) return 3;',
      '  FILE *f = fopen("/proc/self/maps", "r"); char line[4096];',
      '  printf("== main\\n"); while (fgets(line, sizeof line, f)) fputs(line, stdout);',
      '  return a_fn() == 1 ? 0 : 1;',
      '}',
    ].join('\n'),
  );
  const mgcc = (args: string[]) => {
    const r = spawnSync('musl-gcc', args, { cwd: dir, encoding: 'utf8' });
    assert.equal(r.status, 0, `musl-gcc ${args.join(' ')}: ${r.stderr}`);
  };
  // Twelve more direct dependencies: past what one walk of musl's list reaches (7 entries).
  const many = Array.from({ length: 12 }, (_, i) => `m${i}`);
  for (const m of many) c(`${m}.c`, `int ${m}_fn(void){return 0;}\n`);
  for (const l of ['a', 'b', 'pre', ...many]) mgcc(['-shared', '-fPIC', '-o', `lib${l}.so`, `${l}.c`]);
  mgcc(['-o', 'main', 'main.c', '-Wl,--no-as-needed', '-L.', '-la', ...many.map((m) => `-l${m}`), `-Wl,-rpath,${dir}`]);
  const s = await startSoload(config());
  try {
    assert.match(s.stderr(), /x86_64-linux-musl: musl-lists/, 'the host musl loader got the musl mechanism');
    const r = spawnSync(path.join(dir, 'main'), [path.join(dir, 'libb.so')], { env: { LD_PRELOAD: path.join(dir, 'libpre.so') }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const truth = parseTruths(r.stdout.replace('== main', `== main ${r.pid}`))[0]!;
    const got = await expectExact(s, [truth], false, 'musl');
    const recs = got.get('main')!;
    assert.deepEqual(methodOf(recs, /libpre\.so$/), ['preload']);
    assert.deepEqual(methodOf(recs, /liba\.so$/), ['needed']);
    assert.deepEqual(methodOf(recs, /libm\d+\.so$/), many.map(() => 'needed'), 'all twelve more DT_NEEDED objects, from the program\'s deps array');
    assert.deepEqual(methodOf(recs, /libb\.so$/), ['dlopen']);
    assert.deepEqual(methodOf(recs, /musl\/libc\.so$/), ['interpreter'], 'musl\'s libc is its loader: reported once, as the interpreter');
    assert.deepEqual(methodOf(recs, /\/main$/), ['executable']);
    const failed = s.records.filter((x) => num(x, 'process.pid') === r.pid && str(x, 'soload.result') === 'failed');
    assert.deepEqual(failed.map((x) => str(x, 'soload.requested_name')), ['/nonexistent/libno.so'], 'the failed dlopen is reported as failed');
  } finally {
    await s.stop();
    t.diagnostic(`musl program in ${dir}`);
  }
});

test('debuginfod: with DEBUGINFOD_URLS a symbol-less foreign loader is upgraded to loader-lists (libc-internal dlopens seen at _dl_open); with the server gone it keeps search lists and says why', async () => {
  const root = rootDir('bullseye');
  const server = await startDebuginfod({ dirs: [debugDir('bullseye')] });
  const cache = tmpDir('soload-dbgcache-');
  let s: SoloadProcess | undefined;
  try {
    s = await startSoload(config({ imageLayers: [root], debuginfod: true, debuginfodCache: cache }), { env: { DEBUGINFOD_URLS: server.url }, readyTimeoutMs: 60_000 });
    const until = Date.now() + 20_000;
    while (!/ld-2\.31\.so: debug symbols from debuginfod/.test(s.stderr()) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    assert.match(s.stderr(), /ld-2\.31\.so: debug symbols from debuginfod http:\/\/127\.0\.0\.1:\d+\S*; search-lists → loader-lists/, 'the loader was upgraded when its debug file arrived');
    const out = await runInRootAsync(root, { script: 'echo "== iconv $$"; echo hi | iconv -f UTF-8 -t EBCDIC-US > /dev/null; sleep 0.2' });
    const pid = Number(/== iconv (\d+)/.exec(out)![1]);
    const hits = await s.waitFor((r) => str(r, 'soload.comm') === 'iconv' && /gconv\/IBM037\.so$|gconv\/EBCDIC-US\.so$/.test(str(r, 'file.path') ?? ''), 8000);
    assert.ok(hits.length >= 1, `the gconv module iconv loads inside libc (no public dlopen) is seen by the loader probe:\n${s.stderr()}`);
    assert.equal(str(hits[0]!, 'soload.load.method'), 'dlopen');
    assert.ok(hits.every((h) => num(h, 'process.pid') !== pid), 'iconv is a child of the shell');
    await s.stop();
    s = undefined;
    await server.stop();
    const cache2 = tmpDir('soload-dbgcache-');
    s = await startSoload(config({ imageLayers: [root], debuginfod: true, debuginfodCache: cache2 }), { env: { DEBUGINFOD_URLS: server.url }, readyTimeoutMs: 60_000 });
    const until2 = Date.now() + 15_000;
    while (!/ld-2\.31\.so: no debug symbols from debuginfod/.test(s.stderr()) && Date.now() < until2) await new Promise((r) => setTimeout(r, 100));
    assert.match(s.stderr(), /ld-2\.31\.so: no debug symbols from debuginfod \(.*\); keeping search-lists/, 'server stopped: the symbol-less mechanism stays, and the log says why');
  } finally {
    await s?.stop();
    await server.stop();
  }
});

/** Shell run as pid 1 of new mount + pid namespaces: overlay of `lowers` (colon list), /proc, chroot. */
function overlayCommand(lowers: string, tmp: string, script: string): { file: string; args: string[] } {
  for (const d of ['upper', 'work', 'merged']) fs.mkdirSync(path.join(tmp, d), { recursive: true });
  const sh = [
    'set -eu',
    `mount -t overlay soload-overlay -o "lowerdir=${lowers},upperdir=${tmp}/upper,workdir=${tmp}/work" "${tmp}/merged"`,
    `mount -t proc proc "${tmp}/merged/proc"`,
    `exec chroot "${tmp}/merged" /bin/sh -c "$1"`,
  ].join('\n');
  return { file: 'unshare', args: ['--mount', '--propagation', 'private', '--pid', '--fork', '/bin/sh', '-c', sh, 'soload-overlay', script] };
}

function runCommand(cmd: { file: string; args: string[] }, input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const c = spawn(cmd.file, cmd.args, { env: cleanHostEnv(), stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d: Buffer) => (out += d.toString()));
    c.stderr.on('data', (d: Buffer) => (err += d.toString()));
    c.on('exit', (code) => (code === 0 ? resolve(out) : reject(new Error(`exit ${code}\n${err}`))));
    if (input !== undefined) c.stdin.end(input);
    else c.stdin.end();
  });
}

test('an image layer that appears after start is noticed and pre-armed before its first container runs: that container\'s first process is complete from the probes', async () => {
  const trixie = rootDir('trixie');
  const layers = tmpDir('soload-layers-');
  const s = await startSoload(config({ imageLayers: [path.join(layers, '*')] }));
  const tmp = tmpDir('soload-ovl-');
  try {
    // A new layer with its own copy of the loader and libc (new inodes, as an upgrade layer has).
    const layer = path.join(layers, 'sha256-0001');
    const lib = path.join(layer, 'usr/lib/x86_64-linux-gnu');
    fs.mkdirSync(lib + '.tmp', { recursive: true });
    for (const f of ['ld-linux-x86-64.so.2', 'libc.so.6']) fs.copyFileSync(path.join(trixie, 'usr/lib/x86_64-linux-gnu', f), path.join(lib + '.tmp', f));
    fs.mkdirSync(path.join(layer, 'usr/lib'), { recursive: true });
    fs.renameSync(lib + '.tmp', lib);
    const until = Date.now() + 10_000;
    const armed = new RegExp(`loader ${layer.replace(/[/.]/g, '\\$&')}/usr/lib/x86_64-linux-gnu/ld-linux-x86-64\\.so\\.2 \\(layer\\)`);
    while (!armed.test(s.stderr()) && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    assert.match(s.stderr(), armed, 'the new layer was noticed and its loader armed');
    const start = Date.now();
    const out = await runCommand(overlayCommand(`${layer}:${trixie}`, tmp, TRUTH_SH));
    const window: [number, number] = [start, Date.now()];
    const truths = parseTruths(out).map((t) => ({ ...t, window }));
    const got = await expectExact(s, truths, true, 'new layer');
    for (const [comm, recs] of got) assert.ok(recs.every((r) => r.attributes['soload.load.recovered'] === undefined), `${comm}: from the pre-armed probes`);
    assert.doesNotMatch(s.stderr(), /exited before its loads could be read/);
  } finally {
    await s.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.rmSync(layers, { recursive: true, force: true });
  }
});

test('a loader and libc upgraded in place while a process keeps the old ones mapped: new processes get probes on the new files, the old process still reports its dlopens, and each loader\'s probes go with its last process', async () => {
  const trixie = rootDir('trixie');
  const s = await startSoload(config());
  const tmp = tmpDir('soload-upg-');
  try {
    // Inside one container: perl waits (old ld.so/libc mapped); the "package upgrade" writes new
    // files over the old names (rename: new inodes, in the overlay's upper layer); a new process
    // runs; then the old perl dlopens POSIX.
    const fifo = '/tmp/go';
    const script = [
      `mkfifo ${fifo}`,
      // perl says when its start-up (under the old files) is done; only then comes the upgrade.
      `perl -e 'print "== perl $$\n"; open(R, ">", "/tmp/ready"); close(R); open(G, "<", "${fifo}"); <G>; require POSIX; open(F, "/proc/self/maps"); print <F>;' &`,
      'while [ ! -e /tmp/ready ]; do sleep 0.05; done',
      'sleep 0.5',
      'for f in ld-linux-x86-64.so.2 libc.so.6; do cp /usr/lib/x86_64-linux-gnu/$f /usr/lib/x86_64-linux-gnu/.$f.new && mv /usr/lib/x86_64-linux-gnu/.$f.new /usr/lib/x86_64-linux-gnu/$f; done',
      'sh -c \'sleep 0.6; cat /proc/self/stat /proc/self/maps | sed "1s/^\\([0-9]*\\) (\\([^)]*\\)).*/== \\2 \\1/"\'',
      `echo go > ${fifo}`,
      'wait',
    ].join('\n');
    const start = Date.now();
    const out = await runCommand(overlayCommand(trixie, tmp, script));
    const window: [number, number] = [start, Date.now()];
    const truths = parseTruths(out).map((t) => ({ ...t, window }));
    assert.deepEqual(truths.map((t) => t.comm).sort(), ['cat', 'perl']);
    const lds = (s.stderr().match(/loader (\S+ld-linux-x86-64\.so\.2) \(process\)/g) ?? []);
    assert.equal(lds.length, 2, `two loaders armed (the old file, then the new one):\n${s.stderr()}`);
    const got = await expectExact(s, truths.filter((t) => t.comm === 'cat'), true, 'after the upgrade');
    assert.ok(got.get('cat')!.length > 0);
    const perl = truths.find((t) => t.comm === 'perl')!;
    const posix = [...perl.paths].find((p) => p.endsWith('/POSIX.so'))!;
    const hits = await s.waitFor((r) => str(r, 'soload.comm') === 'perl' && str(r, 'file.path') === posix, 8000);
    assert.equal(hits.length, 1, `the old process's dlopen after the upgrade is still reported (probes on the old inode):\n${s.stderr()}`);
    assert.equal(str(hits[0]!, 'soload.load.method'), 'dlopen');
    const until = Date.now() + 6000;
    while ((s.stderr().match(/ld-linux-x86-64\.so\.2: no process uses it any more/g) ?? []).length < 2 && Date.now() < until) await new Promise((r) => setTimeout(r, 100));
    assert.equal((s.stderr().match(/ld-linux-x86-64\.so\.2: no process uses it any more/g) ?? []).length, 2, 'both the old and the new loader lost their probes after their last process');
  } finally {
    await s.stop();
    fs.rmSync(tmp, { recursive: true, force: true });
  }
});
