import { ErrorCodes, SoloadError } from '../errors';
import type { ProbeRole, ProbeSpec } from '../types';
import { LM_LIBNAME, LM_NAME, type LinkMapLayout } from './calibrate';

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
function listFetch(mapExpr: string, layout: LinkMapLayout, first: number, size: number): ProbeSpec['fetch'] {
  const off = layout.searchlist;
  const fetch: ProbeSpec['fetch'] = [{ name: 'n', arg: `+${off + 8}(${mapExpr}):u32` }];
  for (let k = 0; k < size; k++) {
    const entry = `+${8 * (first + k)}(+${off}(${mapExpr}))`;
    fetch.push({ name: `p${k}`, arg: `+0(+${LM_NAME}(${entry})):ustring` });
    fetch.push({ name: `q${k}`, arg: `+0(+0(+${LM_LIBNAME}(${entry}))):ustring` });
    // The inode ld.so recorded for the file it mapped: tells a deleted or replaced name apart.
    if (layout.fileId !== undefined) fetch.push({ name: `i${k}`, arg: `+${layout.fileId + 8}(${entry}):u64` });
  }
  return fetch;
}

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
 * For an ld.so without `_dl_add_to_namespace_list` symbols: probes on `_dl_debug_state` that read
 * the main map's search list (every object mapped at start-up, main program first) when the loader
 * reaches RT_CONSISTENT. `stateProbe` is the planned `loader_state` probe (its `state` fetch names
 * `_r_debug.r_state` via `@+`); `rMapFetch` is the `@+` offset of `_r_debug.r_map`.
 */
export function startupListProbes(stateProbe: ProbeSpec, layout: LinkMapLayout, rMapFetch: number, opts: ListProbeOptions): ProbeSpec[] {
  const state = stateProbe.fetch.find((f) => f.name === 'state');
  if (!state) throw new SoloadError(ErrorCodes.PROBE_INVALID, `${stateProbe.event} has no state fetch argument (a loader_state probe must fetch _r_debug.r_state as "state")`);
  const mainMap = `@+0x${rMapFetch.toString(16)}`;
  return sliceProbes(stateProbe, 'loader.list', layout, opts, (first) => ({
    // comm at probe time: the line header's comm is looked up when the line is read, by which time
    // the process may have exec'd something else.
    fetch: [state, { name: 'comm', arg: '$comm' }, ...listFetch(mainMap, layout, first, opts.sliceSize)],
    // RT_ADD hits and slices past the end of the list are dropped in the kernel.
    filter: first === 0 ? 'state == 0' : `state == 0 && n > ${first}`,
  }));
}

/** Probes on dlopen's return reading the new object's own search list (itself, then its dependencies). */
export function dlopenListProbes(returnProbe: ProbeSpec, layout: LinkMapLayout, opts: ListProbeOptions): ProbeSpec[] {
  return sliceProbes(returnProbe, 'dlopen.list', layout, opts, (first) => ({
    fetch: [{ name: 'self', arg: `+0(+${LM_NAME}($retval)):ustring` }, ...listFetch('$retval', layout, first, opts.sliceSize)],
    filter: `n > ${first}`,
  }));
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
