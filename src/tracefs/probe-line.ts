import { ErrorCodes, SoloadError } from '../errors';
import type { ProbeSpec } from '../types';

/**
 * Paths written into uprobe_events as they are: characters the kernel's parser and every reader of
 * the listing take literally. Anything else — whitespace (the kernel splits the line on it), a
 * newline (a second definition), quotes, backslashes (soload's `\xhh` escapes of non-UTF-8 bytes
 * would be taken as text and name another file), `%`, non-ASCII — is probed through an alias.
 */
const PROBEABLE_PATH = /^\/[A-Za-z0-9._+\-/@~,=]*$/;

/** True when `path` (soload-escaped, see util/path-bytes.ts) can be written into uprobe_events verbatim. */
export function isProbeablePath(path: string): boolean {
  return PROBEABLE_PATH.test(path);
}

// Group and event names are soload's own; fetch arguments and filters come from its plans or a
// custom probe list. None may carry a line break or a control character into a control file.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/**
 * The uprobe_events line for a probe (pure). `p:`/`r:` with group/event, `PATH:0xOFFSET`, then the
 * fetch arguments in order. A file whose path is not {@link isProbeablePath} is named by `alias`
 * (a symlink with a plain name: uprobes attach to the inode the path resolves to, so any path to
 * the same file places the same probe; see probeAliases); without one it is refused.
 */
export function buildProbeLine(group: string, probe: ProbeSpec, alias?: string): string {
  const file = alias ?? probe.path;
  if (!isProbeablePath(file)) {
    throw new SoloadError(
      ErrorCodes.PATH_NOT_PROBEABLE,
      `library path ${JSON.stringify(probe.path)} holds characters uprobe_events cannot carry verbatim (whitespace, quotes, backslashes, control or non-ASCII bytes), and no alias was made for it`,
      { path: probe.path },
    );
  }
  if (!/^[A-Za-z0-9_]+$/.test(group) || !/^[A-Za-z0-9_]+$/.test(probe.event)) {
    throw new SoloadError(ErrorCodes.PROBE_INVALID, `probe name ${JSON.stringify(`${group}/${probe.event}`)} must be letters, digits and _`, { group, event: probe.event });
  }
  for (const f of probe.fetch) {
    if (CONTROL.test(f.name) || CONTROL.test(f.arg) || /\s/.test(f.name) || /\s/.test(f.arg)) {
      throw new SoloadError(ErrorCodes.PROBE_INVALID, `fetch argument ${JSON.stringify(`${f.name}=${f.arg}`)} of ${probe.event} holds whitespace or a control character`, { event: probe.event });
    }
  }
  const head = `${probe.kind === 'return' ? 'r' : 'p'}:${group}/${probe.event} ${file}:0x${probe.offset.toString(16)}`;
  return [head, ...probe.fetch.map((f) => `${f.name}=${f.arg}`)].join(' ');
}

/**
 * A tracefs filter expression checked before it is written: one line, no control characters (a
 * newline would end the write early and leave the rest to be parsed as something else).
 */
export function checkFilter(event: string, filter: string): string {
  if (CONTROL.test(filter)) {
    throw new SoloadError(ErrorCodes.PROBE_INVALID, `filter of ${event} holds a control character: ${JSON.stringify(filter)}`, { event });
  }
  return filter;
}

/**
 * Symlink names (in `aliasDir`) for the probed files whose paths uprobe_events cannot carry
 * (not {@link isProbeablePath}), numbered in order of first appearance so `soload probes` prints
 * what `run` writes (pure). The name keeps only the basename's plain characters.
 */
export function probeAliases(specs: readonly ProbeSpec[], aliasDir: string, firstIndex = 0): Map<string, string> {
  const out = new Map<string, string>();
  for (const s of specs) {
    if (isProbeablePath(s.path) || out.has(s.path)) continue;
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
