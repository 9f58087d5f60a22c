/**
 * SoloadAgent in-process on the live kernel: start() installs exactly the planned probes in its own
 * instance and group, loads come out of the chain, and shutdown() undoes everything start did —
 * tracefs as before, alias directory gone — also when called during start or twice.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { SoloadAgent } from '../../src/agent';
import { loadConfig } from '../../src/config/load';
import type { LoadEvent } from '../../src/types';
import { FIXTURES_C, gcc, requireLiveKernel, tmpDir, tracefsState } from '../helpers/soload';

before(() => requireLiveKernel());

const quiet = { debug: () => undefined, info: () => undefined, warn: () => undefined, error: () => undefined };

function config() {
  const c = loadConfig({ env: {} });
  c.otel.exporters = ['none'];
  c.capture.snapshot = false;
  c.otel.metrics.enabled = false;
  c.log.statsIntervalMs = 0;
  return c;
}

test('start installs the plan, loads reach onLoad, shutdown leaves tracefs as it found it', async () => {
  const dir = fs.realpathSync(tmpDir());
  const lib = path.join(dir, 'libplug.so');
  const prog = path.join(dir, 'dlopener');
  gcc(['-shared', '-fPIC', '-o', lib, path.join(FIXTURES_C, 'plug.c')]);
  gcc(['-o', prog, path.join(FIXTURES_C, 'dlopener.c'), '-ldl']);
  const before = tracefsState();
  const loads: LoadEvent[] = [];
  const aliasRoot = path.join(dir, 'aliases');
  const agent = new SoloadAgent({ config: config(), log: quiet, onLoad: (e) => loads.push(e), aliasRoot });
  await agent.start();
  try {
    const mine = tracefsState().probes.filter((l) => l.includes(`:soload_${process.pid}/`));
    assert.equal(mine.length, agent.plan!.specs.length, 'every planned probe is installed');
    assert.ok(tracefsState().instances.includes(`soload_${process.pid}`));
    const r = spawnSync(prog, [lib], { encoding: 'utf8', env: { ...process.env, SOLOAD_TEST_LINGER_MS: '0' } });
    const pid = Number(r.stdout.split(' ')[0]);
    for (let i = 0; i < 100 && !loads.some((l) => l.pid === pid && l.path === lib); i++) await new Promise((res) => setTimeout(res, 30));
    const got = loads.filter((l) => l.pid === pid);
    assert.ok(got.some((l) => l.method === 'dlopen' && l.path === lib), JSON.stringify(got.map((l) => [l.method, l.path])));
    assert.ok(got.some((l) => l.method === 'needed' && l.path === '/usr/lib/x86_64-linux-gnu/libc.so.6'));
    assert.ok(agent.stats.records > 0 && agent.stats.loadsEmitted >= got.length);
  } finally {
    await agent.shutdown();
    await agent.shutdown(); // idempotent
  }
  assert.deepEqual(tracefsState(), before);
  assert.equal(fs.existsSync(path.join(aliasRoot, `soload_${process.pid}`)), false);
});

test('shutdown while start is still running waits for it, then removes what it installed', async () => {
  const before = tracefsState();
  const agent = new SoloadAgent({ config: config(), log: quiet });
  const starting = agent.start();
  await agent.shutdown();
  await starting.catch(() => undefined);
  assert.deepEqual(tracefsState(), before);
});
