import { fileIdFetch } from '../plan/list-probes';
import type { ProbeSpec } from '../types';
import { GlibcHandler } from './glibc-handler';
import type { CaptureMechanism } from './types';

const ROLES = ['loader.add', 'loader.state', 'dlopen.entry', 'dlopen.return'] as const;

/**
 * glibc with debug symbols for its ld.so (e.g. Debian's libc6-dbg, found by build-id): a uprobe on
 * `_dl_add_to_namespace_list(new, nsid)`, which every object the loader maps passes through exactly
 * once, reading `l_name`/`l_libname->name` (and `l_file_id` when calibrated) in the kernel;
 * `_dl_debug_state` marks start-up and dlopen batches; dlopen entry/return add flags and failures.
 */
export const loaderProbeMechanism: CaptureMechanism = {
  name: 'loader-probe',

  async applies(set) {
    const add = set.specs.find((s) => s.role === 'loader.add');
    return add
      ? { applies: true, reason: `_dl_add_to_namespace_list found (${add.symbolSource ?? 'symbol table'})` }
      : { applies: false, reason: set.ldso ? 'no _dl_add_to_namespace_list symbol: ld.so has no debug symbols (install libc6-dbg / glibc-debuginfo)' : 'no ld.so in this directory' };
  },

  async plan(set, ctx) {
    const ldso = set.specs.find((s) => s.role === 'loader.add')!.path;
    let extra: { add: ProbeSpec['fetch']; ret: ProbeSpec['fetch'] } = { add: [], ret: [] };
    try {
      const layout = await ctx.calibrate(ldso);
      extra = { add: fileIdFetch('%di', layout), ret: fileIdFetch('$retval', layout) };
      if (layout.fileId === undefined) ctx.info(`${ldso}: l_file_id not found by calibration; deleted/replaced files are told from their status-change time`);
    } catch (err) {
      ctx.info(`${ldso}: link_map calibration failed (${(err as Error).message}); file identities come from the file system instead of ld.so`);
    }
    return set.specs
      .filter((s) => (ROLES as readonly string[]).includes(s.role))
      .map((s) => (s.role === 'loader.add' ? { ...s, fetch: [...s.fetch, ...extra.add] } : s.role === 'dlopen.return' ? { ...s, fetch: [...s.fetch, ...extra.ret] } : s));
  },

  describe(set) {
    const add = set.specs.find((s) => s.role === 'loader.add');
    return (
      `complete: a uprobe on _dl_add_to_namespace_list (${add?.symbolSource ?? '?'}) sees every object this loader maps — DT_NEEDED, LD_PRELOAD, ` +
      'dlopen and dependencies, libc-internal dlopens — with the resolved path read in the kernel; _dl_debug_state (r_state) marks start-up and dlopen batches'
    );
  },

  createHandler(set, opts) {
    return new GlibcHandler('loader', opts, undefined, set.loaderNames);
  },
};

