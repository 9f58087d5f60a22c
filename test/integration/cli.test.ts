/** The CLI's read-only commands on the live host: check, probes, config. */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLI, requireLiveKernel, soloadLeftovers, tracefsState } from '../helpers/soload';

const run = (args: string[], env: NodeJS.ProcessEnv = {}, prefix: string[] = []) =>
  spawnSync(prefix[0] ?? process.execPath, [...prefix.slice(1), ...(prefix.length ? [process.execPath] : []), CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env } });

before(() => requireLiveKernel());

test('check: kernel features, loader files, symbols with their tables, capture mechanism per file; exit 0', () => {
  const r = run(['check']);
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, new RegExp(`^kernel\\s+${os.release().replace(/[.+]/g, '\\$&')}`, 'm'));
  assert.match(r.stdout, /^tracefs\s+\/sys\/kernel(\/debug)?\/tracing$/m);
  for (const f of ['uprobe_events', '%return probes', 'ustring', '@\\+offset fetch', 'instances']) assert.match(r.stdout, new RegExp(`^${f}\\s+yes$`, 'm'));
  assert.match(r.stdout, /^kprobe_events\s+(yes|no \(optional: soload does not need kprobes\))$/m);
  assert.match(r.stdout, /libc\.so\.6 \[libc\][\s\S]*?dlopen: found in dynsym at file offset 0x[0-9a-f]+/);
  assert.match(r.stdout, /ld-linux-x86-64\.so\.2 \[ld\.so\][\s\S]*?_dl_debug_state: found in dynsym/);
  assert.match(r.stdout, /capture: loader-lists \(_dl_open found \(debug-build-id.*— complete at one trap per process start/);
  // defect 8: glibc ≥ 2.34's libdl.so.2 is an expected stub, not a list of failed symbol searches.
  const libdl = /\S*libdl\.so\.2 \[libdl\][^\n]*\n((?: {4}[^\n]*\n)*)/.exec(r.stdout);
  if (libdl) {
    assert.match(libdl[1]!, /capture: none needed: a glibc ≥ 2\.34 stub/);
    assert.doesNotMatch(libdl[1]!, /NOT FOUND/);
    assert.doesNotMatch(r.stdout, /skipped dlopen_\w+_libdl/);
  }
  assert.match(r.stdout, /soload can run here\./);
  const json = JSON.parse(run(['check', '--json']).stdout);
  assert.equal(json.tracefs.uprobes, true);
  assert.ok(json.loaders.some((l: { kind: string }) => l.kind === 'ld.so'));
});

test('check without debug symbols names the calibrated search-list mechanism and what it misses', () => {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-nodebug-'));
  const r = run(['check'], { SOLOAD_DEBUG_ROOT: empty });
  assert.equal(r.status, 0);
  assert.match(r.stdout, /_dl_add_to_namespace_list: NOT FOUND/);
  assert.match(r.stdout, /capture: search-lists \(link_map\.l_searchlist at offset \d+ \(calibrated against pid \d+.*search lists .*Not seen: libc-internal dlopens/);
  assert.match(r.stdout, /loader-probe not used: no _dl_add_to_namespace_list symbol/);
});

test('check as an unprivileged user exits 1 and says why', () => {
  const r = run(['check'], {}, ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups']);
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /soload CANNOT run here:\n\s+- missing CAP_DAC_OVERRIDE: cannot read tracefs at \/sys\/kernel\/tracing \(owner uid 0, mode 0700; soload runs as uid 65534\)/);
});

test('probes prints the exact uprobe_events lines and installs nothing', () => {
  const before = tracefsState();
  const r = run(['probes']);
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.trim().split('\n');
  assert.ok(lines.some((l) => /^p:soload_\d+\/dlopen_entry \S+libc\.so\.6:0x[0-9a-f]+ name=\+0\(%di\):ustring flags=%si:x32 comm=\$comm$/.test(l)), r.stdout);
  assert.ok(lines.some((l) => /^r:soload_\d+\/dlopen_return \S+libc\.so\.6:0x[0-9a-f]+ handle=\$retval:x64 /.test(l)));
  assert.ok(lines.some((l) => /^r:soload_\d+\/loader_open_walk \S+ld-linux-x86-64\.so\.2:0x[0-9a-f]+ handle=\$retval:x64 self=\+0\(\+8\(\$retval\)\):ustring/.test(l)), r.stdout);
  assert.ok(!lines.some((l) => /\/loader_add /.test(l)), 'no per-object probe by default');
  // Start-up ends at libc's start-up hook: nothing in ld.so fires on dlopen or dlclose.
  assert.ok(lines.some((l) => /^p:soload_\d+\/libc_init_list0 \S+libc\.so\.6:0x[0-9a-f]+ comm=\$comm n=/.test(l)), r.stdout);
  assert.ok(!lines.some((l) => /\/loader_state /.test(l)), 'no _dl_debug_state probe where libc has __libc_early_init');
  assert.deepEqual(tracefsState(), before);
});

test('config prints the effective configuration with secrets masked', () => {
  const r = run(['config'], { OTEL_EXPORTER_OTLP_HEADERS: 'authorization=Bearer%20topsecret', OTEL_SERVICE_NAME: 'edge-agent' });
  assert.equal(r.status, 0);
  const c = JSON.parse(r.stdout);
  assert.equal(c.otel.headers.authorization, '***');
  assert.ok(!r.stdout.includes('topsecret'));
  assert.equal(c.otel.serviceName, 'edge-agent');
  assert.ok(Array.isArray(c.probes) && c.probes.length >= 4);
});

test('usage errors exit 2', () => {
  assert.equal(run(['frobnicate']).status, 2);
  assert.equal(run(['run', '--no-such-flag']).status, 2);
});

// Unique prefixes: other soload processes on the host (parallel test runs) cannot disturb the
// "nothing installed" check, and a failed start must leave nothing under these names.
const ISOLATED = { SOLOAD_TRACEFS_GROUP_PREFIX: 'soloadcfgt', SOLOAD_TRACEFS_INSTANCE_PREFIX: 'soloadcfgt' };

test('run with a TLS file that does not exist: exit 2 naming the key, the path and the errno; nothing installed', () => {
  const r = run(['run'], { ...ISOLATED, OTEL_EXPORTER_OTLP_CERTIFICATE: '/nonexistent/ca.pem' });
  assert.equal(r.status, 2, r.stderr);
  assert.match(r.stderr, /^soload: SOLOAD_ERR_CONFIG_INVALID: invalid configuration: otel\.tls\.caFile: cannot read \/nonexistent\/ca\.pem \(ENOENT\); set otel\.tls\.caFile/m);
  assert.doesNotMatch(r.stderr, /installing|ready/);
  assert.deepEqual(soloadLeftovers('soloadcfgt'), { probes: [], instances: [] });
});

test('run and check with a spill directory that cannot be created: exit 2 naming otel.delivery.spillDir', () => {
  for (const cmd of ['run', 'check']) {
    const r = run([cmd], { ...ISOLATED, SOLOAD_DELIVERY_SPILL_DIR: '/proc/version/spill' });
    assert.equal(r.status, 2, `${cmd}: ${r.stdout}${r.stderr}`);
    assert.match(r.stderr, /SOLOAD_ERR_CONFIG_INVALID: invalid configuration: otel\.delivery\.spillDir: cannot use \/proc\/version\/spill: .*ENOTDIR/);
  }
  assert.deepEqual(soloadLeftovers('soloadcfgt'), { probes: [], instances: [] });
});

test('config and probes do not open the exporters’ files: they still print with a missing key file', () => {
  const env = { ...ISOLATED, OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: '/nonexistent/c.pem', OTEL_EXPORTER_OTLP_CLIENT_KEY: '/nonexistent/k.pem' };
  const c = run(['config'], env);
  assert.equal(c.status, 0, c.stderr);
  assert.equal(JSON.parse(c.stdout).otel.tls.keyFile, '/nonexistent/k.pem');
  assert.equal(run(['probes'], env).status, 0);
});

test('an environment value that does not parse: exit 2 naming the variable and the key', () => {
  const r = run(['config'], { SOLOAD_OTLP_TIMEOUT_MS: '10s' });
  assert.equal(r.status, 2);
  assert.match(r.stderr, /SOLOAD_ERR_CONFIG_INVALID: invalid configuration: SOLOAD_OTLP_TIMEOUT_MS \(otel\.timeoutMs\): must be a non-negative integer/);
  const u = run(['config'], { OTEL_EXPORTER_OTLP_ENDPOINT: 'https://user:s3cret@[bad' });
  assert.equal(u.status, 2);
  assert.match(u.stderr, /otel\.endpoint \(from OTEL_EXPORTER_OTLP_ENDPOINT\): must be an http/);
  assert.ok(!u.stderr.includes('s3cret'), u.stderr);
});
