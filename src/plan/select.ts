import fs from 'node:fs';
import path from 'node:path';
import type { SoloadConfig } from '../config/schema';
import type { ElfSymbolResolver } from '../elf';
import type { ProcReader } from '../host/proc-reader';
import { MECHANISMS, type CaptureMechanism, type LoaderSet, type MechanismContext } from '../mechanisms';
import type { ProbeRole, ProbeSpec } from '../types';
import { calibrateLinkMap, type LinkMapLayout } from './calibrate';
import { inventoryLibraries, loaderKey, type LibraryFile } from './discover';
import { planProbes, type SkippedProbe } from './plan';

/** Roles that belong to a capture mechanism (the rest: process facts and custom probes). */
export const MECHANISM_ROLES: ReadonlySet<ProbeRole> = new Set<ProbeRole>(['loader.add', 'loader.state', 'loader.list', 'libc.init', 'loader.open', 'loader.unmap', 'dlopen.entry', 'dlopen.return', 'dlopen.list']);

/** The mechanism one loader set got, and why the better ones did not apply. */
export interface SetChoice {
  set: LoaderSet;
  /** Undefined when no registered mechanism applies (nothing is captured for this loader). */
  mechanism?: CaptureMechanism;
  reason: string;
  /** The chosen mechanism's own account of what it sees and misses on this set (`soload check`). */
  description?: string;
  rejected: Array<{ mechanism: string; reason: string }>;
  /** Probes the chosen mechanism installs for this set. */
  specs: ProbeSpec[];
}

/** Everything `run` installs, `probes` prints and `check` explains — computed by one function. */
export interface CapturePlan {
  /** Every probe, in install order: mechanism probes per set, then process facts and custom ones. */
  specs: ProbeSpec[];
  sets: SetChoice[];
  /** Probes that are not mechanism-owned (process facts, custom). */
  other: ProbeSpec[];
  skipped: SkippedProbe[];
  /**
   * Files that need no probe by design: glibc ≥ 2.34's libdl.so.2 is a stub for old binaries, with
   * dlopen in the libc.so.6 next to it (its skipped dlopen probes are expected, not failures).
   */
  stubs: string[];
  inventory: LibraryFile[];
}

/** What planning needs from the host (read-only). */
export interface PlanDeps {
  config: SoloadConfig;
  resolver: ElfSymbolResolver;
  proc: ProcReader;
  inventory?: LibraryFile[];
  info?: (msg: string) => void;
  /** Host files only (other roots' loaders are planned per root when they are met). */
  hostOnly?: boolean;
  /** Appended to every event name (plans made after start for a newly met loader). */
  eventSuffix?: string;
  /** Calibration results shared between plans (one calibration per loader file, ever). */
  layouts?: Map<string, Promise<LinkMapLayout>>;
}

/**
 * Groups the mechanism-owned probes of a plan into loader sets: glibc keeps ld.so, libc.so.6 and
 * libdl.so.2 of one installation in one directory, so the directory is the set (pure).
 */
export function groupLoaderSets(specs: readonly ProbeSpec[]): LoaderSet[] {
  const sets = new Map<string, LoaderSet>();
  for (const s of specs) {
    if (!MECHANISM_ROLES.has(s.role)) continue;
    const dir = path.dirname(s.path);
    let set = sets.get(dir);
    if (!set) sets.set(dir, (set = { dir, files: [], specs: [] }));
    set.specs.push(s);
    if (!set.files.includes(s.path)) set.files.push(s.path);
    if (s.role === 'loader.add' || s.role === 'loader.state') set.ldso = s.path;
  }
  return [...sets.values()];
}

/**
 * The one selector: plans the declarative probes on this host's libraries, groups them into loader
 * sets, and gives each set the first registered mechanism that applies. Calibrates each ld.so at
 * most once (a helper process per file); never writes to the kernel.
 */
export async function planCapture(deps: PlanDeps): Promise<CapturePlan> {
  const inventory = deps.inventory ?? inventoryLibraries(deps.proc, undefined, undefined, !deps.hostOnly);
  const base = planProbes(deps.config.probes, inventory, deps.resolver, deps.eventSuffix);
  const ctx = mechanismContext({ ...deps, inventory });
  const sets: SetChoice[] = [];
  for (const set of groupLoaderSets(base.specs)) {
    const ld = set.ldso ? inventory.find((f) => f.path === set.ldso) : undefined;
    if (ld) set.loaderNames = ld.aliases;
    const rejected: SetChoice['rejected'] = [];
    let chosen: { mechanism: CaptureMechanism; reason: string } | undefined;
    for (const m of MECHANISMS) {
      const a = await m.applies(set, ctx);
      if (a.applies) {
        chosen = { mechanism: m, reason: a.reason };
        break;
      }
      rejected.push({ mechanism: m.name, reason: a.reason });
    }
    const specs = chosen ? await chosen.mechanism.plan(set, ctx) : [];
    sets.push({
      set,
      ...(chosen ? { mechanism: chosen.mechanism, description: chosen.mechanism.describe(set, ctx) } : {}),
      reason: chosen?.reason ?? 'no capture mechanism applies',
      rejected,
      specs,
    });
  }
  const other = base.specs.filter((s) => !MECHANISM_ROLES.has(s.role));
  const hasDlopen = new Set(base.specs.filter((s) => s.role === 'dlopen.return').map((s) => path.dirname(s.path)));
  const isStub = (s: SkippedProbe) => /^libdl\.so\.2$/.test(path.basename(s.library)) && hasDlopen.has(path.dirname(s.library)) && s.code === 'SOLOAD_ERR_SYMBOL_NOT_FOUND';
  const stubs = [...new Set(base.skipped.filter(isStub).map((s) => s.library))];
  return { specs: [...sets.flatMap((c) => c.specs), ...other], sets, other, skipped: base.skipped.filter((s) => !isStub(s)), stubs, inventory };
}

/** The context mechanisms decide in, with a per-file calibration cache. */
export function mechanismContext(deps: PlanDeps): MechanismContext {
  const layouts = deps.layouts ?? new Map<string, Promise<LinkMapLayout>>();
  return {
    config: deps.config,
    resolver: deps.resolver,
    proc: deps.proc,
    info: deps.info ?? (() => undefined),
    calibrate(ldso: string): Promise<LinkMapLayout> {
      // One calibration per loader build: the layout is the build's, so a copy of the same build
      // (another image's layer, an upgrade to the same package) reuses it — by build-id, else per
      // file, whatever path reaches it (/proc/<pid>/root of each container).
      let key = ldso;
      try {
        key = deps.resolver.inspect(ldso).buildId ?? loaderKey(fs.statSync(ldso));
      } catch {
        /* unreadable: calibration fails below with the reason */
      }
      let p = layouts.get(key);
      if (!p) {
        p = (async () => {
          const firstLoad = deps.resolver.inspect(ldso).segments.find((g) => g.type === 1);
          const rDebugVaddr = deps.resolver.lookup(ldso, '_r_debug').vaddr - (firstLoad?.vaddr ?? 0);
          const file = deps.inventory?.find((f) => f.path === ldso);
          const root = file?.root;
          const inRoot = root && file ? file.aliases.find((a) => a.startsWith('/') && root.prefix + a === ldso) ?? file.aliases[0] : undefined;
          return calibrateLinkMap({ ldso, rDebugVaddr, proc: deps.proc, ...(root ? { root, ldsoInRoot: inRoot } : {}) });
        })();
        layouts.set(key, p);
      }
      return p;
    },
  };
}
