/**
 * Coexistence: another tracer's tracefs state — its uprobe group (entry and return probes, one
 * with a filter), its own instance recording them, one of them enabled in the top-level buffer, a
 * kprobe and an eprobe where the kernel has them — and bpftrace's perf-event uprobe on the same
 * function soload probes, all running across a soload start, steady state and stop.
 *
 * Asserted: the foreign state (probe definitions, the top-level buffer's and every foreign
 * instance's settings, options and enabled events) is byte-for-byte unchanged; the foreign
 * instance recorded every call before, during and after soload; bpftrace counted every call;
 * soload reported every call while it ran.
 */
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { spawn, spawnSync } from 'node:child_process';
import { FIXTURES_C, gcc, requireLiveKernel, startSoload, tmpDir, TRACEFS } from '../helpers/soload';
import { diffStates, foreignTracingState, ownTracingTraces } from '../helpers/tracefs-snapshot';

const GROUP = 'coexisttool';
const INSTANCE = 'coexist_tool';
const LIBC = '/lib/x86_64-linux-gnu/libc.so.6';
const PER_PHASE = 15;
const ev = (f: string) => path.join(TRACEFS, f);
const undo: Array<() => void> = [];

function symOffset(name: string): string {
  const out = spawnSync('readelf', ['-Ws', '--dyn-syms', LIBC], { encoding: 'utf8' }).stdout;
  const m = new RegExp(`:\\s+([0-9a-f]+)\\s+\\d+\\s+FUNC\\s+\\w+\\s+\\w+\\s+\\d+\\s+${name}@@`).exec(out);
  assert.ok(m, `readelf found no ${name} in ${LIBC}`);
  return `0x${m[1]}`;
}

const foreignKinds: { kprobe: string; eprobe: string } = { kprobe: '', eprobe: '' };

/** Creates a foreign dynamic event if the kernel takes it; returns "yes" or why not. */
function tryCreate(file: string, line: string, removal: string): string {
  if (!fs.existsSync(ev(file))) return `NOT IN THIS KERNEL (no ${file})`;
  try {
    fs.appendFileSync(ev(file), `${line}\n`);
  } catch (err) {
    return `NOT IN THIS KERNEL (${file} refused "${line}": ${(err as NodeJS.ErrnoException).code})`;
  }
  undo.push(() => fs.appendFileSync(ev(file), `${removal}\n`));
  return 'yes';
}

let prog = '';
let lib = '';

/**
 * What an earlier run of this test left when it was killed mid-way (its after() never ran): the
 * names are this test's own, so removing them touches no other tracer.
 */
function removeOwnLeftovers(): void {
  const inst = path.join(TRACEFS, 'instances', INSTANCE);
  const quiet = (f: () => void) => {
    try {
      f();
    } catch {
      /* absent already */
    }
  };
  if (fs.existsSync(inst)) {
    quiet(() => fs.writeFileSync(path.join(inst, 'events', GROUP, 'enable'), '0'));
    quiet(() => fs.rmdirSync(inst));
  }
  quiet(() => fs.writeFileSync(ev(`events/${GROUP}/enable`), '0'));
  for (const [file, re] of [['uprobe_events', /^[pr]:([^/\s]+)\/(\S+)/], ['kprobe_events', /^[pr]:([^/\s]+)\/(\S+)/], ['dynamic_events', /^[a-z]:([^/\s]+)\/(\S+)/]] as const) {
    if (!fs.existsSync(ev(file))) continue;
    for (const line of fs.readFileSync(ev(file), 'utf8').split('\n')) {
      const m = re.exec(line);
      if (m && m[1] === GROUP) quiet(() => fs.appendFileSync(ev(file), `-:${GROUP}/${m[2]}\n`));
    }
  }
}

before(() => {
  requireLiveKernel();
  removeOwnLeftovers();
  assert.deepEqual(ownTracingTraces(), [], 'soload state present before the test');
  const dir = tmpDir('soload-coexist-');
  lib = path.join(dir, 'libplug.so');
  // A comm of its own, so bpftrace counts this program's calls only.
  prog = path.join(dir, 'coexistdl');
  gcc(['-shared', '-fPIC', '-o', lib, path.join(FIXTURES_C, 'plug.c')]);
  gcc(['-o', prog, path.join(FIXTURES_C, 'dlopener.c'), '-ldl']);

  const off = symOffset('dlopen');
  fs.appendFileSync(ev('uprobe_events'), `p:${GROUP}/dlopen ${LIBC}:${off} name=+0(%di):ustring\n`);
  fs.appendFileSync(ev('uprobe_events'), `r:${GROUP}/dlopen_ret ${LIBC}:${off} rc=$retval:x64\n`);
  undo.push(() => fs.appendFileSync(ev('uprobe_events'), `-:${GROUP}/dlopen\n-:${GROUP}/dlopen_ret\n`));
  const inst = path.join(TRACEFS, 'instances', INSTANCE);
  fs.mkdirSync(inst);
  undo.push(() => fs.rmdirSync(inst));
  fs.writeFileSync(path.join(inst, 'buffer_size_kb'), '256');
  fs.writeFileSync(path.join(inst, 'events', GROUP, 'dlopen_ret', 'filter'), 'rc != 0');
  fs.writeFileSync(path.join(inst, 'events', GROUP, 'enable'), '1');
  undo.push(() => fs.writeFileSync(path.join(inst, 'events', GROUP, 'enable'), '0'));
  // The top-level buffer too: a tool that uses it must keep its enabled event.
  fs.writeFileSync(ev(`events/${GROUP}/dlopen_ret/enable`), '1');
  undo.push(() => fs.writeFileSync(ev(`events/${GROUP}/dlopen_ret/enable`), '0'));
  // kprobes and eprobes where the kernel has them: found by trying (README lists eprobes on
  // kernels built without them).
  foreignKinds.kprobe = tryCreate('kprobe_events', `p:${GROUP}/kp do_sys_openat2`, `-:${GROUP}/kp`);
  foreignKinds.eprobe = tryCreate('dynamic_events', `e:${GROUP}/ep syscalls.sys_enter_openat`, `-:${GROUP}/ep`);
});

