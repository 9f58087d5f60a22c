import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { assertPrivileged, assessPrivileges, parseCapEff, parseLockdown } from '../../../src/host/privileges';
import { isSoloadError, ErrorCodes } from '../../../src/errors';

/** A fixture tree: a status file, a securityfs with `lockdown`, a tracefs with the files soload opens. */
function fixture(opts: { capEff?: string; lockdown?: string; tracefs?: boolean } = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-priv-'));
  const statusFile = path.join(dir, 'status');
  fs.writeFileSync(statusFile, `Name:\tnode\nUid:\t0\t0\t0\t0\nCapInh:\t0000000000000000\nCapPrm:\t${opts.capEff ?? '000001ffffffffff'}\nCapEff:\t${opts.capEff ?? '000001ffffffffff'}\n`);
  const securityfsRoot = path.join(dir, 'security');
  fs.mkdirSync(securityfsRoot);
  if (opts.lockdown !== undefined) fs.writeFileSync(path.join(securityfsRoot, 'lockdown'), opts.lockdown);
  const tracefs = path.join(dir, 'tracing');
  if (opts.tracefs !== false) {
    fs.mkdirSync(path.join(tracefs, 'instances'), { recursive: true });
    for (const f of ['trace', 'uprobe_events']) fs.writeFileSync(path.join(tracefs, f), '');
  }
  return { statusFile, securityfsRoot, tracefsPath: tracefs, tracefs, euid: 0 };
}

test('parseCapEff and parseLockdown read the kernel formats', () => {
  assert.equal(parseCapEff('CapInh:\t0\nCapEff:\t0000000000080002\n'), 0x80002n);
  assert.equal(parseCapEff('no caps line'), undefined);
  assert.equal(parseLockdown('[none] integrity confidentiality\n'), 'none');
  assert.equal(parseLockdown('none integrity [confidentiality]\n'), 'confidentiality');
  assert.equal(parseLockdown('garbage'), undefined);
});

test('capabilities are named from CapEff, not from the uid', () => {
  const f = fixture({ capEff: '0000000000080002' }); // DAC_OVERRIDE (1) + SYS_PTRACE (19)
  const r = assessPrivileges({ ...f, euid: 65534 });
  assert.deepEqual(r.capabilities, ['CAP_DAC_OVERRIDE', 'CAP_SYS_PTRACE']);
  assert.deepEqual(r.problems, []);
  assert.deepEqual(r.degraded, []);
  assert.equal(r.tracefs, f.tracefs);
});

test('lockdown: confidentiality is fatal with its own code, integrity and none are not', () => {
  const conf = assessPrivileges(fixture({ lockdown: 'none integrity [confidentiality]\n' }));
  assert.equal(conf.lockdown, 'confidentiality');
  assert.equal(conf.problems.length, 1);
  assert.equal(conf.problems[0]!.code, ErrorCodes.KERNEL_LOCKDOWN);
  assert.match(conf.problems[0]!.message, /kernel lockdown is in confidentiality mode \(.*lockdown: none integrity \[confidentiality\]\): the kernel refuses every tracefs access/);
  for (const mode of ['none integrity [integrity]', '[none] integrity confidentiality']) {
    const r = assessPrivileges(fixture({ lockdown: mode }));
    assert.deepEqual(r.problems, [], mode);
  }
  assert.equal(assessPrivileges(fixture()).lockdown, undefined, 'no lockdown file: not locked down');
});

test('not mounted: without CAP_SYS_ADMIN the message says mounting needs it; with it, run mounts', () => {
  const f = fixture({ tracefs: false, capEff: '0000000000000002' });
  const r = assessPrivileges({ ...f, euid: 65534 });
  assert.equal(r.problems[0]!.code, ErrorCodes.TRACEFS_UNAVAILABLE);
  assert.match(r.problems[0]!.message, /tracefs is not mounted .* mounting it needs CAP_SYS_ADMIN/);
  assert.deepEqual(assessPrivileges(fixture({ tracefs: false })).problems, []);
});

test('a non-root uid without CAP_DAC_OVERRIDE: the root-owned instances/ is named with its mode', () => {
  const f = fixture({ capEff: '0000000000080000' }); // SYS_PTRACE only
  fs.chmodSync(path.join(f.tracefs, 'instances'), 0o750);
  // The test runs as root, so open() succeeds; the directory decision is the mode's.
  const r = assessPrivileges({ ...f, euid: 65534 });
  assert.equal(r.problems.length, 1, JSON.stringify(r.problems));
  assert.equal(r.problems[0]!.code, ErrorCodes.NOT_PRIVILEGED);
  assert.match(r.problems[0]!.message, /^missing CAP_DAC_OVERRIDE: cannot create an instance in .*\/instances \(owner uid 0, mode 0750; soload runs as uid 65534\)/);
  assert.throws(() => assertPrivileged(r), (e) => isSoloadError(e, ErrorCodes.NOT_PRIVILEGED) && /missing CAP_DAC_OVERRIDE/.test(e.message));
});

test('without CAP_SYS_PTRACE soload runs, and says which attributes records lose', () => {
  const r = assessPrivileges({ ...fixture({ capEff: '0000000000000002' }), euid: 65534 });
  assert.deepEqual(r.problems, []);
  assert.equal(r.degraded.length, 1);
  assert.match(r.degraded[0]!, /^missing CAP_SYS_PTRACE: .*process\.executable\.path/);
});
