import fs from 'node:fs';
import path from 'node:path';
import type { Route } from '../capture/router';
import { classifyRecovered, readLoaderList, type ListAnchor, type ListedObject } from '../capture/recover';
import type { SoloadConfig } from '../config/schema';
import type { ElfSymbolResolver } from '../elf';
import type { LoadPathResolver } from '../enrich/paths';
import type { ProcReader } from '../host/proc-reader';
import type { HandlerOptions, MechanismHandler } from '../mechanisms';
import { isMuslLoaderName } from '../mechanisms/musl';
import type { LinkMapLayout } from '../plan/calibrate';
import { isCalibrationHelper, loadBase } from '../plan/calibrate';
import { loaderKey, loaderSetFiles, type LibraryFile, type LoaderRoot } from '../plan/discover';
import { expandGlobs, layerLoaders, loaderFileOps, statFile } from '../plan/roots';
import { planCapture, type CapturePlan, type SetChoice } from '../plan/select';
import type { ProbeSchema } from '../pipe';
import type { TracefsSession } from '../tracefs/session';
import type { LoadEvent, ProbeSpec } from '../types';
import type { DiagLog } from './log';
import type { DebuginfodClient } from '../elf/debuginfod';

/** One loader installation soload has probes on. */
export interface ArmedLoader {
  id: number;
  key: string;
  /** Host path the probes were placed through. */
  ldso: string;
  /** The loader's in-root names (PT_INTERP's, the canonical one). */
  names: string[];
  origin: 'host' | 'layer' | 'process' | 'chroot';
  choices: SetChoice[];
  events: string[];
  handlers: MechanismHandler[];
  /** Processes known to use it (exec'd under it, forked from one, or seen at start). */
  users: Set<number>;
  anchor?: ListAnchor;
  ldsoIno: number;
  /** The files it was planned on (re-planned when debug symbols arrive). */
  inventory: LibraryFile[];
  /** Where the loader's debug symbols came from (`soload check`), when it has them. */
  symbols?: string;
}

/** Counters of loader discovery (health numbers, `soload check`, the closing stats line). */
export interface LoaderStats {
  armed: number;
  disarmed: number;
  prearmed: number;
  /** Processes whose loads before their loader's probes existed were read from memory. */
  recovered: number;
  recoveredLoads: number;
  /** Processes of a new loader that were gone before their loads could be read. */
  missedProcesses: number;
  armFailures: number;
  /** Loaders moved to a better mechanism when their debug symbols arrived from debuginfod. */
  upgraded: number;
}

/** What the registry works with (the agent's parts). */
export interface LoaderRegistryDeps {
  config: SoloadConfig;
  resolver: ElfSymbolResolver;
  proc: ProcReader;
  session: TracefsSession;
  routes: Map<string, Route>;
  handlers: MechanismHandler[];
  schemas: Map<string, ProbeSchema>;
  schemaOf: (specs: readonly ProbeSpec[]) => Map<string, ProbeSchema>;
  handlerOptions: HandlerOptions;
  paths: LoadPathResolver;
  log: DiagLog;
  emit: (ev: LoadEvent) => void;
  nowNs: () => bigint;
  layouts: Map<string, Promise<LinkMapLayout>>;
  /** Fetches debug files by build-id (debuginfod); absent when off or no server is configured. */
  debuginfod?: DebuginfodClient;
}

/**
 * Every loader on the host gets its own capture mechanism, placed once per file: the host's
 * (planned at start), those in container image layers (pre-armed when a layer appears, so a new
 * container's first process is seen from its first instruction), and any other met at an exec
 * (a chroot, a container whose layers soload does not know). A process that started before its
 * loader had probes has its loads so far read from its memory (`recovered`), or is counted as
 * missed when it is gone first. Loaders that only processes brought are dropped when the last of
 * them exits (sweep). Only this class adds or removes probes after start.
 */