after(() => {
  for (const u of undo.reverse()) {
    try {
      u();
    } catch {
      /* the assertions report what went wrong */
    }
  }
});

async function runWorkload(n: number): Promise<number[]> {
  const pids: number[] = [];
  for (let i = 0; i < n; i++) {
    await new Promise<void>((resolve) => {
      const c = spawn(prog, [lib], { env: { ...process.env, SOLOAD_TEST_LINGER_MS: '0' }, stdio: ['ignore', 'pipe', 'ignore'] });
      let out = '';
      c.stdout!.on('data', (d: Buffer) => (out += d.toString()));
      c.on('close', () => {
        const pid = Number(out.split(' ')[0]);
        if (pid > 0) pids.push(pid);
        resolve();
      });
    });
  }
  return pids;
}

test('another tracer’s probes, instance, top-level settings and a running bpftrace are untouched by a soload run', async (t) => {
  // Loud, not skipped: which foreign kinds this kernel lets the test create.
  const kinds = `foreign state: uprobes yes, kprobe ${foreignKinds.kprobe}, eprobe ${foreignKinds.eprobe}`;
  t.diagnostic(kinds);
  if (foreignKinds.kprobe !== 'yes' || foreignKinds.eprobe !== 'yes') console.error(`coexistence: ${kinds}`);
  const bpftraceBin = spawnSync('which', ['bpftrace'], { encoding: 'utf8' }).stdout.trim();
  assert.ok(bpftraceBin, 'bpftrace is not installed (test/run.js installs it from the distribution)');

  const before = foreignTracingState();
  assert.ok(before['uprobe_events']!.includes(`p:${GROUP}/dlopen `), 'the foreign probe is part of the compared state');

  // bpftrace's uprobe is a perf event on the same instruction soload probes.
  const bt = spawn(bpftraceBin, ['-e', `uprobe:${LIBC}:dlopen /comm == "coexistdl"/ { printf("hit %d\\n", pid); }`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let btOut = '';
  let btErr = '';
  bt.stdout!.on('data', (d: Buffer) => (btOut += d.toString()));
  bt.stderr!.on('data', (d: Buffer) => (btErr += d.toString()));
  const btExit = new Promise<void>((r) => bt.on('close', () => r()));
  try {
    const until = Date.now() + 30_000;
    while (!/Attaching 1 probe/.test(btOut + btErr)) {
      assert.ok(bt.exitCode === null, `bpftrace exited: ${btErr}`);
      assert.ok(Date.now() < until, `bpftrace did not attach: ${btOut}${btErr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    await new Promise((r) => setTimeout(r, 500));

    const beforePids = await runWorkload(PER_PHASE);
    const soload = await startSoload({ otel: { exporters: ['console'] } });
    const duringPids = await runWorkload(PER_PHASE);
    const got = await soload.waitFor((r) => r.attributes['soload.load.method'] === 'dlopen' && duringPids.includes(Number(r.attributes['process.pid'])), 15_000, PER_PHASE);
    assert.equal(await soload.stop('SIGTERM'), 143, soload.stderr());
    const afterPids = await runWorkload(PER_PHASE);
    assert.equal(got.length, PER_PHASE, `soload reported ${got.length} of ${PER_PHASE} dlopens while it ran`);

    await new Promise((r) => setTimeout(r, 500));
    bt.kill('SIGINT');
    await btExit;
    const btPids = [...btOut.matchAll(/^hit (\d+)$/gm)].map((m) => Number(m[1]));
    for (const [phase, pids] of [['before', beforePids], ['during', duringPids], ['after', afterPids]] as const) {
      assert.equal(pids.length, PER_PHASE);
      const missed = pids.filter((p) => !btPids.includes(p));
      assert.deepEqual(missed, [], `bpftrace missed ${missed.length} dlopens ${phase} soload`);
    }

    // The foreign instance kept recording through soload's start and stop: every call, in order.
    const trace = fs.readFileSync(path.join(TRACEFS, 'instances', INSTANCE, 'trace'), 'latin1');
    const recorded = new Set([...trace.matchAll(/-(\d+)\s+\[\d+\].*?\b\d+\.\d+: dlopen: \(/g)].map((m) => Number(m[1])));
    for (const p of [...beforePids, ...duringPids, ...afterPids]) assert.ok(recorded.has(p), `the foreign instance lost the dlopen of pid ${p}`);

    assert.deepEqual(diffStates(before, foreignTracingState()), [], 'foreign tracing state changed');
    assert.deepEqual(ownTracingTraces(), []);
  } finally {
    if (bt.exitCode === null) bt.kill('SIGKILL');
  }
});
