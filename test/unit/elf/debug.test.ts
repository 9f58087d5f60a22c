import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ErrorCodes, isSoloadError } from '../../../src/errors';
import { ElfSymbolResolver, crc32 } from '../../../src/elf';
import { LIBC, buildFixtures, readelfSegments, readelfSymbols, referenceOffset, run, strippedCopy, tempDir } from './helpers';

const fx = buildFixtures();
const buildId = run('readelf', ['-n', fx.lib]).match(/Build ID: ([0-9a-f]+)/)?.[1] ?? '';
const helperRef = readelfSymbols(fx.debug).find((s) => s.table === '.symtab' && s.name === 'soload_fix_helper');

function buildIdTree(root: string, debugFile: string, id = buildId): string {
  const p = path.join(root, '.build-id', id.slice(0, 2), `${id.slice(2)}.debug`);
  fs.mkdirSync(path.dirname(p), { recursive: true });
  fs.copyFileSync(debugFile, p);
  return p;
}

test('fixture sanity: the stripped copy lacks the static function, the debug file has it', () => {
  const stripped = strippedCopy(fx.lib, path.join(tempDir('sanity'), 'libfix.so'));
  assert.ok(buildId.length === 40);
  assert.ok(helperRef, 'debug file .symtab has soload_fix_helper');
  assert.equal(readelfSymbols(stripped).filter((s) => s.name === 'soload_fix_helper').length, 0);
});

test('stripped file: exported symbols still come from .dynsym', () => {
  const stripped = strippedCopy(fx.lib, path.join(tempDir('dynsym-only'), 'libfix.so'));
  const r = new ElfSymbolResolver({ debugRoot: tempDir('empty-root-1') });
  const got = r.resolve(stripped, 'soload_fix_add');
  assert.equal(got.table, 'dynsym');
  assert.equal(got.debugFile, undefined);
  assert.equal(r.inspect(stripped).symbolCounts.symtab, 0);
});

test('stripped file + <debugRoot>/.build-id/xx/yyyy.debug: symbol from the debug file, offset from the original layout', () => {
  const stripped = strippedCopy(fx.lib, path.join(tempDir('bid'), 'libfix.so'));
  const root = tempDir('root-bid');
  const debugPath = buildIdTree(root, fx.debug);
  const r = new ElfSymbolResolver({ debugRoot: root });
  const got = r.resolve(stripped, 'soload_fix_helper');
  assert.ok(helperRef);
  assert.equal(got.table, 'debug-build-id');
  assert.equal(got.debugFile, debugPath);
  assert.equal(got.file, stripped);
  assert.equal(got.vaddr, helperRef.value);
  assert.equal(got.fileOffset, referenceOffset(readelfSegments(stripped), helperRef.value));
  // The debug file's own program headers are kept by objcopy but its sections are NOBITS: the bytes
  // at the offset must be the function's code in the stripped file, identical to the unstripped one.
  const code = fs.readFileSync(stripped).subarray(got.fileOffset, got.fileOffset + got.size);
  const orig = fs.readFileSync(fx.lib).subarray(got.fileOffset, got.fileOffset + got.size);
  assert.equal(code.length, helperRef.size);
  assert.deepEqual(code, orig);
});

test('a build-id debug file whose own build ID differs is ignored', () => {
  const stripped = strippedCopy(fx.lib, path.join(tempDir('bid-wrong'), 'libfix.so'));
  const root = tempDir('root-bid-wrong');
  const otherDebug = path.join(tempDir('other-debug'), 'noid.debug');
  run('objcopy', ['--only-keep-debug', fx.libNoBuildId, otherDebug]);
  buildIdTree(root, otherDebug);
  const r = new ElfSymbolResolver({ debugRoot: root });
  assert.throws(
    () => r.resolve(stripped, 'soload_fix_helper'),
    (e: unknown) => isSoloadError(e, ErrorCodes.SYMBOL_NOT_FOUND) && /ignored: its build ID is missing/.test(e.message),
  );
});