export class LoaderRegistry {
  readonly stats: LoaderStats = { armed: 0, disarmed: 0, prearmed: 0, recovered: 0, recoveredLoads: 0, missedProcesses: 0, armFailures: 0, upgraded: 0 };
  private readonly d: LoaderRegistryDeps;
  private readonly byKey = new Map<string, ArmedLoader>();
  private readonly pending = new Map<string, Promise<ArmedLoader | undefined>>();
  private readonly userOf = new Map<number, string>();
  /**
   * view prefix + exe path → the interpreter's host path, the name the program asks for it by
   * (PT_INTERP) and the program's host path (static programs are not cached).
   */
  private readonly interpCache = new Map<string, { interpHost: string; requested: string; exeHost?: string }>();
  /** Processes whose recovered loads are being merged with probe records: names already out. */
  private readonly merged = new Map<number, Set<string>>();
  private seq = 0;
  /** Keys being re-planned after their debug symbols arrived (no second fetch meanwhile). */
  private readonly upgrading = new Set<string>();
  private layerScan?: NodeJS.Timeout;
  private readonly layersSeen = new Set<string>();
  private closed = false;

  constructor(deps: LoaderRegistryDeps) {
    this.d = deps;
  }

  /** Loaders with probes now. */
  get armed(): readonly ArmedLoader[] {
    return [...this.byKey.values()];
  }

  /** Registers the loaders of the start plan (the host's own, always kept). */
  registerPlan(plan: CapturePlan, handlers: Map<SetChoice, MechanismHandler>): void {
    for (const c of plan.sets) {
      if (!c.set.ldso || !c.mechanism) continue;
      const st = statFile(c.set.ldso);
      if (!st) continue;
      const key = loaderKey(st);
      const file = plan.inventory.find((f) => f.path === c.set.ldso);
      this.byKey.set(key, {
        id: 0,
        key,
        ldso: c.set.ldso,
        names: file?.aliases ?? [c.set.ldso],
        origin: 'host',
        choices: [c],
        events: c.specs.map((s) => s.event),
        handlers: handlers.has(c) ? [handlers.get(c)!] : [],
        users: new Set(),
        ldsoIno: st.ino,
        inventory: plan.inventory.filter((f) => c.set.files.includes(f.path)),
        ...this.symbolsOf(c),
        ...this.anchorFor(c.set.ldso),
      });
      this.maybeUpgrade(this.byKey.get(key)!);
    }
  }

  /**
   * Start: loaders in image layers (then watched), and every running process's loader. Resolves
   * when what was found is armed.
   */
  async start(): Promise<void> {
    const layers = this.d.config.discovery.imageLayers;
    await this.scanLayers(layers);
    if (layers.length > 0) {
      this.layerScan = setInterval(() => void this.scanLayers(layers), this.d.config.discovery.layerScanIntervalMs);
      this.layerScan.unref();
    }
    for (const pid of this.d.proc.listPids()) {
      if (pid === process.pid) continue;
      const found = this.loaderOf(pid, undefined);
      if (!found) continue;
      const armed = this.byKey.get(found.key) ?? (await this.arm(found.key, found.files, found.origin));
      if (armed) this.use(pid, armed.key);
    }
  }

  /** A process image was replaced: its loader is looked up (cheap when known) and armed if new. */
  onExec(pid: number, filename: string | undefined): void {
    this.drop(pid);
    this.merged.delete(pid);
    if (isCalibrationHelper(pid)) return;
    const found = this.loaderOf(pid, filename);
    if (!found) return;
    const known = this.byKey.get(found.key);
    if (known) {
      this.use(pid, found.key);
      return;
    }
    // Only a new loader needs the program's identity: to tell, once armed, that the image is still it.
    const exeIno = found.exeHost ? statFile(found.exeHost)?.ino : undefined;
    void this.arm(found.key, found.files, found.origin).then((armed) => {
      if (!armed) return;
      // Still the image this exec started? It may have exec'd again while the loader was armed
      // (that exec then recovers its own image).
      if (exeIno !== undefined && statFile(path.join(this.d.proc.root, String(pid), 'exe'))?.ino !== exeIno && this.d.proc.readProcess(pid) !== undefined) return;
      // A process whose exit was already seen must not keep the loader alive.
      if (this.recover(pid, armed)) this.use(pid, armed.key);
    });
  }

  onFork(parent: number, child: number): void {
    const key = this.userOf.get(parent);
    if (key) this.use(child, key);
  }

  onExit(pid: number): void {
    this.drop(pid);
    this.merged.delete(pid);
  }

  /**
   * Loads of processes being merged (recovered + probe records) pass through here: a name already
   * reported for that process is not reported again.
   */
  admit(ev: LoadEvent): boolean {
    const seen = this.merged.get(ev.pid);
    if (!seen) return true;
    const k = mergeKey(ev);
    if (seen.has(k)) return false;
    seen.add(k);
    return true;
  }

