/**
 * Issue #7: soload's file.path against the kernel's own view, for UNMODIFIED system programs.
 *
 * The recall corpus (test/recall) uses purpose-built C programs that write their own truth; here
 * the subjects are ordinary binaries of the host (python3, perl, curl, ssh, git, gpg, sqlite3, xz,
 * ls, date, openssl, node), which cannot be changed to report anything. test/fixtures/c/stopexit.c
 * runs each one under ptrace and stops it at its PTRACE_EVENT_EXIT stop, after every load it made
 * but before its mm is torn down, and copies /proc/<pid>/maps there. The file-backed executable
 * mappings of that copy are the truth, and soload's `file.path` values for the pid must equal
 * them AS STRINGS: no realpath, no dev:inode identity on the test side. A path that names the
 * right file by a different spelling (/lib/... for /usr/lib/..., libz.so.1 for libz.so.1.2.13)
 * counts as both missing and extra, because a backend that joins or groups by file.path would
 * see two different files.
 */
import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { resolvePython } from '../recall/corpus';
import { FIXTURES_C, gcc, requireLiveKernel, startSoload, tmpDir, type ConsoleLine, type SoloadProcess } from '../helpers/soload';

/** A subject: a display name and the argv to run (argv[0] resolved to an absolute path). */
interface Program {
  name: string;
  argv: string[];
}

/** What the comparison found for one program. */
interface Outcome {
  name: string;
  pid: number;
  truth: string[];
  reported: string[];
  matched: number;
  missing: string[];
  extra: string[];
  problems: string[];
}

/** Records for a pid stop arriving when none came for this long (the program is held alive meanwhile). */
const SETTLE_MS = 1000;
/** Upper bound on waiting for one program's records. */
const MAX_WAIT_MS = 15_000;
const FORBIDDEN_IN_PATH = ['/proc/self/fd/', '..', '/./', '//', ' (deleted)'];

/** Absolute path of `cmd` on PATH via `which`, or undefined when the host lacks it. */
function which(cmd: string): string | undefined {
  const r = spawnSync('which', [cmd], { encoding: 'utf8' });
  return r.status === 0 ? r.stdout.trim() || undefined : undefined;
}

/**
 * The subjects present on this host. `python3` on PATH may be a pyenv shim (a shell script that
 * execs the real interpreter, so the traced pid would be bash's): run the real interpreter, as
 * the recall corpus does.
 */
function programs(): { found: Program[]; absent: string[] } {
  const wanted: Array<{ name: string; cmd: string; args: string[] }> = [
    { name: 'python3 ssl+json', cmd: 'python3', args: ['-c', 'import ssl, json'] },
    { name: 'perl POSIX', cmd: 'perl', args: ['-MPOSIX', '-e', '1'] },
    { name: 'curl --version', cmd: 'curl', args: ['--version'] },
    { name: 'ssh -V', cmd: 'ssh', args: ['-V'] },
    { name: 'git --version', cmd: 'git', args: ['--version'] },
    { name: 'gpg --version', cmd: 'gpg', args: ['--version'] },
    { name: 'sqlite3 :memory:', cmd: 'sqlite3', args: [':memory:', 'select 1;'] },
    { name: 'xz --version', cmd: 'xz', args: ['--version'] },
    { name: 'ls -l / (NSS)', cmd: 'ls', args: ['-l', '/'] },
    { name: 'date', cmd: 'date', args: [] },
    { name: 'openssl version', cmd: 'openssl', args: ['version'] },
    { name: 'node -e 0', cmd: 'node', args: ['-e', '0'] },
  ];
  const found: Program[] = [];
  const absent: string[] = [];
  for (const w of wanted) {
    const file = w.cmd === 'python3' ? resolvePython() : which(w.cmd);
    if (file) found.push({ name: w.name, argv: [file, ...w.args] });
    else absent.push(w.cmd);
  }
  return { found, absent };
}

/**
 * The truth rule of test/recall/scenarios/truth.h, applied to a raw maps text: mappings with an
 * 'x' permission, backed by a file (inode != 0), whose path starts with "/" (not [vdso],
 * memfd:..., anonymous). The kernel appends " (deleted)" to unlinked files; the name before it is
 * what the loader opened. Deduplicated, in map order.
 */
