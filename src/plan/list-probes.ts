import type { ProbeRole, ProbeSpec } from '../types';
import { LM_LIBNAME, LM_NAME, LM_NEXT, type LinkMapLayout } from './calibrate';

/** Options of the list-probe builders. */
export interface ListProbeOptions {
  /** Entries per probe: each costs two strings; the kernel drops events over one page silently. */
  sliceSize: number;
  /** Probes per list: sliceSize × slices is the largest list read completely. */
  slices: number;
}

/**
 * Fetch arguments reading entries [first, first+size) of a `struct link_map **` array whose base
 * pointer is at `+OFF(<mapExpr>)`, and the count at `+OFF+8(<mapExpr>)`. Every argument stays within
 * the kernel's 63-character fetch-expression limit because the depth is constant: array, entry,
 * field, string — never a walk along l_next.
 */
function listFetch(mapExpr: string, layout: LinkMapLayout, first: number, size: number, nameOnly = false): ProbeSpec['fetch'] {
  const off = layout.searchlist;
  const fetch: ProbeSpec['fetch'] = [{ name: 'n', arg: `+${off + 8}(${mapExpr}):u32` }];
  for (let k = 0; k < size; k++) {
    const entry = `+${8 * (first + k)}(+${off}(${mapExpr}))`;
    fetch.push({ name: `p${k}`, arg: `+0(+${LM_NAME}(${entry})):ustring` });
    if (nameOnly) continue;
    fetch.push({ name: `q${k}`, arg: `+0(+0(+${LM_LIBNAME}(${entry}))):ustring` });
    // The inode ld.so recorded for the file it mapped: tells a deleted or replaced name apart.
    if (layout.fileId !== undefined) fetch.push({ name: `i${k}`, arg: `+${layout.fileId + 8}(${entry}):u64` });
  }
  return fetch;
}

/**
 * Entries read with all their fields (name, requested name, inode); past them only the name. Every
 * fetch of an entry past the list's end dereferences garbage and faults — about 1.5 µs each on the
 * VM measured, against 0.1–0.3 µs for a good read — and most processes' lists are short, so the
 * probes far down the array are the ones that mostly fault: one fetch there instead of three. The
 * requested name of a deep entry (a dependency found on the search path) is its file name.
 */
export const FULL_LIST_ENTRIES = 4;

/** One probe per slice of a list, at the place and with the identity of `base`. */
function sliceProbes(
  base: ProbeSpec,
  role: ProbeRole,
  layout: LinkMapLayout,
  opts: ListProbeOptions,
  make: (first: number) => { fetch: ProbeSpec['fetch']; filter: string },
): ProbeSpec[] {
  return Array.from({ length: opts.slices }, (_, j) => {
    const first = j * opts.sliceSize;
    return {
      event: `${base.event}_list${j}`,
      kind: base.kind,
      path: base.path,
      offset: base.offset,
      role,
      symbol: base.symbol,
      symbolSource: `${base.symbolSource}; link_map.l_searchlist at ${layout.searchlist} (${layout.source})`,
      slice: { first, size: opts.sliceSize },
      ...make(first),
    };
  });
}

/**
 * Probes on libc's start-up hook (`__libc_early_init`, or `__libc_init_first` before glibc 2.32;
 * see libcInitProbes) reading the main map's search list: every object mapped at start-up, main
 * program first. `gotOffset` is the `@+` offset of libc's GOT slot for ld.so's `_rtld_global`,
 * whose first word is `_dl_ns[0]._ns_loaded`, the main map (the namespace array has led
 * `struct rtld_global` since glibc 2.3; the handler checks that entry 0 is the program's unnamed
 * map). The hook runs once per process, so the list is read once per process, where the old anchor
 * (`_dl_debug_state`) was hit on every dlopen and dlclose as well.
 *
 * Slices past the list's end still cost their fetches (a tracefs filter is evaluated after the
 * arguments are fetched, so it saves buffer space, not work) — which is why the slice count is
 * the capacity knob, and lists longer than it are completed from the process's memory.
 */
export function libcInitListProbes(initProbe: ProbeSpec, layout: LinkMapLayout, gotOffset: number, opts: ListProbeOptions): ProbeSpec[] {
  const mainMap = `+0(@+0x${gotOffset.toString(16)})`;
  return sliceProbes(initProbe, 'loader.list', layout, opts, (first) => ({
    // comm at probe time (the line's own comm is looked up when the line is read, maybe after an
    // exec): one slice carries it for the whole list.
    fetch: [...(first === 0 ? [{ name: 'comm', arg: '$comm' }] : []), ...listFetch(mainMap, layout, first, opts.sliceSize, first >= FULL_LIST_ENTRIES)],
    filter: first === 0 ? 'n > 0' : `n > ${first}`,
  }));
}

