import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ExportResultCode } from '@opentelemetry/core';
import { LoggerProvider, SimpleLogRecordProcessor, type LogRecordExporter, type ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { OTLPExporterError } from '@opentelemetry/otlp-exporter-base';
import { encodeLogs, isRetryable, type EncodedBatch, type SendOutcome } from '../../../src/otel/otlp-sender';
import { RetryingLogExporter, type ExportObservation } from '../../../src/otel/retrying-exporter';
import { SpillStore } from '../../../src/otel/spill';

// Records are fake objects whose body is a number; the test encoder writes the bodies as JSON so
// the fake collector can tell exactly which records each request carried.
const fake = (from: number, n: number) => Array.from({ length: n }, (_, i) => ({ body: from + i }) as unknown as ReadableLogRecord);
const encode = (logs: ReadableLogRecord[]) => Buffer.from(JSON.stringify(logs.map((l) => l.body)));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** A collector that can be down, slow, or reject; records what it acknowledged. */
class FakeCollector {
  up = false;
  status: 'ok' | 'reject' = 'ok';
  delayMs = 0;
  acked: number[] = [];
  attempts = 0;
  inFlight = 0;
  maxInFlight = 0;
  send = async (b: EncodedBatch): Promise<SendOutcome> => {
    this.attempts++;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    await sleep(this.delayMs);
    this.inFlight--;
    if (!this.up) return { ok: false, retryable: true, error: new Error('connect ECONNREFUSED 127.0.0.1:4318') };
    if (this.status === 'reject') return { ok: false, retryable: false, error: new Error('Bad Request') };
    this.acked.push(...(JSON.parse(Buffer.from(b.body).toString()) as number[]));
    return { ok: true };
  };
}

function tmp(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'soload-spill-test-'));
}

async function until(pred: () => boolean, ms = 3000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error('condition not reached');
    await sleep(5);
  }
}

test('keeps batches through an outage and delivers them oldest first, exactly once, one request at a time', async () => {
  const c = new FakeCollector();
  const warnings: string[] = [];
  const obs: ExportObservation[] = [];
  const ex = new RetryingLogExporter({ send: c.send, encode, maxBufferedRecords: 100, initialBackoffMs: 5, maxBackoffMs: 20, warn: (m) => warnings.push(m), observe: (o) => obs.push(o) });
  const results: number[] = [];
  ex.export(fake(0, 3), (r) => results.push(r.code));
  ex.export(fake(3, 2), (r) => results.push(r.code));
  assert.deepEqual(results, [ExportResultCode.SUCCESS, ExportResultCode.SUCCESS], 'accepted at once: the batch processor keeps flowing');
  await sleep(60);
  assert.equal(ex.stats.buffered, 5);
  assert.ok(c.attempts >= 2, 'retried');
  c.up = true;
  await until(() => ex.stats.exported === 5);
  assert.deepEqual(c.acked, [0, 1, 2, 3, 4]);
  assert.equal(c.maxInFlight, 1);
  assert.equal(ex.stats.dropped, 0);
  assert.equal(ex.stats.buffered, 0);
  assert.equal(ex.stats.bufferedBytes, 0);
  assert.ok(warnings.some((w) => /OTLP export failed.*ECONNREFUSED/.test(w)));
  assert.ok(warnings.some((w) => /reachable again/.test(w)));
  assert.ok(obs.some((o) => o.ok && o.records === 3 && o.latencyMs >= 50), 'latency covers the time queued');
  assert.ok(obs.some((o) => !o.ok));
  await ex.shutdown();
  assert.deepEqual(c.acked, [0, 1, 2, 3, 4], 'nothing re-sent at shutdown');
});

test('default-sized bound holds a 60 s outage at 200 loads/s (12,000 records) with room to spare', async () => {
  const c = new FakeCollector();
  const ex = new RetryingLogExporter({ send: c.send, encode, maxBufferedRecords: 100_000, initialBackoffMs: 1, maxBackoffMs: 5, warn: () => {} });
  for (let i = 0; i < 24_000; i += 512) ex.export(fake(i, Math.min(512, 24_000 - i)), () => {});
  assert.equal(ex.stats.buffered, 24_000);
  assert.equal(ex.stats.dropped, 0);
  c.up = true;
  await until(() => ex.stats.exported === 24_000, 10_000);
  assert.equal(new Set(c.acked).size, 24_000);
  assert.equal(c.acked.length, 24_000);
  await ex.shutdown();
});

