/**
 * End to end on the live kernel: soload (real uprobes) → OTLP/HTTP → a real OpenTelemetry
 * Collector (built by scripts/build-collector.sh) → file exporter, for a C program that dlopens a
 * test library by absolute path, by bare name through LD_LIBRARY_PATH, by relative path, and a
 * missing one. Asserts exact attributes, latency from the console exporter, and no "(fault)".
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileExporterConfig, readFileExporterLogs, startCollector, waitForFileExporterLogs, type CollectorHandle, type FlatLogRecord } from '../helpers/collector';
import { FIXTURES_C, gcc, requireLiveKernel, runProgram, soloadLeftovers, startSoload, tmpDir, type SoloadProcess } from '../helpers/soload';

let dir: string;
let libDir: string;
let lib: string;
let loader: string;
let collector: CollectorHandle;
let soload: SoloadProcess;

before(async () => {
  requireLiveKernel();
  dir = tmpDir();
  libDir = path.join(dir, 'x');
  fs.mkdirSync(libDir);
  lib = path.join(libDir, 'libplug.so');
  loader = path.join(dir, 'dlopener');
  gcc(['-shared', '-fPIC', '-o', lib, path.join(FIXTURES_C, 'plug.c')]);
  gcc(['-o', loader, path.join(FIXTURES_C, 'dlopener.c'), '-ldl']);
  collector = await startCollector({ configYaml: fileExporterConfig() });
  soload = await startSoload({
    otel: { exporters: ['otlp', 'console'], endpoint: `${collector.httpEndpoint}/v1/logs`, batch: { scheduledDelayMs: 100 } },
  });
});

after(async () => {
  const code = await soload?.stop('SIGTERM');
  await collector?.stop();
  assert.equal(code, 143, `soload exit code after SIGTERM; stderr:\n${soload?.stderr()}`);
  assert.deepEqual(soloadLeftovers(), { probes: [], instances: [] }, 'soload left probes or an instance behind');
});

/** dlopen records (ok or failed) of one process; the loader also reports its start-up objects. */
function byPid(pid: number) {
  return (r: { attributes: Record<string, unknown> }) => r.attributes['process.pid'] === pid && r.attributes['soload.load.method'] === 'dlopen';
}

test('dlopen by absolute path, bare name via LD_LIBRARY_PATH, relative path, and a missing name', async () => {
  const run = (args: string[], env: NodeJS.ProcessEnv = {}, cwd?: string) => {
    const r = runProgram(loader, args, { SOLOAD_TEST_LINGER_MS: '1500', ...env, ...(cwd ? { PWD: cwd } : {}) });
    assert.equal(r.status, 0, r.stdout);
    return r;
  };
  const t0 = Date.now();
  const abs = run([lib, 'libsoload-does-not-exist.so']);
  const bare = run(['libplug.so'], { LD_LIBRARY_PATH: libDir });
  const loadsDone = Date.now();

  // Latency bar: every record on soload's console within 2 s of the program's dlopen calls.
  const absRecs = await soload.waitFor(byPid(abs.pid), 2000 + (loadsDone - t0), 2);
  const bareRecs = await soload.waitFor(byPid(bare.pid), 2000, 1);
  assert.equal(absRecs.length, 2, `records for pid ${abs.pid}: ${JSON.stringify(soload.records.slice(-5))}\n${soload.stderr()}`);
  assert.equal(bareRecs.length, 1);

  // Exact attributes, as delivered through the real Collector.
  const recs = await waitForFileExporterLogs(collector.fileOutput!, (rs) => rs.filter(byPid(abs.pid)).length >= 2 && rs.filter(byPid(bare.pid)).length >= 1);
  const st = fs.statSync(lib);
  const check = (r: FlatLogRecord | undefined, pid: number, requested: string) => {
    assert.ok(r, `no record for ${requested}`);
    assert.equal(r.eventName, 'so.load');
    // a library under /tmp: the default risk rules say high (tmp_path), severity follows
    assert.equal(r.attributes['soload.risk'], 'high');
    assert.equal(r.severityText, 'ERROR');
    assert.equal(r.attributes['file.path'], lib);
    assert.equal(r.attributes['file.name'], 'libplug.so');
    assert.equal(r.attributes['file.size'], st.size);
    assert.equal(r.attributes['file.inode'], st.ino);
    assert.equal(r.attributes['soload.requested_name'], requested);
    assert.equal(r.attributes['soload.load.method'], 'dlopen');
    assert.equal(r.attributes['soload.result'], 'ok');
    assert.equal(r.attributes['process.pid'], pid);
    assert.equal(r.attributes['process.executable.path'], loader);
    assert.equal(r.attributes['process.executable.name'], 'dlopener');
    assert.equal(r.attributes['process.parent_pid'], process.pid);
    assert.equal(r.attributes['process.owner'], 'root');
    assert.match(String(r.attributes['process.command_line']), new RegExp(`^${loader} `));
    assert.equal(r.body, `dlopener[${pid}] loaded ${lib} via dlopen`);
    assert.equal(r.resource['service.name'], 'soload');
    assert.equal(typeof r.resource['host.name'], 'string');
  };
  check(recs.find((r) => byPid(abs.pid)(r) && r.attributes['soload.requested_name'] === lib), abs.pid, lib);
  check(recs.find(byPid(bare.pid)), bare.pid, 'libplug.so');

  const failed = recs.find((r) => byPid(abs.pid)(r) && r.attributes['soload.result'] === 'failed');
  assert.ok(failed, 'no record for the failed dlopen');
  assert.equal(failed.attributes['soload.requested_name'], 'libsoload-does-not-exist.so');
  assert.equal(failed.attributes['file.path'], undefined);
  assert.equal(failed.body, `dlopener[${abs.pid}] failed to load libsoload-does-not-exist.so via dlopen`);

  // Timestamps: the kernel's, converted exactly — between program start and now, and before observed time.
  for (const r of recs.filter(byPid(abs.pid))) {
    const ts = Number(BigInt(r.timeUnixNano) / 1_000_000n);
    assert.ok(ts >= t0 - 50 && ts <= loadsDone + 50, `timestamp ${ts} outside [${t0}, ${loadsDone}]`);
    assert.ok(BigInt(r.observedTimeUnixNano) >= BigInt(r.timeUnixNano));
  }
});

