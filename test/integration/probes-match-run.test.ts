/**
 * Issue 8's bar: `soload probes` prints exactly what `soload run` writes to uprobe_events, for both
 * glibc mechanisms (debug symbols → loader probe; hidden → calibrated search lists). Both commands
 * go through the same selector; this test holds them to it on the live kernel.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLI, requireLiveKernel, startSoload, TRACEFS } from '../helpers/soload';

before(() => requireLiveKernel());

/** A probe line with its group replaced and the kernel's zero-padded offset made canonical. */
function normalise(line: string, group: string): string {
  return line.replace(`:${group}/`, ':GROUP/').replace(/:0x0*([0-9a-f]+)(\s|$)/, ':0x$1$2').replace(/\/run\/soload\/[^/]+\//g, '/run/soload/GROUP/');
}

async function compare(t: { diagnostic(m: string): void }, env: Record<string, string>, expectEvent: RegExp) {
  const printed = spawnSync(process.execPath, [CLI, 'probes'], { encoding: 'utf8', env: { ...process.env, ...env } });
  assert.equal(printed.status, 0, printed.stderr);
  const printedGroup = /^[pr]:(\S+?)\//m.exec(printed.stdout)![1]!;
  const want = printed.stdout.trim().split('\n').map((l) => normalise(l, printedGroup)).sort();
  const soload = await startSoload({ otel: { exporters: ['none'] }, capture: { snapshot: false } }, { env, readyTimeoutMs: 60_000 });
  try {
    const group = `soload_${soload.pid}`;
    const installed = fs
      .readFileSync(path.join(TRACEFS, 'uprobe_events'), 'utf8')
      .split('\n')
      .filter((l) => l.includes(`:${group}/`))
      .map((l) => normalise(l, group))
      .sort();
    t.diagnostic(`${want.length} probes printed, ${installed.length} installed`);
    assert.ok(want.some((l) => expectEvent.test(l)), `expected mechanism's probes in:\n${want.join('\n')}`);
    assert.deepEqual(installed, want);
  } finally {
    await soload.stop('SIGTERM');
  }
}

test('with debug symbols: soload probes == the uprobe_events lines run installs (loader lists: _dl_open walk with l_file_id)', async (t) => {
  await compare(t, {}, /^r:GROUP\/loader_open_self .* selfino=\+\d+\(\$retval\):u64 /);
});

test('with debug symbols and capture.perObjectProbe: soload probes == the uprobe_events lines run installs (loader probe + l_file_id)', async (t) => {
  await compare(t, { SOLOAD_CAPTURE_PER_OBJECT_PROBE: 'true' }, /^p:GROUP\/loader_add .* dev=\+\d+\(%di\):u64 ino=\+\d+\(%di\):u64$/);
});

test('without debug symbols: soload probes == the uprobe_events lines run installs (search lists)', async (t) => {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-nodebug-'));
  await compare(t, { SOLOAD_DEBUG_ROOT: empty }, /^p:GROUP\/libc_init_list11 /);
});
