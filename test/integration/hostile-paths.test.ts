/**
 * Hostile paths, end to end on the live kernel: real directories named with spaces, quotes,
 * backslashes (one holding the text `\x41`), `%`, a newline, an ANSI escape, non-UTF-8 bytes (0xff
 * 0xfe, a lone 0x80, an overlong `/`), and one path of 4 000+ bytes; a real library copied into
 * each, dlopened by a gcc-built program (names passed as hex, so every byte survives the exec), one
 * linked as DT_NEEDED through an RPATH in a hostile directory, and a copy of ld.so + libc in a
 * directory with a space, quotes, a newline and 0xff used as a program's PT_INTERP.
 *
 * Each record's file.path must be exactly the soload escaping (util/path-bytes.ts) of the name the
 * process's own /proc/self/maps printed (its `\012` turned back into a newline), and the inverse
 * must give the bytes back; no stderr line may be split or forged; uprobe_events and the filters
 * of soload's group must hold nothing of those names, and the hostile loader is probed through an
 * alias and its probes fire.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { escapeForLog, escapePathBytes, unescapeMapsPath, unescapePathBytes } from '../../src/util/path-bytes';
import { isProbeablePath } from '../../src/tracefs/probe-line';
import { FIXTURES_C, gcc, requireLiveKernel, soloadLeftovers, startSoload, tmpDir, TRACEFS, type ConsoleLine, type SoloadProcess } from '../helpers/soload';

const B = (...parts: Array<string | number[] | Buffer>) =>
  Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.isBuffer(p) ? p : Buffer.from(p))));
const join = (...parts: Buffer[]) => Buffer.concat(parts.flatMap((p, i) => (i === 0 ? [p] : [Buffer.from('/'), p])));

const PY_RUN = 'import subprocess,sys;sys.exit(subprocess.run([bytes.fromhex(x) for x in sys.argv[1:]]).returncode)';

/** Runs `argv` (raw bytes each) through python3 (a child of it, so the pid is the program's alone): Node would re-encode string arguments as UTF-8. */
function execBytes(argv: Buffer[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('python3', ['-c', PY_RUN, ...argv.map((a) => a.toString('hex'))], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
  });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function gccBytes(argv: Buffer[]): void {
  const r = execBytes([Buffer.from('gcc'), ...argv]);
  if (r.status !== 0) throw new Error(`gcc failed:\n${r.stderr}`);
}

/** The file-backed mappings of a /proc/<pid>/maps dump, as raw bytes (the kernel's `\012` undone). */
function mapsPaths(maps: Buffer): Buffer[] {
  const out = new Map<string, Buffer>();
  let start = 0;
  for (let nl = maps.indexOf(10); nl !== -1; start = nl + 1, nl = maps.indexOf(10, start)) {
    const line = maps.subarray(start, nl);
    // address perms offset dev inode path: the path starts after the fifth field and its padding
    const m = /^\S+ \S+ \S+ \S+ (\d+) +/.exec(line.toString('latin1'));
    if (!m || m[1] === '0') continue;
    const field = line.subarray(m[0].length);
    if (field[0] !== 0x2f) continue;
    const raw = unescapeMapsPath(field);
    out.set(raw.toString('hex'), raw);
  }
  return [...out.values()];
}

let base: Buffer;
let soload: SoloadProcess;
let prog: string;
let lib: string;
const hostileDirs: Array<{ what: string; dir: Buffer; file: Buffer }> = [];
let needDir: Buffer;
let needProg: Buffer;
let ldDir: Buffer;
let ldProg: Buffer;
let longLib: Buffer;
const longSteps: Buffer[] = [];
let midLib: Buffer;
/**
 * Measured on kernel 6.18: a uprobe hit's fetched data is at most one page (MAX_UCB_BUFFER_SIZE;
 * more is cut, with a WARN in dmesg) and an event must fit one ring-buffer page, and a dlopen's
 * return event carries the name twice (l_libname and l_name): an absolute name of 2000 bytes
 * arrives, one of 2020 does not arrive at all. Longer names are reached relatively (below).
 */
const ABSOLUTE_LIMIT = 2000;

before(async () => {
  requireLiveKernel();
  const work = tmpDir('soload-hostile-');
  base = Buffer.from(work);
  lib = path.join(work, 'libplug.so');
  prog = path.join(work, 'hostile');
  gcc(['-shared', '-fPIC', '-o', lib, path.join(FIXTURES_C, 'plug.c')]);
  gcc(['-o', prog, path.join(FIXTURES_C, 'hostile.c'), '-ldl']);

  const dirs: Array<[string, Buffer, Buffer?]> = [
    ['spaces', B('dir with  spaces ')],
    ['quotes', B(`q'uo"te "name=x" `)],
    ['backslashes', B('back\\slash\\x41\\\\')], // the text `\x41` must not read as the byte 'A'
    ['percent', B('pct%s%n%d%%')],
    ['newline', B('new\nline'), B('lib\nnl.so')],
    ['ansi escape', B('esc\u001b[2J\u001b[31mred')],
    ['0xff 0xfe', B('bad', [0xff, 0xfe], 'dir')],
    ['lone 0x80', B('lone', [0x80])],
    ['overlong /', B('over', [0xc0, 0xaf], 'long')],
    ['mixed', B('é€ "\n\\', [0xff], '\\xff %')],
  ];
  for (const [what, name, fileName] of dirs) {
    const dir = join(base, name);
    fs.mkdirSync(dir);
    const file = join(dir, fileName ?? B('libhostile.so'));
    fs.copyFileSync(lib, file);
    hostileDirs.push({ what, dir, file });
  }

  // Near PATH_MAX: open(2) takes at most 4095 bytes + NUL; components ≤ 255 bytes.
  let long = join(base, B('long'));
  fs.mkdirSync(long);
  const fileName = B('libl.so');
  while (long.length + 1 + 251 + 1 + fileName.length <= 4095) {
    const c = B('L'.repeat(249) + '\u00e9'); // 251 bytes, a two-byte character at the end
    long = join(long, c);
    longSteps.push(c);
    fs.mkdirSync(long);
  }
  const pad = B('p'.repeat(4095 - long.length - 1 - 1 - fileName.length));
  long = join(long, pad);
  longSteps.push(pad);
  fs.mkdirSync(long);
  longLib = join(long, fileName);
  fs.copyFileSync(lib, longLib);
  assert.equal(longLib.length, 4095, 'the long path is PATH_MAX - 1 bytes');
  // The longest absolute name a uprobe event carries whole (see the test).
  let mid = join(base, B('mid'));
  fs.mkdirSync(mid);
  while (mid.length + 1 + 201 + 1 + fileName.length <= ABSOLUTE_LIMIT) {
    mid = join(mid, B('M'.repeat(200) + '%'));
    fs.mkdirSync(mid);
  }
  mid = join(mid, B('q'.repeat(ABSOLUTE_LIMIT - mid.length - 1 - 1 - fileName.length)));
  fs.mkdirSync(mid);
  midLib = join(mid, fileName);
  fs.copyFileSync(lib, midLib);
  assert.equal(midLib.length, ABSOLUTE_LIMIT);

  // DT_NEEDED found through an RPATH in a hostile directory.
  needDir = join(base, B('rpath "q" dir\n', [0xfe], ' $x'));
  fs.mkdirSync(needDir);
  gccBytes([B('-shared'), B('-fPIC'), B('-Wl,-soname,libhostneed.so'), B('-o'), join(needDir, B('libhostneed.so')), B(path.join(FIXTURES_C, 'plug.c'))]);
  needProg = join(base, B('needer'));
  gccBytes([B('-DHOSTILE_NEEDED'), B('-o'), needProg, B(path.join(FIXTURES_C, 'hostile.c')), B('-ldl'), B('-Wl,--no-as-needed,--disable-new-dtags'), B('-L'), needDir, Buffer.concat([B('-Wl,-rpath,'), needDir]), B('-lhostneed')]);

  // A copy of the loader and libc in a hostile directory, used as a program's PT_INTERP.
  ldDir = join(base, B('ld root "q" \n', [0xff]));
  fs.mkdirSync(ldDir);
  const ldso = fs.realpathSync('/lib64/ld-linux-x86-64.so.2');
  fs.copyFileSync(ldso, join(ldDir, B('ld-linux-x86-64.so.2')));
  fs.copyFileSync(fs.realpathSync('/lib/x86_64-linux-gnu/libc.so.6'), join(ldDir, B('libc.so.6')));
  // The program lives in a hostile directory too: its exec event (sched_process_exec prints the
  // name unquoted) is cut by the newline and must be joined back for the loader to be met at exec.
  const binDir = join(base, B('bin "x"\nexec ', [0xfe]));
  fs.mkdirSync(binDir);
  ldProg = join(binDir, B('ldprog'));
  gccBytes([B('-o'), ldProg, B(path.join(FIXTURES_C, 'hostile.c')), B('-ldl'), Buffer.concat([B('-Wl,--dynamic-linker='), join(ldDir, B('ld-linux-x86-64.so.2'))]), Buffer.concat([B('-Wl,--disable-new-dtags,-rpath,'), ldDir])]);

  soload = await startSoload({ otel: { exporters: ['console'] }, log: { level: 'debug' } }, { readyTimeoutMs: 60_000 });
});

after(async () => {
  const code = await soload?.stop('SIGTERM');
  assert.equal(code, 143, `soload exit code after SIGTERM; stderr:\n${soload?.stderr()}`);
  assert.deepEqual(soloadLeftovers(), { probes: [], instances: [] }, `soload left probes or an instance behind; its stderr ends:\n${soload?.stderr().slice(-1500)}`);
  if (base) fs.rmSync(base, { recursive: true, force: true });
});

/**
 * Runs `program` with hex-encoded steps (through python3, see execBytes), waits for its "done" line
 * (its maps dump is then written) and its records, until those of every `wanted` name are in. It lingers `lingerMs` after that; `exited`
 * resolves with its exit status.
 */
async function runHostile(
  program: Buffer | string,
  steps: Array<['d' | 'c', Buffer]>,
  wanted: Buffer[],
  opts: { comm?: Buffer; lingerMs?: number } = {},
): Promise<{ pid: number; maps: Buffer; recs: ConsoleLine[]; exited: Promise<number | null> }> {
  const mapsOut = path.join(base.toString(), `maps-${Date.now()}-${Math.random().toString(16).slice(2)}`);
  const env = { ...process.env, HOSTILE_MAPS: mapsOut, HOSTILE_LINGER_MS: String(opts.lingerMs ?? 1500), ...(opts.comm ? { HOSTILE_COMM_HEX: opts.comm.toString('hex') } : {}) };
  const argv = [Buffer.isBuffer(program) ? program : Buffer.from(program), ...steps.map(([k, v]) => Buffer.from(k + v.toString('hex')))];
  const child = spawn('python3', ['-c', PY_RUN, ...argv.map((a) => a.toString('hex'))], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString('utf8')));
  child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const until = Date.now() + 15_000;
  while (!/^\d+ done/m.test(out)) {
    if (child.exitCode !== null || Date.now() > until) assert.fail(`program failed (${child.exitCode}): ${err}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  const pid = Number(/^(\d+) done/m.exec(out)![1]);
  const maps = fs.readFileSync(mapsOut);
  // every wanted name's record (or the time-out: the assertions then say what is missing)
  const names = wanted.map((w) => escapePathBytes(w));
  const until2 = Date.now() + 8000;
  const mine = () => soload.records.filter((x) => x.attributes['process.pid'] === pid);
  while (!names.every((n) => mine().some((x) => x.attributes['file.path'] === n)) && Date.now() < until2) await new Promise((r) => setTimeout(r, 25));
  const recs = mine();
  if (!opts.lingerMs) assert.equal(await exited, 0, `program failed: ${err}`);
  return { pid, maps, recs, exited };
}

/** The records of a failure message, short: long names cut in the middle. */
function describe(recs: ConsoleLine[]): string {
  const cut = (v: unknown) => (typeof v === 'string' && v.length > 160 ? `${v.slice(0, 60)}…(${v.length})…${v.slice(-60)}` : v);
  const keys = ['file.path', 'soload.requested_name', 'soload.loader_path', 'soload.load.method', 'soload.probe', 'soload.unresolved', 'soload.enrichment.missing'];
  return JSON.stringify(recs.map((r) => Object.fromEntries(keys.filter((k) => r.attributes[k] !== undefined).map((k) => [k, cut(r.attributes[k])]))), null, 1);
}

/** Every hostile name the process mapped is in its records, exactly escaped, and decodes back to the bytes. */
function assertExact(what: string, wanted: Buffer[], maps: Buffer, recs: ConsoleLine[]): void {
  const mapped = mapsPaths(maps);
  const paths = recs.filter((r) => typeof r.attributes['file.path'] === 'string').map((r) => String(r.attributes['file.path']));
  for (const w of wanted) {
    assert.ok(mapped.some((m) => m.equals(w)), `${what}: the process's maps do not name ${JSON.stringify(escapePathBytes(w))} (test setup)`);
    const escaped = escapePathBytes(w);
    assert.ok(paths.includes(escaped), `${what}: no record with file.path ${JSON.stringify(escaped)}; got ${describe(recs)}\n${soload.stderr().slice(-3000)}`);
    assert.deepEqual(unescapePathBytes(escaped), w, `${what}: the inverse gives the bytes back`);
    const rec = recs.find((r) => r.attributes['file.path'] === escaped)!;
    assert.equal(rec.attributes['file.name'], escapePathBytes(w.subarray(w.lastIndexOf(0x2f) + 1)), `${what}: file.name`);
    assert.equal(rec.attributes['file.directory'], escapePathBytes(w.subarray(0, w.lastIndexOf(0x2f))), `${what}: file.directory`);
    assert.equal(rec.attributes['file.inode'], fs.statSync(w).ino, `${what}: file.inode (the file was found by its bytes)`);
  }
  // Nothing reported that the process did not map (a wrong decoding would invent a name).
  const mappedEscaped = new Set(mapped.map((m) => escapePathBytes(m)));
  for (const p of paths) assert.ok(mappedEscaped.has(p), `${what}: record path ${JSON.stringify(p)} is not in the process's maps`);
}

test('dlopen from hostile directories: file.path is the escaped maps name, byte for byte', async () => {
  // and a task name (prctl) with a newline, a quote, an ANSI escape and 0xff: trace_pipe prints it
  // raw in the line's header and in the `comm` fetch
  const comm = B('a\nb"\u001b[1m', [0xff], 'c');
  const { maps, recs } = await runHostile(prog, hostileDirs.map((h) => ['d', h.file] as ['d', Buffer]), hostileDirs.map((h) => h.file), { comm });
  assertExact('dlopen', hostileDirs.map((h) => h.file), maps, recs);
  for (const h of hostileDirs) {
    const rec = recs.find((r) => r.attributes['file.path'] === escapePathBytes(h.file))!;
    assert.equal(rec.attributes['soload.comm'], escapePathBytes(comm), `${h.what}: soload.comm`);
    assert.equal(rec.attributes['soload.requested_name'], escapePathBytes(h.file), `${h.what}: requested name`);
    assert.equal(rec.attributes['soload.load.method'], 'dlopen', h.what);
  }
  const esc = escapePathBytes(hostileDirs.find((h) => h.what === 'backslashes')!.file);
  assert.match(esc, /back\\slash\\x5cx41\\\\\/libhostile\.so$/, 'a literal \\x41 is written \\x5cx41');
  const bad = escapePathBytes(hostileDirs.find((h) => h.what === '0xff 0xfe')!.file);
  assert.match(bad, /bad\\xff\\xfedir\/libhostile\.so$/);
});

test('a path of PATH_MAX - 1 bytes (17 components, reached by chdir + a relative dlopen) and an absolute name of 2000 bytes are reported exactly', async () => {
  const rel = await runHostile(prog, [['c', join(base, B('long'))], ...longSteps.map((c) => ['c', c] as ['c', Buffer]), ['d', B('./libl.so')]], [longLib]);
  assertExact('PATH_MAX - 1 bytes', [longLib], rel.maps, rel.recs);
  const rec = rel.recs.find((r) => r.attributes['file.path'] === escapePathBytes(longLib))!;
  assert.equal(rec.attributes['soload.requested_name'], './libl.so');
  assert.equal(Buffer.byteLength(String(rec.attributes['file.path'])), 4095);
  const abs = await runHostile(prog, [['d', midLib]], [midLib]);
  assertExact('2000-byte absolute name', [midLib], abs.maps, abs.recs);
});

test('a DT_NEEDED library found through an RPATH in a hostile directory', async () => {
  const want = join(needDir, B('libhostneed.so'));
  const { maps, recs } = await runHostile(needProg, [], [want]);
  assertExact('rpath needed', [want], maps, recs);
  const rec = recs.find((r) => r.attributes['file.path'] === escapePathBytes(want))!;
  assert.equal(rec.attributes['soload.load.method'], 'needed');
  assert.equal(rec.attributes['soload.search.step'], 'rpath');
  assert.equal(rec.attributes['soload.search.dir'], escapePathBytes(needDir));
});

test('a loader in a hostile directory is probed through an alias, and its probes fire', async () => {
  const ld = join(ldDir, B('ld-linux-x86-64.so.2'));
  const libc = join(ldDir, B('libc.so.6'));
  // The first process of a new loader is read from memory (its probes come after its exec); it
  // stays alive so the loader keeps its probes (a loader no process uses is swept) ...
  const first = await runHostile(ldProg, [['d', hostileDirs[0]!.file]], [ld, libc, hostileDirs[0]!.file], { lingerMs: 8000 });
  assertExact('new loader, first process', [ld, libc, hostileDirs[0]!.file], first.maps, first.recs);
  // ... the next one is reported by the probes on that loader's alias.
  await new Promise((r) => setTimeout(r, 500));
  const second = await runHostile(ldProg, [['d', hostileDirs[4]!.file], ['d', hostileDirs[6]!.file]], [ld, libc, hostileDirs[4]!.file, hostileDirs[6]!.file]);
  assert.equal(await first.exited, 0);
  assertExact('armed loader', [ld, libc, hostileDirs[4]!.file, hostileDirs[6]!.file], second.maps, second.recs);
  for (const r of [...first.recs, ...second.recs]) assert.equal(r.attributes['process.executable.path'], escapePathBytes(ldProg), 'process.executable.path');
  const dl = second.recs.find((r) => r.attributes['file.path'] === escapePathBytes(hostileDirs[6]!.file))!;
  assert.notEqual(dl.attributes['soload.load.recovered'], true, 'the dlopen came from a probe, not from memory');
  assert.equal(dl.attributes['soload.load.method'], 'dlopen');
  const group = `soload_${soload.pid}`;
  const own = fs.readFileSync(path.join(TRACEFS, 'uprobe_events'), 'utf8').split('\n').filter((l) => l.startsWith(`p:${group}/`) || l.startsWith(`r:${group}/`));
  const aliased = own.filter((l) => l.includes(` /run/soload/${group}/`));
  assert.ok(aliased.length > 0, `no probe on an alias under /run/soload/${group}/:\n${own.join('\n')}`);
  for (const l of aliased) {
    const target = fs.readlinkSync(/ (\/run\/soload\/\S+):0x/.exec(l)![1]!, { encoding: 'buffer' });
    assert.ok(target.equals(ld) || target.equals(libc), `alias points at ${JSON.stringify(escapePathBytes(target))}`);
  }
});

test('nothing derived from those names reaches uprobe_events or a filter, and no stderr line is split or forged', async () => {
  const group = `soload_${soload.pid}`;
  const listing = fs.readFileSync(path.join(TRACEFS, 'uprobe_events'));
  const own = listing
    .toString('latin1')
    .split('\n')
    .filter((l) => l.startsWith(`p:${group}/`) || l.startsWith(`r:${group}/`));
  assert.ok(own.length > 0, 'soload has probes');
  for (const l of own) {
    const m = /^[pr]:\S+ (\S+):0x[0-9a-f]+/.exec(l);
    assert.ok(m && isProbeablePath(m[1]!), `a probe on a path uprobe_events cannot carry: ${JSON.stringify(l)}`);
    assert.ok(!/[^\x20-\x7e]/.test(l), `non-printable byte in ${JSON.stringify(l)}`);
    for (const h of [...hostileDirs, { dir: ldDir }, { dir: needDir }]) {
      const name = h.dir.subarray(base.length + 1).toString('latin1');
      assert.ok(!l.includes(name.slice(0, 6)), `probe line holds a hostile name: ${JSON.stringify(l)}`);
    }
  }
  const events = path.join(TRACEFS, 'instances', group, 'events', group);
  for (const ev of fs.readdirSync(events)) {
    const f = path.join(events, ev, 'filter');
    if (!fs.existsSync(f)) continue;
    const filter = fs.readFileSync(f, 'latin1').trim();
    assert.match(filter, /^(none|[a-z0-9_ ]+ [!=<>]+ [0-9]+( && [a-z0-9_ ]+ [!=<>]+ [0-9]+)*)$/, `${ev}: filter ${JSON.stringify(filter)}`);
  }
  const stderr = soload.stderr();
  const lines = stderr.split('\n');
  assert.equal(lines.pop(), '', 'stderr ends with a newline');
  for (const l of lines) {
    assert.match(l, /^soload: (debug|info|warn|error): /, `a stderr line that is not one of soload's: ${JSON.stringify(l)}`);
    // eslint-disable-next-line no-control-regex
    assert.ok(!/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/.test(l), `control character in ${JSON.stringify(l)}`);
  }
  // The hostile loader was logged when it was armed: in the escaped form, newline and 0xff as \xhh.
  const logged = escapeForLog(escapePathBytes(ldDir));
  assert.ok(logged.includes('\\x0a') && logged.includes('\\xff'));
  assert.ok(stderr.includes(logged), `no log line names the hostile loader as ${JSON.stringify(logged)}:\n${stderr.slice(-2000)}`);
  assert.deepEqual(unescapePathBytes(logged), ldDir, 'the log form decodes to the bytes too');
  // The console exporter: one JSON object per line, whatever the names held.
  for (const l of soload.stdoutRaw().split('\n').filter(Boolean)) assert.doesNotThrow(() => JSON.parse(l), `stdout line is not JSON: ${l.slice(0, 200)}`);
});
