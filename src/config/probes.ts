/**
 * Declarative probe definitions and the built-in ones soload ships for dlopen.
 *
 * A probe names a library (absolute path, soname such as `libc.so.6`, or a glob), a symbol (or an
 * explicit file offset for stripped libraries), entry or return, and the fetch arguments to record.
 * `role` tells the capture stage what the hits mean; user probes without a role are exported as
 * generic `soload.probe` records carrying their fields.
 */
import type { ProbeRole } from '../types';

/** One declarative probe as written in config. */
export interface ProbeConfig {
  /** Event name, unique in the list: [A-Za-z][A-Za-z0-9_]{0,31}. */
  name: string;
  /** Absolute path, soname (`libc.so.6`) or glob (`*libdl.so*`) matched against loaded libraries. */
  library: string;
  /** Symbol to probe, optionally versioned (`dlopen@@GLIBC_2.34`). Ignored when `offset` is set. */
  symbol?: string;
  /** Explicit file offset (e.g. "0x85500") for libraries without symbols. */
  offset?: string;
  kind: 'entry' | 'return';
  /** Attribute name → uprobe fetch argument (with type), e.g. `{ "name": "+0(%di):ustring" }`. */
  fetch: Record<string, string>;
  /** Capture role (see PROBE_ROLES); `custom` (default) exports the hits as generic records. */
  role?: ProbeRole;
  /** When false, a library or symbol that cannot be found is fatal instead of skipped. */
  optional?: boolean;
}

/** The roles soload's capture stage understands (declared with the data types). */
export { PROBE_ROLES } from '../types';

/** Registers holding the first two integer arguments, per Node's `process.arch`. */
const ARG_REGS: Record<string, [string, string]> = {
  x64: ['%di', '%si'],
  arm64: ['%x0', '%x1'],
  ia32: ['%ax', '%dx'],
  riscv64: ['%a0', '%a1'],
  ppc64: ['%r3', '%r4'],
  s390x: ['%r2', '%r3'],
};

/**
 * Built-in dlopen probes for an architecture.
 *
 * Why these fetch arguments: the seed document saw `(fault)` for the dlopen argument — uprobe
 * handlers read user memory without taking page faults, so a name in a not-yet-touched page of
 * .rodata cannot be read at entry. At return the value is glibc's `struct link_map *` for the new
 * object: `l_name` (offset 8 on LP64) is the resolved path, just written by ld.so into a malloc'd
 * (so resident) buffer; `l_libname->name` (l_libname at offset 56, name first in libname_list) is the
 * name the object was first requested by — the fallback when the entry argument faulted.
 * glibc ≥ 2.34 has dlopen in libc.so.6; older glibc in libdl.so.2. Both are listed and optional:
 * whichever exists on the host is probed.
 */
export function builtinProbes(arch: string = process.arch): ProbeConfig[] {
  const [a0, a1] = ARG_REGS[arch] ?? ARG_REGS.x64!;
  const ptr = arch === 'ia32' ? 4 : 8;
  const entry = (library: string, suffix: string): ProbeConfig => ({
    name: `dlopen_entry${suffix}`,
    library,
    symbol: 'dlopen',
    kind: 'entry',
    role: 'dlopen.entry',
    optional: true,
    fetch: { name: `+0(${a0}):ustring`, flags: `${a1}:x32`, comm: '$comm' },
  });
  const ret = (library: string, suffix: string): ProbeConfig => ({
    name: `dlopen_return${suffix}`,
    library,
    symbol: 'dlopen',
    kind: 'return',
    role: 'dlopen.return',
    optional: true,
    fetch: {
      handle: `$retval:x${ptr * 8}`,
      comm: '$comm',
      libname: `+0(+0(+${ptr * 7}($retval))):ustring`,
      path: `+0(+${ptr}($retval)):ustring`,
    },
  });
  return [
    entry('libc.so.6', ''),
    ret('libc.so.6', ''),
    entry('libdl.so.2', '_libdl'),
    ret('libdl.so.2', '_libdl'),
    ...loaderProbes(a0, a1, ptr),
    ...libcInitProbes(),
    // ld.so keeps dlopen("./x.so") relative in l_name; following chdir lets soload make it absolute
    // for processes that are gone before /proc/<pid>/cwd could be read.
    { name: 'chdir_entry', library: 'libc.so.6', symbol: 'chdir', kind: 'entry', role: 'chdir.entry', optional: true, fetch: { path: `+0(${a0}):ustring` } },
    { name: 'chdir_return', library: 'libc.so.6', symbol: 'chdir', kind: 'return', role: 'chdir.return', optional: true, fetch: { rc: '$retval:s32' } },
    ...viewProbes(a0, a1),
    ...muslProbes(a0, a1, ptr),
  ];
}

