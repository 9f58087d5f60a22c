import path from 'node:path';
import { LM_NAME, LM_NEXT, readMemoryString, type MemoryReader } from '../plan/calibrate';
import type { LoadMethod } from '../types';

/**
 * Where a loader keeps the head of its object list, in its own file: glibc's `_r_debug` (r_map at
 * +8), musl's `_dl_debug_addr` (a pointer to `struct debug`, head at +8). Both are the debugger
 * interface, exported, and the list entries share the public layout (name at +8, next at +24).
 */
export interface ListAnchor {
  /** Virtual address of the symbol relative to the loader's load base. */
  vaddr: number;
  /** musl: the symbol holds a pointer to the structure; glibc: it is the structure. */
  indirect: boolean;
}

/** One object of a live process's loader list. */
export interface ListedObject {
  name: string;
}

/** Reads the loader list of a process from its memory (pure over `read`); empty when unreadable. */
export function readLoaderList(read: MemoryReader, base: bigint, anchor: ListAnchor, max = 1024): ListedObject[] {
  let at = base + BigInt(anchor.vaddr);
  if (anchor.indirect) {
    const p = read(at, 8);
    if (!p) return [];
    at = p.readBigUInt64LE(0);
    if (at === 0n) return [];
  }
  const h = read(at + 8n, 8);
  let cur = h ? h.readBigUInt64LE(0) : 0n;
  const out: ListedObject[] = [];
  const seen = new Set<bigint>();
  while (cur !== 0n && out.length < max && !seen.has(cur)) {
    seen.add(cur);
    const namePtr = read(cur + BigInt(LM_NAME), 8)?.readBigUInt64LE(0) ?? 0n;
    out.push({ name: namePtr === 0n ? '' : readMemoryString(read, namePtr) ?? '' });
    const next = read(cur + BigInt(LM_NEXT), 8);
    if (!next) break;
    cur = next.readBigUInt64LE(0);
  }
  return out;
}

/** A recovered object with the method its place in the list implies. */
export interface RecoveredLoad {
  method: LoadMethod;
  path: string;
  requestedName?: string;
}

/** What classification needs besides the list. */
export interface ClassifyContext {
  /** The loader's own entry (glibc: PT_INTERP's name; musl: that or `libc.so`). */
  isLoader(name: string): boolean;
  /** DT_NEEDED names of an object (the program: `''`), undefined when unreadable. */
  neededOf(name: string): readonly string[] | undefined;
}

/**
 * Methods for a loader list read after the fact (pure). The list is in load order: the program,
 * LD_PRELOAD objects, DT_NEEDED objects breadth-first, then what was dlopened. An object is
 * `needed` when an earlier object lists its name in DT_NEEDED, `preload` when nothing needed has
 * come yet, `dlopen` afterwards (a dlopen's own dependencies are then `needed` of it). The
 * program (entry 0) and the vDSO (no path) are left out; the loader is `interpreter`.
 */
export function classifyRecovered(list: readonly ListedObject[], ctx: ClassifyContext): { loads: RecoveredLoad[]; startupComplete: boolean } {
  const needed = new Set<string>(ctx.neededOf('') ?? []);
  const wanted = new Set(needed);
  const loads: RecoveredLoad[] = [];
  let sawNeeded = false;
  for (let i = 1; i < list.length; i++) {
    const name = list[i]!.name;
    if (!name.includes('/')) continue;
    if (ctx.isLoader(name)) {
      loads.push({ method: 'interpreter', path: name });
      continue;
    }
    const base = path.basename(name);
    let method: LoadMethod;
    if (needed.has(base) || needed.has(name)) {
      method = 'needed';
      sawNeeded = true;
      wanted.delete(base);
    } else method = sawNeeded ? 'dlopen' : 'preload';
    for (const n of ctx.neededOf(name) ?? []) needed.add(n);
    loads.push({ method, path: name, requestedName: method === 'needed' ? base : name });
  }
  // Start-up is over once every DT_NEEDED name of the program is on the list.
  for (const n of [...wanted]) if (loads.some((l) => path.basename(l.path) === n || (l.method === 'interpreter' && ctx.isLoader(n)))) wanted.delete(n);
  return { loads, startupComplete: wanted.size === 0 && list.length > 1 };
}