test('dlopen by relative path reports the absolute path', async () => {
  const r = runProgram('/bin/sh', ['-c', `cd ${libDir} && exec ${loader} ./libplug.so`], { SOLOAD_TEST_LINGER_MS: '1500' });
  assert.equal(r.status, 0);
  const [rec] = await soload.waitFor(byPid(r.pid), 3000);
  assert.ok(rec, `no record for relative dlopen (pid ${r.pid})`);
  assert.equal(rec.attributes['file.path'], lib);
  assert.equal(rec.attributes['soload.requested_name'], './libplug.so');
});

test('no record anywhere carries "(fault)"', async () => {
  // A name in a freshly malloc'd buffer and many programs: nothing may carry the kernel's marker.
  for (let i = 0; i < 5; i++) runProgram(loader, [lib, 'libm.so.6'], { SOLOAD_TEST_LINGER_MS: '0', SOLOAD_TEST_HEAP_NAMES: '1' });
  await new Promise((r) => setTimeout(r, 1500));
  assert.ok(!soload.stdoutRaw().includes('(fault)'), 'console output contains (fault)');
  const raw = fs.readFileSync(collector.fileOutput!, 'utf8');
  assert.ok(!raw.includes('(fault)'), 'collector output contains (fault)');
  assert.ok(readFileExporterLogs(collector.fileOutput!).length >= 5);
});

test('hostile paths: spaces, quotes, " name=" and a newline survive the kernel’s unescaped output', async () => {
  const weird = [path.join(dir, 'dir with "quotes" and name=x', 'lib plug.so'), path.join(dir, 'new\nline', 'lib nl.so')];
  for (const w of weird) {
    fs.mkdirSync(path.dirname(w), { recursive: true });
    fs.copyFileSync(lib, w);
  }
  const r = runProgram(loader, weird, { SOLOAD_TEST_LINGER_MS: '0' });
  assert.equal(r.status, 0);
  const pid = Number(/^(\d+) /.exec(r.stdout)?.[1]);
  const recs = await soload.waitFor(byPid(pid), 3000, 2);
  assert.deepEqual(recs.map((x) => x.attributes['file.path']).sort(), [...weird].sort());
  assert.deepEqual(recs.map((x) => x.attributes['soload.requested_name']).sort(), [...weird].sort());
});