test('.gnu_debuglink: found in <dir>/.debug/, <dir>/ and <debugRoot>/<dir>/ with a matching CRC', () => {
  const cases: Array<[string, (dir: string, root: string) => string]> = [
    ['dot-debug', (dir) => path.join(dir, '.debug', 'libfix.so.debug')],
    ['same-dir', (dir) => path.join(dir, 'libfix.so.debug')],
    ['under-root', (dir, root) => path.join(root, dir, 'libfix.so.debug')],
  ];
  for (const [name, place] of cases) {
    const dir = tempDir(`link-${name}`);
    const root = tempDir(`root-link-${name}`);
    const debugPath = place(dir, root);
    fs.mkdirSync(path.dirname(debugPath), { recursive: true });
    fs.copyFileSync(fx.debug, debugPath);
    const stripped = strippedCopy(fx.lib, path.join(dir, 'libfix.so'), debugPath);
    const r = new ElfSymbolResolver({ debugRoot: root });
    const info = r.inspect(stripped);
    assert.equal(info.debugLink?.name, 'libfix.so.debug', name);
    assert.equal(info.debugLink?.crc, crc32(fs.readFileSync(fx.debug)), `${name}: our CRC-32 equals objcopy's`);
    const got = r.resolve(stripped, 'soload_fix_helper');
    assert.equal(got.table, 'debug-link', name);
    assert.equal(got.debugFile, debugPath, name);
    assert.equal(got.vaddr, helperRef?.value, name);
    assert.equal(got.fileOffset, referenceOffset(readelfSegments(stripped), got.vaddr), name);
  }
});

test('.gnu_debuglink with a CRC mismatch is rejected and the error says so', () => {
  const dir = tempDir('link-badcrc');
  const debugPath = path.join(dir, '.debug', 'libfix.so.debug');
  fs.mkdirSync(path.dirname(debugPath), { recursive: true });
  fs.copyFileSync(fx.debug, debugPath);
  const stripped = strippedCopy(fx.lib, path.join(dir, 'libfix.so'), debugPath);
  fs.appendFileSync(debugPath, Buffer.from([0]));
  const r = new ElfSymbolResolver({ debugRoot: tempDir('empty-root-2') });
  assert.throws(
    () => r.resolve(stripped, 'soload_fix_helper'),
    (e: unknown) => isSoloadError(e, ErrorCodes.SYMBOL_NOT_FOUND) && e.message.includes(`debug link ${debugPath} (ignored: CRC`),
  );
});

test('SYMBOL_NOT_FOUND names file, symbol, tables searched and what to do', () => {
  const stripped = strippedCopy(fx.lib, path.join(tempDir('notfound'), 'libfix.so'));
  const root = tempDir('empty-root-3');
  const r = new ElfSymbolResolver({ debugRoot: root });
  try {
    r.resolve(stripped, 'soload_fix_helper');
    assert.fail('expected SYMBOL_NOT_FOUND');
  } catch (e) {
    assert.ok(isSoloadError(e, ErrorCodes.SYMBOL_NOT_FOUND));
    for (const part of [stripped, '"soload_fix_helper"', '.dynsym', '.symtab (absent', path.join(root, '.build-id', buildId.slice(0, 2)), 'libc6-dbg', '`offset`']) {
      assert.ok(e.message.includes(part), `message should mention ${part}: ${e.message}`);
    }
    assert.equal(e.details.file, stripped);
    assert.equal(e.details.symbol, 'soload_fix_helper');
  }

  const noId = strippedCopy(fx.libNoBuildId, path.join(tempDir('notfound-noid'), 'libfix.so'));
  assert.throws(
    () => r.resolve(noId, 'soload_fix_helper'),
    (e: unknown) => isSoloadError(e, ErrorCodes.SYMBOL_NOT_FOUND) && /neither a build ID nor a \.gnu_debuglink/.test(e.message),
  );
});

test('libc: a local symbol resolves through the installed libc6-dbg build-id file', (t) => {
  const id = run('readelf', ['-n', LIBC]).match(/Build ID: ([0-9a-f]+)/)?.[1];
  const debugPath = id && path.join('/usr/lib/debug/.build-id', id.slice(0, 2), `${id.slice(2)}.debug`);
  if (!debugPath || !fs.existsSync(debugPath)) {
    t.skip('libc debug symbols (libc6-dbg) are not installed');
    return;
  }
  const dynNames = new Set(readelfSymbols(LIBC).map((s) => s.name.split('@')[0]));
  const debugSyms = readelfSymbols(debugPath).filter((s) => s.table === '.symtab' && s.ndx !== 'UND');
  const counts = new Map<string, number>();
  for (const s of debugSyms) counts.set(s.name, (counts.get(s.name) ?? 0) + 1);
  const pick = debugSyms.find((s) => s.type === 'FUNC' && s.bind === 'LOCAL' && !s.name.includes('@') && counts.get(s.name) === 1 && !dynNames.has(s.name) && s.size > 0);
  assert.ok(pick, 'the libc debug file has a unique local function');
  const got = new ElfSymbolResolver().resolve(LIBC, pick.name);
  assert.equal(got.table, 'debug-build-id');
  assert.equal(got.debugFile, debugPath);
  assert.equal(got.vaddr, pick.value);
  assert.equal(got.fileOffset, referenceOffset(readelfSegments(LIBC), pick.value));
});
