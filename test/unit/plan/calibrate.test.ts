import { test } from 'node:test';
import assert from 'node:assert/strict';
import { findFileIdOffset, readMemoryString, type MemoryReader } from '../../../src/plan/calibrate';

/** Sparse little-endian memory. */
function memory(words: Record<string, bigint>, strings: Record<string, string> = {}): MemoryReader {
  const bytes = new Map<bigint, number>();
  for (const [a, v] of Object.entries(words)) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(v);
    b.forEach((x, i) => bytes.set(BigInt(a) + BigInt(i), x));
  }
  for (const [a, s] of Object.entries(strings)) Buffer.from(s + '\0').forEach((x, i) => bytes.set(BigInt(a) + BigInt(i), x));
  return (a, n) => {
    const out = Buffer.alloc(n);
    for (let i = 0; i < n; i++) out[i] = bytes.get(a + BigInt(i)) ?? 0;
    return out;
  };
}

test('l_file_id is found where a library map holds its (dev, inode), agreeing across objects', () => {
  const DEV = 0xfe00n;
  const read = memory({
    // libc's map at 0x1000: a decoy inode alone at 0x100, the pair at 0x3c8
    [String(0x1000 + 0x100)]: 4242n,
    [String(0x1000 + 0x3c8)]: DEV,
    [String(0x1000 + 0x3d0)]: 4242n,
    // another library's map at 0x5000, the same offset
    [String(0x5000 + 0x3c8)]: DEV,
    [String(0x5000 + 0x3d0)]: 777n,
  });
  assert.equal(findFileIdOffset(read, [{ map: 0x1000n, dev: DEV, ino: 4242n }, { map: 0x5000n, dev: DEV, ino: 777n }]), 0x3c8);
  assert.equal(findFileIdOffset(read, [{ map: 0x1000n, dev: DEV, ino: 999n }]), undefined, 'no pair, no offset');
  const disagree = memory({ [String(0x1000 + 0x3c8)]: DEV, [String(0x1000 + 0x3d0)]: 1n, [String(0x5000 + 0x400)]: DEV, [String(0x5000 + 0x408)]: 2n });
  assert.equal(findFileIdOffset(disagree, [{ map: 0x1000n, dev: DEV, ino: 1n }, { map: 0x5000n, dev: DEV, ino: 2n }]), undefined, 'two answers: none trusted');
});

test('readMemoryString stops at NUL and crosses chunk boundaries', () => {
  const long = '/usr/lib/' + 'x'.repeat(600) + '.so';
  const read = memory({}, { 4096: long, 8192: 'libc.so.6' });
  assert.equal(readMemoryString(read, 4096n), long);
  assert.equal(readMemoryString(read, 8192n), 'libc.so.6');
  assert.equal(readMemoryString(read, 0n), undefined);
});

