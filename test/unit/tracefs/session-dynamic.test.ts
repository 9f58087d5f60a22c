import { test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TracefsSession } from '../../../src/tracefs/session';
import type { ProbeSpec } from '../../../src/types';

const GROUP = 'soload_4321';
const INSTANCE = 'soload_4321';

/**
 * The part of a tracefs mount a session touches: uprobe_events, error_log and instances/. The
 * kernel creates `instances/<name>/events/<group>/<event>/` when a probe is defined; a plain
 * directory does not, so the test makes those directories after start() created the instance.
 */
function fakeTracefs(): string {
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-tracefs-'));
  fs.writeFileSync(path.join(root, 'uprobe_events'), 'p:uprobes/other_tool /bin/bash:0x4d2\n');
  fs.writeFileSync(path.join(root, 'error_log'), '');
  fs.mkdirSync(path.join(root, 'instances'));
  return root;
}

function eventDirs(root: string, events: string[]): void {
  for (const e of events) fs.mkdirSync(path.join(root, 'instances', INSTANCE, 'events', GROUP, e), { recursive: true });
}

const probe = (event: string, file = '/usr/lib/x86_64-linux-gnu/libc.so.6', extra: Partial<ProbeSpec> = {}): ProbeSpec => ({
  event,
  kind: 'entry',
  path: file,
  offset: 0x85500,
  fetch: [{ name: 'name', arg: '+0(%di):ustring' }],
  role: 'dlopen.entry',
  ...extra,
});

const lines = (root: string) => fs.readFileSync(path.join(root, 'uprobe_events'), 'utf8').split('\n').filter(Boolean);
const enable = (root: string, e: string) => fs.readFileSync(path.join(root, 'instances', INSTANCE, 'events', GROUP, e, 'enable'), 'utf8');
const filter = (root: string, e: string) => fs.readFileSync(path.join(root, 'instances', INSTANCE, 'events', GROUP, e, 'filter'), 'utf8');

/** Records every tracefs write of the session, in order, and still performs it. */
function journal(t: TestContext, root: string): string[] {
  const out: string[] = [];
  const rel = (p: unknown) => path.relative(root, String(p));
  const write = fs.writeFileSync;
  const append = fs.appendFileSync;
  let appending = false; // Node's appendFileSync is writeFileSync with flag 'a': one call, not two
  t.mock.method(fs, 'writeFileSync', (...args: Parameters<typeof fs.writeFileSync>) => {
    if (!appending) out.push(`write ${rel(args[0])} ${String(args[1])}`);
    return write(...args);
  });
  t.mock.method(fs, 'appendFileSync', (...args: Parameters<typeof fs.appendFileSync>) => {
    out.push(`append ${rel(args[0])} ${String(args[1]).trimEnd()}`);
    appending = true;
    try {
      return append(...args);
    } finally {
      appending = false;
    }
  });
  return out;
}

test('addProbes after start: definitions appended, filters and enables written, probes lists them', () => {
  const root = fakeTracefs();
  const s = new TracefsSession({ root, group: GROUP, instance: INSTANCE });
  assert.deepEqual(s.start([]).rejected, []);
  eventDirs(root, ['a_entry', 'b_list', 'c_return']);
  assert.deepEqual(s.addProbes([probe('a_entry'), probe('b_list', '/lib/ld-musl-x86_64.so.1', { filter: 'state == 0', fetch: [{ name: 'state', arg: '+24(@+0xac3d8):s32' }] })]), []);
  assert.deepEqual(s.probes.map((p) => p.event), ['a_entry', 'b_list']);
  assert.deepEqual(s.addProbes([probe('c_return', '/usr/lib/x86_64-linux-gnu/libc.so.6', { kind: 'return', role: 'dlopen.return', fetch: [{ name: 'handle', arg: '$retval:x64' }] })]), []);
  assert.deepEqual(s.probes.map((p) => p.event), ['a_entry', 'b_list', 'c_return']);
  assert.deepEqual(lines(root), [
    'p:uprobes/other_tool /bin/bash:0x4d2',
    `p:${GROUP}/a_entry /usr/lib/x86_64-linux-gnu/libc.so.6:0x85500 name=+0(%di):ustring`,
    `p:${GROUP}/b_list /lib/ld-musl-x86_64.so.1:0x85500 state=+24(@+0xac3d8):s32`,
    `r:${GROUP}/c_return /usr/lib/x86_64-linux-gnu/libc.so.6:0x85500 handle=$retval:x64`,
  ]);
  assert.equal(enable(root, 'a_entry'), '1');
  assert.equal(enable(root, 'b_list'), '1');
  assert.equal(enable(root, 'c_return'), '1');
  assert.equal(filter(root, 'b_list'), 'state == 0');
  assert.equal(fs.existsSync(path.join(root, 'instances', INSTANCE, 'events', GROUP, 'a_entry', 'filter')), false, 'no filter, none written');
});

