/**
 * What soload needs from the kernel, measured on the live host: `check` and `run` under other uids
 * and capability sets (setpriv), with tracefs read-only and with a lockdown mode (each in a private
 * mount namespace, never the host's mounts). Every refusal names the missing piece, `run` fails
 * with the same text and a stable code, and nothing reaches the kernel.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { CLI, requireLiveKernel, TRACEFS } from '../helpers/soload';
import { assertNothingMissing, buildLoadFixture, consoleConfig, kernelFootprint, prefixLeftovers, startUnder, type PrintedRecord } from '../helpers/service';

const PREFIX = 'soloadpriv';
const ENV = { SOLOAD_TRACEFS_GROUP_PREFIX: PREFIX, SOLOAD_TRACEFS_INSTANCE_PREFIX: PREFIX, SOLOAD_RESOURCE_MODE: 'agent' };
const NOBODY = ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups'];
const withCaps = (caps: string[]) => [...NOBODY, `--inh-caps=${caps.map((c) => `+${c}`).join(',')}`, `--ambient-caps=${caps.map((c) => `+${c}`).join(',')}`];
const NO_SYS_ADMIN = ['setpriv', '--bounding-set=-sys_admin', '--inh-caps=-sys_admin'];

let fx: ReturnType<typeof buildLoadFixture>;
let config: string;

before(() => {
  requireLiveKernel();
  for (const tool of ['setpriv', 'unshare']) assert.equal(spawnSync(tool, ['--version']).status, 0, `${tool} (util-linux) is needed`);
  fx = buildLoadFixture('privtest');
  config = consoleConfig(fx.dir, { discovery: { enabled: false } });
});

function cli(prefix: string[], args: string[], env: NodeJS.ProcessEnv = {}) {
  const argv = [...prefix, process.execPath, CLI, ...args];
  return spawnSync(argv[0]!, argv.slice(1), { encoding: 'utf8', env: { ...process.env, ...ENV, ...env }, cwd: '/', timeout: 120_000 });
}

/** `check`'s problem lines (after "soload CANNOT run here:"). */
function problems(stdout: string): string[] {
  const i = stdout.indexOf('soload CANNOT run here:\n');
  return i < 0 ? [] : stdout.slice(i).split('\n').slice(1).filter((l) => l.startsWith('  - ')).map((l) => l.slice(4));
}

/** Runs `run` expecting a refusal: exit 1, the code, the same text as check's first problem, nothing in the kernel. */
function expectRefusal(prefix: string[], code: string, message: RegExp, checkOut: string): void {
  const before = kernelFootprint();
  const r = cli(prefix, ['run', '--config', config]);
  assert.equal(r.status, 1, r.stderr);
  const line = r.stderr.trim().split('\n').find((l) => l.startsWith('soload: SOLOAD_ERR_'));
  assert.ok(line, r.stderr);
  assert.equal(line, `soload: ${code}: ${problems(checkOut)[0]}`, 'run fails with check’s words');
  assert.match(line, message);
  assert.doesNotMatch(r.stderr, /ready|tracing \d+ probes/);
  assert.deepEqual(kernelFootprint(), before, 'uprobe_events, dynamic_events and instances/ unchanged');
}

async function reportedLoad(prefix: string[]): Promise<{ record: PrintedRecord; stderr: string }> {
  const s = await startUnder(prefix, config, ENV);
  try {
    const r = spawnSync(fx.loader, [fx.lib], { encoding: 'utf8', env: { ...process.env, SOLOAD_TEST_LINGER_MS: '1500' } });
    assert.match(r.stdout, / ok$/m, r.stderr);
    const record = await s.waitForRecord((rec) => rec.attributes['file.path'] === fx.lib && rec.attributes['soload.load.method'] === 'dlopen');
    return { record, stderr: s.stderr() };
  } finally {
    s.child.kill('SIGTERM');
    assert.equal(await s.exited, 143);
    assert.deepEqual(prefixLeftovers(PREFIX), { probes: [], dynamic: [], instances: [] }, 'stopped cleanly');
  }
}

test('uid 65534 without capabilities: check and run name CAP_DAC_OVERRIDE and the tracefs mode; nothing installed', () => {
  const c = cli(NOBODY, ['check']);
  assert.equal(c.status, 1, c.stdout + c.stderr);
  assert.match(c.stdout, /^privileges\s+uid 65534; no capabilities$/m);
  assert.deepEqual(problems(c.stdout), [
    `missing CAP_DAC_OVERRIDE: cannot read tracefs at ${TRACEFS} (owner uid 0, mode 0${(fs.statSync(TRACEFS).mode & 0o7777).toString(8)}; soload runs as uid 65534): run as root or grant CAP_DAC_OVERRIDE (README "Privileges")`,
  ]);
  expectRefusal(NOBODY, 'SOLOAD_ERR_NOT_PRIVILEGED', /missing CAP_DAC_OVERRIDE: cannot read tracefs/, c.stdout);
});

