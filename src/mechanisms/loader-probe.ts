import { fileIdFetch } from '../plan/list-probes';
import type { ProbeSpec } from '../types';
import { GlibcHandler } from './glibc-handler';
import { libcInitProbe } from './search-lists';
import type { CaptureMechanism } from './types';

const ROLES = ['loader.add', 'dlopen.entry', 'dlopen.return'] as const;

/**
 * glibc with debug symbols for its ld.so (e.g. Debian's libc6-dbg, found by build-id): a uprobe on
 * `_dl_add_to_namespace_list(new, nsid)`, which every object the loader maps passes through exactly
 * once, reading `l_name`/`l_libname->name` (and `l_file_id` when calibrated) in the kernel;
 * libc's start-up hook (once per process) ends start-up; dlopen entry/return add flags and
 * failures. `_dl_debug_state` — two hits per dlopen and two per dlclose — is probed only when libc
 * has no start-up hook.
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
    const init = libcInitProbe(set, ctx.resolver);
    return set.specs
      .filter((s) => (ROLES as readonly string[]).includes(s.role) || (!init && s.role === 'loader.state'))
      .map((s) => (s.role === 'loader.add' ? { ...s, fetch: [...s.fetch, ...extra.add] } : s.role === 'dlopen.return' ? { ...s, fetch: [...s.fetch, ...extra.ret] } : s))
      .concat(init ? [init] : []);
  },

  describe(set, ctx) {
    const add = set.specs.find((s) => s.role === 'loader.add');
    return (
      `complete: a uprobe on _dl_add_to_namespace_list (${add?.symbolSource ?? '?'}) sees every object this loader maps — DT_NEEDED, LD_PRELOAD, ` +
      'dlopen and dependencies, libc-internal dlopens — with the resolved path read in the kernel; ' +
      (libcInitProbe(set, ctx.resolver) ? `libc's ${libcInitProbe(set, ctx.resolver)!.symbol} ends start-up (nothing fires on dlclose)` : '_dl_debug_state (r_state) marks start-up and dlopen batches')
    );
  },

  createHandler(set, opts) {
    return new GlibcHandler('loader', opts, undefined, set.loaderNames, set.ldso);
  },
};

