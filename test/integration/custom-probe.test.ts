/**
 * A user-declared probe on a library whose path holds whitespace (issue 8, defect 3): uprobe_events
 * splits on whitespace, so soload probes the file through a symlink alias (uprobes attach to the
 * inode) instead of aborting the start; the hits go through the same chain as loads (filters,
 * enrichment, exact kernel timestamps); the alias is gone after shutdown.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { loadConfig } from '../../src/config/load';
import { FIXTURES_C, gcc, requireLiveKernel, soloadLeftovers, startSoload, tmpDir, TRACEFS } from '../helpers/soload';

before(() => requireLiveKernel());

test('a custom probe on a file under "dir with space" is installed via an alias and reported as soload.probe records', async () => {
  const dir = path.join(fs.realpathSync(tmpDir()), 'dir with space');
  fs.mkdirSync(dir);
  const lib = path.join(dir, 'libws.so');
  const prog = path.join(path.dirname(dir), 'wscall');
  gcc(['-shared', '-fPIC', '-o', lib, path.join(FIXTURES_C, 'plug.c')]);
  gcc(['-o', prog, path.join(FIXTURES_C, 'wscall.c'), '-ldl']);
  const probes = [
    ...loadConfig({ env: {} }).probes,
    { name: 'ws_answer', library: lib, symbol: 'soload_plug_answer', kind: 'entry', fetch: { first: '%di:x64' } },
  ];
  const soload = await startSoload({ probes, otel: { exporters: ['console'] }, capture: { snapshot: false } }, { readyTimeoutMs: 60_000 });
  let aliasDir = '';
  try {
    const group = `soload_${soload.pid}`;
    const line = fs.readFileSync(path.join(TRACEFS, 'uprobe_events'), 'utf8').split('\n').find((l) => l.startsWith(`p:${group}/ws_answer `));
    assert.ok(line, `ws_answer installed:\n${soload.stderr()}`);
    const alias = /^\S+ (\S+):0x/.exec(line)![1]!;
    aliasDir = path.dirname(alias);
    assert.equal(fs.realpathSync(alias), lib, 'the alias leads to the library');
    const r = spawnSync(prog, [lib], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    const pid = Number(r.stdout.split(' ')[0]);
    const [hit] = await soload.waitFor((x) => x.eventName === 'soload.probe' && x.attributes['process.pid'] === pid, 5000);
    assert.ok(hit, 'the custom probe fired');
    assert.equal(hit.attributes['soload.probe'], 'ws_answer');
    assert.equal(typeof hit.attributes['soload.arg.first'], 'string');
    assert.ok(/^\d{19}$/.test(hit.timeUnixNano) && !hit.timeUnixNano.endsWith('000000'), `nanosecond timestamp ${hit.timeUnixNano}`);
    const [load] = await soload.waitFor((x) => x.eventName === 'so.load' && x.attributes['process.pid'] === pid && x.attributes['file.path'] === lib, 5000);
    assert.ok(load, 'the load of the library itself is reported by its exact path, spaces included');
  } finally {
    await soload.stop('SIGTERM');
  }
  assert.deepEqual(soloadLeftovers(), { probes: [], instances: [] });
  assert.equal(fs.existsSync(aliasDir), false, 'alias directory removed at shutdown');
});
