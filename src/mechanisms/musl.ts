import path from 'node:path';
import { LoaderTracker } from '../capture/loader';
import type { LoadEvent, ProbeRole, ProbeSpec, TraceRecord } from '../types';
import type { CaptureMechanism, HandlerOptions, HandlerStats, LoaderSet, MechanismHandler } from './types';

/**
 * musl's `struct dso` starts like glibc's public `struct link_map` — base, name, dynv, next, prev —
 * and `_dl_debug_addr` points at a gdb-compatible `struct debug { int ver; void *head; void (*bp)();
 * int state; void *base; }`. Both are musl's stable debugger interface, so nothing is calibrated.
 */
export const DSO_NAME = 8;
export const DSO_NEXT = 24;
/**
 * `struct dso **deps` and `size_t ndeps_direct`: private, but the struct's layout up to them has
 * not changed since musl 1.1.22 (2019; checked through 1.2.5) on LP64. For the program's own dso
 * at start-up, deps holds the preloads and the program's DT_NEEDED objects, in order — a flat
 * array, so it is read by index, not by walking the list.
 */
export const DSO_DEPS = 176;
export const DSO_NDEPS = 192;
const DEBUG_HEAD = 8;
/** Entries of the program's deps array per probe, and probes (8 × 8 = 64 direct dependencies). */
export const DEPS_SLICE = 8;
export const DEPS_SLICES = 8;

/** Fetches `n` (ndeps_direct) and `d<k>`, the names of deps[first .. first+DEPS_SLICE) of `dso`. */
export function depsFetch(dso: string, first: number): ProbeSpec['fetch'] {
  const fetch: ProbeSpec['fetch'] = [{ name: 'n', arg: `+${DSO_NDEPS}(${dso}):u64` }];
  for (let k = 0; k < DEPS_SLICE; k++) fetch.push({ name: `d${k}`, arg: `+0(+${DSO_NAME}(+${8 * (first + k)}(+${DSO_DEPS}(${dso})))):ustring` });
  return fetch;
}

/** Longest fetch argument the kernel accepts (MAX_ARGSTR_LEN, type suffix included). */
export const MAX_FETCH_ARG = 63;

