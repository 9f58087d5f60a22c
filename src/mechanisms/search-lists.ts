import { dlopenWalkProbe, fileIdFetch, libcInitListProbes } from '../plan/list-probes';
import type { ElfSymbolResolver } from '../elf';
import { vaddrToFileOffset } from '../elf/offsets';
import type { LinkMapLayout } from '../plan/calibrate';
import type { ProbeSpec } from '../types';
import { GlibcHandler } from './glibc-handler';
import type { CaptureMechanism, LoaderSet, MechanismContext } from './types';
import { fileOffsetFetchRejection } from '../tracefs/fetch-selftest';

/**
 * The set's libc start-up hook: `__libc_early_init` (glibc ≥ 2.32); before that, libc's DT_INIT
 * (`_init`, which ld.so runs once when it initialises libc — libc is the first object initialised,
 * it depends on nothing but ld.so). The exported `__libc_init_first` of those versions is a
 * one-byte stub that is never called, so its spec only says which libc file to read DT_INIT from.
 * Undefined when neither exists (the mechanisms fall back to `_dl_debug_state`).
 */
export function libcInitProbe(set: LoaderSet, resolver?: ElfSymbolResolver): ProbeSpec | undefined {
  const hooks = set.specs.filter((s) => s.role === 'libc.init');
  const early = hooks.find((s) => s.symbol?.startsWith('__libc_early_init'));
  if (early) return early;
  const first = hooks.find((s) => s.symbol?.startsWith('__libc_init_first'));
  if (!first || !resolver) return undefined;
  try {
    const info = resolver.inspect(first.path);
    if (info.init === undefined) return undefined;
    return { ...first, offset: vaddrToFileOffset(info, info.init), symbol: '_init', symbolSource: `DT_INIT of ${first.path}` };
  } catch {
    return undefined;
  }
}

function ldsoOf(set: LoaderSet): string | undefined {
  return set.ldso ?? set.specs.find((s) => s.role === 'loader.add' || s.role === 'loader.state')?.path;
}

/**
 * `@+` offset of libc's GOT slot for `_rtld_global`, seen from the start-up hook (a DT_INIT hook
 * sits in the segment of the `__libc_init_first` stub it was found through).
 * @throws SoloadError SYMBOL_NOT_FOUND when libc has no such GOT slot
 */
export function rtldGlobalSlot(init: ProbeSpec, ctx: MechanismContext): number {
  return ctx.resolver.gotFetchOffset(init.path, init.symbol === '_init' ? '__libc_init_first' : init.symbol ?? '__libc_early_init', '_rtld_global');
}

/** The start-up list probes both list mechanisms put on libc's start-up hook. */
export function startupListProbes(init: ProbeSpec, layout: LinkMapLayout, ctx: MechanismContext): ProbeSpec[] {
  const { listSliceSize: sliceSize, listSlices: slices } = ctx.config.capture;
  return libcInitListProbes(init, layout, rtldGlobalSlot(init, ctx), { sliceSize, slices });
}

/**
 * glibc whose ld.so has no debug symbols. Start-up: libc's start-up hook (once per process, after
 * every start-up object is mapped) reads the main map's search list — every start-up object in load
 * order — through libc's GOT slot for `_rtld_global`, with the calibrated offset of the private
 * `l_searchlist` (plan/calibrate.ts). dlopen: at its return, the maps after the returned one on the
 * namespace list, which are what that dlopen added. Nothing is probed in ld.so and nothing fires on
 * dlclose. Misses libc-internal dlopens (NSS, iconv), which never return through the public dlopen.
 */
export const searchListsMechanism: CaptureMechanism = {
  name: 'search-lists',

  async applies(set, ctx) {
    const ldso = ldsoOf(set);
    if (!ldso) return { applies: false, reason: 'no ld.so in this directory' };
    // it reaches ld.so's state through libc's GOT with a @+ fetch, which some kernels accept but do not perform
    const noFetch = fileOffsetFetchRejection();
    if (noFetch) return { applies: false, reason: noFetch };
    const init = libcInitProbe(set, ctx.resolver);
    if (!init) return { applies: false, reason: 'libc.so.6 has neither __libc_early_init nor __libc_init_first (no start-up hook to read the list at)' };
    try {
      rtldGlobalSlot(init, ctx);
    } catch (err) {
      return { applies: false, reason: (err as Error).message };
    }
    try {
      const layout = await ctx.calibrate(ldso);
      return { applies: true, reason: `link_map.l_searchlist at offset ${layout.searchlist} (${layout.source}), read at ${init.symbol}` };
    } catch (err) {
      return { applies: false, reason: `link_map calibration failed: ${(err as Error).message}` };
    }
  },

  async plan(set, ctx) {
    const ldso = ldsoOf(set)!;
    const init = libcInitProbe(set, ctx.resolver)!;
    const layout = await ctx.calibrate(ldso);
    const out = startupListProbes(init, layout, ctx);
    for (const s of set.specs) {
      if (s.role === 'dlopen.entry') out.push(s);
      if (s.role === 'dlopen.return') {
        out.push({ ...s, fetch: [...s.fetch, ...fileIdFetch('$retval', layout)] });
        out.push(dlopenWalkProbe(s, layout, ctx.config.capture.dlopenWalkDepth));
      }
    }
    ctx.info(`${ldso}: no _dl_add_to_namespace_list symbol; using search-list probes (l_searchlist at ${layout.searchlist}, ${layout.source}; start-up list read at ${init.symbol})`);
    return out;
  },

  describe(set, ctx: MechanismContext) {
    const cap = ctx.config.capture.listSlices * ctx.config.capture.listSliceSize;
    return (
      `search lists (no debug symbols for _dl_add_to_namespace_list): start-up objects (${cap} per process in the kernel, more from the live process) are read once per process at libc's ${libcInitProbe(set, ctx.resolver)?.symbol ?? 'start-up hook'} ` +
      `from the calibrated link_map.l_searchlist of ${ldsoOf(set) ?? 'ld.so'}, and each dlopen's new dependencies from the namespace list at dlopen's return. ` +
      'Not seen: libc-internal dlopens (NSS, iconv) — install libc6-dbg / glibc-debuginfo for complete capture'
    );
  },

  createHandler(set, opts) {
    return new GlibcHandler('lists', opts, opts.listCapacity, set.loaderNames, ldsoOf(set));
  },
};
