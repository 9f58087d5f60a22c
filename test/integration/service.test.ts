/**
 * The supported ways to run soload as a service (README "Running as a service"):
 *  - examples/systemd/soload.service: valid for systemd-analyze, and its semantics reproduced by hand
 *    (PID 1 here need not be systemd): the unit's uid, capability bounding and ambient sets,
 *    no_new_privs, ProtectSystem=strict with its ReadWritePaths and directories, in a private mount
 *    namespace; a real dlopen from the host's /tmp must be reported, enriched, with first-seen state;
 *  - `npm start` in its own process group stopped by kill(-pgid, SIGTERM), as a terminal or a
 *    service manager does: nothing of soload's stays in the kernel;
 *  - the wrapper exits first and the rest of the group is SIGKILLed: soload dies mid-removal, its
 *    probes stay until the next start removes them (measured; why the unit runs node directly).
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { requireLiveKernel, ROOT, startSoload } from '../helpers/soload';
import { assertNothingMissing, buildLoadFixture, consoleConfig, prefixLeftovers, startUnder } from '../helpers/service';

const UNIT = path.join(ROOT, 'examples', 'systemd', 'soload.service');
/** The uid standing in for the unit's `User=soload` (nobody: no files, no capabilities of its own). */
const SERVICE_UID = 65534;

let fx: ReturnType<typeof buildLoadFixture>;

before(() => {
  requireLiveKernel();
  const v = spawnSync('systemd-analyze', ['--version'], { encoding: 'utf8' });
  assert.ok(!v.error, 'systemd-analyze is missing: test/run.js installs the systemd package (apt) for this test');
  fx = buildLoadFixture('svctest');
});

/** Every value of `key=` in the unit's [Service] section (later lines extend lists, as systemd does). */
function unitValues(key: string): string[] {
  const text = fs.readFileSync(UNIT, 'utf8');
  const service = text.slice(text.indexOf('[Service]'), text.indexOf('[Install]'));
  return [...service.matchAll(new RegExp(`^${key}=(.*)$`, 'gm'))].map((m) => m[1]!.trim());
}
const unitValue = (key: string) => unitValues(key).at(-1);

test('the shipped unit passes systemd-analyze verify, and its exposure is rated OK', () => {
  // The unit names /usr/bin/node; where node lives elsewhere, verify a copy pointing at this node.
  let file = UNIT;
  if (!fs.existsSync('/usr/bin/node')) {
    file = path.join(fx.dir, 'soload.service');
    fs.writeFileSync(file, fs.readFileSync(UNIT, 'utf8').replace('/usr/bin/node', process.execPath));
  }
  const r = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.equal(`${r.stdout}${r.stderr}`.trim(), '', 'no warnings (an unknown key is only a warning)');
  const s = spawnSync('systemd-analyze', ['security', '--offline=true', file], { encoding: 'utf8' });
  const level = /Overall exposure level for soload\.service: ([\d.]+) (\w+)/.exec(s.stdout);
  assert.ok(level, s.stdout + s.stderr);
  assert.ok(Number(level[1]) <= 4.5, `exposure ${level[1]} ${level[2]}`);
  // What the tests below rely on, so an edit of the unit cannot silently drift from them.
  assert.equal(unitValue('ExecStart')!.split(' ')[0], '/usr/bin/node', 'node directly, not npm');
  assert.equal(unitValue('NoNewPrivileges'), 'yes');
  assert.equal(unitValue('ProtectSystem'), 'strict');
  assert.equal(unitValue('PrivateTmp'), 'no');
  assert.equal(unitValue('ProtectKernelTunables'), 'no');
  assert.equal(unitValue('KillSignal'), 'SIGTERM');
  assert.ok(Number.parseInt(unitValue('TimeoutStopSec')!, 10) >= 20, 'time for probe removal and the drain');
  assert.ok(unitValues('ReadWritePaths').join(' ').split(/\s+/).includes('/sys/kernel/tracing'), 'tracefs writable');
});

