import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { ExportResultCode } from '@opentelemetry/core';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-http';
import { LoggerProvider, SimpleLogRecordProcessor, type LogRecordExporter, type ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { createOtlpBatchSender, encodeLogs, type OtlpHttpTarget } from '../../../src/otel/otlp-sender';

type Req = { url?: string; headers: http.IncomingHttpHeaders; body: Buffer };

async function collector(status = 200): Promise<{ url: string; requests: Req[]; close(): void }> {
  const requests: Req[] = [];
  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (d: Buffer) => chunks.push(d));
    req.on('end', () => {
      requests.push({ url: req.url, headers: req.headers, body: Buffer.concat(chunks) });
      res.writeHead(status, { 'Content-Type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  return { url: `http://127.0.0.1:${port}/v1/logs`, requests, close: () => server.close() };
}

async function records(): Promise<ReadableLogRecord[]> {
  const captured: ReadableLogRecord[] = [];
  const sink: LogRecordExporter = { export: (l, cb) => (captured.push(...l), cb({ code: ExportResultCode.SUCCESS })), shutdown: async () => {}, forceFlush: async () => {} };
  const provider = new LoggerProvider({ processors: [new SimpleLogRecordProcessor({ exporter: sink })] });
  const logger = provider.getLogger('soload', '0.1.0');
  for (let i = 0; i < 3; i++) logger.emit({ eventName: 'so.load', body: `p[${i}] loaded /lib/a${i}.so`, attributes: { 'process.pid': 100 + i, 'file.path': `/lib/a${i}.so` } });
  await provider.shutdown();
  return captured;
}

const target = (url: string): OtlpHttpTarget => ({ url, headers: { Authorization: 'Bearer t' }, timeoutMs: 2000, compression: 'none', tls: {} });

test('http/json: the request is byte-identical (body and headers) to what OTLPLogExporter sends for the same records', async () => {
  const col = await collector();
  const recs = await records();
  const reference = new OTLPLogExporter({ url: col.url, headers: { Authorization: 'Bearer t' }, timeoutMillis: 2000 });
  await new Promise<void>((r) => reference.export(recs, (res) => (assert.equal(res.code, ExportResultCode.SUCCESS), r())));
  await reference.shutdown();
  const sender = createOtlpBatchSender(target(col.url));
  const body = encodeLogs(recs, 'json');
  assert.deepEqual(await sender.send({ body, records: 3, encoding: 'json', enqueuedAt: Date.now() }), { ok: true });
  await sender.shutdown();
  col.close();
  const [ref, ours] = col.requests;
  assert.ok(ref && ours);
  assert.equal(ours.url, ref.url);
  assert.ok(ours.body.equals(ref.body), 'same bytes');
  assert.ok(ours.body.equals(Buffer.from(body)), 'the stored body is sent as is (no second serialization)');
  for (const h of ['content-type', 'user-agent', 'authorization']) assert.equal(ours.headers[h], ref.headers[h], h);
});

test('http/protobuf and spill replays go through the same transport: stored bytes as is, protobuf content type', async () => {
  const col = await collector();
  const recs = await records();
  const sender = createOtlpBatchSender(target(col.url));
  const pb = encodeLogs(recs, 'protobuf');
  const stored = Buffer.from(encodeLogs(recs.slice(0, 1), 'json')); // as read back from a spill file
  assert.deepEqual(await sender.send({ body: pb, records: 3, encoding: 'protobuf', enqueuedAt: 0 }), { ok: true });
  assert.deepEqual(await sender.send({ body: stored, records: 1, encoding: 'json', enqueuedAt: 0 }), { ok: true });
  await sender.shutdown();
  col.close();
  assert.equal(col.requests[0]!.headers['content-type'], 'application/x-protobuf');
  assert.ok(col.requests[0]!.body.equals(Buffer.from(pb)));
  assert.equal(col.requests[1]!.headers['content-type'], 'application/json');
  assert.ok(col.requests[1]!.body.equals(stored));
});

test('a 400 answer is a final failure, a 503 a retryable one', async () => {
  for (const [status, retryable] of [
    [400, false],
    [503, true],
  ] as const) {
    const col = await collector(status);
    const sender = createOtlpBatchSender({ ...target(col.url), timeoutMs: 300 });
    const out = await sender.send({ body: Buffer.from('{}'), records: 1, encoding: 'json', enqueuedAt: 0 });
    await sender.shutdown();
    col.close();
    assert.equal(out.ok, false);
    assert.equal(!out.ok && out.retryable, retryable, String(status));
  }
});