  /**
   * Drops loaders that only processes brought once none of them is left: the tracked users are
   * gone and no process in /proc maps the file.
   */
  sweep(): void {
    const candidates = [...this.byKey.values()].filter((a) => (a.origin === 'process' || a.origin === 'chroot') && a.users.size === 0);
    if (candidates.length === 0) return;
    const inUse = new Set<number>();
    for (const pid of this.d.proc.listPids()) for (const m of this.d.proc.mappings(pid)) if (m.offset === 0n) inUse.add(m.inode);
    for (const a of candidates) if (!inUse.has(a.ldsoIno)) this.disarm(a);
  }

  /** Sizes of its maps (the debug state view). */
  sizes(): Record<string, number> {
    return { loaders: this.byKey.size, loaderUsers: this.userOf.size, loaderMerging: this.merged.size, interpCache: this.interpCache.size, layersSeen: this.layersSeen.size };
  }

  /** Stops watching layers; the session's shutdown removes every probe. */
  close(): void {
    this.closed = true;
    if (this.layerScan) clearInterval(this.layerScan);
  }

  private use(pid: number, key: string): void {
    this.drop(pid);
    const a = this.byKey.get(key);
    if (!a) return;
    if (this.userOf.size >= MAX_PROCESSES) this.drop(this.userOf.keys().next().value as number);
    a.users.add(pid);
    this.userOf.set(pid, key);
  }

  private drop(pid: number): void {
    const key = this.userOf.get(pid);
    if (key === undefined) return;
    this.userOf.delete(pid);
    this.byKey.get(key)?.users.delete(pid);
  }

  /**
   * The loader `pid` runs under: its program's PT_INTERP, resolved in its view. Undefined for
   * static programs and when nothing can be read. Cost when known: one stat.
   */
  private loaderOf(pid: number, filename: string | undefined): { key: string; files: () => LibraryFile[]; origin: ArmedLoader['origin']; exeHost?: string } | undefined {
    const prefix = this.d.paths.hostPathOf(pid, '');
    const ops = loaderFileOps(this.d.proc);
    // Symlinks inside another root point into that root, not the host's (resolved in the view).
    const inView = (p: string) => {
      const canon = ops.canonical(prefix, p);
      return canon === undefined ? undefined : prefix + canon;
    };
    const absolute = filename?.startsWith('/') ? filename : undefined;
    const cacheKey = `${prefix}\0${absolute ?? ''}`;
    let hit = absolute ? this.interpCache.get(cacheKey) : undefined;
    if (!hit) {
      const exeHost = absolute ? inView(absolute) : path.join(this.d.proc.root, String(pid), 'exe');
      let requested: string | undefined;
      try {
        requested = exeHost ? this.d.resolver.dynamicInfo(exeHost).interp : undefined;
      } catch {
        requested = undefined;
      }
      const interpHost = requested ? inView(requested) : undefined;
      if (!requested || !interpHost) return undefined;
      hit = { interpHost, requested, ...(absolute && exeHost ? { exeHost } : {}) };
      if (absolute) {
        this.interpCache.set(cacheKey, hit);
        if (this.interpCache.size > 4096) this.interpCache.delete(this.interpCache.keys().next().value as string);
      }
    }
    const st = statFile(hit.interpHost);
    if (!st) return undefined;
    const root: LoaderRoot | undefined = prefix === '' ? undefined : { prefix, origin: this.d.paths.isChrootView(pid) ? 'chroot' : 'process', pids: [pid] };
    const interp = hit.interpHost.slice(prefix.length);
    const { requested, exeHost } = hit;
    return {
      key: loaderKey(st),
      origin: root ? root.origin : 'process',
      ...(exeHost ? { exeHost } : {}),
      files: () => loaderSetFiles(root, interp, ops, pid, requested),
    };
  }

  /** Plans and installs probes for one loader installation (once per key, concurrent calls share). */
  private arm(key: string, files: () => LibraryFile[], origin: ArmedLoader['origin']): Promise<ArmedLoader | undefined> {
    const known = this.byKey.get(key);
    if (known) return Promise.resolve(known);
    let p = this.pending.get(key);
    if (!p) {
      p = this.doArm(key, files(), origin).finally(() => this.pending.delete(key));
      this.pending.set(key, p);
    }
    return p;
  }

