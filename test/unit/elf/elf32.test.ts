import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ElfSymbolResolver } from '../../../src/elf';
import { FIXTURE_C, FIXTURE_COUNTER, FIXTURE_MAP, readelfBuildId, readelfSegments, readelfSymbols, referenceOffset, tempDir } from './helpers';

// Elf32 is also covered without a toolchain by the hand-built images in decode.test.ts; this checks a
// real i386 object from gcc when multilib support is installed (-nostdlib: no 32-bit crt/libgcc needed).
const dir = tempDir('elf32');
fs.writeFileSync(path.join(dir, 'fix.c'), FIXTURE_C);
fs.writeFileSync(path.join(dir, 'fix.map'), FIXTURE_MAP);
const lib = path.join(dir, 'libfix32.so');
const gcc = spawnSync(
  'gcc',
  ['-m32', '-O1', '-fPIC', '-shared', '-nostdlib', '-Wl,--build-id=sha1', '-Wl,--version-script=fix.map', '-Wl,-soname,libfix32.so', '-o', lib, 'fix.c'],
  { cwd: dir, encoding: 'utf8' },
);
const skip = gcc.status !== 0 && `gcc -m32 cannot build a shared object here: ${gcc.stderr.split('\n')[0]}`;

test('gcc -m32 shared object: .dynsym/.symtab symbols, versions and offsets match readelf', { skip }, () => {
  const r = new ElfSymbolResolver();
  const info = r.inspect(lib);
  assert.equal(info.class, 32);
  assert.equal(info.machineId, 3);
  assert.equal(info.soname, 'libfix32.so');
  assert.equal(info.buildId, readelfBuildId(lib));
  const segs = readelfSegments(lib);
  const syms = readelfSymbols(lib).filter((s) => s.ndx !== 'UND' && s.ndx !== 'ABS' && (s.type === 'FUNC' || s.type === 'OBJECT'));
  let mapped = 0;
  for (const s of syms) {
    if (s.table === '.symtab' && !s.name.startsWith('soload_fix_helper')) continue;
    const got = r.lookup(lib, s.name);
    assert.equal(got.vaddr, s.value, s.name);
    assert.equal(got.table, s.table === '.dynsym' ? 'dynsym' : 'symtab', s.name);
    const off = referenceOffset(segs, s.value);
    if (off !== undefined) {
      assert.equal(r.resolve(lib, s.name).fileOffset, off, s.name);
      mapped++;
    }
  }
  assert.ok(mapped >= 6);
  assert.equal(r.resolve(lib, 'foo').version, 'V2');
  assert.equal(r.resolve(lib, 'foo@V1').defaultVersion, false);
  const counter = r.resolve(lib, 'soload_fix_counter');
  assert.equal(fs.readFileSync(lib).readUInt32LE(counter.fileOffset), FIXTURE_COUNTER);
});
