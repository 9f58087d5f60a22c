import path from 'node:path';
import type { ProcReader } from '../enrich/proc-reader';
import type { LoadEvent, LoadMethod } from '../types';

/** What the snapshot needs from the ELF layer. */
export interface ElfFacts {
  inspect(file: string): { needed: readonly string[]; soname?: string; interpreter?: string };
}

/**
 * Classifies the objects a running process has mapped (pure but for `elf`): the executable, its
 * interpreter, the DT_NEEDED closure of the executable (`needed`), and the rest (`unknown`: a
 * preload or a dlopen, which /proc cannot tell apart after the fact).
 */
export function classifyMappings(exe: string | undefined, mapped: string[], elf: ElfFacts, readable: (p: string) => string): Map<string, LoadMethod> {
  const out = new Map<string, LoadMethod>();
  const facts = new Map<string, { needed: readonly string[]; soname?: string; interpreter?: string } | undefined>();
  const info = (p: string) => {
    if (!facts.has(p)) {
      try {
        facts.set(p, elf.inspect(readable(p)));
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
  const interp = exe ? info(exe)?.interpreter : undefined;
  const closure = new Set<string>();
  const queue = exe ? [exe] : [];
  while (queue.length) {
    const cur = queue.shift()!;
    for (const n of info(cur)?.needed ?? []) {
      const hit = byName.get(n) ?? byName.get(path.basename(n));
      if (hit && !closure.has(hit)) {
        closure.add(hit);
        queue.push(hit);
      }
    }
  }
  for (const p of mapped) {
    if (exe && p === exe) out.set(p, 'executable');
    else if ((interp && path.basename(interp) === path.basename(p)) || /^ld-(linux|musl)/.test(path.basename(p))) out.set(p, 'interpreter');
    else if (closure.has(p)) out.set(p, 'needed');
    else out.set(p, 'unknown');
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
    for (const [file, method] of classifyMappings(exe, mapped, elf, readable)) {
      if (method === 'executable' && !opts.reportExecutable) continue;
      events.push({ timestampNs: opts.nowNs, pid, tid: pid, comm, method, path: file, result: 'ok', probe: 'snapshot', snapshot: true });
    }
  }
  return events;
}
