import type { ProbeSpec } from '../types';

/**
 * The uprobe_events line for a probe (pure). `p:`/`r:` with group/event, `PATH:0xOFFSET`, then the
 * fetch arguments in order. The kernel splits the line on whitespace, so a path containing
 * whitespace cannot be probed by path: callers pass such files through /proc/self/fd or a
 * /proc/<pid>/root path without spaces, or refuse them (see buildProbeLine's throw).
 */
export function buildProbeLine(group: string, probe: ProbeSpec): string {
  if (/\s/.test(probe.path)) {
    throw new Error(`library path ${JSON.stringify(probe.path)} contains whitespace, which uprobe_events cannot express`);
  }
  const head = `${probe.kind === 'return' ? 'r' : 'p'}:${group}/${probe.event} ${probe.path}:0x${probe.offset.toString(16)}`;
  return [head, ...probe.fetch.map((f) => `${f.name}=${f.arg}`)].join(' ');
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
