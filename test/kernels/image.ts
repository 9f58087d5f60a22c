/**
 * The guest's root file system: an initramfs made of the host's own files at their own paths (the
 * guest runs the host's node, glibc, python3 and the checkout), so the recall corpus compiled on
 * the host runs unchanged in the guest and every path it prints is the host's. An initramfs, not a
 * disk: Debian's cloud kernels build virtio_blk and 9p as modules (or not at all), while the
 * initramfs unpacker is built in. Kernel modules the guest needs (overlay, for the
 * /etc/ld.so.preload scenario) are added per kernel, decompressed.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { writeCpio, type CpioEntry } from './cpio';

/** Collects host paths into archive entries, following symlinks and ELF dependencies. */
export class ImageBuilder {
  private readonly entries = new Map<string, CpioEntry>();
  private readonly elfDone = new Set<string>();

  /** Adds `p` (a host path) with its parent directories; a symlink brings its target too. */
  add(p: string): void {
    const abs = path.resolve(p);
    if (abs === '/') return;
    const rel = abs.slice(1);
    if (this.entries.has(rel)) return;
    // An ancestor that is a symlink (/lib -> usr/lib) is recorded as one; the path is placed under
    // the ancestor's real directory.
    const parent = path.dirname(abs);
    this.add(parent);
    const realParent = fs.realpathSync(parent);
    if (realParent !== parent) {
      this.add(path.join(realParent, path.basename(abs)));
      return;
    }
    const st = fs.lstatSync(abs);
    if (st.isSymbolicLink()) {
      const target = fs.readlinkSync(abs);
      this.entries.set(rel, { path: rel, kind: 'symlink', mode: 0o777, target });
      this.add(path.resolve(parent, target));
    } else if (st.isDirectory()) {
      this.entries.set(rel, { path: rel, kind: 'dir', mode: st.mode & 0o7777 });
    } else if (st.isFile()) {
      this.entries.set(rel, { path: rel, kind: 'file', mode: st.mode & 0o7777, source: abs });
    }
  }

  /** Adds an ELF file and everything `ldd` says it needs (recursively through ldd's closure). */
  addElf(p: string): void {
    this.add(p);
    const real = fs.realpathSync(p);
    if (this.elfDone.has(real)) return;
    this.elfDone.add(real);
    for (const dep of lddPaths(spawnSync('ldd', [real], { encoding: 'utf8' }).stdout ?? '')) this.add(dep);
  }

  /** Adds a directory tree; `skip` matches paths left out (with everything under them). */
  addTree(dir: string, skip?: RegExp, elf = false): void {
    if (!fs.existsSync(dir)) return;
    this.add(dir);
    const walk = (d: string): void => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (skip?.test(p)) continue;
        if (e.isDirectory()) {
          this.add(p);
          walk(p);
        } else if (elf && e.isFile() && /\.so(\.|$)/.test(e.name)) this.addElf(p);
        else this.add(p);
      }
    };
    walk(fs.realpathSync(dir));
  }

  /** Adds a file with the given bytes at `at` (a path in the guest), its parents as directories. */
  addData(at: string, data: Buffer | string, mode = 0o644): void {
    this.addDirs(path.dirname(at));
    const rel = at.replace(/^\/+/, '');
    this.entries.set(rel, { path: rel, kind: 'file', mode, data: Buffer.from(data) });
  }

  /** Adds a host file under another guest path. */
  addFileAs(source: string, at: string, mode = 0o644): void {
    this.addDirs(path.dirname(at));
    const rel = at.replace(/^\/+/, '');
    this.entries.set(rel, { path: rel, kind: 'file', mode, source });
  }

  /** Adds empty directories (and their parents) that need not exist on the host. */
  addDirs(...dirs: string[]): void {
    for (const d of dirs) {
      const parts = d.replace(/^\/+/, '').split('/').filter(Boolean);
      for (let i = 1; i <= parts.length; i++) {
        const rel = parts.slice(0, i).join('/');
        if (!this.entries.has(rel)) this.entries.set(rel, { path: rel, kind: 'dir', mode: 0o755 });
      }
    }
  }

  /** The entries, parents before children. */
  list(): CpioEntry[] {
    return [...this.entries.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  }

  /** Bytes the files will take. */
  size(): number {
    let n = 0;
    for (const e of this.entries.values()) n += e.data ? e.data.length : e.source ? fs.statSync(e.source).size : 0;
    return n;
  }

  write(out: string): number {
    return writeCpio(out, this.list());
  }
}

/** Absolute paths in `ldd` output: "name => /path (0x..)" and the interpreter line (pure). */
export function lddPaths(out: string): string[] {
  const paths: string[] = [];
  for (const line of out.split('\n')) {
    const m = /=>\s+(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(0x/.exec(line);
    if (m) paths.push(m[1]!);
  }
  return paths;
}