/**
 * The unit's sandbox by hand: a private mount namespace in which the directories systemd would make
 * (StateDirectory, CacheDirectory, RuntimeDirectory: owned by the service uid, mode 0700) are fresh
 * tmpfs mounts, every ReadWritePaths entry stays writable, / is remounted read-only
 * (ProtectSystem=strict, ProtectHome=read-only), then setpriv applies the uid, the bounding and
 * ambient capability sets and no_new_privs.
 */
function unitSandbox(): string[] {
  const caps = (key: string) => (unitValue(key) ?? '').split(/\s+/).filter(Boolean).map((c) => c.replace(/^CAP_/, '').toLowerCase());
  const bounding = caps('CapabilityBoundingSet');
  const ambient = caps('AmbientCapabilities');
  assert.ok(bounding.length > 0 && ambient.every((c) => bounding.includes(c)), 'ambient ⊆ bounding');
  const steps: string[] = ['set -e'];
  for (const [key, base] of [['StateDirectory', '/var/lib'], ['CacheDirectory', '/var/cache'], ['RuntimeDirectory', '/run']] as const) {
    for (const name of (unitValue(key) ?? '').split(/\s+/).filter(Boolean)) {
      const dir = `${base}/${name}`;
      // The mount point itself is the only thing created on the host (as systemd would).
      steps.push(`mkdir -p ${dir}`, `mount -t tmpfs -o mode=0700,uid=${SERVICE_UID},gid=${SERVICE_UID} soload-${key} ${dir}`);
    }
  }
  for (const entry of unitValues('ReadWritePaths').join(' ').split(/\s+/).filter(Boolean)) {
    const p = entry.replace(/^-/, '');
    steps.push(entry.startsWith('-') ? `if [ -d ${p} ]; then mount --bind ${p} ${p}; fi` : `mount --bind ${p} ${p}`);
  }
  steps.push('mount -o remount,bind,ro /');
  const setpriv = [
    'setpriv',
    `--reuid=${SERVICE_UID}`,
    `--regid=${SERVICE_UID}`,
    '--clear-groups',
    `--bounding-set=-all,${bounding.map((c) => `+${c}`).join(',')}`,
    `--inh-caps=-all,${ambient.map((c) => `+${c}`).join(',')}`,
    `--ambient-caps=${ambient.map((c) => `+${c}`).join(',')}`,
    ...(unitValue('NoNewPrivileges') === 'yes' ? ['--no-new-privs'] : []),
  ];
  return ['unshare', '-m', '--propagation', 'private', 'sh', '-c', `${steps.join(' && ')} && exec "$@"`, 'sh', ...setpriv];
}

test('soload under the unit’s sandbox reports a dlopen from the host’s /tmp, enriched, with first-seen state', async () => {
  const prefix = 'soloadunit';
  const config = consoleConfig(fx.dir, { security: { stateDir: '/var/lib/soload' }, discovery: { enabled: false } });
  const s = await startUnder(unitSandbox(), config, { SOLOAD_TRACEFS_GROUP_PREFIX: prefix, SOLOAD_TRACEFS_INSTANCE_PREFIX: prefix, SOLOAD_RESOURCE_MODE: 'agent' });
  try {
    assert.doesNotMatch(s.stderr(), /warn: .*(state|stateDir|SOLOAD_ERR)/i, 'the StateDirectory is usable by the service uid');
    const r = spawnSync(fx.loader, [fx.lib], { encoding: 'utf8', env: { ...process.env, SOLOAD_TEST_LINGER_MS: '1500' } });
    assert.match(r.stdout, / ok$/m);
    const rec = await s.waitForRecord((x) => x.attributes['file.path'] === fx.lib && x.attributes['soload.load.method'] === 'dlopen');
    assert.equal(rec.attributes['process.executable.path'], fx.loader);
    assert.equal(rec.attributes['file.size'], fs.statSync(fx.lib).size);
    assert.match(String(rec.attributes['file.hash.sha256']), /^[0-9a-f]{64}$/);
    assert.equal(rec.attributes['soload.first_seen'], true);
    assertNothingMissing(rec);
  } finally {
    s.child.kill('SIGTERM');
    assert.equal(await s.exited, 143, s.stderr());
  }
  assert.deepEqual(prefixLeftovers(prefix), { probes: [], dynamic: [], instances: [] });
});

