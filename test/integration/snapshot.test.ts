/**
 * capture.snapshot: objects loaded by processes that were running before soload started are
 * reported at start with soload.snapshot = true and the method where /proc can tell it.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { FIXTURES_C, gcc, requireLiveKernel, startSoload, tmpDir } from '../helpers/soload';

test('running processes are inventoried at start', async () => {
  requireLiveKernel();
  const dir = tmpDir();
  const lib = path.join(dir, 'libplug.so');
  const prog = path.join(dir, 'dlopener');
  gcc(['-shared', '-fPIC', '-o', lib, path.join(FIXTURES_C, 'plug.c')]);
  gcc(['-o', prog, path.join(FIXTURES_C, 'dlopener.c'), '-ldl']);
  const child = spawn(prog, [lib], { env: { ...process.env, SOLOAD_TEST_LINGER_MS: '20000' }, stdio: ['ignore', 'pipe', 'ignore'] });
  await new Promise<void>((r) => child.stdout!.once('data', () => r())); // it has dlopened
  const soload = await startSoload({ otel: { exporters: ['console'] }, capture: { snapshot: true, reportExecutable: true } });
  try {
    const recs = await soload.waitFor((r) => r.attributes['process.pid'] === child.pid && r.attributes['soload.snapshot'] === true, 5000, 4);
    const methods = Object.fromEntries(recs.map((r) => [String(r.attributes['file.path']), r.attributes['soload.load.method']]));
    assert.equal(methods[fs.realpathSync(prog)], 'executable');
    assert.equal(methods[fs.realpathSync(lib)], 'unknown', 'a dlopened object cannot be told from a preload after the fact');
    assert.equal(methods['/usr/lib/x86_64-linux-gnu/libc.so.6'], 'needed');
    assert.equal(methods['/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2'], 'interpreter');
    for (const r of recs) {
      assert.equal(r.attributes['soload.probe'], 'snapshot');
      assert.equal(r.attributes['process.executable.path'], fs.realpathSync(prog));
    }
  } finally {
    child.kill('SIGKILL');
    await soload.stop();
  }
});