  private async doArm(key: string, inventory: LibraryFile[], origin: ArmedLoader['origin']): Promise<ArmedLoader | undefined> {
    if (inventory.length === 0 || this.closed) return undefined;
    const id = ++this.seq;
    const d = this.d;
    let plan: CapturePlan;
    try {
      plan = await planCapture({ config: d.config, resolver: d.resolver, proc: d.proc, inventory, eventSuffix: `_l${id}`, layouts: d.layouts, info: (m) => d.log.info(m) });
    } catch (err) {
      this.stats.armFailures++;
      d.log.warn(`loader ${inventory[0]!.path}: planning failed: ${(err as Error).message}`);
      return undefined;
    }
    if (this.closed) return undefined;
    const ldsoPath = inventory[0]!.path;
    const specs = plan.specs.filter((s) => inventory.some((f) => f.path === s.path));
    const rejected = d.session.addProbes(specs);
    for (const r of rejected) d.log.warn(r.error.message);
    const accepted = new Set(d.session.probes.map((p) => p.event));
    for (const [k, v] of d.schemaOf(specs.filter((s) => accepted.has(s.event)))) d.schemas.set(k, v);
    const handlers: MechanismHandler[] = [];
    for (const c of plan.sets) {
      if (!c.mechanism) {
        d.log.warn(`${c.set.dir}: no capture mechanism applies (${c.rejected.map((r) => `${r.mechanism}: ${r.reason}`).join('; ')}); loads of processes using it are not reported`);
        continue;
      }
      const h = c.mechanism.createHandler(c.set, d.handlerOptions);
      handlers.push(h);
      d.handlers.push(h);
      for (const s of c.specs) if (accepted.has(s.event)) d.routes.set(s.event, { role: s.role, spec: s, handler: h });
    }
    for (const s of plan.other) if (accepted.has(s.event)) d.routes.set(s.event, { role: s.role, spec: s });
    const st = statFile(ldsoPath);
    const armed: ArmedLoader = {
      id,
      key,
      ldso: ldsoPath,
      names: inventory[0]!.aliases,
      origin,
      choices: plan.sets,
      events: specs.filter((s) => accepted.has(s.event)).map((s) => s.event),
      handlers,
      users: new Set(),
      ldsoIno: st?.ino ?? inventory[0]!.ino,
      inventory,
      ...(plan.sets[0] ? this.symbolsOf(plan.sets[0]) : {}),
      ...this.anchorFor(ldsoPath),
    };
    this.byKey.set(key, armed);
    this.maybeUpgrade(armed);
    this.stats.armed++;
    if (origin === 'layer') this.stats.prearmed++;
    d.log.info(
      `loader ${ldsoPath} (${origin}): ${plan.sets.map((c) => `${c.set.dir}: ${c.mechanism?.name ?? 'none'} (${[c.reason, ...c.rejected.map((r) => `not ${r.mechanism}: ${r.reason}`)].join('; ')})`).join(', ')}; ${armed.events.length} probes`,
    );
    return armed;
  }

  /** Where the chosen mechanism's loader symbols came from, for `soload check`. */
  private symbolsOf(c: SetChoice): { symbols?: string } {
    const add = c.specs.find((s) => s.role === 'loader.add');
    return add?.symbolSource ? { symbols: add.symbolSource } : {};
  }

