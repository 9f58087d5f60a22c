import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { SpillStore } from '../../../src/otel/spill';
import type { EncodedBatch } from '../../../src/otel/otlp-sender';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'soload-spill-unit-'));
const batch = (n: number, t = 1000 + n): EncodedBatch => ({ body: Buffer.from(JSON.stringify([n])), records: 1, encoding: 'json', enqueuedAt: t });

type Patchable = Record<string, unknown>;

/**
 * Simulates a slow disk (each fsync takes `ms`: synchronously for fsyncSync — a busy wait, which is
 * what a blocked syscall does to the event loop — and asynchronously for FileHandle.sync) and records
 * every synchronous fs call made while `fn` runs.
 */
async function withSlowDisk<T>(ms: number, fn: (syncCalls: string[]) => Promise<T>): Promise<T> {
  const f = fs as unknown as Patchable;
  const saved = new Map<string, unknown>();
  const syncCalls: string[] = [];
  for (const name of ['openSync', 'writeSync', 'writeFileSync', 'fsyncSync', 'closeSync', 'renameSync', 'readFileSync', 'rmSync', 'unlinkSync', 'statSync']) {
    const orig = f[name] as (...a: unknown[]) => unknown;
    saved.set(name, orig);
    f[name] = (...a: unknown[]) => {
      syncCalls.push(name);
      if (name === 'fsyncSync') {
        const end = Date.now() + ms;
        while (Date.now() < end) {
          /* a disk that takes `ms` to flush */
        }
      }
      return orig.apply(fs, a);
    };
  }
  const p = fs.promises as unknown as Patchable;
  const realOpen = fs.promises.open;
  p.open = async (...a: Parameters<typeof fs.promises.open>) => {
    const fh = await realOpen(...a);
    const realSync = fh.sync.bind(fh);
    (fh as unknown as Patchable).sync = async () => {
      await sleep(ms);
      return realSync();
    };
    return fh;
  };
  try {
    return await fn(syncCalls);
  } finally {
    for (const [name, orig] of saved) f[name] = orig;
    p.open = realOpen;
  }
}

test('spilling does not block the event loop: no synchronous fs call on append/read/remove, even when fsync takes 150 ms', async () => {
  const dir = tmp();
  const store = new SpillStore(dir, 1 << 20, { maxConcurrentWrites: 2 });
  await withSlowDisk(150, async (syncCalls) => {
    // event-loop lag as the trace_pipe reader would see it
    let last = performance.now();
    let maxLag = 0;
    const tick = setInterval(() => {
      const now = performance.now();
      maxLag = Math.max(maxLag, now - last);
      last = now;
    }, 5);
    tick.unref(); // a failed assertion must not keep the test process alive
    let longestAppend = 0;
    for (let i = 0; i < 6; i++) {
      const t0 = performance.now();
      assert.equal(store.append(batch(i)), true);
      longestAppend = Math.max(longestAppend, performance.now() - t0);
      await sleep(1);
    }
    assert.ok(longestAppend < 20, `append() blocked the caller for ${longestAppend.toFixed(0)} ms (synchronous disk I/O)`);
    assert.equal(store.size.files, 6, 'indexed at once: bounds and order do not wait for the disk');
    assert.ok(store.size.pendingBytes > 0, 'bodies are held (and counted) until durable');
    const first = store.peek()!;
    const read = await store.read(first); // waits for its write
    assert.deepEqual(JSON.parse(Buffer.from(read.body).toString()), [0]);
    await store.remove(first);
    await store.flush();
    clearInterval(tick);
    assert.deepEqual(syncCalls, [], `synchronous fs calls on the spill path: ${syncCalls.join(', ')}`);
    assert.ok(maxLag < 60, `event loop stalled for ${maxLag.toFixed(0)} ms`);
  });
  assert.equal(store.size.pendingBytes, 0);
  assert.equal(fs.readdirSync(dir).length, 5);
  fs.rmSync(dir, { recursive: true });
});

test('concurrent background writes keep the delivery order, across a restart too; delete only after remove()', async () => {
  const dir = tmp();
  const store = new SpillStore(dir, 1 << 20, { maxConcurrentWrites: 4 });
  for (let i = 0; i < 20; i++) store.append(batch(i, 5000)); // same ms: the sequence number orders them
  const order: number[] = [];
  for (let e = store.peek(); e; e = store.peek()) {
    const b = await store.read(e);
    order.push((JSON.parse(Buffer.from(b.body).toString()) as number[])[0]!);
    if (order.length === 10) break;
    const err = await store.remove(e);
    assert.equal(err, undefined);
  }
  assert.deepEqual(order, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  await store.flush();
  assert.equal(fs.readdirSync(dir).filter((f) => f.endsWith('.tmp')).length, 0);
  // restart: what was not removed (the 10th onwards) comes back in the same order
  const again = new SpillStore(dir, 1 << 20);
  assert.equal(again.size.records, 11);
  const replay: number[] = [];
  for (let e = again.peek(); e; e = again.peek()) {
    replay.push((JSON.parse(Buffer.from((await again.read(e)).body).toString()) as number[])[0]!);
    await again.remove(e);
  }
  assert.deepEqual(replay, [9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19]);
  assert.deepEqual(fs.readdirSync(dir), []);
  fs.rmSync(dir, { recursive: true });
});

test('a failed background write takes the entry out of the queue and is reported; the disk bound is checked at append', async () => {
  const dir = tmp();
  const store = new SpillStore(dir, 2 * batch(0).body.length);
  const failed: string[] = [];
  store.onWriteError = (e, err) => failed.push(`${path.basename(e.file)}: ${err.message}`);
  assert.equal(store.append(batch(0)), true);
  assert.equal(store.append(batch(1)), true);
  assert.equal(store.append(batch(2)), false, 'over maxBytes: refused at once');
  await store.flush();
  fs.rmSync(dir, { recursive: true, force: true }); // the directory vanishes: every write fails (also as root)
  await store.remove(store.peek()!);
  await store.remove(store.peek()!);
  assert.equal(store.append(batch(3)), true);
  const e3 = store.peek()!;
  await store.flush();
  assert.equal(failed.length, 1, failed.join('\n'));
  assert.match(failed[0]!, /ENOENT/);
  assert.equal(store.has(e3), false);
  assert.equal(store.size.records, 0);
  assert.equal(store.size.pendingBytes, 0);
  await assert.rejects(store.read(e3), /ENOENT/);
});
