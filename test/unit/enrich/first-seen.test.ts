import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { FIRST_SEEN_FILE, FirstSeenStore, firstSeenDigest } from '../../../src/enrich/first-seen';

const root = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-first-seen-'));
after(() => fs.rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshDir = () => path.join(root, `state${n++}`);

function opened(dir: string, opts: { maxEntries?: number; now?: () => number } = {}): FirstSeenStore {
  const s = new FirstSeenStore({ dir, ...opts });
  s.open();
  return s;
}

test('first call true, second false; survives close and open', () => {
  const dir = freshDir();
  const a = opened(dir, { now: () => 1_700_000_000_000 });
  assert.equal(a.firstSeen('/usr/lib/libc.so.6\0b:abc'), true);
  assert.equal(a.firstSeen('/usr/lib/libc.so.6\0b:abc'), false);
  assert.equal(a.firstSeen('/usr/lib/libc.so.6\0b:def'), true, 'another build-id is another key');
  assert.equal(a.size, 2);
  a.close();
  assert.throws(() => a.firstSeen('x'), /closed/);

  const b = new FirstSeenStore({ dir });
  assert.deepEqual(b.open(), { entries: 2, since: 1_700_000_000_000 });
  assert.equal(b.firstSeen('/usr/lib/libc.so.6\0b:abc'), false);
  assert.equal(b.firstSeen('/usr/lib/libc.so.6\0b:def'), false);
  assert.equal(b.firstSeen('/opt/new.so\0h:00'), true);
  b.close();
});

test('the state file: versioned header, compact keys in recency order, end line, mode 0600', () => {
  const dir = freshDir();
  const s = opened(dir, { now: () => 42 });
  s.firstSeen('a');
  s.firstSeen('b');
  s.firstSeen('a'); // a is now the most recently seen
  s.flush();
  const file = path.join(dir, FIRST_SEEN_FILE);
  assert.equal(fs.readFileSync(file, 'utf8'), `soload-first-seen v1 42\n${firstSeenDigest('b')}\n${firstSeenDigest('a')}\nend 2\n`);
  assert.equal(fs.statSync(file).mode & 0o777, 0o600);
  assert.equal(firstSeenDigest('/a'.repeat(100_000)).length, 22, 'a hostile path costs 22 bytes');
  s.close();
});

test('bounded: the least recently seen key is evicted, and the order survives a restart', () => {
  const dir = freshDir();
  const s = opened(dir, { maxEntries: 3 });
  for (const k of ['k1', 'k2', 'k3']) assert.equal(s.firstSeen(k), true);
  assert.equal(s.firstSeen('k1'), false); // k2 is now the least recently seen
  assert.equal(s.firstSeen('k4'), true);
  assert.equal(s.size, 3);
  s.close();
  const t = opened(dir, { maxEntries: 3 });
  assert.equal(t.firstSeen('k1'), false);
  assert.equal(t.firstSeen('k3'), false);
  assert.equal(t.firstSeen('k4'), false);
  assert.equal(t.firstSeen('k2'), true, 'evicted: reported first seen again');
  assert.equal(t.size, 3);
  t.close();
  const u = opened(dir, { maxEntries: 2 }); // a lowered bound keeps the most recent keys
  assert.equal(u.size, 2);
  assert.equal(u.firstSeen('k2'), false);
  assert.equal(u.firstSeen('k4'), false);
  u.close();
});

test('a corrupt state file is renamed aside and the state starts empty', () => {
  const cases: Record<string, string> = {
    garbage: 'not a state file\n',
    truncated: `soload-first-seen v1 1\n${firstSeenDigest('a')}\n${firstSeenDigest('b')}\n`,
    'wrong count': `soload-first-seen v1 1\n${firstSeenDigest('a')}\nend 2\n`,
    'bad line': `soload-first-seen v1 1\n${firstSeenDigest('a')}/\nend 1\n`,
    'half a line': `soload-first-seen v1 1\n${firstSeenDigest('a').slice(0, 9)}`,
    empty: '',
  };
  for (const [name, text] of Object.entries(cases)) {
    const dir = freshDir();
    fs.mkdirSync(dir, { mode: 0o700 });
    const file = path.join(dir, FIRST_SEEN_FILE);
    fs.writeFileSync(file, text);
    const s = new FirstSeenStore({ dir, now: () => 1234 });
    const info = s.open();
    assert.equal(info.entries, 0, name);
    assert.equal(info.corruptPath, `${file}.corrupt-1234`, name);
    assert.match(info.recovered!, /corrupt state file .* moved to .*corrupt-1234/, name);
    assert.equal(fs.readFileSync(info.corruptPath!, 'utf8'), text, `${name}: kept for a post-mortem`);
    assert.equal(s.firstSeen('a'), true, name);
    s.close();
    assert.equal(opened(dir).size, 1, `${name}: a valid state replaces it`);
  }
});

test('the state directory: created 0700; refused when group/world-writable or not a directory', () => {
  const dir = path.join(freshDir(), 'nested', 'state');
  const s = opened(dir);
  assert.equal(fs.statSync(dir).mode & 0o777, 0o700);
  s.close();

  const open = freshDir();
  fs.mkdirSync(open);
  fs.chmodSync(open, 0o777);
  assert.throws(() => new FirstSeenStore({ dir: open }).open(), /group- or world-writable \(mode 777\)/);
  fs.chmodSync(open, 0o770);
  assert.throws(() => new FirstSeenStore({ dir: open }).open(), /group- or world-writable/);
  fs.chmodSync(open, 0o1777);
  assert.throws(() => new FirstSeenStore({ dir: open }).open(), /world-writable/, 'sticky does not make it ours');
  fs.chmodSync(open, 0o755);
  new FirstSeenStore({ dir: open }).open(); // a readable one is fine

  const notDir = path.join(root, 'a-file');
  fs.writeFileSync(notDir, '');
  assert.throws(() => new FirstSeenStore({ dir: notDir }).open(), /not a directory/);
});

test('a state directory owned by another uid is refused', { skip: process.getuid?.() === 0 ? false : 'needs root to chown' }, () => {
  const dir = freshDir();
  fs.mkdirSync(dir, { mode: 0o700 });
  fs.chownSync(dir, 65534, 65534);
  assert.throws(() => new FirstSeenStore({ dir }).open(), /owned by uid 65534/);
});

test('atomic write: a temporary file left by a crash mid-write is ignored (and removed) on open', () => {
  const dir = freshDir();
  const s = opened(dir);
  s.firstSeen('kept');
  s.close();
  const file = path.join(dir, FIRST_SEEN_FILE);
  const before = fs.readFileSync(file, 'utf8');
  // The crash: the next write's temporary file, half written, never renamed.
  fs.writeFileSync(`${file}.tmp`, `soload-first-seen v1 1\n${firstSeenDigest('lost')}\n${firstSeenDigest('lo')}`);
  const t = new FirstSeenStore({ dir });
  assert.deepEqual(t.open().recovered, undefined);
  assert.equal(fs.existsSync(`${file}.tmp`), false);
  assert.equal(fs.readFileSync(file, 'utf8'), before);
  assert.equal(t.firstSeen('kept'), false);
  assert.equal(t.firstSeen('lost'), true);
  t.close();
  assert.deepEqual(fs.readdirSync(dir).sort(), [FIRST_SEEN_FILE], 'nothing but the state file after a write');

  const fresh = freshDir(); // crashed before the first rename: only the temporary file exists
  fs.mkdirSync(fresh, { mode: 0o700 });
  fs.writeFileSync(path.join(fresh, `${FIRST_SEEN_FILE}.tmp`), 'soload-first-seen v1 1\nhalf');
  assert.deepEqual(new FirstSeenStore({ dir: fresh }).open().entries, 0);
});

test('writes are coalesced on a timer that does not keep the process alive; nothing changed, nothing written', async () => {
  const dir = freshDir();
  const s = new FirstSeenStore({ dir, flushMs: 30 });
  s.open();
  const file = path.join(dir, FIRST_SEEN_FILE);
  s.firstSeen('x');
  s.firstSeen('y');
  await new Promise((r) => setTimeout(r, 100));
  assert.match(fs.readFileSync(file, 'utf8'), /\nend 2\n$/);
  const mtime = fs.statSync(file).mtimeMs;
  s.firstSeen('x'); // a reorder alone waits for the next write or close
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(fs.statSync(file).mtimeMs, mtime);
  s.close();
  assert.ok(fs.readFileSync(file, 'utf8').endsWith(`${firstSeenDigest('y')}\n${firstSeenDigest('x')}\nend 2\n`));
});

test('100,000 keys: the state file stays at ~23 bytes a key, whatever the paths', (t) => {
  const dir = freshDir();
  const s = opened(dir);
  const long = '/x'.repeat(2000);
  const t0 = performance.now();
  for (let i = 0; i < 100_000; i++) assert.equal(s.firstSeen(`${long}/lib${i}.so\0b:${i.toString(16)}`), true);
  for (let i = 0; i < 1000; i++) s.firstSeen(`extra${i}`); // beyond the default bound of 100,000
  const addMs = performance.now() - t0;
  assert.equal(s.size, 100_000);
  const t1 = performance.now();
  s.close();
  const flushMs = performance.now() - t1;
  const bytes = fs.statSync(path.join(dir, FIRST_SEEN_FILE)).size;
  assert.ok(bytes <= 100_000 * 23 + 64, `${bytes} bytes`);
  const t2 = performance.now();
  const again = new FirstSeenStore({ dir });
  assert.equal(again.open().entries, 100_000);
  const openMs = performance.now() - t2;
  assert.equal(again.firstSeen('extra999'), false);
  assert.equal(again.firstSeen(`${long}/lib0.so\0b:0`), true, 'the oldest were evicted');
  again.close();
  t.diagnostic(`100k keys: ${bytes} bytes (${(bytes / 100_000).toFixed(1)} B/key); 101k firstSeen ${addMs.toFixed(0)} ms, flush ${flushMs.toFixed(0)} ms, open ${openMs.toFixed(0)} ms`);
});

test('a state directory held by a live soload is refused, naming its pid; a dead holder’s lock is taken over; close releases it', () => {
  const dir = freshDir();
  const a = new FirstSeenStore({ dir, pid: 1001, isAlive: (pid) => pid === 1001 });
  a.open();
  assert.equal(fs.readFileSync(path.join(dir, 'first-seen.v1.lock'), 'utf8'), '1001\n');
  const b = new FirstSeenStore({ dir, pid: 1002, isAlive: (pid) => pid === 1001 });
  assert.throws(() => b.open(), (err: Error & { code?: string }) => err.code === 'SOLOAD_ERR_STATE_DIR' && /in use by soload pid 1001/.test(err.message));
  a.close();
  assert.ok(!fs.existsSync(path.join(dir, 'first-seen.v1.lock')), 'close removes the lock');

  // A SIGKILLed holder leaves its lock: the next start (holder not alive) takes it over.
  fs.writeFileSync(path.join(dir, 'first-seen.v1.lock'), '999999\n');
  const c = new FirstSeenStore({ dir, pid: 1003, isAlive: () => false });
  c.open();
  assert.equal(fs.readFileSync(path.join(dir, 'first-seen.v1.lock'), 'utf8'), '1003\n');
  c.close();
  // Garbage in the lock file is no holder.
  fs.writeFileSync(path.join(dir, 'first-seen.v1.lock'), 'not a pid');
  const d = new FirstSeenStore({ dir, pid: 1004, isAlive: () => true });
  d.open();
  d.close();
});
