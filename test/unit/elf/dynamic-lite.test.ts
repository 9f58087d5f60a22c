import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { readDynamicInfo } from '../../../src/elf/dynamic-lite';
import { ElfSymbolResolver } from '../../../src/elf';

const REAL = ['/usr/lib/x86_64-linux-gnu/libc.so.6', '/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2', '/usr/bin/ls', process.execPath].filter((f) => fs.existsSync(f));

test('PT_DYNAMIC-only reading gives what decoding the whole file gives, reading a small part of it', () => {
  assert.ok(REAL.length >= 3, 'real ELF files on this host');
  const full = new ElfSymbolResolver();
  for (const file of REAL) {
    const fd = fs.openSync(file, 'r');
    let bytes = 0;
    const lite = readDynamicInfo((off, len) => {
      const b = Buffer.alloc(len);
      const n = fs.readSync(fd, b, 0, len, off);
      bytes += n;
      return b.subarray(0, n);
    });
    fs.closeSync(fd);
    const info = full.inspect(file);
    assert.deepEqual(lite?.needed, [...info.needed], file);
    assert.equal(lite?.soname, info.soname, file);
    assert.ok(bytes < fs.statSync(file).size / 10, `${file}: read ${bytes} bytes`);
  }
});

test('not ELF, truncated, absurd headers: undefined, never a throw or a huge read', () => {
  const reads: number[] = [];
  const over = (buf: Buffer) => (off: number, len: number) => (reads.push(len), buf.subarray(off, off + len));
  assert.equal(readDynamicInfo(over(Buffer.from('#!/bin/sh\necho hi\n'))), undefined);
  const hdr = Buffer.alloc(64);
  hdr.writeUInt32BE(0x7f454c46, 0);
  hdr[4] = 2;
  hdr[5] = 1;
  hdr.writeUInt16LE(56, 54);
  hdr.writeUInt16LE(60000, 56); // e_phnum absurd
  assert.equal(readDynamicInfo(over(hdr)), undefined);
  assert.ok(Math.max(...reads) <= 64);
});

test('the resolver caches dynamicInfo by file identity', () => {
  const r = new ElfSymbolResolver();
  const a = r.dynamicInfo(REAL[0]!);
  assert.equal(r.dynamicInfo(REAL[0]!), a);
  assert.throws(() => r.dynamicInfo('/nonexistent/x.so'), /SOLOAD_ERR_ELF_INVALID|cannot open/);
});
