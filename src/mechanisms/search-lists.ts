import { RD_MAP } from '../plan/calibrate';
import { dlopenListProbes, fileIdFetch, startupListProbes } from '../plan/list-probes';
import { GlibcHandler } from './glibc-handler';
import type { CaptureMechanism, LoaderSet, MechanismContext } from './types';


function stateProbe(set: LoaderSet) {
  return set.specs.find((s) => s.role === 'loader.state');
}

/**
 * glibc whose ld.so has no debug symbols: the private offset of `l_searchlist` in
 * `struct link_map` is calibrated (plan/calibrate.ts); at RT_CONSISTENT the main map's search list
 * (every start-up object, in load order) is read in slices, and at dlopen's return the new object's
 * own search list (its dependencies). Misses libc-internal dlopens, which never return through the
 * public dlopen.
 */
export const searchListsMechanism: CaptureMechanism = {
  name: 'search-lists',

  async applies(set, ctx) {
    const state = stateProbe(set);
    if (!state) return { applies: false, reason: 'no _dl_debug_state probe on this loader' };
    try {
      const layout = await ctx.calibrate(state.path);
      return { applies: true, reason: `link_map.l_searchlist at offset ${layout.searchlist} (${layout.source})` };
    } catch (err) {
      return { applies: false, reason: `link_map calibration failed: ${(err as Error).message}` };
    }
  },

  async plan(set, ctx) {
    const state = stateProbe(set)!;
    const layout = await ctx.calibrate(state.path);
    const { listSliceSize: sliceSize, listSlices: slices, dlopenListSlices } = ctx.config.capture;
    const rMap = ctx.resolver.fetchOffset(state.path, state.symbol ?? '_dl_debug_state', '_r_debug') + RD_MAP;
    const out = [...startupListProbes(state, layout, rMap, { sliceSize, slices })];
    for (const s of set.specs) {
      if (s.role === 'dlopen.entry') out.push(s);
      if (s.role === 'dlopen.return') {
        out.push({ ...s, fetch: [...s.fetch, ...fileIdFetch('$retval', layout)] });
        out.push(...dlopenListProbes(s, layout, { sliceSize, slices: dlopenListSlices }));
      }
    }
    ctx.info(`${state.path}: no _dl_add_to_namespace_list symbol; using search-list probes (l_searchlist at ${layout.searchlist}, ${layout.source})`);
    return out;
  },

  describe(set, ctx: MechanismContext) {
    const cap = ctx.config.capture.listSlices * ctx.config.capture.listSliceSize;
    return (
      `search lists (no debug symbols for _dl_add_to_namespace_list): start-up objects (up to ${cap} per process) are read at RT_CONSISTENT ` +
      `and dlopen dependencies at dlopen's return, from the calibrated link_map.l_searchlist of ${stateProbe(set)?.path ?? 'ld.so'}. ` +
      'Not seen: libc-internal dlopens (NSS, iconv) — install libc6-dbg / glibc-debuginfo for complete capture'
    );
  },

  createHandler(set, opts) {
    return new GlibcHandler('lists', opts, opts.listCapacity, set.loaderNames);
  },
};