/** Starts `npm start` as the leader of its own process group; resolves at soload's "ready". */
async function npmStart(prefix: string) {
  const child = spawn('npm', ['start'], {
    cwd: ROOT,
    detached: true, // setsid: npm leads a new process group, as under a terminal or a manager
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, SOLOAD_TRACEFS_GROUP_PREFIX: prefix, SOLOAD_TRACEFS_INSTANCE_PREFIX: prefix, SOLOAD_EXPORTERS: 'console', SOLOAD_CAPTURE_SNAPSHOT: 'false', SOLOAD_METRICS_ENABLED: 'false' },
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString('utf8')));
  const exited = new Promise<number | string>((r) => child.on('exit', (code, sig) => r(code ?? sig ?? -1)));
  const deadline = Date.now() + 240_000; // npm start compiles first
  while (!/soload: info: ready/.test(err)) {
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`npm start exited before ready:\n${err}`);
    if (Date.now() > deadline) {
      process.kill(-child.pid!, 'SIGKILL');
      throw new Error(`npm start: soload not ready:\n${err}`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  const soloadPid = Number(new RegExp(`group ${prefix}_(\\d+)`).exec(err)?.[1]);
  assert.ok(soloadPid > 0, err);
  return { pgid: child.pid!, soloadPid, exited, stderr: () => err };
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

async function groupGone(pgid: number, timeoutMs = 30_000): Promise<number> {
  const t0 = Date.now();
  while (groupAlive(pgid)) {
    assert.ok(Date.now() - t0 < timeoutMs, `process group ${pgid} still alive after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - t0;
}

test('npm start stopped by kill(-pgid, SIGTERM): npm exits at once, soload removes everything alone', async () => {
  const prefix = 'soloadnpmt';
  const n = await npmStart(prefix);
  assert.ok(prefixLeftovers(prefix).probes.length > 0, 'probes installed');
  process.kill(-n.pgid, 'SIGTERM');
  assert.equal(await n.exited, 'SIGTERM', 'npm dies of the signal without waiting for its child');
  assert.ok(groupAlive(n.pgid), 'soload outlives its wrapper while it removes its probes');
  await groupGone(n.pgid);
  assert.match(n.stderr(), /soload: info: SIGTERM: removing probes and flushing/);
  assert.deepEqual(prefixLeftovers(prefix), { probes: [], dynamic: [], instances: [] }, 'nothing left in uprobe_events, dynamic_events, instances/');
});

test('npm start: the wrapper exits first and the group is then SIGKILLed: probes stay until the next start removes them', async () => {
  const prefix = 'soloadnpmk';
  const n = await npmStart(prefix);
  process.kill(-n.pgid, 'SIGTERM');
  await n.exited;
  // What a manager does once the main process (the wrapper) is gone: kill what is left of the group.
  process.kill(-n.pgid, 'SIGKILL');
  await groupGone(n.pgid);
  const left = prefixLeftovers(prefix);
  assert.ok(left.probes.length > 0 || left.instances.length > 0, `soload was killed mid-removal; measured: probes stay (${JSON.stringify(left)})`);
  // The next start of soload (run directly) removes them and says so.
  const s = await startSoload({ otel: { exporters: ['console'], metrics: { enabled: false } }, capture: { snapshot: false }, security: { stateDir: '' } }, { env: { SOLOAD_TRACEFS_GROUP_PREFIX: prefix, SOLOAD_TRACEFS_INSTANCE_PREFIX: prefix } });
  assert.match(s.stderr(), new RegExp(`soload: warn: removing state left by a soload that died: groups \\[${prefix}_${n.soloadPid}\\]`));
  assert.equal(await s.stop('SIGTERM'), 143);
  assert.deepEqual(prefixLeftovers(prefix), { probes: [], dynamic: [], instances: [] });
});