test('removeProbes: per event disable, clear filter, delete definition — in that order, only those events', (t) => {
  const root = fakeTracefs();
  const s = new TracefsSession({ root, group: GROUP, instance: INSTANCE });
  s.start([]);
  eventDirs(root, ['keep_1', 'gone_f', 'gone_2', 'keep_2']);
  s.addProbes([probe('keep_1'), probe('gone_f', '/lib/ld-musl-x86_64.so.1', { filter: 'state == 0' })]);
  s.addProbes([probe('gone_2'), probe('keep_2')]);
  const before = lines(root);
  const j = journal(t, root);
  assert.deepEqual(s.removeProbes(['gone_f', 'gone_2', 'never_added']), []);
  const ev = (e: string) => `instances/${INSTANCE}/events/${GROUP}/${e}`;
  assert.deepEqual(j, [
    `write ${ev('gone_2')}/enable 0`,
    `append uprobe_events -:${GROUP}/gone_2`,
    `write ${ev('gone_f')}/enable 0`,
    `write ${ev('gone_f')}/filter 0`,
    `append uprobe_events -:${GROUP}/gone_f`,
  ]);
  assert.deepEqual(lines(root), [...before, `-:${GROUP}/gone_2`, `-:${GROUP}/gone_f`]);
  assert.equal(enable(root, 'keep_1'), '1');
  assert.equal(enable(root, 'keep_2'), '1');
  assert.deepEqual(s.probes.map((p) => p.event), ['keep_1', 'keep_2']);
  assert.deepEqual(s.removeProbes(['gone_f']), [], 'a second removal has nothing left to undo');
  assert.deepEqual(j.length, 5, 'and writes nothing');
});

test('shutdown after removeProbes removes the rest once and never the removed ones again', (t) => {
  const root = fakeTracefs();
  const s = new TracefsSession({ root, group: GROUP, instance: INSTANCE });
  s.start([]);
  eventDirs(root, ['one', 'two', 'three']);
  s.addProbes([probe('one'), probe('two', '/lib/x.so', { filter: 'n > 8' }), probe('three')]);
  s.removeProbes(['two']);
  const j = journal(t, root);
  const failures = s.shutdown();
  // A plain directory keeps the event directories the kernel would drop with the probes.
  assert.equal(failures.length, 1);
  assert.match(failures[0]!, /^remove instance soload_4321: /);
  const removals = lines(root).filter((l) => l.startsWith('-:'));
  assert.deepEqual(removals, [`-:${GROUP}/two`, `-:${GROUP}/three`, `-:${GROUP}/one`]);
  assert.equal(j.filter((w) => w.includes('/two/')).length, 0, 'nothing of the removed probe is touched again');
  assert.deepEqual(j, [
    `write instances/${INSTANCE}/events/${GROUP}/three/enable 0`,
    `append uprobe_events -:${GROUP}/three`,
    `write instances/${INSTANCE}/events/${GROUP}/one/enable 0`,
    `append uprobe_events -:${GROUP}/one`,
  ]);
  assert.deepEqual(s.probes, []);
  assert.equal(lines(root)[0], 'p:uprobes/other_tool /bin/bash:0x4d2', 'another tracer\'s probe is untouched');
});

test('aliases for whitespace paths: numbering continues across addProbes calls, no alias name reused', () => {
  const root = fakeTracefs();
  const aliasDir = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'soload-alias-')), 'aliases');
  const s = new TracefsSession({ root, group: GROUP, instance: INSTANCE, aliasDir });
  s.start([]);
  eventDirs(root, ['w1', 'w1b', 'w2', 'w3', 'plain']);
  const A = '/opt/My App/lib/libfoo.so';
  const B = '/opt/Other App/libbar.so';
  const C = '/srv/x y/libfoo.so';
  assert.deepEqual(s.addProbes([probe('w1', A), probe('w1b', A), probe('plain')]), []);
  assert.deepEqual(s.addProbes([probe('w2', B)]), []);
  assert.deepEqual(s.addProbes([probe('w3', C)]), []);
  assert.deepEqual(fs.readdirSync(aliasDir).sort(), ['0-libfoo.so', '1-libbar.so', '2-libfoo.so']);
  assert.equal(fs.readlinkSync(path.join(aliasDir, '0-libfoo.so')), A);
  assert.equal(fs.readlinkSync(path.join(aliasDir, '1-libbar.so')), B);
  assert.equal(fs.readlinkSync(path.join(aliasDir, '2-libfoo.so')), C, 'same basename as alias 0, another file: a new name');
  const defs = lines(root).slice(1);
  assert.deepEqual(defs, [
    `p:${GROUP}/w1 ${aliasDir}/0-libfoo.so:0x85500 name=+0(%di):ustring`,
    `p:${GROUP}/w1b ${aliasDir}/0-libfoo.so:0x85500 name=+0(%di):ustring`,
    `p:${GROUP}/plain /usr/lib/x86_64-linux-gnu/libc.so.6:0x85500 name=+0(%di):ustring`,
    `p:${GROUP}/w2 ${aliasDir}/1-libbar.so:0x85500 name=+0(%di):ustring`,
    `p:${GROUP}/w3 ${aliasDir}/2-libfoo.so:0x85500 name=+0(%di):ustring`,
  ]);
  assert.deepEqual(s.probes.map((p) => p.path), [A, A, '/usr/lib/x86_64-linux-gnu/libc.so.6', B, C], 'probes keep their real paths');
  s.removeProbes(['w2']);
  s.shutdown();
  assert.equal(fs.existsSync(aliasDir), false, 'the alias directory goes at shutdown');
});

test('addProbes: a probe the kernel refuses is returned with its reason, the others go in', () => {
  const root = fakeTracefs();
  const s = new TracefsSession({ root, group: GROUP, instance: INSTANCE });
  s.start([]);
  eventDirs(root, ['ok_1']);
  const rejected = s.addProbes([probe('ok_1'), probe('spaced', '/opt/a b/lib.so')]); // no aliasDir: refused
  assert.deepEqual(rejected.map((r) => [r.probe.event, r.error.code]), [['spaced', 'SOLOAD_ERR_PATH_NOT_PROBEABLE']]);
  assert.deepEqual(s.probes.map((p) => p.event), ['ok_1']);
});