/** `+24(` × depth around `start`: the map `depth` steps down the l_next chain from `start`. */
function chainExpr(start: string, depth: number): string {
  return `${`+${LM_NEXT}(`.repeat(depth)}${start}${')'.repeat(depth)}`;
}

/**
 * One probe on dlopen's return walking the `l_next` chain after the returned map: ld.so appends
 * what it maps to the namespace list, the dlopen target first and then its new dependencies, so the
 * maps after a newly loaded target are exactly what this dlopen added (dependencies already loaded
 * sit earlier in the list). `depth` maps are read (`x<k>`: address, `p<k>`/`q<k>`/`i<k>`: l_name,
 * l_libname->name, inode); `more` is the address after the last (non-zero: more to read, from the
 * process's memory). The kernel's 63-character limit on one fetch argument caps depth at 7.
 *
 * Why addresses: a dereference of NULL is not reliably printed as `(fault)` — the value keeps what
 * the previous event left in the per-CPU buffer — so an entry counts only while every address
 * before it was non-zero. Why a walk and not the object's search list: the search list also holds
 * dependencies loaded long ago, and past its end the array reads heap garbage that can turn into
 * long strings (an event over one page is dropped whole); past the chain's end every read is NULL.
 */
export function dlopenWalkProbe(returnProbe: ProbeSpec, layout: LinkMapLayout | undefined, depth: number, role: ProbeRole = 'dlopen.list'): ProbeSpec {
  const d = Math.max(1, Math.min(7, depth));
  const fetch: ProbeSpec['fetch'] = [
    { name: 'handle', arg: '$retval:x64' },
    { name: 'self', arg: `+0(+${LM_NAME}($retval)):ustring` },
  ];
  for (let k = 1; k <= d; k++) {
    const e = chainExpr('$retval', k);
    fetch.push({ name: `x${k}`, arg: `${e}:x64` });
    fetch.push({ name: `p${k}`, arg: `+0(+${LM_NAME}(${e})):ustring` });
    fetch.push({ name: `q${k}`, arg: `+0(+0(+${LM_LIBNAME}(${e}))):ustring` });
    if (layout?.fileId !== undefined) fetch.push({ name: `i${k}`, arg: `+${layout.fileId + 8}(${e}):u64` });
  }
  fetch.push({ name: 'more', arg: `${chainExpr('$retval', d + 1)}:x64` });
  return {
    ...atReturnOf(returnProbe, '_walk', role, 'l_next chain after the returned map'),
    slice: { first: 0, size: d + 1 },
    fetch,
    // A failed dlopen, or a target with nothing after it: nothing new to read (the fetches are
    // paid either way; the filter saves formatting and parsing the junk of an empty walk).
    filter: 'handle != 0 && x1 != 0',
  };
}

/** A probe at the place of `returnProbe`, named after it, with its own role and what it reads. */
function atReturnOf(returnProbe: ProbeSpec, suffix: string, role: ProbeRole, reads: string): Pick<ProbeSpec, 'event' | 'kind' | 'path' | 'offset' | 'role' | 'symbol' | 'symbolSource'> {
  return {
    event: `${returnProbe.event}${suffix}`,
    kind: returnProbe.kind,
    path: returnProbe.path,
    offset: returnProbe.offset,
    role,
    ...(returnProbe.symbol !== undefined ? { symbol: returnProbe.symbol } : {}),
    symbolSource: `${returnProbe.symbolSource}; ${reads}`,
  };
}

/**
 * Where no public dlopen return names the opened object (ld.so's `_dl_open` serves libc's own
 * dlopens too): a probe on the same return carrying the returned map's name, requested name and
 * inode. Kept apart from the walk so that the common dlopen with nothing after it is one short
 * event, not a walk of faults printed as text.
 */
export function openSelfProbe(returnProbe: ProbeSpec, layout: LinkMapLayout | undefined, role: ProbeRole): ProbeSpec {
  return {
    ...atReturnOf(returnProbe, '_self', role, 'the returned map'),
    fetch: [
      { name: 'handle', arg: '$retval:x64' },
      { name: 'self', arg: `+0(+${LM_NAME}($retval)):ustring` },
      { name: 'selfreq', arg: `+0(+0(+${LM_LIBNAME}($retval))):ustring` },
      ...(layout?.fileId !== undefined ? [{ name: 'selfino', arg: `+${layout.fileId + 8}($retval):u64` }] : []),
      { name: 'comm', arg: '$comm' },
    ],
    filter: 'handle != 0',
  };
}

/**
 * `l_file_id` fetches (device and inode of the file ld.so mapped) for a probe whose first argument
 * or return value is a `struct link_map *` (`mapExpr`: `%di`, `$retval`), when calibration found it.
 */
export function fileIdFetch(mapExpr: string, layout: LinkMapLayout | undefined): ProbeSpec['fetch'] {
  if (layout?.fileId === undefined) return [];
  return [
    { name: 'dev', arg: `+${layout.fileId}(${mapExpr}):u64` },
    { name: 'ino', arg: `+${layout.fileId + 8}(${mapExpr}):u64` },
  ];
}