test('counts and reports drops past the bound (newest dropped) and at shutdown without a spill dir', async () => {
  const c = new FakeCollector();
  const warnings: string[] = [];
  const ex = new RetryingLogExporter({ send: c.send, encode, maxBufferedRecords: 4, initialBackoffMs: 5, shutdownDrainMs: 30, warn: (m) => warnings.push(m) });
  ex.export(fake(0, 3), () => {});
  ex.export(fake(3, 3), () => {});
  assert.equal(ex.stats.dropped, 2);
  assert.equal(ex.stats.droppedByReason.queue_full, 2);
  assert.ok(warnings.some((w) => /dropped 2 records \(delivery buffer full \(4 records\)\)/.test(w)), warnings.join('\n'));
  await ex.shutdown();
  assert.equal(ex.stats.dropped, 6);
  assert.equal(ex.stats.droppedByReason.shutdown, 4);
  assert.ok(warnings.some((w) => /4 records undelivered/.test(w)));
  const refused: number[] = [];
  ex.export(fake(9, 1), (r) => refused.push(r.code));
  assert.deepEqual(refused, [ExportResultCode.FAILED]);
});

test('a request the collector rejects as malformed is dropped (reason rejected), not retried forever', async () => {
  const c = new FakeCollector();
  c.up = true;
  c.status = 'reject';
  const warnings: string[] = [];
  const ex = new RetryingLogExporter({ send: c.send, encode, maxBufferedRecords: 100, initialBackoffMs: 5, warn: (m) => warnings.push(m) });
  ex.export(fake(0, 2), () => {});
  await until(() => ex.stats.dropped === 2);
  assert.equal(ex.stats.droppedByReason.rejected, 2);
  assert.equal(c.attempts, 1);
  c.status = 'ok';
  ex.export(fake(2, 1), () => {});
  await until(() => ex.stats.exported === 1);
  assert.deepEqual(c.acked, [2]);
  await ex.shutdown();
});

test('shutdown waits for the request in flight instead of re-sending or spilling it (no duplicate)', async () => {
  const dir = tmp();
  const c = new FakeCollector();
  c.up = true;
  c.delayMs = 150; // slower than the drain deadline
  const spill = new SpillStore(dir, 1 << 20);
  const ex = new RetryingLogExporter({ send: c.send, encode, maxBufferedRecords: 100, spill, shutdownDrainMs: 20, requestTimeoutMs: 1000, warn: () => {} });
  ex.export(fake(0, 2), () => {});
  await sleep(10); // request in flight
  await ex.shutdown();
  assert.deepEqual(c.acked, [0, 1]);
  assert.equal(ex.stats.exported, 2);
  assert.deepEqual(fs.readdirSync(dir), [], 'an acknowledged batch is not persisted for replay');
  fs.rmSync(dir, { recursive: true });
});

