import { dlopenWalkProbe, fileIdFetch, openSelfProbe } from '../plan/list-probes';
import { GlibcHandler } from './glibc-handler';
import { libcInitProbe, rtldGlobalSlot, startupListProbes } from './search-lists';
import type { CaptureMechanism, LoaderSet, MechanismContext } from './types';
import { fileOffsetFetchRejection } from '../tracefs/fetch-selftest';

function openProbe(set: LoaderSet) {
  return set.specs.find((s) => s.role === 'loader.open');
}

/**
 * glibc with debug symbols for its ld.so, at one trap per process start instead of one per object:
 * the start-up list is read at libc's start-up hook (as search-lists does), and every dlopen —
 * public, dlmopen, and libc's own (NSS, iconv, libgcc_s), which all go through ld.so's internal
 * `_dl_open` — at `_dl_open`'s return, from the returned map and the maps after it on the
 * namespace list. What it does not see that the per-object probe does: objects of a start-up that
 * fails before libc's hook, and objects a failing dlopen mapped and unmapped again.
 */
export const loaderListsMechanism: CaptureMechanism = {
  name: 'loader-lists',

  async applies(set, ctx) {
    const open = openProbe(set);
    if (!open) return { applies: false, reason: set.ldso ? 'no _dl_open symbol: ld.so has no debug symbols (install libc6-dbg / glibc-debuginfo)' : 'no ld.so in this directory' };
    if (ctx.config.capture.perObjectProbe) return { applies: false, reason: 'capture.perObjectProbe is set' };
    // it reaches ld.so's state through libc's GOT with a @+ fetch, which some kernels accept but do not perform
    const noFetch = fileOffsetFetchRejection();
    if (noFetch) return { applies: false, reason: noFetch };
    const init = libcInitProbe(set, ctx.resolver);
    if (!init) return { applies: false, reason: 'libc.so.6 has no start-up hook (__libc_early_init or DT_INIT)' };
    try {
      rtldGlobalSlot(init, ctx);
      const layout = await ctx.calibrate(set.ldso ?? open.path);
      return { applies: true, reason: `_dl_open found (${open.symbolSource ?? 'symbol table'}); link_map.l_searchlist at ${layout.searchlist} (${layout.source}), read at ${init.symbol}` };
    } catch (err) {
      return { applies: false, reason: (err as Error).message };
    }
  },

  async plan(set, ctx) {
    const open = openProbe(set)!;
    const init = libcInitProbe(set, ctx.resolver)!;
    const layout = await ctx.calibrate(set.ldso ?? open.path);
    const out = startupListProbes(init, layout, ctx);
    for (const s of set.specs) {
      if (s.role === 'dlopen.entry') out.push(s);
      if (s.role === 'dlopen.return') out.push({ ...s, fetch: [...s.fetch, ...fileIdFetch('$retval', layout)] });
    }
    out.push(openSelfProbe(open, layout, 'loader.open'), dlopenWalkProbe(open, layout, ctx.config.capture.dlopenWalkDepth, 'loader.open'));
    // What a dlclose really unloads (one hit per object unmapped), so its next dlopen is reported.
    const unmap = set.specs.find((s) => s.role === 'loader.unmap');
    if (unmap) out.push(unmap);
    return out;
  },

  describe(set: LoaderSet, ctx: MechanismContext) {
    const cap = ctx.config.capture.listSlices * ctx.config.capture.listSliceSize;
    return (
      `complete at one trap per process start: start-up objects (${cap} per process in the kernel, more from the live process) read at libc's ${libcInitProbe(set, ctx.resolver)?.symbol ?? 'start-up hook'}, ` +
      "every dlopen (public, dlmopen, libc's own NSS/iconv loads) at ld.so's _dl_open return with the objects it added; flags and failures from dlopen entry/return. " +
      'Not seen: objects of a start-up that fails before libc initialises, objects a failing dlopen mapped and unmapped (capture.perObjectProbe traps every object instead)'
    );
  },

  createHandler(set, opts) {
    return new GlibcHandler('lists', opts, opts.listCapacity, set.loaderNames, set.ldso);
  },
};
