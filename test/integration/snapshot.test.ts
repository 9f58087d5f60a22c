/**
 * capture.snapshot: objects loaded by processes that were running before soload started are
 * reported at start with soload.snapshot = true, the kernel's names for them, and their methods
 * (DT_NEEDED closure → needed, LD_PRELOAD → preload, the rest → dlopen).
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
  const pre = path.join(dir, 'libpre.so');
  gcc(['-shared', '-fPIC', '-o', pre, path.join(FIXTURES_C, 'plug.c')]);
  // Through a symlinked directory, so the loader's string is not the kernel's.
  fs.symlinkSync(dir, path.join(dir, 'via-link'));
  const child = spawn(prog, [path.join(dir, 'via-link', 'libplug.so')], {
    env: { ...process.env, SOLOAD_TEST_LINGER_MS: '20000', LD_PRELOAD: pre },
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  await new Promise<void>((r) => child.stdout!.once('data', () => r())); // it has dlopened
  const soload = await startSoload({ otel: { exporters: ['console'] }, capture: { snapshot: true, reportExecutable: true } });
  try {
    const recs = await soload.waitFor((r) => r.attributes['process.pid'] === child.pid && r.attributes['soload.snapshot'] === true, 5000, 5);
    const maps = fs.readFileSync(`/proc/${child.pid}/maps`, 'utf8');
    const methods = Object.fromEntries(recs.map((r) => [String(r.attributes['file.path']), r.attributes['soload.load.method']]));
    assert.equal(methods[fs.realpathSync(prog)], 'executable');
    assert.equal(methods[fs.realpathSync(lib)], 'dlopen', 'neither DT_NEEDED nor a preload: it was opened at run time');
    assert.equal(methods[fs.realpathSync(pre)], 'preload', 'named by LD_PRELOAD in its environment');
    assert.equal(methods['/usr/lib/x86_64-linux-gnu/libc.so.6'], 'needed');
    assert.equal(methods['/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2'], 'interpreter');
    for (const r of recs) {
      assert.equal(r.attributes['soload.probe'], 'snapshot');
      assert.ok(maps.includes(` ${String(r.attributes['file.path'])}\n`), `${String(r.attributes['file.path'])} is named exactly as in /proc/<pid>/maps`);
      assert.equal(r.attributes['process.executable.path'], fs.realpathSync(prog));
    }
  } finally {
    child.kill('SIGKILL');
    await soload.stop();
  }
});