test('spill: overflow goes to disk in order, survives a restart, is replayed once and deleted after acknowledgement', async () => {
  const dir = tmp();
  const c = new FakeCollector();
  const warnings: string[] = [];
  const info: string[] = [];
  // run 1: collector down the whole time; memory holds 4 records, the rest spills
  const ex1 = new RetryingLogExporter({ send: c.send, encode, maxBufferedRecords: 4, spill: new SpillStore(dir, 1 << 20), initialBackoffMs: 5, shutdownDrainMs: 20, warn: (m) => warnings.push(m) });
  ex1.export(fake(0, 3), () => {}); // memory
  ex1.export(fake(3, 3), () => {}); // does not fit: disk
  ex1.export(fake(6, 1), () => {}); // fits in memory, but disk is not empty: disk (order)
  assert.equal(ex1.stats.buffered, 3);
  assert.equal(ex1.stats.spilled, 4);
  assert.equal(ex1.stats.dropped, 0);
  await ex1.shutdown();
  assert.equal(ex1.stats.dropped, 0, 'with a spill dir nothing is dropped at shutdown');
  assert.equal(ex1.stats.spilled, 7);
  assert.ok(warnings.some((w) => /wrote 3 of 3 undelivered records/.test(w)), warnings.join('\n'));
  const files = fs.readdirSync(dir);
  assert.equal(files.length, 3);
  assert.ok(files.every((f) => /^\d{15}-\d{9}-\d+-\d+\.json$/.test(f) || /\.pb$/.test(f)), files.join(','));
  assert.equal(c.acked.length, 0);

  // a crash mid-write leaves a .tmp file: ignored and removed at start
  fs.writeFileSync(path.join(dir, '000000000000001-000000000-1-5.pb.tmp'), 'half');

  // run 2: replays from disk before anything new, then deletes the files
  c.up = true;
  const ex2 = new RetryingLogExporter({ send: c.send, encode, maxBufferedRecords: 4, spill: new SpillStore(dir, 1 << 20), initialBackoffMs: 5, warn: (m) => warnings.push(m), info: (m) => info.push(m) });
  assert.equal(ex2.stats.recovered, 7);
  assert.ok(info.some((m) => /holds 7 undelivered records/.test(m)));
  ex2.export(fake(100, 1), () => {});
  await until(() => ex2.stats.exported === 8);
  assert.deepEqual(c.acked.slice(0, 7).sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6]);
  assert.equal(c.acked.length, 8, 'each record exactly once');
  assert.equal(new Set(c.acked).size, 8);
  assert.equal(ex2.stats.spilled, 0);
  await ex2.shutdown(); // acknowledged files are deleted in the background; shutdown waits for that
  assert.deepEqual(fs.readdirSync(dir), []);
  fs.rmSync(dir, { recursive: true });
});

test('spill: the disk bound is enforced and records past it are counted as dropped', async () => {
  const dir = tmp();
  const c = new FakeCollector();
  const warnings: string[] = [];
  const body = encode(fake(0, 2)).length;
  const ex = new RetryingLogExporter({ send: c.send, encode, maxBufferedRecords: 0, spill: new SpillStore(dir, body * 2), initialBackoffMs: 5, shutdownDrainMs: 10, warn: (m) => warnings.push(m) });
  ex.export(fake(0, 2), () => {});
  ex.export(fake(2, 2), () => {});
  ex.export(fake(4, 2), () => {});
  assert.equal(ex.stats.spilled, 4);
  assert.equal(ex.stats.droppedByReason.queue_full, 2);
  assert.ok(warnings.some((w) => /spill directory \(\d+ bytes\) full/.test(w)), warnings.join('\n'));
  await ex.shutdown();
  fs.rmSync(dir, { recursive: true });
});

test('spill: an unreadable spilled file is dropped with reason spill_error, the rest still delivered', async () => {
  const dir = tmp();
  const store = new SpillStore(dir, 1 << 20);
  store.append({ body: encode(fake(0, 1)), records: 1, encoding: 'json', enqueuedAt: 1000 });
  store.append({ body: encode(fake(1, 1)), records: 1, encoding: 'json', enqueuedAt: 2000 });
  await store.flush(); // written in the background
  const first = store.peek()!;
  fs.writeFileSync(first.file, '');
  fs.chmodSync(first.file, 0o000);
  fs.renameSync(first.file, `${first.file}.gone`); // vanished between index and read (e.g. removed by hand)
  const c = new FakeCollector();
  c.up = true;
  const ex = new RetryingLogExporter({ send: c.send, encode, maxBufferedRecords: 10, spill: store, warn: () => {} });
  await until(() => ex.stats.exported === 1);
  assert.deepEqual(c.acked, [1]);
  assert.equal(ex.stats.droppedByReason.spill_error, 1);
  await ex.shutdown();
  assert.deepEqual(fs.readdirSync(dir), [`${path.basename(first.file)}.gone`]);
  fs.rmSync(dir, { recursive: true });
});