  /**
   * A glibc loader without debug symbols asks debuginfod for them in the background (start-up
   * never waits: the symbol-less mechanism runs meanwhile); when they arrive the loader is planned
   * again, the better mechanism's probes go in first and the old ones come out after, so no load
   * falls in between.
   */
  private maybeUpgrade(a: ArmedLoader): void {
    const client = this.d.debuginfod;
    const mech = a.choices.find((c) => c.set.ldso === a.ldso)?.mechanism?.name;
    if (!client || !mech || DEBUG_SYMBOL_MECHANISMS.has(mech) || mech === 'musl-lists' || this.upgrading.has(a.key)) return;
    let buildId: string | undefined;
    try {
      buildId = this.d.resolver.inspect(a.ldso).buildId;
    } catch {
      return;
    }
    if (!buildId) return;
    void client.fetch(buildId).then(async (r) => {
      if (this.closed || this.byKey.get(a.key) !== a) return;
      if (!r.ok) {
        this.d.log.info(`loader ${a.ldso}: no debug symbols from debuginfod (${r.reason}); keeping ${mech}`);
        return;
      }
      this.byKey.delete(a.key);
      this.upgrading.add(a.key);
      const next = await this.arm(a.key, () => a.inventory, a.origin).finally(() => this.upgrading.delete(a.key));
      const better = next?.choices.find((c) => c.set.ldso === next.ldso)?.mechanism?.name;
      if (!next || !better || !DEBUG_SYMBOL_MECHANISMS.has(better)) {
        if (next) this.disarm(next);
        this.byKey.set(a.key, a);
        this.d.log.warn(`loader ${a.ldso}: debug file ${r.path} arrived but ${mech} is still the best mechanism`);
        return;
      }
      for (const pid of a.users) {
        next.users.add(pid);
        this.userOf.set(pid, a.key);
      }
      next.symbols = `${next.symbols ?? 'debug file'} from debuginfod ${r.url}`;
      this.disarm(a, false);
      this.stats.upgraded++;
      this.d.log.info(`loader ${a.ldso}: debug symbols from debuginfod ${r.url}; ${mech} → ${better}`);
    });
  }

  private disarm(a: ArmedLoader, keyed = true): void {
    const d = this.d;
    for (const f of d.session.removeProbes(a.events)) d.log.error(`removing probes of ${a.ldso}: ${f}`);
    for (const e of a.events) {
      d.routes.delete(e);
      d.schemas.delete(e);
    }
    for (const h of a.handlers) {
      const i = d.handlers.indexOf(h);
      if (i >= 0) d.handlers.splice(i, 1);
    }
    if (keyed && this.byKey.get(a.key) === a) this.byKey.delete(a.key);
    this.stats.disarmed++;
    if (keyed) d.log.info(`loader ${a.ldso}: no process uses it any more; its ${a.events.length} probes were removed`);
  }

  /** Where the loader keeps its object list (glibc `_r_debug`, musl `_dl_debug_addr`). */
  private anchorFor(ldso: string): { anchor?: ListAnchor } {
    const r = this.d.resolver;
    for (const [symbol, indirect] of [['_dl_debug_addr', true], ['_r_debug', false]] as const) {
      try {
        const first = r.inspect(ldso).segments.find((g) => g.type === 1);
        return { anchor: { vaddr: r.lookup(ldso, symbol).vaddr - (first?.vaddr ?? 0), indirect } };
      } catch {
        continue;
      }
    }
    return {};
  }

  /**
   * Reads what `pid` loaded before its loader had probes, from its memory, and reports it; from
   * now on its records are merged with what was recovered. A process already gone is counted.
   */
  private recover(pid: number, a: ArmedLoader): boolean {
    const d = this.d;
    if (this.merged.has(pid)) return true;
    const list = this.listOf(pid, a);
    if (list.length === 0) {
      this.stats.missedProcesses++;
      d.log.warn(`pid ${pid} started under ${a.ldso} before soload had probes on it and exited before its loads could be read: its start-up loads are not reported (pre-arm image layers with discovery.imageLayers)`);
      return false;
    }
    const isLoader = loaderTest(a);
    const prefix = d.paths.hostPathOf(pid, '');
    const { loads, startupComplete } = classifyRecovered(list, {
      isLoader,
      neededOf: (name) => {
        const file = name === '' ? path.join(d.proc.root, String(pid), 'exe') : prefix + name;
        try {
          return d.resolver.dynamicInfo(file).needed;
        } catch {
          return undefined;
        }
      },
    });
    const seen = new Set<string>();
    if (this.merged.size >= MAX_MERGING && !this.merged.has(pid)) this.merged.delete(this.merged.keys().next().value as number);
    this.merged.set(pid, seen);
    for (const h of a.handlers) h.adopt?.(pid, loads.map((l) => l.path), startupComplete);
    const { comm } = d.proc.commandOf(pid);
    const now = d.nowNs();
    const out: LoadEvent[] = [];
    if (d.handlerOptions.reportExecutable) {
      const exe = d.handlerOptions.execOf(pid);
      if (exe) out.push({ timestampNs: now, pid, tid: pid, comm: comm ?? '', method: 'executable', path: exe, result: 'ok', probe: 'recovered', recovered: true });
    }
    for (const l of loads) {
      out.push({ timestampNs: now, pid, tid: pid, comm: comm ?? '', method: l.method, path: l.path, ...(l.requestedName ? { requestedName: l.requestedName } : {}), result: 'ok', probe: 'recovered', recovered: true });
    }
    this.stats.recovered++;
    this.stats.recoveredLoads += out.length;
    for (const ev of out) {
      seen.add(mergeKey(ev));
      d.emit(ev);
    }
    return true;
  }