function truthFromMaps(maps: string): string[] {
  const out = new Set<string>();
  for (const line of maps.split('\n')) {
    // address perms offset dev inode path — the path is everything after the 5th field's padding.
    const m = /^\S+\s+(\S+)\s+\S+\s+\S+\s+(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const [, perms, inode, rawPath] = m as unknown as [string, string, string, string];
    if (perms[2] !== 'x' || inode === '0' || !rawPath.startsWith('/')) continue;
    out.add(rawPath.endsWith(' (deleted)') ? rawPath.slice(0, -' (deleted)'.length) : rawPath);
  }
  return [...out];
}

/** PT_INTERP of an ELF64 little-endian executable (read from its first pages), or undefined. */
function ptInterp(file: string): string | undefined {
  const fd = fs.openSync(file, 'r');
  try {
    const head = Buffer.alloc(16384);
    const n = fs.readSync(fd, head, 0, head.length, 0);
    if (n < 64 || head.readUInt32BE(0) !== 0x7f454c46 || head[4] !== 2 || head[5] !== 1) return undefined;
    const phoff = Number(head.readBigUInt64LE(0x20));
    const phentsize = head.readUInt16LE(0x36);
    const phnum = head.readUInt16LE(0x38);
    for (let i = 0; i < phnum; i++) {
      const ph = phoff + i * phentsize;
      if (ph + 56 > n) return undefined;
      if (head.readUInt32LE(ph) !== 3 /* PT_INTERP */) continue;
      const off = Number(head.readBigUInt64LE(ph + 8));
      const size = Number(head.readBigUInt64LE(ph + 32));
      const buf = Buffer.alloc(size);
      fs.readSync(fd, buf, 0, size, off);
      return buf.toString('utf8').replace(/\0.*$/s, '');
    }
    return undefined;
  } finally {
    fs.closeSync(fd);
  }
}

/** A program held at its exit stop by stopexit --hold. */
interface Held {
  pid: number;
  maps: string;
  /** Target of /proc/<pid>/exe read while the program is held: the kernel's name of the main program. */
  exe: string;
  release(): Promise<{ code: number | null; stdout: string; stderr: string }>;
}

/** Runs `argv` under stopexit --hold and resolves once the program sits at its exit stop. */
function runHeld(stopexit: string, truthFile: string, argv: string[]): Promise<Held> {
  return new Promise((resolve, reject) => {
    const child = spawn(stopexit, ['--hold', truthFile, ...argv], { stdio: ['pipe', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    let held = false;
    const exited = new Promise<number | null>((r) => child.on('close', (code) => r(code)));
    child.on('error', reject);
    child.stderr.on('data', (d: Buffer) => (err += d.toString('utf8')));
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString('utf8');
      const m = /^pid (\d+)$/m.exec(out);
      if (held || !m) return;
      held = true;
      const pid = Number(m[1]);
      const release = async (): Promise<{ code: number | null; stdout: string; stderr: string }> => {
        child.stdin.end('\n');
        const code = await exited;
        return { code, stdout: out, stderr: err };
      };
      try {
        resolve({ pid, maps: fs.readFileSync(truthFile, 'utf8'), exe: fs.readlinkSync(`/proc/${pid}/exe`), release });
      } catch (e) {
        void release();
        reject(e instanceof Error ? e : new Error(String(e)));
      }
    });
    void exited.then((code) => {
      if (!held) reject(new Error(`stopexit ${argv.join(' ')} exited ${code} before the exit stop:\n${err}`));
    });
  });
}

/** soload's records for `pid` once they stop arriving (at most MAX_WAIT_MS). */
async function settledRecords(soload: SoloadProcess, pid: number): Promise<ConsoleLine[]> {
  const start = Date.now();
  let count = -1;
  let changedAt = start;
  for (;;) {
    const recs = soload.records.filter((r) => r.attributes['process.pid'] === pid);
    if (recs.length !== count) {
      count = recs.length;
      changedAt = Date.now();
    }
    if ((count > 0 && Date.now() - changedAt >= SETTLE_MS) || Date.now() - start > MAX_WAIT_MS) return recs;
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** One program: run held, wait for soload, compare exactly, check methods. */
async function runOne(soload: SoloadProcess, stopexit: string, dir: string, p: Program, idx: number): Promise<Outcome> {
  const held = await runHeld(stopexit, path.join(dir, `maps-${idx}.txt`), p.argv);
  // The program stays at its exit stop (alive, /proc/<pid> intact) until soload has reported it,
  // so the comparison is about how soload names files, not about racing the process's exit.
  let recs: ConsoleLine[] = [];
  let done: Awaited<ReturnType<Held['release']>>;
  try {
    recs = await settledRecords(soload, held.pid);
  } finally {
    done = await held.release();
  }
  const problems: string[] = [];
  if (done.code !== 0) problems.push(`exit ${done.code}: ${done.stderr.trim()}`);

  const truth = truthFromMaps(held.maps);
  // Loads only: failed dlopens carry no file.path, snapshot records are off but excluded anyway.
  const loads = recs.filter((r) => r.attributes['soload.result'] === 'ok' && r.attributes['soload.snapshot'] !== true);
  const reportedAll = loads.map((r) => String(r.attributes['file.path']));
  const reported = [...new Set(reportedAll)];
  const truthSet = new Set(truth);
  const reportedSet = new Set(reported);
  // Sorted, so a wrong spelling and the right one sit at the same place in both lists.
  const missing = truth.filter((t) => !reportedSet.has(t)).sort();
  const extra = reported.filter((r) => !truthSet.has(r)).sort();
  const matched = truth.length - missing.length;

  const dups = reported.filter((x) => reportedAll.filter((y) => y === x).length > 1);
  if (dups.length) problems.push(`reported more than once: ${dups.join(', ')}`);

  // Methods. The kernel's names for the main program (/proc/<pid>/exe) and for ld.so (PT_INTERP
  // as the loader found it, i.e. resolved like the kernel's d_path in maps) are what the
  // executable and interpreter records must carry.
  const interp = ptInterp(held.exe);
  const interpPath = interp ? fs.realpathSync(interp) : undefined;
  const method = (r: ConsoleLine): string => String(r.attributes['soload.load.method']);
  const exeRecs = loads.filter((r) => method(r) === 'executable');
  const interpRecs = loads.filter((r) => method(r) === 'interpreter');
  if (exeRecs.length !== 1 || exeRecs[0]!.attributes['file.path'] !== held.exe) {
    problems.push(`executable record(s) ${JSON.stringify(exeRecs.map((r) => r.attributes['file.path']))}, want exactly [${JSON.stringify(held.exe)}]`);
  }
  if (interpPath && (interpRecs.length !== 1 || interpRecs[0]!.attributes['file.path'] !== interpPath)) {
    problems.push(`interpreter record(s) ${JSON.stringify(interpRecs.map((r) => r.attributes['file.path']))}, want exactly [${JSON.stringify(interpPath)}]`);
  }
  const dlopened = new Set(loads.filter((r) => method(r) === 'dlopen').map((r) => String(r.attributes['file.path'])));
  for (const r of loads) {
    const m = method(r);
    const fp = String(r.attributes['file.path']);
    if (m !== 'executable' && m !== 'interpreter' && m !== 'needed' && m !== 'dlopen') problems.push(`${fp}: method ${m}`);
    // A dependency pulled in by a dlopen names that dlopened object, which this process reported.
    const by = r.attributes['soload.loaded_by'];
    if (by !== undefined && (m !== 'needed' || !dlopened.has(String(by)))) problems.push(`${fp}: ${m} loaded_by ${String(by)} (not a dlopen of this process)`);
  }
  // python's extension modules come by dlopen, libssl by DT_NEEDED of the dlopened _ssl module.
  if (p.name.startsWith('python3')) {
    for (const r of loads) {
      const fp = String(r.attributes['file.path']);
      if (/\/lib-dynload\/[^/]+\.so$/.test(fp) && method(r) !== 'dlopen') problems.push(`${fp}: extension module via ${method(r)}, want dlopen`);
      if (/\/libssl\.so[^/]*$/.test(fp) && !(method(r) === 'needed' && /_ssl\.cpython/.test(String(r.attributes['soload.loaded_by'])))) {
        problems.push(`${fp}: via ${method(r)} loaded_by ${String(r.attributes['soload.loaded_by'])}, want needed loaded_by the _ssl module`);
      }
    }
  }
  return { name: p.name, pid: held.pid, truth, reported, matched, missing, extra, problems };
}

/** The per-program table, one diagnostic line each, with missing/extra paths listed beneath. */
function printTable(t: TestContext, outcomes: Outcome[]): void {
  const w = Math.max(...outcomes.map((o) => o.name.length), 'program'.length);
  const row = (a: string, b: string, c: string, d: string): string => `${a.padEnd(w)}  ${b.padStart(4)}  ${c.padStart(8)}  ${d.padStart(5)}`;
  t.diagnostic(row('program', 'maps', 'reported', 'exact'));
  for (const o of outcomes) {
    t.diagnostic(row(o.name, String(o.truth.length), String(o.reported.length), String(o.matched)));
    for (const m of o.missing) t.diagnostic(`    missing ${m}`);
    for (const x of o.extra) t.diagnostic(`    extra   ${x}`);
    for (const p of o.problems) t.diagnostic(`    problem ${p}`);
  }
}

test('file.path of unmodified system programs equals their /proc/<pid>/maps paths exactly', async (t) => {
  requireLiveKernel();
  const { found, absent } = programs();
  if (absent.length) t.diagnostic(`not on this host: ${absent.join(', ')}`);
  assert.ok(found.length >= 10, `need at least ten subject programs, found ${found.length} (missing: ${absent.join(', ')})`);

  const dir = tmpDir('soload-real-');
  const stopexit = path.join(dir, 'stopexit');
  gcc(['-O2', '-Wall', '-Wextra', '-Werror', '-o', stopexit, path.join(FIXTURES_C, 'stopexit.c')]);

  const soload = await startSoload({ otel: { exporters: ['console'] }, capture: { reportExecutable: true, snapshot: false } });
  const t0 = Date.now();
  const outcomes: Outcome[] = [];
  try {
    for (const [i, p] of found.entries()) {
      // Sequential: one held program at a time keeps the per-pid settle wait unambiguous.
      await t.test(p.name, async () => {
        const o = await runOne(soload, stopexit, dir, p, i);
        outcomes.push(o);
        assert.ok(o.truth.length >= 2, `${p.name}: maps copy has ${o.truth.length} objects`);
        assert.deepEqual(
          { missing: o.missing, extra: o.extra, problems: o.problems },
          { missing: [], extra: [], problems: [] },
          `${p.name} (pid ${o.pid}): soload's file.path values differ from /proc/<pid>/maps`,
        );
      });
    }
  } finally {
    await soload.stop();
  }
  printTable(t, outcomes);

  const truthTotal = outcomes.reduce((s, o) => s + o.truth.length, 0);
  const reportedTotal = outcomes.reduce((s, o) => s + o.reported.length, 0);
  const matchedTotal = outcomes.reduce((s, o) => s + o.matched, 0);
  const recall = truthTotal ? (100 * matchedTotal) / truthTotal : 0;
  const precision = reportedTotal ? (100 * matchedTotal) / reportedTotal : 0;
  t.diagnostic(`overall: ${outcomes.length} programs, ${truthTotal} mapped objects, ${reportedTotal} reported, ${matchedTotal} exact`);
  t.diagnostic(`exact-path recall ${recall.toFixed(2)} %, precision ${precision.toFixed(2)} %, ${((Date.now() - t0) / 1000).toFixed(1)} s`);

  // Non-canonical spellings anywhere in soload's output during the run, not only our subjects'.
  const bad = soload.records
    .map((r) => r.attributes['file.path'])
    .filter((fp): fp is string => typeof fp === 'string' && FORBIDDEN_IN_PATH.some((f) => fp.includes(f)));
  assert.deepEqual([...new Set(bad)], [], 'file.path values with /proc/self/fd/, "..", "/./", "//" or " (deleted)"');
  assert.equal(outcomes.length, found.length, 'every program produced an outcome');
  assert.ok(recall >= 99.5, `exact-path recall ${recall.toFixed(2)} % < 99.5 %`);
  assert.equal(precision, 100, `exact-path precision ${precision.toFixed(2)} % (reported paths not in maps)`);
});