test('memory: the queue keeps only encoded bodies (records released), and the byte bound counts the memory they hold', async () => {
  const c = new FakeCollector();
  const sent: EncodedBatch[] = [];
  const send = (b: EncodedBatch) => (sent.push(b), c.send(b));
  // A body that is a view on a larger buffer keeps the whole buffer alive: that is what is counted.
  const viewEncode = (logs: ReadableLogRecord[]) => {
    const json = encode(logs);
    const backing = new Uint8Array(json.length * 4);
    backing.set(json);
    return backing.subarray(0, json.length);
  };
  const warnings: string[] = [];
  const ex = new RetryingLogExporter({ send, encode: viewEncode, maxBufferedRecords: 1000, maxBufferedBytes: 200, initialBackoffMs: 5, warn: (m) => warnings.push(m) });
  ex.export(fake(0, 5), () => {}); // "[0,1,2,3,4]" = 11 bytes, 44 held
  assert.equal(ex.stats.buffered, 5);
  assert.equal(ex.stats.bufferedBytes, 44, 'held bytes, not the 11 bytes of the view');
  for (let i = 1; i <= 5; i++) ex.export(fake(i * 10, 5), () => {});
  assert.ok(ex.stats.bufferedBytes <= 200, `bound exceeded: ${ex.stats.bufferedBytes}`);
  assert.ok(ex.stats.droppedByReason.queue_full > 0);
  await until(() => sent.length > 0);
  assert.ok(sent.every((b) => Object.keys(b).sort().join() === 'body,encoding,enqueuedAt,records'), `a queued batch retains more than its body: ${Object.keys(sent[0]!).join()}`);
  c.up = true;
  await until(() => ex.stats.buffered === 0);
  assert.equal(ex.stats.bufferedBytes, 0);
  await ex.shutdown();
});

test('spill: export() never waits for the disk; a disk that does not keep up is bounded (queue_full), a failed write is spill_error', async () => {
  const dir = tmp();
  const c = new FakeCollector();
  const warnings: string[] = [];
  const f = fs as unknown as Record<string, unknown>;
  const syncCalls: string[] = [];
  const saved = ['openSync', 'writeSync', 'fsyncSync', 'renameSync', 'readFileSync', 'rmSync'].map((n) => {
    const orig = f[n] as (...a: unknown[]) => unknown;
    f[n] = (...a: unknown[]) => (syncCalls.push(n), orig.apply(fs, a));
    return [n, orig] as const;
  });
  try {
    // each body is 5 bytes; memory holds 2 records; 64/8 = 8 bytes of write buffer for the disk
    const ex = new RetryingLogExporter({ send: c.send, encode, maxBufferedRecords: 2, maxBufferedBytes: 64, spill: new SpillStore(dir, 1 << 20), initialBackoffMs: 5, shutdownDrainMs: 10, warn: (m) => warnings.push(m) });
    for (let i = 0; i < 8; i++) ex.export(fake(i * 2, 2), () => {});
    assert.deepEqual(syncCalls, [], 'no synchronous fs call while exporting');
    assert.equal(ex.stats.buffered, 2);
    // write buffer = 64/8 = 8 bytes: one body (5) waits to be written, the next would exceed it
    assert.ok(ex.stats.spilled >= 2 && ex.stats.droppedByReason.queue_full > 0, JSON.stringify(ex.stats));
    assert.ok(warnings.some((w) => /does not keep up/.test(w)), warnings.join('\n'));
    await ex.shutdown();
    assert.deepEqual(syncCalls, [], 'none at shutdown either (spill writes awaited, not synchronous)');
    assert.equal(ex.stats.dropped + ex.stats.spilled, 16, 'every record either on disk or counted');
  } finally {
    for (const [n, orig] of saved) f[n] = orig;
  }
  // the directory disappears: the background write fails and is counted, the queue goes on
  const gone = tmp();
  const spill = new SpillStore(gone, 1 << 20);
  fs.rmSync(gone, { recursive: true });
  const ex2 = new RetryingLogExporter({ send: c.send, encode, maxBufferedRecords: 0, spill, initialBackoffMs: 5, shutdownDrainMs: 10, warn: (m) => warnings.push(m) });
  ex2.export(fake(0, 3), () => {});
  await until(() => ex2.stats.droppedByReason.spill_error === 3);
  assert.equal(ex2.stats.spilled, 0);
  assert.ok(warnings.some((w) => /cannot write to spill directory/.test(w)));
  await ex2.shutdown();
  fs.rmSync(dir, { recursive: true });
});

