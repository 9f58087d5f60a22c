import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { DebuginfodClient, type DebuginfodOptions, debuginfodUrlsFromEnv } from '../../../src/elf/debuginfod';
import { decodeBuildId, parseElf } from '../../../src/elf';
import { buildElf } from './elf-builder';
import { tempDir } from './helpers';

const elf = buildElf(64, 'le');
const ID = elf.buildId;
/** A well-formed build ID no served file has. */
const OTHER_ID = 'ab'.repeat(20);

type Handler = (req: http.IncomingMessage, res: http.ServerResponse) => void;

interface TestServer {
  url: string;
  /** Request paths, in arrival order. */
  seen: string[];
  close(): Promise<void>;
}

/** A real HTTP server on 127.0.0.1 (a free port) answering with `handler`. */
async function serve(handler: Handler): Promise<TestServer> {
  const seen: string[] = [];
  const server = http.createServer((req, res) => {
    seen.push(req.url ?? '');
    handler(req, res);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    seen,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

/** Serves `body` with Content-Length at /buildid/<id>/debuginfo, 404 elsewhere. */
const serveFile = (id: string, body: Buffer): Handler => (req, res) => {
  if (req.url === `/buildid/${id}/debuginfo`) {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': body.length });
    res.end(body);
  } else {
    res.writeHead(404).end('not found\n');
  }
};

let dirs = 0;
function client(urls: string[], extra: Partial<DebuginfodOptions> = {}): DebuginfodClient {
  // A directory that does not exist yet: fetch() must create it (mkdir -p, 0700).
  return new DebuginfodClient({ urls, cacheDir: path.join(tempDir(`debuginfod-${++dirs}`), 'cache'), timeoutMs: 5000, maxBytes: 1 << 20, ...extra });
}

/** Every non-directory under `dir` (recursively), relative to it. */
function filesUnder(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return (fs.readdirSync(dir, { recursive: true }) as string[]).filter((f) => !fs.statSync(path.join(dir, f)).isDirectory()).sort();
}

test('a served ELF with the requested build ID is stored where a build-id debug root expects it', async () => {
  const srv = await serve(serveFile(ID, elf.buf));
  try {
    const c = client([srv.url]);
    assert.equal(c.cachedPath(ID), undefined);
    const r = await c.fetch(ID);
    assert.ok(r.ok, JSON.stringify(r));
    const expected = path.join(c.cacheDir, '.build-id', ID.slice(0, 2), `${ID.slice(2)}.debug`);
    assert.equal(r.path, expected);
    assert.equal(r.url, `${srv.url}/buildid/${ID}/debuginfo`);
    assert.equal(r.bytes, elf.buf.length);
    assert.equal(r.fromCache, false);
    assert.deepEqual(fs.readFileSync(expected), elf.buf);
    assert.equal(decodeBuildId(parseElf(fs.readFileSync(expected), expected)), ID);
    assert.equal(c.cachedPath(ID), expected);
    assert.equal(c.cachedPath(ID.toUpperCase()), expected, 'build IDs are case-insensitive hex');
    assert.deepEqual(filesUnder(c.cacheDir), [path.join('.build-id', ID.slice(0, 2), `${ID.slice(2)}.debug`)], 'no temp file left');
    assert.equal(fs.statSync(c.cacheDir).mode & 0o777, 0o700);
    assert.equal(fs.statSync(path.dirname(expected)).mode & 0o777, 0o700);
    assert.deepEqual(srv.seen, [`/buildid/${ID}/debuginfo`]);
    assert.deepEqual(c.stats(), { requests: 1, cacheHits: 0, negativeHits: 0, downloads: 1, downloadedBytes: elf.buf.length, failures: 0 });
  } finally {
    await srv.close();
  }
});

test('a second fetch is answered from the cache without a request, also by a new client on the same directory', async () => {
  const srv = await serve(serveFile(ID, elf.buf));
  try {
    const c = client([srv.url]);
    const first = await c.fetch(ID);
    assert.ok(first.ok);
    const second = await c.fetch(ID);
    assert.ok(second.ok);
    assert.equal(second.fromCache, true);
    assert.equal(second.path, first.path);
    assert.equal(second.bytes, elf.buf.length);
    assert.match(second.url, /^file:\/\//);
    const again = new DebuginfodClient({ urls: [srv.url], cacheDir: c.cacheDir, timeoutMs: 5000, maxBytes: 1 << 20 });
    const third = await again.fetch(ID);
    assert.ok(third.ok && third.fromCache);
    assert.equal(srv.seen.length, 1, 'only the first fetch reached the server');
    assert.equal(c.stats().cacheHits, 1);
    assert.equal(again.stats().requests, 0);
  } finally {
    await srv.close();
  }
});

test('404 from the first server, 200 from the second: the file comes from the second', async () => {
  const missing = await serve((_req, res) => void res.writeHead(404).end('not found\n'));
  const good = await serve(serveFile(ID, elf.buf));
  try {
    const c = client([`${missing.url}/`, good.url]);
    const r = await c.fetch(ID);
    assert.ok(r.ok, JSON.stringify(r));
    assert.equal(r.url, `${good.url}/buildid/${ID}/debuginfo`);
    assert.deepEqual(missing.seen, [`/buildid/${ID}/debuginfo`], 'trailing slash of the URL dropped');
    assert.equal(good.seen.length, 1);
    assert.equal(c.stats().requests, 2);
  } finally {
    await missing.close();
    await good.close();
  }
});

test('a file whose build ID differs, or that is no ELF file, is rejected and leaves nothing in the cache', async () => {
  const wrong = await serve((_req, res) => void res.writeHead(200, { 'content-length': elf.buf.length }).end(elf.buf));
  try {
    const c = client([wrong.url]);
    const r = await c.fetch(OTHER_ID);
    assert.equal(r.ok, false);
    assert.ok(!r.ok);
    assert.match(r.reason, new RegExp(`^${wrong.url}: build-id mismatch \\(the file's is ${ID}\\)$`));
    assert.equal(c.cachedPath(OTHER_ID), undefined);
    assert.deepEqual(filesUnder(c.cacheDir), [], 'no temp file left');
  } finally {
    await wrong.close();
  }
  const text = await serve((_req, res) => void res.writeHead(200).end('<html>captive portal</html>'));
  try {
    const c = client([text.url]);
    const r = await c.fetch(ID);
    assert.ok(!r.ok);
    assert.match(r.reason, /not an ELF file/);
    assert.deepEqual(filesUnder(c.cacheDir), []);
  } finally {
    await text.close();
  }
});

test('a body larger than maxBytes is rejected, by Content-Length and by counting a chunked body', async () => {
  const declared = await serve(serveFile(ID, elf.buf));
  const chunked = await serve((_req, res) => {
    // No Content-Length: node sends Transfer-Encoding: chunked, so only counting can catch it.
    res.writeHead(200, { 'content-type': 'application/octet-stream' });
    for (let off = 0; off < elf.buf.length; off += 256) res.write(elf.buf.subarray(off, off + 256));
    res.end();
  });
  try {
    const small = elf.buf.length - 1;
    const a = client([declared.url], { maxBytes: small });
    const ra = await a.fetch(ID);
    assert.ok(!ra.ok);
    assert.equal(ra.reason, `${declared.url}: larger than maxBytes (Content-Length ${elf.buf.length} > ${small})`);
    assert.deepEqual(filesUnder(a.cacheDir), []);

    const b = client([chunked.url], { maxBytes: small });
    const rb = await b.fetch(ID);
    assert.ok(!rb.ok);
    assert.equal(rb.reason, `${chunked.url}: larger than maxBytes (more than ${small} bytes received)`);
    assert.equal(b.cachedPath(ID), undefined);
    assert.deepEqual(filesUnder(b.cacheDir), []);

    // Exactly maxBytes is fine.
    const exact = client([chunked.url], { maxBytes: elf.buf.length });
    assert.ok((await exact.fetch(ID)).ok);
  } finally {
    await declared.close();
    await chunked.close();
  }
});

test('a server that never answers, or stalls mid-body, is given up on after timeoutMs, and later servers are not asked', async () => {
  const hung = await serve(() => undefined);
  const stalled = await serve((_req, res) => {
    res.writeHead(200, { 'content-length': elf.buf.length });
    res.write(elf.buf.subarray(0, 100));
  });
  const good = await serve(serveFile(ID, elf.buf));
  try {
    const c = client([hung.url, good.url], { timeoutMs: 300 });
    const t0 = Date.now();
    const r = await c.fetch(ID);
    const took = Date.now() - t0;
    assert.ok(!r.ok);
    assert.equal(r.reason, `${hung.url}: timed out after 300 ms`);
    assert.ok(took >= 290 && took < 1300, `gave up after ${took} ms`);
    assert.equal(good.seen.length, 0, 'the budget is per fetch(), not per server');

    const s = client([stalled.url], { timeoutMs: 300 });
    const t1 = Date.now();
    const rs = await s.fetch(ID);
    const took1 = Date.now() - t1;
    assert.ok(!rs.ok);
    assert.equal(rs.reason, `${stalled.url}: timed out after 300 ms (100 bytes received)`);
    assert.ok(took1 < 1300, `gave up after ${took1} ms`);
    assert.deepEqual(filesUnder(s.cacheDir), [], 'the partial download is removed');
  } finally {
    await hung.close();
    await stalled.close();
    await good.close();
  }
});

test('a refused connection fails fast with the socket error, and the next server is asked', async () => {
  const gone = await serve(() => undefined);
  const goneUrl = gone.url;
  await gone.close();
  const good = await serve(serveFile(ID, elf.buf));
  try {
    const c = client([goneUrl]);
    const r = await c.fetch(ID);
    assert.ok(!r.ok);
    assert.match(r.reason, new RegExp(`^${goneUrl}: request failed \\(fetch failed: ECONNREFUSED\\)$`));
    const both = await client([goneUrl, good.url]).fetch(ID);
    assert.ok(both.ok);
  } finally {
    await good.close();
  }
});

test('a string that is not a hex build ID is refused without any request or file access', async () => {
  const srv = await serve(serveFile(ID, elf.buf));
  try {
    const c = client([srv.url]);
    for (const bad of ['', 'abc', 'zz'.repeat(10), '../../../etc/passwd', `${ID}/../x`, `${ID}?`, ' '.repeat(40), 'ab', 'a'.repeat(258)]) {
      const r = await c.fetch(bad);
      assert.ok(!r.ok, bad);
      assert.match(r.reason, /^invalid build-id /, bad);
      assert.equal(c.cachedPath(bad), undefined, bad);
    }
    assert.deepEqual(srv.seen, []);
    assert.equal(fs.existsSync(path.join(c.cacheDir, '.build-id')), false);
    assert.equal(c.stats().requests, 0);
  } finally {
    await srv.close();
  }
});

test('a failed build ID is not asked for again within negativeTtlMs, and is after it', async () => {
  const srv = await serve((_req, res) => void res.writeHead(404).end('not found\n'));
  try {
    const c = client([srv.url]);
    const r1 = await c.fetch(OTHER_ID);
    assert.ok(!r1.ok);
    assert.equal(r1.reason, `${srv.url}: HTTP 404`);
    const r2 = await c.fetch(OTHER_ID);
    assert.ok(!r2.ok);
    assert.match(r2.reason, new RegExp(`^${srv.url}: HTTP 404 \\(remembered; not asked again for \\d+ s\\)$`));
    assert.equal(srv.seen.length, 1);
    assert.equal(c.stats().negativeHits, 1);
    assert.equal(c.stats().failures, 1);

    const short = client([srv.url], { negativeTtlMs: 50 });
    await short.fetch(OTHER_ID);
    await short.fetch(OTHER_ID);
    assert.equal(srv.seen.length, 2, 'second fetch within 50 ms remembered');
    await new Promise((r) => setTimeout(r, 80));
    await short.fetch(OTHER_ID);
    assert.equal(srv.seen.length, 3, 'asked again after the TTL');

    const none = client([srv.url], { negativeTtlMs: 0 });
    await none.fetch(OTHER_ID);
    await none.fetch(OTHER_ID);
    assert.equal(srv.seen.length, 5, 'negativeTtlMs 0 remembers nothing');
  } finally {
    await srv.close();
  }
});

test('concurrent fetches of one build ID share one request', async () => {
  const srv = await serve((req, res) => void setTimeout(() => serveFile(ID, elf.buf)(req, res), 100));
  try {
    const c = client([srv.url]);
    const results = await Promise.all([c.fetch(ID), c.fetch(ID.toUpperCase()), c.fetch(ID)]);
    assert.equal(srv.seen.length, 1);
    for (const r of results) assert.ok(r.ok && !r.fromCache && r.path === c.cachedPath(ID));
    assert.equal(c.stats().downloads, 1);
  } finally {
    await srv.close();
  }
});

test('without servers, fetch fails with a reason and touches nothing', async () => {
  const c = client(['ftp://example.invalid', 'not a url']);
  assert.deepEqual(c.urls, []);
  const r = await c.fetch(ID);
  assert.ok(!r.ok);
  assert.match(r.reason, /no debuginfod server configured/);
  assert.equal(fs.existsSync(path.join(c.cacheDir, '.build-id')), false);
});

test('DEBUGINFOD_URLS: space-separated, tolerant of runs of whitespace, http(s) only, trailing slashes dropped', () => {
  assert.deepEqual(debuginfodUrlsFromEnv({}), []);
  assert.deepEqual(debuginfodUrlsFromEnv({ DEBUGINFOD_URLS: '' }), []);
  assert.deepEqual(debuginfodUrlsFromEnv({ DEBUGINFOD_URLS: 'https://debuginfod.debian.net' }), ['https://debuginfod.debian.net']);
  assert.deepEqual(
    debuginfodUrlsFromEnv({
      DEBUGINFOD_URLS: '  https://debuginfod.debian.net/   http://127.0.0.1:8002//\n\thttps://a.example/sub/ file:///srv/debug ftp://x ' +
        'https://debuginfod.debian.net garbage http://',
    }),
    ['https://debuginfod.debian.net', 'http://127.0.0.1:8002', 'https://a.example/sub'],
  );
  assert.deepEqual(debuginfodUrlsFromEnv({ DEBUGINFOD_URLS: 'HTTP://Upper.example/' }), ['HTTP://Upper.example']);
});

test('the constructor checks its numbers and does no I/O', () => {
  const cacheDir = path.join(tempDir('debuginfod-ctor'), 'not-created');
  const c = new DebuginfodClient({ urls: ['http://127.0.0.1:1'], cacheDir, timeoutMs: 1, maxBytes: 1 });
  assert.equal(fs.existsSync(cacheDir), false);
  assert.equal(c.cachedPath(ID), undefined);
  assert.throws(() => new DebuginfodClient({ urls: [], cacheDir, timeoutMs: 0, maxBytes: 1 }), /timeoutMs/);
  assert.throws(() => new DebuginfodClient({ urls: [], cacheDir, timeoutMs: 1, maxBytes: -1 }), /maxBytes/);
  assert.throws(() => new DebuginfodClient({ urls: [], cacheDir: '', timeoutMs: 1, maxBytes: 1 }), /cacheDir/);
});
