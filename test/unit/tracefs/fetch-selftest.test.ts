import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { test } from 'node:test';
import { entryFileOffset, fetchReadFileBytes, fileOffsetFetchRejection, setFileOffsetFetchVerdict } from '../../../src/tracefs/fetch-selftest';

/** Entry point and PT_LOAD segments of a real ELF file as readelf prints them. */
function readelfEntryOffset(file: string): number {
  const h = spawnSync('readelf', ['-hlW', file], { encoding: 'utf8' }).stdout;
  const entry = parseInt(/Entry point address:\s+0x([0-9a-f]+)/.exec(h)![1]!, 16);
  for (const m of h.matchAll(/^\s+LOAD\s+0x([0-9a-f]+)\s+0x([0-9a-f]+)\s+0x[0-9a-f]+\s+0x([0-9a-f]+)/gm)) {
    const [off, vaddr, filesz] = [m[1], m[2], m[3]].map((x) => parseInt(x!, 16)) as [number, number, number];
    if (entry >= vaddr && entry < vaddr + filesz) return entry - vaddr + off;
  }
  throw new Error(`no PT_LOAD holds the entry of ${file}`);
}

test('entryFileOffset agrees with readelf on real executables', () => {
  for (const file of [process.execPath, fs.realpathSync('/usr/bin/true')]) {
    const head = Buffer.alloc(4096);
    const fd = fs.openSync(file, 'r');
    fs.readSync(fd, head, 0, head.length, 0);
    fs.closeSync(fd);
    assert.equal(entryFileOffset(head), readelfEntryOffset(file), file);
  }
});

test('entryFileOffset: not an ELF64 little-endian file → undefined', () => {
  assert.equal(entryFileOffset(Buffer.from('#!/bin/sh\n'.padEnd(128))), undefined);
});

test('fetchReadFileBytes: the file bytes with the x86 int3 first match; 0 and other values do not', () => {
  const file = 0xff8300000002b8c3n;
  assert.equal(fetchReadFileBytes('0xff8300000002b8cc', file, 1), true);
  assert.equal(fetchReadFileBytes('0xff8300000002b8c3', file, 1), true);
  assert.equal(fetchReadFileBytes('0x0', file, 1), false);
  assert.equal(fetchReadFileBytes('0xff8300000002b7cc', file, 1), false);
  assert.equal(fetchReadFileBytes('(fault)', file, 1), false);
});

test('fileOffsetFetchRejection names the measurement only when the fetch was measured broken', () => {
  setFileOffsetFetchVerdict(undefined);
  assert.equal(fileOffsetFetchRejection(), undefined);
  setFileOffsetFetchVerdict({ works: true, binary: '/usr/bin/true', offset: 0x2b80, read: '0xcc', expected: '0xc3' });
  assert.equal(fileOffsetFetchRejection(), undefined);
  setFileOffsetFetchVerdict({ works: false, binary: '/usr/bin/true', offset: 0x2b80, read: '0x0', expected: '0xff8300000002b8c3' });
  assert.match(fileOffsetFetchRejection()!, /@\+ file-offset fetch does not read the probed file.*read 0x0 at file offset 0x2b80/);
  setFileOffsetFetchVerdict(undefined);
});