/**
 * musl: the loader is libc (`/lib/ld-musl-<arch>.so.1`, on Debian a link to
 * `/usr/lib/<arch>-linux-musl/libc.so`), exporting `dlopen`, `_dl_debug_state` and
 * `_dl_debug_addr` (a pointer to its gdb-compatible `struct debug`: state at 3 words; `@+` fetches
 * the pointer's value, so `+24(@+{_dl_debug_addr})` is `debug.state`). The
 * musl-lists mechanism turns these into list probes.
 */
export function muslProbes(a0: string, a1: string, ptr: number): ProbeConfig[] {
  const library = 'ld-musl-*.so.1';
  return [
    { name: 'musl_state', library, symbol: '_dl_debug_state', kind: 'entry', role: 'loader.state', optional: true, fetch: { state: `+${ptr * 3}(@+{_dl_debug_addr}):s32`, comm: '$comm' } },
    // Every musl program starts through crt1's call of __libc_start_main, once, with every
    // start-up object loaded; _dl_debug_state also fires on every dlopen.
    { name: 'musl_start', library, symbol: '__libc_start_main', kind: 'entry', role: 'libc.init', optional: true, fetch: { state: `+${ptr * 3}(@+{_dl_debug_addr}):s32`, comm: '$comm' } },
    { name: 'musl_dlopen_entry', library, symbol: 'dlopen', kind: 'entry', role: 'dlopen.entry', optional: true, fetch: { name: `+0(${a0}):ustring`, flags: `${a1}:x32`, comm: '$comm' } },
    { name: 'musl_dlopen_return', library, symbol: 'dlopen', kind: 'return', role: 'dlopen.return', optional: true, fetch: { handle: `$retval:x${ptr * 8}`, comm: '$comm', path: `+0(+${ptr}($retval)):ustring` } },
    // The same process facts as glibc's libc gives (cwd, chroot, namespaces, memfds), from musl's.
    ...[
      { name: 'chdir_entry', library: 'libc.so.6', symbol: 'chdir', kind: 'entry', role: 'chdir.entry', optional: true, fetch: { path: `+0(${a0}):ustring` } } as ProbeConfig,
      { name: 'chdir_return', library: 'libc.so.6', symbol: 'chdir', kind: 'return', role: 'chdir.return', optional: true, fetch: { rc: '$retval:s32' } } as ProbeConfig,
      ...viewProbes(a0, a1),
    ].map((p) => ({ ...p, name: `musl_${p.name}`, library })),
  ];
}

/**
 * Probes that let soload name files as the kernel does for processes that are gone by the time
 * their records are read (all on rarely called libc functions, so they cost nothing in steady
 * state): chroot (the new root, resolved without /proc), unshare/setns (a new mount namespace:
 * pinned while the process lives; the flags tell a mount-namespace change from, say, a new network
 * namespace), memfd_create (ld.so names a memfd it is handed `/proc/self/fd/N`;
 * the kernel prints `/memfd:NAME (deleted)`).
 */