test('root without CAP_SYS_ADMIN (tracefs mounted): check passes and run reports a real dlopen, fully enriched', async () => {
  const c = cli(NO_SYS_ADMIN, ['check']);
  assert.equal(c.status, 0, c.stdout);
  assert.doesNotMatch(c.stdout, /^privileges .*CAP_SYS_ADMIN/m);
  const { record } = await reportedLoad(NO_SYS_ADMIN);
  assert.equal(record.attributes['process.executable.path'], fx.loader);
  assertNothingMissing(record);
});

test('uid 65534 with CAP_DAC_OVERRIDE + CAP_SYS_PTRACE (the measured minimum): a root process’s dlopen from /tmp is reported with its executable', async () => {
  const prefix = withCaps(['dac_override', 'sys_ptrace']);
  const c = cli(prefix, ['check']);
  assert.equal(c.status, 0, c.stdout);
  assert.match(c.stdout, /^privileges\s+uid 65534; CAP_DAC_OVERRIDE CAP_SYS_PTRACE$/m);
  assert.doesNotMatch(c.stdout, /records will be incomplete/);
  const { record } = await reportedLoad(prefix);
  assert.equal(record.attributes['process.executable.path'], fx.loader);
  assert.equal(record.attributes['file.size'], fs.statSync(fx.lib).size);
  assertNothingMissing(record);
});

test('uid 65534 with CAP_DAC_OVERRIDE only: runs; check names CAP_SYS_PTRACE and the record says what it lacks', async () => {
  const prefix = withCaps(['dac_override']);
  const c = cli(prefix, ['check']);
  assert.equal(c.status, 0, c.stdout);
  assert.match(c.stdout, /records will be incomplete:\n {2}- missing CAP_SYS_PTRACE: .*process\.executable\.path/);
  const { record } = await reportedLoad(prefix);
  // The loader runs as root with every capability: without CAP_SYS_PTRACE its exe link is closed.
  assert.equal(record.attributes['process.executable.path'], undefined);
  assert.ok((record.attributes['soload.enrichment.missing'] as string[]).includes('process.executable.path'), JSON.stringify(record.attributes));
});

/** `sh -c SCRIPT` in a private mount namespace (the host's mounts are never touched), then `node CLI args`. */
function inMountNs(script: string, args: string[], env: NodeJS.ProcessEnv = {}) {
  return cli(['unshare', '-m', '--propagation', 'private', 'sh', '-c', `${script} && exec "$@"`, 'sh'], args, env);
}

test('tracefs read-only (a read-only bind in a private mount namespace): check and run say so, code TRACEFS_READ_ONLY', () => {
  const ro = `mount --bind ${TRACEFS} ${TRACEFS} && mount -o remount,bind,ro ${TRACEFS}`;
  const c = inMountNs(ro, ['check']);
  assert.equal(c.status, 1, c.stdout + c.stderr);
  assert.deepEqual(problems(c.stdout), [
    `tracefs at ${TRACEFS} is mounted read-only: cannot write ${TRACEFS}/uprobe_events; remount it read-write, or list it in the unit's ReadWritePaths= (examples/systemd/soload.service)`,
  ]);
  const before = kernelFootprint();
  const r = inMountNs(ro, ['run', '--config', config]);
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr, new RegExp(`^soload: SOLOAD_ERR_TRACEFS_READ_ONLY: ${problems(c.stdout)[0]!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'));
  assert.deepEqual(kernelFootprint(), before);
  assert.match(fs.readFileSync('/proc/self/mountinfo', 'utf8'), new RegExp(` ${TRACEFS} rw,`), 'the host’s tracefs is still read-write');
});

test('kernel lockdown from securityfs (a fixture lockdown file on a private tmpfs): confidentiality refuses, integrity does not', () => {
  const fixture = 'mount -t tmpfs soload-lockdown-fixture /sys/kernel/security && printf "%s\\n" "$LOCKDOWN" > /sys/kernel/security/lockdown';
  const conf = inMountNs(fixture, ['check'], { LOCKDOWN: 'none integrity [confidentiality]' });
  assert.equal(conf.status, 1, conf.stdout + conf.stderr);
  assert.match(conf.stdout, /^privileges\s+uid 0; .*; lockdown confidentiality$/m);
  assert.deepEqual(problems(conf.stdout), [
    'kernel lockdown is in confidentiality mode (/sys/kernel/security/lockdown: none integrity [confidentiality]): the kernel refuses every tracefs access, whatever the privileges; boot with lockdown=integrity (or none), which allows tracefs',
  ]);
  const before = kernelFootprint();
  const r = inMountNs(fixture, ['run', '--config', config], { LOCKDOWN: 'none integrity [confidentiality]' });
  assert.equal(r.status, 1, r.stderr);
  assert.ok(r.stderr.includes(`soload: SOLOAD_ERR_KERNEL_LOCKDOWN: ${problems(conf.stdout)[0]}\n`), r.stderr);
  assert.deepEqual(kernelFootprint(), before);
  const integ = inMountNs(fixture, ['check'], { LOCKDOWN: 'none [integrity] confidentiality' });
  assert.equal(integ.status, 0, integ.stdout);
  assert.match(integ.stdout, /; lockdown integrity$/m);
});
