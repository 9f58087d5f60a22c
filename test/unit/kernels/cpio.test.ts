import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { test } from 'node:test';
import { cpioHeader, readCpio, writeCpio } from '../../kernels/cpio';
import { lddPaths } from '../../kernels/image';

test('cpioHeader: newc magic, hex fields, name NUL-terminated and padded to 4 bytes', () => {
  const h = cpioHeader('usr', { ino: 1, mode: 0o040755, nlink: 2, mtime: 0, size: 0 });
  assert.equal(h.toString('ascii', 0, 6), '070701');
  assert.equal(h.toString('ascii', 6, 14), '00000001');
  assert.equal(h.toString('ascii', 14, 22), (0o040755).toString(16).padStart(8, '0'));
  assert.equal(h.length % 4, 0);
  assert.equal(h.toString('utf8', 110, 113), 'usr');
  assert.equal(h[113], 0);
});

test('writeCpio → readCpio round trip: dirs, files from bytes and from host files, symlinks, trailer', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cpio-'));
  const src = path.join(dir, 'src.bin');
  fs.writeFileSync(src, Buffer.from('hello from a host file, 31 byte'));
  const out = path.join(dir, 'a.cpio');
  const size = writeCpio(out, [
    { path: 'usr', kind: 'dir', mode: 0o755 },
    { path: 'usr/bin', kind: 'dir', mode: 0o755 },
    { path: 'usr/bin/x', kind: 'file', mode: 0o755, data: Buffer.from('abc') },
    { path: 'usr/bin/y', kind: 'file', mode: 0o644, source: src },
    { path: 'bin', kind: 'symlink', mode: 0o777, target: 'usr/bin' },
  ]);
  const buf = fs.readFileSync(out);
  assert.equal(size, buf.length);
  const got = readCpio(buf);
  assert.deepEqual(got.map((e) => e.name), ['usr', 'usr/bin', 'usr/bin/x', 'usr/bin/y', 'bin']);
  assert.equal(got[2]!.body.toString(), 'abc');
  assert.equal(got[2]!.mode, 0o100755);
  assert.equal(got[3]!.body.toString(), 'hello from a host file, 31 byte');
  assert.equal(got[4]!.mode, 0o120777);
  assert.equal(got[4]!.body.toString(), 'usr/bin');
  fs.rmSync(dir, { recursive: true, force: true });
});

test('lddPaths: resolved libraries and the interpreter line, not the vdso', () => {
  const out = [
    '\tlinux-vdso.so.1 (0x00007ffd)',
    '\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f)',
    '\tlibmissing.so => not found',
    '\t/lib64/ld-linux-x86-64.so.2 (0x00007f)',
  ].join('\n');
  assert.deepEqual(lddPaths(out), ['/lib/x86_64-linux-gnu/libc.so.6', '/lib64/ld-linux-x86-64.so.2']);
});