  /**
   * Entries from `from` on of `pid`'s loader list, read from its memory now: the part of a list
   * longer than the probes carry. Empty (and counted) when the process is gone.
   */
  recoverTail(pid: number, from: number): LoadEvent[] {
    const a = this.byKey.get(this.userOf.get(pid) ?? '');
    const d = this.d;
    const list = a ? this.listOf(pid, a) : [];
    if (list.length === 0) {
      this.stats.missedProcesses++;
      return [];
    }
    const now = d.nowNs();
    const { comm } = d.proc.commandOf(pid);
    const out: LoadEvent[] = [];
    const isLoader = loaderTest(a!);
    for (const o of list.slice(from)) {
      if (!o.name.includes('/')) continue;
      out.push({ timestampNs: now, pid, tid: pid, comm: comm ?? '', method: isLoader(o.name) ? 'interpreter' : 'needed', path: o.name, requestedName: path.basename(o.name), result: 'ok', probe: 'recovered', recovered: true });
    }
    this.stats.recoveredLoads += out.length;
    return out;
  }

  /** `pid`'s loader list read from its memory now (empty when gone or unreadable). */
  private listOf(pid: number, a: ArmedLoader): ListedObject[] {
    const proc = this.d.proc;
    const base = a.anchor ? loadBase(proc.mappings(pid), a.ldsoIno) : undefined;
    return a.anchor && base !== undefined ? readLoaderList((at, n) => proc.readMemory(pid, at, n), base, a.anchor) : [];
  }

  /** Loader files in image layers (each layer a root); new layers are armed as they appear. */
  private async scanLayers(globs: readonly string[]): Promise<void> {
    const present = expandGlobs(globs);
    // A layer removed from disk (image pruned) is forgotten: the set follows what exists.
    const now = new Set(present);
    for (const d of this.layersSeen) if (!now.has(d)) this.layersSeen.delete(d);
    const fresh = present.filter((d) => !this.layersSeen.has(d));
    for (const d of fresh) {
      const found = layerLoaders([d], this.d.proc, new Set(this.byKey.keys()));
      // A layer being unpacked may show its directory before its files: look again until it
      // has a loader or has not changed for a minute.
      if (found.length > 0 || Date.now() - (dirMtime(d) ?? 0) > 60_000) this.layersSeen.add(d);
      for (const l of found) {
        if (this.closed) return;
        await this.arm(l.key, () => l.files, 'layer');
      }
    }
  }
}

/** The glibc mechanisms that need ld.so's debug symbols (what a debuginfod file upgrades to). */
/** Processes whose loader is followed at most (oldest dropped: its loader may then be swept early). */
const MAX_PROCESSES = 65536;
/** Processes whose recovered loads are being merged with probe records at most. */
const MAX_MERGING = 4096;

const DEBUG_SYMBOL_MECHANISMS: ReadonlySet<string> = new Set(['loader-lists', 'loader-probe']);

/** Tells the loader's own entry in its list: by the names it is known by; musl's also as `libc.so`. */
function loaderTest(a: ArmedLoader): (name: string) => boolean {
  const names = new Set(a.names.map((n) => path.basename(n)));
  const musl = a.choices.some((c) => c.mechanism?.name === 'musl-lists');
  return (name) => names.has(path.basename(name)) || (musl && isMuslLoaderName(name));
}

/** Same object for merging: the program and the loader by role, the rest by the loader's name. */
function mergeKey(ev: LoadEvent): string {
  if (ev.method === 'executable') return 'exe';
  if (ev.method === 'interpreter') return 'interp';
  return ev.loaderPath ?? ev.path ?? '';
}


function dirMtime(d: string): number | undefined {
  try {
    return fs.statSync(d).mtimeMs;
  } catch {
    return undefined;
  }
}

export { expandGlobs } from '../plan/roots';
