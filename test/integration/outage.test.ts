/**
 * Delivery without loss, on real components: soload (real uprobes, DEFAULT delivery settings) →
 * OTLP/HTTP → a real Collector (file exporter). While a C program produces ≥ 200 loads/s in
 * short-lived processes, the Collector is stopped for 60 s and restarted on the same port; every
 * record soload produced (its console output is the reference) must arrive exactly once.
 *
 * The file exporter truncates its file when the Collector starts, so the first run's file is moved
 * aside after the stop and both files are read at the end.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileExporterConfig, readFileExporterLogs, sleep, startCollector, type CollectorHandle } from '../helpers/collector';
import { FIXTURES_C, gcc, requireLiveKernel, soloadLeftovers, startSoload, tmpDir, type ConsoleLine, type SoloadProcess } from '../helpers/soload';

const OUTAGE_MS = Number(process.env.SOLOAD_TEST_OUTAGE_MS ?? 60_000);
const BEFORE_MS = 10_000;
const AFTER_MS = 10_000;
const CHILDREN_PER_S = 25;
const LIBS = 10; // 25 × 10 = 250 loads/s

let dir: string;
let libDir: string;
let loadgen: string;
let collector: CollectorHandle;
let soload: SoloadProcess;

before(async () => {
  requireLiveKernel();
  dir = tmpDir('soload-outage-');
  libDir = path.join(dir, 'libs');
  fs.mkdirSync(libDir);
  for (let i = 0; i < LIBS; i++) gcc(['-shared', '-fPIC', '-o', path.join(libDir, `libg${i}.so`), path.join(FIXTURES_C, 'plug.c')]);
  loadgen = path.join(dir, 'loadgen');
  gcc(['-o', loadgen, path.join(FIXTURES_C, 'loadgen.c'), '-ldl']);
  collector = await startCollector({ configYaml: fileExporterConfig(), keepWorkDir: true });
  // Default delivery settings: only where to send, and which loads (this test's libraries) to report.
  soload = await startSoload({
    otel: { exporters: ['otlp', 'console'], endpoint: `${collector.httpEndpoint}/v1/logs` },
    filters: { pathInclude: [`${libDir}/*`] },
    log: { statsIntervalMs: 10_000 },
  });
});

after(async () => {
  const code = await soload?.stop('SIGTERM');
  if (process.env.SOLOAD_TEST_DEBUG) console.error(soload?.stderr());
  await collector?.stop();
  if (collector) fs.rmSync(collector.workDir, { recursive: true, force: true });
  if (dir && process.env.SOLOAD_KEEP_TEST_DIRS !== '1') fs.rmSync(dir, { recursive: true, force: true });
  assert.equal(code, 143, `soload exit code after SIGTERM; stderr:\n${soload?.stderr()}`);
  assert.deepEqual(soloadLeftovers(), { probes: [], instances: [] });
});

const key = (pid: unknown, file: unknown, t: unknown) => `${pid}|${file}|${t}`;

test(`a ${OUTAGE_MS / 1000} s collector outage at ≥ 200 loads/s loses nothing and duplicates nothing`, { timeout: 240_000 }, async () => {
  const libs = Array.from({ length: LIBS }, (_, i) => path.join(libDir, `libg${i}.so`));
  const total = (BEFORE_MS + OUTAGE_MS + AFTER_MS) / 1000;
  const gen = spawn(loadgen, [String(total), String(CHILDREN_PER_S), ...libs], { stdio: ['ignore', 'pipe', 'inherit'] });
  let genOut = '';
  gen.stdout.on('data', (d: Buffer) => (genOut += d.toString()));
  const genDone = new Promise<number | null>((r) => gen.on('exit', (c) => r(c)));
  const t0 = Date.now();

  await sleep(BEFORE_MS);
  const firstFile = collector.fileOutput!;
  await collector.kill('SIGTERM'); // graceful: the file exporter flushes; the work dir stays
  const outageStart = Date.now();
  const run1 = path.join(collector.workDir, 'logs-run1.jsonl');
  fs.renameSync(firstFile, run1);
  const recordsAtOutage = soload.records.length;
  await sleep(OUTAGE_MS);
  await collector.restart();
  const restartedAt = Date.now();
  const recordsDuringOutage = soload.records.filter((r) => r.seenAt >= outageStart && r.seenAt < restartedAt).length;

  assert.equal(await genDone, 0, 'load generator failed');
  const m = /children (\d+) loads (\d+) failed (\d+)/.exec(genOut);
  assert.ok(m, genOut);
  const generated = Number(m[2]);
  assert.equal(Number(m[3]), 0);
  const genSeconds = (Date.now() - t0) / 1000;
  assert.ok(generated / total >= 200, `load rate ${generated / total}/s < 200/s`);

  // soload's console output is the reference: wait until it has every generated load
  const ours = (r: ConsoleLine) => typeof r.attributes['file.path'] === 'string' && (r.attributes['file.path'] as string).startsWith(libDir + '/');
  const deadline = Date.now() + 30_000;
  while (soload.records.filter(ours).length < generated && Date.now() < deadline) await sleep(200);
  const printed = soload.records.filter(ours);
  const expected = new Map(printed.map((r) => [key(r.attributes['process.pid'], r.attributes['file.path'], r.timeUnixNano), r]));
  assert.equal(expected.size, printed.length, 'console printed a record twice');

  // then wait until the collector (both runs) holds them all
  const received = () => [...readFileExporterLogs(run1), ...readFileExporterLogs(collector.fileOutput!)].filter((r) => String(r.attributes['file.path'] ?? '').startsWith(libDir + '/'));
  let got = received();
  const deliverBy = Date.now() + 90_000;
  while (got.length < expected.size && Date.now() < deliverBy) {
    await sleep(500);
    got = received();
  }
  const allDeliveredAt = Date.now();
  await sleep(2000); // anything late (a duplicate) would show up now
  got = received();

  const seen = new Map<string, number>();
  for (const r of got) {
    const k = key(r.attributes['process.pid'], r.attributes['file.path'], r.timeUnixNano);
    seen.set(k, (seen.get(k) ?? 0) + 1);
  }
  const duplicates = [...seen.values()].filter((n) => n > 1).reduce((a, n) => a + n - 1, 0);
  const missing = [...expected.keys()].filter((k) => !seen.has(k));
  const unexpected = [...seen.keys()].filter((k) => !expected.has(k));
  const summary = {
    generated,
    loadRatePerS: Math.round(generated / total),
    consolePrinted: printed.length,
    printedDuringOutage: recordsDuringOutage,
    printedBeforeOutage: recordsAtOutage,
    receivedRun1: readFileExporterLogs(run1).length,
    receivedRun2: readFileExporterLogs(collector.fileOutput!).length,
    receivedTotal: got.length,
    duplicates,
    missing: missing.length,
    unexpected: unexpected.length,
    outageMs: restartedAt - outageStart,
    drainAfterRestartMs: allDeliveredAt - restartedAt,
    generatorSeconds: genSeconds,
  };
  console.error(`outage test: ${JSON.stringify(summary)}`);
  if (missing.length) console.error(`sample expected ${missing[0]} received ${unexpected[0]}`);
  const stderr = soload.stderr();
  assert.equal(printed.length, generated, `soload printed ${printed.length} of ${generated} generated loads (capture, not delivery)`);
  assert.equal(missing.length, 0, `${missing.length} records never reached the collector, e.g. ${missing.slice(0, 3).join(', ')}\n${JSON.stringify(summary)}\n${stderr.slice(-3000)}`);
  assert.equal(duplicates, 0, `duplicates: ${duplicates}`);
  assert.equal(unexpected.length, 0);
  assert.ok(recordsDuringOutage >= 200 * (OUTAGE_MS / 1000) * 0.9, `only ${recordsDuringOutage} records produced during the outage`);
  assert.match(stderr, /OTLP export failed/);
  assert.match(stderr, /collector reachable again/);
  assert.doesNotMatch(stderr, /dropped \d+ records/);
  assert.match(stderr, /stats: .*dropped 0;/);
});
