import { ErrorCodes, SoloadError } from '../errors';
import type { ProbeSpec } from '../types';

/**
 * The uprobe_events line for a probe (pure). `p:`/`r:` with group/event, `PATH:0xOFFSET`, then the
 * fetch arguments in order. The kernel splits the line on whitespace, so a file whose path holds
 * whitespace is named by `alias` (a symlink without whitespace: uprobes attach to the inode the
 * path resolves to, so any path to the same file places the same probe; see probeAliases).
 */
export function buildProbeLine(group: string, probe: ProbeSpec, alias?: string): string {
  const file = alias ?? probe.path;
  if (/\s/.test(file)) {
    throw new SoloadError(
      ErrorCodes.PATH_NOT_PROBEABLE,
      `library path ${JSON.stringify(probe.path)} contains whitespace, which uprobe_events cannot express, and no alias was made for it`,
      { path: probe.path },
    );
  }
  const head = `${probe.kind === 'return' ? 'r' : 'p'}:${group}/${probe.event} ${file}:0x${probe.offset.toString(16)}`;
  return [head, ...probe.fetch.map((f) => `${f.name}=${f.arg}`)].join(' ');
}

/**
 * Symlink names (in `aliasDir`) for the probed files whose paths uprobe_events cannot carry
 * (whitespace), numbered in order of first appearance so `soload probes` prints what `run` writes
 * (pure).
 */
export function probeAliases(specs: readonly ProbeSpec[], aliasDir: string, firstIndex = 0): Map<string, string> {
  const out = new Map<string, string>();
  for (const s of specs) {
    if (!/\s/.test(s.path) || out.has(s.path)) continue;
    const base = s.path.slice(s.path.lastIndexOf('/') + 1).replace(/[^A-Za-z0-9._+-]/g, '_');
    out.set(s.path, `${aliasDir}/${firstIndex + out.size}-${base}`);
  }
  return out;
}

/** The line that deletes a probe. */
export function buildRemoveLine(group: string, event: string): string {
  return `-:${group}/${event}`;
}

/** One parsed line of uprobe_events / dynamic_events as the kernel lists it. */
export interface ListedProbe {
  type: string;
  group: string;
  event: string;
  rest: string;
}

/** Parses the kernel's listing of uprobe_events (e.g. `p:soload_12/dlopen_entry /lib/...:0x... a=...`). */
export function parseProbeListing(text: string): ListedProbe[] {
  const out: ListedProbe[] = [];
  for (const line of text.split('\n')) {
    const m = /^([a-z]):([^/\s]+)\/(\S+)\s*(.*)$/.exec(line);
    if (m) out.push({ type: m[1]!, group: m[2]!, event: m[3]!, rest: m[4]! });
  }
  return out;
}
