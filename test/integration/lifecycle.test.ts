/**
 * soload must never leave probes in the kernel, and must never touch another tracer's.
 * SIGINT and SIGTERM clean up on the way out; SIGKILL cannot be caught, so the next start removes
 * what the killed process left — and only that.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawnSync } from 'node:child_process';
import { CLI, requireLiveKernel, soloadLeftovers, startSoload, TRACEFS, tracefsState } from '../helpers/soload';

const FOREIGN_GROUP = 'foreigntracer';
const FOREIGN_INSTANCE = 'foreign_tracer_test';
const quiet = { otel: { exporters: ['none'] } };

function dlopenOffset(): string {
  // Found independently of soload's ELF code: readelf's view of libc's dynamic symbols.
  const out = spawnSync('readelf', ['-Ws', '--dyn-syms', '/lib/x86_64-linux-gnu/libc.so.6'], { encoding: 'utf8' }).stdout;
  const m = /:\s+([0-9a-f]+)\s+\d+\s+FUNC\s+\w+\s+\w+\s+\d+\s+dlopen@@/.exec(out);
  assert.ok(m, 'readelf found no dlopen in libc.so.6');
  return `0x${m[1]}`;
}

before(() => {
  requireLiveKernel();
  // Another tool's probe and instance, present before soload starts: they must survive everything.
  fs.appendFileSync(path.join(TRACEFS, 'uprobe_events'), `p:${FOREIGN_GROUP}/probe1 /lib/x86_64-linux-gnu/libc.so.6:${dlopenOffset()}\n`);
  fs.mkdirSync(path.join(TRACEFS, 'instances', FOREIGN_INSTANCE), { recursive: true });
});

after(() => {
  try {
    fs.rmdirSync(path.join(TRACEFS, 'instances', FOREIGN_INSTANCE));
  } catch {
    /* already gone: the foreign-survival assertions below report it */
  }
  fs.appendFileSync(path.join(TRACEFS, 'uprobe_events'), `-:${FOREIGN_GROUP}/probe1\n`);
});

function assertForeignIntact() {
  const s = tracefsState();
  assert.ok(s.probes.some((p) => p.startsWith(`p:${FOREIGN_GROUP}/probe1 `)), `foreign probe removed: ${s.probes.join('\n')}`);
  assert.ok(s.instances.includes(FOREIGN_INSTANCE), 'foreign instance removed');
}

for (const [signal, code] of [['SIGINT', 130], ['SIGTERM', 143], ['SIGHUP', 129]] as const) {
  test(`${signal}: soload removes its probes and instance`, async () => {
    const s = await startSoload(quiet);
    const during = soloadLeftovers();
    assert.ok(during.probes.some((p) => p.includes(`soload_${s.pid}/dlopen_entry`)), `probes not installed: ${during.probes}`);
    assert.ok(during.instances.includes(`soload_${s.pid}`));
    assert.equal(await s.stop(signal), code, s.stderr());
    assert.deepEqual(soloadLeftovers(), { probes: [], instances: [] });
    assertForeignIntact();
  });
}

test('SIGKILL leaves state; the next start removes it (and only it); a clean stop leaves nothing', async () => {
  const first = await startSoload(quiet);
  assert.equal(await first.stop('SIGKILL'), 'SIGKILL');
  const left = soloadLeftovers();
  assert.ok(left.probes.some((p) => p.includes(`soload_${first.pid}/`)), 'SIGKILL should have left probes (nothing to test otherwise)');
  assert.ok(left.instances.includes(`soload_${first.pid}`));

  const second = await startSoload(quiet);
  const now = soloadLeftovers();
  assert.ok(!now.probes.some((p) => p.includes(`soload_${first.pid}/`)), `stale probes of ${first.pid} still there`);
  assert.ok(!now.instances.includes(`soload_${first.pid}`), 'stale instance still there');
  assert.match(second.stderr(), new RegExp(`removing state left by a soload that died: groups \\[soload_${first.pid}\\]`));
  assertForeignIntact();
  assert.equal(await second.stop('SIGTERM'), 143);
  assert.deepEqual(soloadLeftovers(), { probes: [], instances: [] });
  assertForeignIntact();
});

test('a live soload is not mistaken for a dead one by a second instance; a shared state directory is refused to the second, naming the first', async () => {
  const stateDir = fs.mkdtempSync('/tmp/soload-shared-state-');
  const shared = { ...quiet, security: { stateDir } };
  const a = await startSoload(shared);
  const b = await startSoload(shared);
  const s = soloadLeftovers();
  assert.ok(s.instances.includes(`soload_${a.pid}`) && s.instances.includes(`soload_${b.pid}`));
  assert.doesNotMatch(a.stderr(), /first-seen state unavailable/);
  assert.match(b.stderr(), new RegExp(`first-seen state unavailable .*in use by soload pid ${a.pid}`));
  assert.doesNotMatch(b.stderr(), /removing state left by a soload that died/);
  await b.stop();
  assert.ok(soloadLeftovers().instances.includes(`soload_${a.pid}`), "stopping b removed a's instance");
  await a.stop();
  assert.deepEqual(soloadLeftovers(), { probes: [], instances: [] });
});

test('invalid config: exit code 2, names the key, installs nothing', () => {
  const before = tracefsState();
  const dir = fs.mkdtempSync('/tmp/soload-badcfg-');
  const file = path.join(dir, 'c.json');
  fs.writeFileSync(file, JSON.stringify({ otel: { severity: 'LOUD' } }));
  const r = spawnSync(process.execPath, [CLI, 'run', '--config', file], { encoding: 'utf8' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /SOLOAD_ERR_CONFIG_INVALID/);
  assert.match(r.stderr, /otel\.severity/);
  assert.match(r.stderr, /"INFO"/);
  assert.deepEqual(tracefsState(), before);
});