test('encodeLogs produces real OTLP requests (protobuf and JSON) from SDK records', async () => {
  const captured: ReadableLogRecord[] = [];
  const sink: LogRecordExporter = {
    export: (logs, cb) => {
      captured.push(...logs);
      cb({ code: ExportResultCode.SUCCESS });
    },
    shutdown: async () => {},
    forceFlush: async () => {},
  };
  const provider = new LoggerProvider({ processors: [new SimpleLogRecordProcessor({ exporter: sink })] });
  provider.getLogger('t').emit({ eventName: 'so.load', body: 'x loaded /lib/a.so', attributes: { 'process.pid': 42, 'file.path': '/lib/a.so' } });
  await provider.forceFlush();
  const json = JSON.parse(Buffer.from(encodeLogs(captured, 'json')).toString()) as {
    resourceLogs: Array<{ scopeLogs: Array<{ logRecords: Array<{ eventName: string; attributes: Array<{ key: string }> }> }> }>;
  };
  const rec = json.resourceLogs[0]!.scopeLogs[0]!.logRecords[0]!;
  assert.equal(rec.eventName, 'so.load');
  assert.ok(rec.attributes.some((a) => a.key === 'file.path'));
  const pb = Buffer.from(encodeLogs(captured, 'protobuf'));
  assert.ok(pb.includes(Buffer.from('/lib/a.so')) && pb.includes(Buffer.from('so.load')));
  await provider.shutdown();
});

test('isRetryable: malformed-request answers are final, outages and auth/routing problems are retried', () => {
  assert.equal(isRetryable(new Error('connect ECONNREFUSED')), true);
  assert.equal(isRetryable(new OTLPExporterError('Bad Request', 400)), false);
  assert.equal(isRetryable(new OTLPExporterError('Payload Too Large', 413)), false);
  for (const code of [401, 403, 404, 408, 429, 500, 502, 503]) assert.equal(isRetryable(new OTLPExporterError('x', code)), true, String(code));
});

test('console timeUnixNano is exact (the same nanoseconds the OTLP request carries)', async () => {
  const { toConsoleRecord } = await import('../../../src/otel/console-exporter');
  const rec = { hrTime: [1795621511, 919535839], hrTimeObserved: [1795621511, 919600000], attributes: {}, resource: { attributes: {} }, instrumentationScope: { name: 'soload', version: '1' } } as unknown as ReadableLogRecord;
  assert.equal(toConsoleRecord(rec).timeUnixNano, '1795621511919535839');
});

test('the SDK’s forceFlush then shutdown during an outage: one drain budget, not two; a delivery after the flush restores the drain', async () => {
  const c = new FakeCollector();
  const ex = new RetryingLogExporter({ send: c.send, encode, maxBufferedRecords: 100, initialBackoffMs: 5, shutdownDrainMs: 300, warn: () => {} });
  ex.export(fake(0, 3), () => {});
  let t = Date.now();
  await ex.forceFlush();
  const flushMs = Date.now() - t;
  assert.ok(flushMs >= 290, `the first drain uses its budget (${flushMs} ms)`);
  t = Date.now();
  await ex.shutdown();
  const shutdownMs = Date.now() - t;
  assert.ok(shutdownMs < 150, `shutdown did not wait a second budget for the same outage (${shutdownMs} ms)`);
  assert.equal(ex.stats.droppedByReason.shutdown, 3);

  // Same sequence, but the collector comes back between the flush and the shutdown.
  const c2 = new FakeCollector();
  const ex2 = new RetryingLogExporter({ send: c2.send, encode, maxBufferedRecords: 100, initialBackoffMs: 5, maxBackoffMs: 10, shutdownDrainMs: 300, warn: () => {} });
  ex2.export(fake(0, 2), () => {});
  await ex2.forceFlush();
  c2.up = true;
  await until(() => c2.acked.length === 2);
  ex2.export(fake(2, 2), () => {});
  await ex2.shutdown();
  assert.deepEqual(c2.acked, [0, 1, 2, 3]);
});