export function viewProbes(a0: string, a1: string): ProbeConfig[] {
  const lib = 'libc.so.6';
  const p = (name: string, symbol: string, kind: 'entry' | 'return', role: ProbeRole, fetch: Record<string, string>): ProbeConfig => ({ name, library: lib, symbol, kind, role, optional: true, fetch });
  return [
    p('chroot_entry', 'chroot', 'entry', 'chroot.entry', { path: `+0(${a0}):ustring` }),
    p('chroot_return', 'chroot', 'return', 'chroot.return', { rc: '$retval:s32' }),
    p('unshare_entry', 'unshare', 'entry', 'view.entry', { flags: `${a0}:x32` }),
    p('unshare_return', 'unshare', 'return', 'view.return', { rc: '$retval:s32' }),
    p('setns_entry', 'setns', 'entry', 'view.entry', { flags: `${a1}:x32` }),
    p('setns_return', 'setns', 'return', 'view.return', { rc: '$retval:s32' }),
    p('memfd_entry', 'memfd_create', 'entry', 'memfd.entry', { name: `+0(${a0}):ustring` }),
    p('memfd_return', 'memfd_create', 'return', 'memfd.return', { fd: '$retval:s32' }),
  ];
}

/**
 * The end of a glibc process's start-up, seen from its libc: ld.so calls libc's
 * `__libc_early_init` (glibc ≥ 2.32) once, after every start-up object is mapped and relocated and
 * before any constructor runs; older glibc runs `__libc_init_first` from libc's own DT_INIT at the
 * same point. Either fires once per process (again only for a libc dlmopen'ed into a new
 * namespace), never on dlopen or dlclose — unlike `_dl_debug_state`, which every dlopen and dlclose
 * calls twice. The capture mechanisms pick one of the two per libc (the newer when both exist: from
 * 2.34 on, `__libc_init_first` is a never-called compatibility stub).
 */
export function libcInitProbes(): ProbeConfig[] {
  return ['__libc_early_init', '__libc_init_first'].map((symbol, i) => ({
    name: i === 0 ? 'libc_init' : 'libc_init_first',
    library: 'libc.so.6',
    symbol,
    kind: 'entry' as const,
    role: 'libc.init' as const,
    optional: true,
    fetch: { comm: '$comm' },
  }));
}

/**
 * Probes in glibc's ld.so that see every object the loader maps (DT_NEEDED, LD_PRELOAD, dlopen and
 * its dependencies), answering the seed document's open question about implicit loads.
 *
 * `_dl_add_to_namespace_list(new, nsid)` is internal to ld.so: distributions strip it from the
 * shipped file, so its offset comes from the separate debug file (found by build-id, e.g. Debian's
 * libc6-dbg). `_dl_debug_state` and `_r_debug` are exported (the gdb interface) and always found.
 * `{_r_debug+24}` is resolved by the planner to the `@+` file offset of `_r_debug.r_state`.
 */
export function loaderProbes(a0: string, a1: string, ptr: number): ProbeConfig[] {
  const library = 'ld-linux*.so*';
  return [
    {
      name: 'loader_add',
      library,
      symbol: '_dl_add_to_namespace_list',
      kind: 'entry',
      role: 'loader.add',
      optional: true,
      fetch: {
        path: `+0(+${ptr}(${a0})):ustring`,
        req: `+0(+0(+${ptr * 7}(${a0}))):ustring`,
        ns: `${a1}:s${ptr * 8}`,
        comm: '$comm',
      },
    },
    {
      // `_dl_open` (internal, from the debug symbols like _dl_add_to_namespace_list) is where every
      // dlopen goes through — public dlopen, dlmopen and libc's own (NSS, iconv) — and it returns
      // the opened map: the loader-lists mechanism walks the namespace list from it.
      name: 'loader_open',
      library,
      symbol: '_dl_open',
      kind: 'return',
      role: 'loader.open',
      optional: true,
      fetch: { handle: `$retval:x${ptr * 8}` },
    },
    {
      // `_dl_unmap(map)`: ld.so unmaps an object (a dlclose that dropped its last reference), so
      // a later dlopen of the same file is a new load, not a reference count going up.
      name: 'loader_unmap',
      library,
      symbol: '_dl_unmap',
      kind: 'entry',
      role: 'loader.unmap',
      optional: true,
      fetch: { path: `+0(+${ptr}(${a0})):ustring` },
    },
    {
      name: 'loader_state',
      library,
      symbol: '_dl_debug_state',
      kind: 'entry',
      role: 'loader.state',
      optional: true,
      fetch: { state: `@+{_r_debug+${ptr * 3}}:s32`, comm: '$comm' },
    },
  ];
}
