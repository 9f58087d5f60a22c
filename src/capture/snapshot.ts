import path from 'node:path';
import type { ProcReader } from '../host/proc-reader';
import type { LoadEvent, LoadMethod } from '../types';

/**
 * What the snapshot needs from the ELF layer: the dynamic section and PT_INTERP only, read the way
 * ld.so reads them (a few small reads per file). Parsing every mapped object whole — symbol tables
 * included — for thousands of processes' libraries took seconds and a hundred-odd MB of heap at
 * start-up.
 */
export interface ElfFacts {
  dynamicInfo(file: string): { needed: readonly string[]; soname?: string; interp?: string };
}

/**
 * Classifies the objects a running process has mapped (pure but for `elf`): the executable, its
 * interpreter, the preloads (`LD_PRELOAD` of its environment and its root's `/etc/ld.so.preload`,
 * by path or by name) and their DT_NEEDED closure, the DT_NEEDED closure of the executable
 * (`needed`), and the rest: objects nothing at start-up asked for, so `dlopen` (their own
 * dependencies are `needed`, as for a live dlopen). `unknown` is left for a process whose
 * executable cannot be read (then nothing can be told apart).
 */
export function classifyMappings(
  exe: string | undefined,
  mapped: string[],
  elf: ElfFacts,
  readable: (p: string) => string,
  preloads: readonly string[] = [],
): Map<string, LoadMethod> {
  const out = new Map<string, LoadMethod>();
  const facts = new Map<string, { needed: readonly string[]; soname?: string; interp?: string } | undefined>();
  const info = (p: string) => {
    if (!facts.has(p)) {
      try {
        facts.set(p, elf.dynamicInfo(readable(p)));
      } catch {
        facts.set(p, undefined);
      }
    }
    return facts.get(p);
  };
  const byName = new Map<string, string>();
  for (const p of mapped) {
    byName.set(path.basename(p), p);
    const so = info(p)?.soname;
    if (so && !byName.has(so)) byName.set(so, p);
  }
  const interp = exe ? info(exe)?.interp : undefined;
  const exeKnown = exe !== undefined && info(exe) !== undefined;
  const closureOf = (roots: string[], into: Set<string>): void => {
    const queue = [...roots];
    while (queue.length) {
      const cur = queue.shift()!;
      for (const n of info(cur)?.needed ?? []) {
        const hit = byName.get(n) ?? byName.get(path.basename(n));
        if (hit && !into.has(hit)) {
          into.add(hit);
          queue.push(hit);
        }
      }
    }
  };
  const preloaded = new Set<string>();
  for (const want of preloads) {
    const hit = mapped.find((p) => p === want) ?? byName.get(path.basename(want));
    if (hit) preloaded.add(hit);
  }
  const closure = new Set<string>();
  closureOf(exe ? [exe, ...preloaded] : [...preloaded], closure);
  const opened = mapped.filter((p) => p !== exe && !closure.has(p) && !preloaded.has(p));
  // What a dlopen target pulled in is `needed`, like the live capture's loaded_by records.
  const pulled = new Set<string>();
  closureOf(opened, pulled);
  for (const p of mapped) {
    if (exe && p === exe) out.set(p, 'executable');
    else if ((interp && path.basename(interp) === path.basename(p)) || /^ld-(linux|musl)/.test(path.basename(p))) out.set(p, 'interpreter');
    else if (preloaded.has(p)) out.set(p, 'preload');
    else if (closure.has(p) || pulled.has(p)) out.set(p, 'needed');
    else out.set(p, exeKnown ? 'dlopen' : 'unknown');
  }
  return out;
}

/** One LoadEvent per executable file mapping of every running process (`snapshot: true`). */
export function snapshotLoads(proc: ProcReader, elf: ElfFacts, opts: { reportExecutable: boolean; nowNs: bigint; skipPids?: Set<number> }): LoadEvent[] {
  const events: LoadEvent[] = [];
  for (const pid of proc.listPids()) {
    if (opts.skipPids?.has(pid)) continue;
    const mapped = proc.executableMappings(pid);
    if (mapped.length === 0) continue; // kernel threads
    const exe = proc.exe(pid);
    const comm = proc.commandOf(pid).comm ?? '';
    const readable = (p: string) => path.join(proc.root, String(pid), 'root', p);
    for (const [file, method] of classifyMappings(exe, mapped, elf, readable, proc.preloadsOf(pid))) {
      if (method === 'executable' && !opts.reportExecutable) continue;
      events.push({ timestampNs: opts.nowNs, pid, tid: pid, comm, method, path: file, result: 'ok', probe: 'snapshot', snapshot: true });
    }
  }
  return events;
}
