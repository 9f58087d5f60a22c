import { GlibcHandler } from './glibc-handler';
import { libcInitProbe } from './search-lists';
import type { CaptureMechanism } from './types';

const ROLES = ['dlopen.entry', 'dlopen.return'] as const;

/**
 * The last resort: dlopen entry/return probes in libc (or libdl before glibc 2.34) report what a
 * program dlopens, with flags and failures; libc's start-up hook (or `_dl_debug_state`) adds the interpreter.
 * DT_NEEDED and LD_PRELOAD objects are not seen.
 */
export const dlopenOnlyMechanism: CaptureMechanism = {
  name: 'dlopen-only',

  async applies(set) {
    const ret = set.specs.find((s) => s.role === 'dlopen.return');
    return ret
      ? { applies: true, reason: `dlopen found in ${ret.path} (${ret.symbolSource ?? 'symbol table'})` }
      : { applies: false, reason: 'no dlopen symbol in this directory' };
  },

  async plan(set, ctx) {
    // The interpreter comes from libc's start-up hook (once per process) where libc has one.
    const init = libcInitProbe(set, ctx.resolver);
    return set.specs.filter((s) => (ROLES as readonly string[]).includes(s.role) || (!init && s.role === 'loader.state'));
  },

  describe() {
    return 'INCOMPLETE: dlopen() calls only (requested names, flags, failures); DT_NEEDED and LD_PRELOAD objects of processes using this loader are not reported';
  },

  createHandler(set, opts) {
    return new GlibcHandler('dlopen', opts, undefined, set.loaderNames, set.ldso);
  },
};
