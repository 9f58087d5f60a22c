// The debuginfod client against Debian's real debuginfod server, serving the unpacked libc6-dbg of a
// Debian 11 root (scripts/make-roots.sh): the root's ld.so has no .symtab, so the private symbol
// soload probes is only reachable through the downloaded debug file.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { DebuginfodClient } from '../../src/elf/debuginfod';
import { ElfSymbolResolver, decodeBuildId, parseElf } from '../../src/elf';
import { ErrorCodes, isSoloadError } from '../../src/errors';
import { startDebuginfod } from '../helpers/debuginfod';
import { ROOT, tmpDir } from '../helpers/soload';

const SYMBOL = '_dl_add_to_namespace_list';

function makeRoots(): void {
  const r = spawnSync('bash', ['scripts/make-roots.sh'], { cwd: ROOT, encoding: 'utf8' });
  if (r.status !== 0) {
    throw new Error(`scripts/make-roots.sh failed (exit ${r.status}, ${r.error?.message ?? 'no spawn error'}):\n${r.stdout}\n${r.stderr}`);
  }
}

/** Value of `name` in `file`'s .symtab per readelf (the independent reference). */
function readelfSymtabValue(file: string, name: string): number | undefined {
  const out = spawnSync('readelf', ['-Ws', file], { encoding: 'utf8' }).stdout;
  let inSymtab = false;
  for (const line of out.split('\n')) {
    if (line.startsWith('Symbol table')) inSymtab = line.includes("'.symtab'");
    const m = /^\s*\d+:\s+([0-9a-f]+)\s+\d+\s+\S+\s+\S+\s+\S+\s+\S+\s+(\S+)$/.exec(line);
    if (inSymtab && m && m[2] === name) return parseInt(m[1], 16);
  }
  return undefined;
}

test("debuginfod: a Debian 11 ld.so without local debug symbols gets them by build ID from the real server", async (t) => {
  makeRoots();
  const ldso = path.join(ROOT, '.cache', 'roots', 'bullseye', 'lib', 'x86_64-linux-gnu', 'ld-2.31.so');
  const debugDir = path.join(ROOT, '.cache', 'debug', 'bullseye');
  const trixieLdso = path.join(ROOT, '.cache', 'roots', 'trixie', 'lib', 'x86_64-linux-gnu', 'ld-linux-x86-64.so.2');
  const buildId = decodeBuildId(parseElf(fs.readFileSync(ldso), ldso));
  assert.ok(buildId && /^[0-9a-f]{40}$/.test(buildId), `build ID of ${ldso}: ${buildId}`);
  const otherId = decodeBuildId(parseElf(fs.readFileSync(trixieLdso), trixieLdso));
  assert.ok(otherId && otherId !== buildId);

  const cacheDir = path.join(tmpDir('soload-debuginfod-cache-'), 'cache');
  t.after(() => fs.rmSync(path.dirname(cacheDir), { recursive: true, force: true }));

  // Precondition: with an empty debug root the symbol is out of reach (ld.so is stripped).
  assert.throws(() => new ElfSymbolResolver({ debugRoot: cacheDir }).resolve(ldso, SYMBOL), (e: unknown) =>
    isSoloadError(e, ErrorCodes.SYMBOL_NOT_FOUND),
  );

  const server = await startDebuginfod({ dirs: [debugDir] });
  let stopped = false;
  t.after(async () => {
    if (!stopped) await server.stop();
  });
  t.diagnostic(`debuginfod indexed ${server.scannedFiles} files of ${debugDir} in ${server.readyMs} ms`);

  const client = new DebuginfodClient({ urls: [server.url], cacheDir, timeoutMs: 10_000, maxBytes: 64 << 20 });
  const t0 = performance.now();
  const r = await client.fetch(buildId);
  const fetchMs = performance.now() - t0;
  assert.ok(r.ok, `fetch failed: ${JSON.stringify(r)}\nserver output:\n${server.output()}`);
  t.diagnostic(`fetched ${r.bytes} bytes in ${fetchMs.toFixed(1)} ms from ${r.url}`);
  assert.equal(r.fromCache, false);
  assert.equal(r.url, `${server.url}/buildid/${buildId}/debuginfo`);
  assert.equal(r.path, path.join(cacheDir, '.build-id', buildId.slice(0, 2), `${buildId.slice(2)}.debug`));
  const served = path.join(debugDir, 'usr', 'lib', 'debug', '.build-id', buildId.slice(0, 2), `${buildId.slice(2)}.debug`);
  assert.deepEqual(fs.readFileSync(r.path), fs.readFileSync(served), 'the file debuginfod indexed, byte for byte');
  assert.equal(r.bytes, fs.statSync(served).size);
  assert.equal(decodeBuildId(parseElf(fs.readFileSync(r.path), r.path)), buildId);
  assert.equal(client.cachedPath(buildId), r.path);

  const resolver = new ElfSymbolResolver({ debugRoot: cacheDir });
  const sym = resolver.resolve(ldso, SYMBOL);
  assert.equal(sym.table, 'debug-build-id');
  assert.equal(sym.debugFile, r.path);
  assert.equal(sym.file, ldso);
  assert.equal(sym.vaddr, readelfSymtabValue(r.path, SYMBOL));
  assert.ok(sym.fileOffset > 0);

  // An ID the server does not have: its 404, as the reason.
  const missing = await client.fetch(otherId);
  assert.ok(!missing.ok);
  assert.equal(missing.reason, `${server.url}: HTTP 404`);

  await server.stop();
  stopped = true;

  // The cached file needs no server; an uncached ID fails with a reason, within the timeout.
  const cached = await client.fetch(buildId);
  assert.ok(cached.ok && cached.fromCache);
  const after = new DebuginfodClient({ urls: [server.url], cacheDir, timeoutMs: 3000, maxBytes: 64 << 20 });
  const t1 = performance.now();
  const gone = await after.fetch(otherId);
  const goneMs = performance.now() - t1;
  assert.ok(!gone.ok);
  assert.match(gone.reason, new RegExp(`^${server.url}: (request failed \\(fetch failed: ECONNREFUSED\\)|timed out after 3000 ms)$`));
  assert.ok(goneMs < 3500, `gave up after ${goneMs.toFixed(0)} ms`);
  t.diagnostic(`after stop: "${gone.reason}" in ${goneMs.toFixed(1)} ms`);
  assert.deepEqual(client.stats(), { requests: 2, cacheHits: 1, negativeHits: 0, downloads: 1, downloadedBytes: r.bytes, failures: 1 });
});
