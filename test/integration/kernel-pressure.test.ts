/**
 * Kernel pressure: a burst larger than soload's instance buffer (a small tracefs.bufferSizeKb, soload
 * stopped with SIGSTOP while the burst runs — what a CPU-starved or paused agent sees) is detected
 * from the per-CPU overrun counters and reported as counted loss: a warning line with the count and
 * the advice, and soload.ring.overrun through the real Collector's metrics pipeline, equal to what
 * the kernel's own per_cpu stats say. soload keeps running: a load after the burst is reported.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { startRepoCollector, sleep, type CollectorHandle } from '../helpers/collector';
import { FIXTURES_C, gcc, requireLiveKernel, runProgram, soloadLeftovers, startSoload, tmpDir, TRACEFS, type SoloadProcess } from '../helpers/soload';

let dir: string;
let lib: string;
let loadgen: string;
let dlopener: string;
let collector: CollectorHandle;
let soload: SoloadProcess;
let metricsFile: string;

before(async () => {
  requireLiveKernel();
  dir = tmpDir('soload-pressure-');
  lib = path.join(dir, 'libplug.so');
  loadgen = path.join(dir, 'loadgen');
  dlopener = path.join(dir, 'dlopener');
  gcc(['-shared', '-fPIC', '-o', lib, path.join(FIXTURES_C, 'plug.c')]);
  gcc(['-O2', '-o', loadgen, path.join(FIXTURES_C, 'loadgen.c'), '-ldl']);
  gcc(['-o', dlopener, path.join(FIXTURES_C, 'dlopener.c'), '-ldl']);
  metricsFile = path.join(dir, 'otlp-metrics.jsonl');
  collector = await startRepoCollector({
    SOLOAD_LOG_EXPORTERS: '[debug]',
    SOLOAD_METRIC_EXPORTERS: '[debug, file/metrics]',
    SOLOAD_OTLP_METRICS_FILE: metricsFile,
  });
  soload = await startSoload({
    tracefs: { bufferSizeKb: 16 },
    otel: { exporters: ['otlp', 'console'], endpoint: `${collector.httpEndpoint}/v1/logs`, metrics: { intervalMs: 1000 } },
    log: { statsIntervalMs: 0 },
  });
});

after(async () => {
  const code = await soload?.stop('SIGTERM');
  await collector?.stop();
  assert.equal(code, 143, soload?.stderr());
  assert.deepEqual(soloadLeftovers(), { probes: [], instances: [] });
});

/** The kernel's own view: per_cpu/cpu*\/stats overrun of soload's instance, summed. */
function kernelOverrun(pid: number): number {
  const perCpu = path.join(TRACEFS, 'instances', `soload_${pid}`, 'per_cpu');
  return fs
    .readdirSync(perCpu)
    .map((c) => Number(/^overrun:\s*(\d+)/m.exec(fs.readFileSync(path.join(perCpu, c, 'stats'), 'utf8'))?.[1] ?? 0))
    .reduce((a, b) => a + b, 0);
}

function lastMetric(name: string): number | undefined {
  if (!fs.existsSync(metricsFile)) return undefined;
  let value: number | undefined;
  for (const line of fs.readFileSync(metricsFile, 'utf8').split('\n')) {
    if (!line.trim()) continue;
    const req = JSON.parse(line) as { resourceMetrics: Array<{ scopeMetrics: Array<{ metrics: Array<{ name: string; sum?: { dataPoints: Array<{ asInt?: string; asDouble?: number }> } }> }> }> };
    for (const m of req.resourceMetrics.flatMap((r) => r.scopeMetrics.flatMap((s) => s.metrics))) {
      if (m.name !== name || !m.sum) continue;
      value = m.sum.dataPoints.reduce((n, d) => n + Number(d.asInt ?? d.asDouble ?? 0), 0);
    }
  }
  return value;
}

test('a burst larger than the buffer: counted loss in a warning and in soload.ring.overrun (equal to the kernel’s per_cpu stats); soload keeps running', async () => {
  // The kernel rounds the size up to whole pages of events (16 → 19 KiB on 6.18).
  const applied = Number(fs.readFileSync(path.join(TRACEFS, 'instances', `soload_${soload.pid}`, 'buffer_size_kb'), 'utf8').trim());
  assert.ok(applied >= 16 && applied < 32, `tracefs.bufferSizeKb 16 applied (kernel says ${applied})`);
  assert.equal(kernelOverrun(soload.pid), 0, 'no loss before the burst');
  // soload cannot read while stopped: the burst (~600 short-lived processes, each a fork, an exec
  // of nothing, a dlopen and an exit: several events apiece) must overflow 16 KiB per CPU.
  process.kill(soload.pid, 'SIGSTOP');
  let gen;
  try {
    gen = spawnSync(loadgen, ['1.5', '400', lib], { encoding: 'utf8' });
  } finally {
    process.kill(soload.pid, 'SIGCONT');
  }
  assert.equal(gen.status, 0, gen.stderr);
  const kernel = kernelOverrun(soload.pid);
  assert.ok(kernel > 0, `the burst did not overflow the buffer (loadgen: ${gen.stdout})`);

  const until = Date.now() + 20_000;
  let warned: RegExpExecArray | null = null;
  while (Date.now() < until && !(warned = /soload: warn: kernel ring buffer overran: (\d+) events lost .*ring overrun (\d+),.*Raise tracefs\.bufferSizeKb \(now (\d+) KiB per CPU\)/.exec(soload.stderr()))) await sleep(200);
  assert.ok(warned, `no loss warning:\n${soload.stderr()}`);
  assert.equal(Number(warned[2]), kernelOverrun(soload.pid), 'the warning counts what the kernel counted');
  assert.equal(Number(warned[3]), applied, 'the advice names the size in force');

  let metric: number | undefined;
  while (Date.now() < until + 10_000 && (metric = lastMetric('soload.ring.overrun')) !== kernelOverrun(soload.pid)) await sleep(250);
  assert.equal(metric, kernelOverrun(soload.pid), 'soload.ring.overrun in the Collector equals the kernel’s per_cpu overrun');

  // Still running and still complete once the pressure is gone.
  const r = runProgram(dlopener, [lib], { SOLOAD_TEST_LINGER_MS: '300' });
  assert.equal(r.status, 0);
  const after = await soload.waitFor((x) => x.attributes['process.pid'] === r.pid && x.attributes['file.path'] === lib, 10_000);
  assert.equal(after.length, 1, 'a load after the burst is reported');
  assert.equal(soload.child.exitCode, null, 'soload is still running');
});
