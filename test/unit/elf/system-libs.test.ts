import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { ErrorCodes, isSoloadError } from '../../../src/errors';
import { ElfSymbolResolver, PT_LOAD, fetchOffsetFor, loadSegmentFor } from '../../../src/elf';
import { LDSO, LIBC, readelfBuildId, readelfSegments, readelfSymbols, referenceOffset, run } from './helpers';

const present = fs.existsSync(LIBC) && fs.existsSync(LDSO);
const r = new ElfSymbolResolver();

test('libc.so.6: dlopen resolves from .dynsym to the default version, readelf agrees', { skip: !present && 'no x86-64 glibc' }, () => {
  const ref = readelfSymbols(LIBC).filter((s) => s.table === '.dynsym' && s.name.startsWith('dlopen@'));
  const def = ref.find((s) => s.name.includes('@@'));
  assert.ok(def, `readelf shows a default dlopen: ${ref.map((s) => s.name).join(', ')}`);
  const got = r.resolve(LIBC, 'dlopen');
  assert.equal(got.table, 'dynsym');
  assert.equal(got.symbol, 'dlopen');
  assert.equal(`dlopen@@${got.version}`, def.name);
  assert.equal(got.vaddr, def.value);
  assert.equal(got.type, 'func');
  assert.equal(got.fileOffset, referenceOffset(readelfSegments(LIBC), def.value));
  for (const s of ref) {
    const explicit = r.resolve(LIBC, s.name);
    assert.equal(explicit.vaddr, s.value, s.name);
    assert.equal(explicit.defaultVersion, s.name.includes('@@'), s.name);
  }
});

test('libc.so.6: metadata matches readelf', { skip: !present && 'no x86-64 glibc' }, () => {
  const info = r.inspect(LIBC);
  const dyn = run('readelf', ['-dW', LIBC]);
  assert.equal(info.soname, 'libc.so.6');
  assert.deepEqual([...info.needed], [...dyn.matchAll(/Shared library: \[([^\]]+)\]/g)].map((m) => m[1]));
  assert.equal(info.buildId, readelfBuildId(LIBC));
  // glibc's libc.so.6 is runnable, so it has a PT_INTERP.
  assert.equal(info.interpreter, /program interpreter: ([^\]]+)\]/.exec(run('readelf', ['-lW', LIBC]))?.[1]);
  assert.equal(info.machine, 'amd64');
  const ifunc = r.resolve(LIBC, 'memcpy');
  assert.equal(ifunc.type, readelfSymbols(LIBC).find((s) => s.name.startsWith('memcpy@@'))?.type === 'IFUNC' ? 'ifunc' : 'func');
});

test('ld.so: _dl_debug_state has a file offset; _r_debug is in .bss and only reachable via fetchOffsetFor', { skip: !present && 'no x86-64 glibc' }, () => {
  const segs = readelfSegments(LDSO);
  const syms = readelfSymbols(LDSO).filter((s) => s.table === '.dynsym');
  const state = syms.find((s) => s.name.startsWith('_dl_debug_state@'));
  const rdebug = syms.find((s) => s.name.startsWith('_r_debug@'));
  assert.ok(state && rdebug);

  const probe = r.resolve(LDSO, '_dl_debug_state');
  assert.equal(probe.table, 'dynsym');
  assert.equal(probe.vaddr, state.value);
  assert.equal(probe.fileOffset, referenceOffset(segs, state.value));

  const target = r.lookup(LDSO, '_r_debug');
  assert.equal(target.vaddr, rdebug.value);
  const expectedOffset = referenceOffset(segs, rdebug.value);
  if (expectedOffset === undefined) {
    assert.throws(() => r.resolve(LDSO, '_r_debug'), (e: unknown) => isSoloadError(e, ErrorCodes.SYMBOL_NOT_MAPPED) && /\.bss/.test(e.message));
  } else {
    assert.equal(r.resolve(LDSO, '_r_debug').fileOffset, expectedOffset);
  }

  const probeSeg = segs.find((s) => s.type === 'LOAD' && state.value >= s.vaddr && state.value < s.vaddr + s.filesz);
  assert.ok(probeSeg);
  const expected = rdebug.value - (probeSeg.vaddr - probeSeg.offset);
  const info = r.inspect(LDSO);
  assert.equal(fetchOffsetFor(info, probe.vaddr, target.vaddr), expected);
  assert.equal(r.fetchOffset(LDSO, '_dl_debug_state', '_r_debug'), expected);
  // _r_debug is inside the memory image of a PT_LOAD, so the kernel's read will land in mapped memory.
  assert.equal(loadSegmentFor(info, target.vaddr, false)?.type, PT_LOAD);
});
