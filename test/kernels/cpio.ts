/**
 * A writer of the kernel's initramfs format: cpio "newc" (magic 070701), the format the kernel
 * unpacks into its rootfs at boot (Documentation/driver-api/early-userspace/buffer-format.rst).
 * Written here because the host has no cpio tool and the guest image is made of the host's own
 * files, listed explicitly: directories, regular files and symlinks, owned by root.
 */
import fs from 'node:fs';

/** One archive member. `data` for files, `target` for symlinks; paths are relative ("usr/bin/node"). */
export interface CpioEntry {
  path: string;
  kind: 'dir' | 'file' | 'symlink';
  /** Permission bits (e.g. 0o755). */
  mode: number;
  /** A file's bytes, or the host file to read them from. */
  data?: Buffer;
  source?: string;
  target?: string;
  mtime?: number;
}

const TYPE = { dir: 0o040000, file: 0o100000, symlink: 0o120000 } as const;

const hex8 = (n: number): string => n.toString(16).padStart(8, '0');

/** The 110-byte newc header plus the NUL-terminated name, padded to 4 bytes (pure). */
export function cpioHeader(name: string, fields: { ino: number; mode: number; nlink: number; mtime: number; size: number }): Buffer {
  const nameBytes = Buffer.from(`${name}\0`);
  const head =
    '070701' +
    [fields.ino, fields.mode, 0, 0, fields.nlink, fields.mtime, fields.size, 0, 0, 0, 0, nameBytes.length, 0].map(hex8).join('');
  const unpadded = 110 + nameBytes.length;
  return Buffer.concat([Buffer.from(head, 'ascii'), nameBytes, Buffer.alloc(pad4(unpadded))]);
}

const pad4 = (n: number): number => (4 - (n % 4)) % 4;

/**
 * Writes `entries` as one newc archive to `out` (a path), ending with the TRAILER!!! member.
 * Files with `source` are streamed from the host in chunks, never held whole in memory.
 * Returns the archive's size in bytes.
 */
export function writeCpio(out: string, entries: CpioEntry[]): number {
  const fd = fs.openSync(out, 'w');
  let written = 0;
  const put = (b: Buffer): void => {
    fs.writeSync(fd, b);
    written += b.length;
  };
  try {
    let ino = 1;
    for (const e of entries) {
      const body = e.kind === 'symlink' ? Buffer.from(e.target ?? '') : e.kind === 'file' && e.data ? e.data : undefined;
      const size = e.kind === 'dir' ? 0 : body ? body.length : fs.statSync(e.source!).size;
      put(cpioHeader(e.path, { ino: ino++, mode: TYPE[e.kind] | (e.mode & 0o7777), nlink: e.kind === 'dir' ? 2 : 1, mtime: e.mtime ?? 0, size }));
      if (body) put(body);
      else if (e.kind === 'file') {
        const src = fs.openSync(e.source!, 'r');
        try {
          const chunk = Buffer.allocUnsafe(1 << 20);
          let left = size;
          while (left > 0) {
            const n = fs.readSync(src, chunk, 0, Math.min(chunk.length, left), null);
            if (n <= 0) throw new Error(`${e.source}: shrank while archived`);
            put(chunk.subarray(0, n));
            left -= n;
          }
        } finally {
          fs.closeSync(src);
        }
      }
      put(Buffer.alloc(pad4(size)));
    }
    put(cpioHeader('TRAILER!!!', { ino: 0, mode: 0, nlink: 1, mtime: 0, size: 0 }));
  } finally {
    fs.closeSync(fd);
  }
  return written;
}

/** Parses a newc archive back into names, modes and bodies (pure; for tests). */
export function readCpio(buf: Buffer): Array<{ name: string; mode: number; body: Buffer }> {
  const out: Array<{ name: string; mode: number; body: Buffer }> = [];
  let off = 0;
  for (;;) {
    if (buf.toString('ascii', off, off + 6) !== '070701') throw new Error(`bad cpio magic at ${off}`);
    const field = (i: number): number => parseInt(buf.toString('ascii', off + 6 + i * 8, off + 14 + i * 8), 16);
    const mode = field(1);
    const size = field(6);
    const nameLen = field(11);
    const name = buf.toString('utf8', off + 110, off + 110 + nameLen - 1);
    off += 110 + nameLen;
    off += pad4(110 + nameLen);
    if (name === 'TRAILER!!!') return out;
    out.push({ name, mode, body: buf.subarray(off, off + size) });
    off += size + pad4(size);
  }
}