/** `+24(` × depth around `start`: the dso `depth` steps down the list from `start`. */
export function chainExpr(start: string, depth: number): string {
  return `${`+${DSO_NEXT}(`.repeat(depth)}${start}${')'.repeat(depth)}`;
}

/**
 * Fetch arguments naming the dsos of musl's list from `start` on: `x<k>` is the k-th dso's address,
 * `p<k>` its name, `more` the address after the last one read (non-zero: the list goes on). The
 * list is a linked list, so each step nests one more dereference, and the kernel's 63-character
 * limit on a fetch argument sets how far one probe can see (7 entries from `_dl_debug_addr`, 9
 * from a register).
 *
 * Why the addresses: a fetch that dereferences NULL is not reliably printed as `(fault)` — the
 * event is assembled in a per-CPU buffer, and a value whose fetch failed keeps what the previous
 * event left there (strings included). `x<k>` is read through dso k-1, which is valid whenever
 * `x<k-1>` is non-zero, so the addresses are right up to and including the first zero; every
 * field after that is ignored.
 */
export function chainFetch(start: string): ProbeSpec['fetch'] {
  const fetch: ProbeSpec['fetch'] = [];
  for (let d = 0; ; d++) {
    const arg = `+0(+${DSO_NAME}(${chainExpr(start, d)})):ustring`;
    if (arg.length > MAX_FETCH_ARG) {
      fetch.push({ name: 'more', arg: `${chainExpr(start, d)}:x64` });
      return fetch;
    }
    fetch.push({ name: `x${d}`, arg: `${chainExpr(start, d)}:x64` });
    fetch.push({ name: `p${d}`, arg });
  }
}

/** True for the names musl gives its own dso (the loader is libc: PT_INTERP's name, or `libc.so`). */
export function isMuslLoaderName(name: string): boolean {
  const b = path.basename(name);
  return /^ld-musl-[^/]*\.so\.1$/.test(b) || /^libc\.musl-[^/]*\.so\.1$/.test(b) || b === 'libc.so';
}

function isMuslSet(set: LoaderSet): ProbeSpec | undefined {
  return set.specs.find((s) => s.role === 'loader.state' && s.event.startsWith('musl_state'));
}

/**
 * musl's loader (its libc): when the program starts (`__libc_start_main`, called once by crt1; else
 * `_dl_debug_state` with RT_CONSISTENT, which every dlopen calls too) the list from `debug.head`
 * holds the program, preloads and DT_NEEDED objects in load order; at dlopen's return
 * the new object and everything loaded after it follow its `next` pointers. One probe reads 7
 * start-up entries (the kernel's argument-length limit); longer lists are completed from the
 * process's memory while it lives, and counted when it is gone first.
 */
export const muslMechanism: CaptureMechanism = {
  name: 'musl-lists',

  async applies(set) {
    const state = isMuslSet(set);
    return state
      ? { applies: true, reason: `musl loader (${state.path}): _dl_debug_state and _dl_debug_addr exported` }
      : { applies: false, reason: 'not a musl loader' };
  },

  async plan(set) {
    // The start-up list is read where a process starts (once), not at _dl_debug_state (also on
    // every dlopen) when libc exports __libc_start_main.
    const state = set.specs.find((s) => s.role === 'libc.init' && s.event.startsWith('musl_start')) ?? isMuslSet(set)!;
    const stateArg = state.fetch.find((f) => f.name === 'state')!;
    const debugPtr = /@\+0x[0-9a-f]+/.exec(stateArg.arg)![0];
    const head = `+${DEBUG_HEAD}(${debugPtr})`;
    const out: ProbeSpec[] = [
      {
        ...state,
        event: state.event.replace(/^musl_(state|start)/, 'musl_list'),
        role: 'loader.list',
        fetch: [stateArg, { name: 'comm', arg: '$comm' }, ...chainFetch(head), ...depsFetch(head, 0)],
        filter: 'state == 0',
        slice: { first: 0, size: 7 },
      },
    ];
    for (let j = 1; j < DEPS_SLICES; j++) {
      out.push({
        ...state,
        event: state.event.replace(/^musl_(state|start)/, `musl_deps${j}`),
        role: 'loader.list',
        fetch: [stateArg, ...depsFetch(head, j * DEPS_SLICE)],
        filter: `state == 0 && n > ${j * DEPS_SLICE}`,
        slice: { first: j * DEPS_SLICE, size: DEPS_SLICE },
      });
    }
    for (const s of set.specs) {
      if (s.role === 'dlopen.entry') out.push(s);
      if (s.role === 'dlopen.return') {
        out.push(s);
        out.push({ ...s, event: s.event.replace(/return/, 'deps'), role: 'dlopen.list', fetch: [{ name: 'handle', arg: '$retval:x64' }, ...chainFetch('$retval')], filter: 'handle != 0', slice: { first: 0, size: 9 } });
      }
    }
    return out;
  },

  describe() {
    return (
      'musl: the program, LD_PRELOAD and DT_NEEDED objects from the list when the program starts (__libc_start_main), dlopen targets, flags and failures ' +
      "from dlopen's entry/return, and a dlopen's new dependencies from the list after it; lists longer than one probe reads are completed from the live process"
    );
  },

  createHandler(set, opts) {
    return new MuslHandler(set, opts);
  },
};

/** Processes whose program name / start-up list slices are kept at most (oldest dropped). */
const MAX_PROCESSES = 65536;

/** Records of musl's probes, as list slices for the shared {@link LoaderTracker} (mode `lists`). */
export class MuslHandler implements MechanismHandler {
  readonly tracker: LoaderTracker;
  private readonly opts: HandlerOptions;
  private readonly appNames = new Map<number, string>();
  private readonly parts = new Map<number, { chain?: string[]; more?: boolean; n: number; deps: Map<number, string[]> }>();
  private truncated = 0;

  constructor(_set: LoaderSet, opts: HandlerOptions) {
    this.opts = opts;
    this.tracker = new LoaderTracker({
      mode: 'lists',
      reportExecutable: opts.reportExecutable,
      neededOf: opts.neededOf,
      canonical: opts.canonical,
      initiallyLoaded: opts.initiallyLoaded,
      execOf: opts.execOf,
      ...(opts.dlopenMaxAgeMs !== undefined ? { dlopenMaxAgeMs: opts.dlopenMaxAgeMs } : {}),
      listCapacity: 64,
    });
  }

  handle(role: ProbeRole, rec: TraceRecord, _spec: ProbeSpec): LoadEvent[] {
    const t = this.tracker;
    const pid = rec.tgid ?? rec.tid;
    switch (role) {
      case 'loader.list': {
        const part = this.collect(pid, rec, _spec);
        if (!part) return [];
        const { chain, deps, more } = part;
        // The walk gives load order (program, preloads, dependencies breadth-first) as far as it
        // reaches; the program's deps array adds its direct dependencies past that.
        const names = [...chain, ...deps.filter((d) => !chain.includes(d))];
        if (names.length === 0) return [];
        if (this.appNames.size >= MAX_PROCESSES && !this.appNames.has(pid)) this.appNames.delete(this.appNames.keys().next().value as number);
        this.appNames.set(pid, names[0]!);
        const fields: Record<string, string | null> = { ...rec.fields, n: String(names.length) };
        names.forEach((n, k) => {
          fields[`p${k}`] = n;
          fields[`q${k}`] = n.includes('/') ? path.basename(n) : n;
        });
        const ldso = names.find((n) => isMuslLoaderName(n)) ?? '/lib/ld-musl.so.1';
        const out = t.onList({ ...rec, fields }, { first: 0, size: names.length }, ldso);
        if (more && out.length > 0) {
          this.truncated++;
          const rest = this.opts.recoverList?.(pid, chain.length) ?? [];
          for (const ev of rest) if (ev.path && t.noteKnown(pid, ev.path)) out.push(ev);
        }
        return out;
      }
      case 'dlopen.entry':
        t.onDlopenEntry(rec);
        return [];
      case 'dlopen.return': {
        // dlopen(NULL) hands back the program's own dso, which musl names like the program.
        if (rec.fields.path !== undefined && rec.fields.path === this.appNames.get(pid) && t.dlopen.peek(rec.tid)?.name === null) {
          t.dlopen.onReturn(rec, rec.event);
          return [];
        }
        const ev = t.onDlopenReturn(rec, rec.event);
        return ev ? [ev] : [];
      }
      case 'dlopen.list': {
        const { synth, names, more } = listRecord(rec);
        if (more) this.truncated++;
        return names.length > 1 ? t.onDlopenList({ ...synth, fields: { ...synth.fields, self: names[0]! } }, { first: 0, size: names.length }) : [];
      }
      default:
        return [];
    }
  }

  /**
   * Gathers one start-up hit's records (the list walk plus its deps slices; slices past the
   * array's length are filtered out in the kernel). Returns the whole once every slice is in.
   */
  private collect(pid: number, rec: TraceRecord, spec: ProbeSpec): { chain: string[]; deps: string[]; more: boolean } | undefined {
    const first = spec.slice?.first ?? 0;
    // Probes on one address fire in no promised order (the kernel runs the newest consumer
    // first): slices are gathered whatever comes first, and the walk may come last.
    const n0 = Number(rec.fields.n ?? 0);
    let st = this.parts.get(pid);
    if (!st || st.n !== n0) {
      st = { n: n0, deps: new Map() };
      if (this.parts.size >= MAX_PROCESSES) this.parts.delete(this.parts.keys().next().value as number);
      this.parts.set(pid, st);
    }
    if (first === 0) {
      const { names, more } = listRecord(rec);
      st.chain = names;
      st.more = more;
    }
    st.deps.set(first, depNames(rec, first, st.n));
    if (!st.chain) return undefined;
    const n = Number.isFinite(st.n) ? Math.min(st.n, DEPS_SLICE * DEPS_SLICES) : 0;
    for (let f = 0; f < n; f += DEPS_SLICE) if (!st.deps.has(f)) return undefined;
    this.parts.delete(pid);
    const deps: string[] = [];
    for (let f = 0; f < Math.max(n, 1); f += DEPS_SLICE) deps.push(...(st.deps.get(f) ?? []));
    return { chain: st.chain, deps: deps.slice(0, n), more: st.more ?? false };
  }

  onExec(pid: number): void {
    this.parts.delete(pid);
    this.appNames.delete(pid);
    this.tracker.onExec(pid);
  }

  adopt(pid: number, loaded: readonly string[], startupDone: boolean): void {
    this.tracker.adopt(pid, loaded, startupDone);
  }

  onFork(parent: number, child: number): void {
    this.tracker.onFork(parent, child);
  }

  onExit(pid: number): LoadEvent[] {
    this.parts.delete(pid);
    this.appNames.delete(pid);
    return this.tracker.onExit(pid);
  }

  onThreadGone(tid: number): LoadEvent[] {
    return this.tracker.onThreadGone(tid);
  }

  expire(nowNs: bigint): LoadEvent[] {
    return this.tracker.expire(nowNs);
  }

  sizes(): Record<string, number> {
    return { ...this.tracker.sizes(), appNames: this.appNames.size, listParts: this.parts.size };
  }

  stats(): HandlerStats {
    return { ...this.tracker.stats, listTruncated: this.truncated, tracked: this.tracker.tracked };
  }
}

/**
 * Names `d<k>` of the deps slice starting at `first`: only indexes below `n` (ndeps_direct, read
 * from the program's own dso, always valid); past it the slots hold stale bytes, not faults.
 */
function depNames(rec: TraceRecord, first: number, n: number): string[] {
  const out: string[] = [];
  for (let k = 0; k < DEPS_SLICE && first + k < n; k++) {
    const v = rec.fields[`d${k}`];
    if (v === undefined || v === null) break;
    out.push(v);
  }
  return out;
}

/**
 * The entries of a chain record up to the first zero address (see chainFetch), as the
 * `n`/`p<k>`/`q<k>` fields list slices carry. musl names a library found on its search path
 * `<dir>/<requested name>`, so the basename stands for the requested (DT_NEEDED) name.
 */
export function listRecord(rec: TraceRecord): { synth: TraceRecord; names: string[]; more: boolean } {
  const names: string[] = [];
  let k = 0;
  for (; ; k++) {
    const v = rec.fields[`p${k}`];
    if (v === undefined) break;
    const x = rec.fields[`x${k}`];
    if (x !== undefined && (x === null || isZero(x))) break;
    if (v === null) break;
    names.push(v);
  }
  const fields: Record<string, string | null> = { ...rec.fields, n: String(names.length) };
  names.forEach((n, i) => {
    fields[`q${i}`] = n.includes('/') ? path.basename(n) : n;
  });
  // `more` is read through the last dso walked: meaningful only when the walk reached the end of
  // the probe's reach without meeting a zero address.
  const m = rec.fields.more;
  const complete = rec.fields[`p${names.length}`] === undefined;
  const more = complete && names.length > 0 && m !== undefined && m !== null && !isZero(m);
  return { synth: { ...rec, fields }, names, more };
}

/** An address fetched as `x64` that is NULL. */
export function isZero(v: string): boolean {
  return /^(0x)?0+$/.test(v);
}
