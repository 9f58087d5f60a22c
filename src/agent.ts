import path from 'node:path';
import type { Logger } from '@opentelemetry/api-logs';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { inventoryLibraries, type LibraryFile } from './capture/discover';
import { calibrateLinkMap, RD_MAP, type LinkMapLayout } from './capture/calibrate';
import { CwdTracker } from './capture/cwd';
import { MemfdTracker, ViewTracker } from './capture/views';
import { dlopenListProbes, fileIdFetch, startupListProbes } from './capture/list-probes';
import { LoaderTracker } from './capture/loader';
import { snapshotLoads } from './capture/snapshot';
import { LoadFilter } from './capture/filters';
import { assertPlanUsable, planProbes, type ProbePlan } from './capture/plan';
import type { SoloadConfig } from './config/schema';
import { ProcessEnricher } from './enrich/enricher';
import { ProcReader } from './enrich/proc-reader';
import { LoadPathResolver } from './enrich/paths';
import { ViewRegistry } from './enrich/views';
import { ElfSymbolResolver } from './elf';
import { ErrorCodes, SoloadError } from './errors';
import { TraceClock } from './otel/clock';
import { SoLoadLogMapper } from './otel/mapper';
import { createLogPipeline, type LogPipeline } from './otel/pipeline';
import { healthSource } from './otel/health';
import { startSelfTelemetry, type SelfTelemetry } from './otel/self-telemetry';
import { TracePipeReader, type ProbeSchemaMap } from './pipe';
import { findStaleState, locateTracefs, removeStaleState, TracefsSession, type TracepointSpec } from './tracefs/session';
import type { LoadEvent, ProbeSpec, TraceRecord } from './types';

/** soload's own diagnostics (stderr), separate from the records it exports. */
export interface DiagLog {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

/** A DiagLog writing `soload: level: msg` lines to stderr above `level`. */
export function stderrLog(level: string): DiagLog {
  const order = ['debug', 'info', 'warn', 'error'];
  const min = Math.max(0, order.indexOf(level));
  const at = (l: string) => (msg: string) => {
    if (order.indexOf(l) >= min) process.stderr.write(`soload: ${l}: ${msg}\n`);
  };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

/** Counters soload reports about itself. */
export interface AgentStats {
  records: number;
  loadsEmitted: number;
  loadsFiltered: number;
  customEmitted: number;
  unknownEvents: number;
  processExits: number;
  processExecs: number;
}

/** Injection points, so tests can point soload at fixture trees and capture output. */
export interface AgentOptions {
  config: SoloadConfig;
  log?: DiagLog;
  /** tracefs mount; default: located (and mounted if needed). */
  tracefsRoot?: string;
  proc?: ProcReader;
  pipeline?: LogPipeline;
  /** Receives every load after filtering, before export (tests, the recall harness). */
  onLoad?: (ev: LoadEvent) => void;
  /** pid used in the group/instance names; default process.pid. */
  pid?: number;
}

/** sched tracepoints soload follows to keep per-process state honest. */
export const PROCESS_TRACEPOINTS: TracepointSpec[] = [
  // group_dead: the whole thread group is gone, not one thread.
  { system: 'sched', event: 'sched_process_exit', filter: 'group_dead == 1' },
  { system: 'sched', event: 'sched_process_exec' },
  { system: 'sched', event: 'sched_process_fork' },
];

/** Parser schemas for the probes (string fields matter: the kernel prints them unescaped). */
export function schemasFor(specs: readonly ProbeSpec[]): ProbeSchemaMap {
  const map: ProbeSchemaMap = new Map();
  for (const s of specs) {
    map.set(s.event, { fields: s.fetch.map((f) => ({ name: f.name, string: /:(u?string|symstr)$/.test(f.arg) || f.arg === '$comm' })) });
  }
  map.set('sched_process_exit', { fields: [{ name: 'comm', string: false }, { name: 'pid', string: false }, { name: 'prio', string: false }, { name: 'group_dead', string: false }] });
  map.set('sched_process_exec', { fields: [{ name: 'filename', string: false }, { name: 'pid', string: false }, { name: 'old_pid', string: false }] });
  map.set('sched_process_fork', {
    fields: [{ name: 'comm', string: false }, { name: 'pid', string: false }, { name: 'child_comm', string: false }, { name: 'child_pid', string: false }],
  });
  return map;
}

/** True when `pid` is a live soload process (stale-state detection). */
export function isSoloadProcess(proc: ProcReader, pid: number): boolean {
  const { comm, cmdline } = proc.commandOf(pid);
  if (comm === undefined) return false;
  return comm === 'soload' || /soload|dist\/src\/cli\/main\.js/.test(cmdline ?? '');
}

/**
 * The soload component: config in, `start()` installs probes and begins streaming, `shutdown()`
 * undoes exactly what start did, in reverse (reader, probes and instance, exporters).
 */
export class SoloadAgent {
  readonly stats: AgentStats = { records: 0, loadsEmitted: 0, loadsFiltered: 0, customEmitted: 0, unknownEvents: 0, processExits: 0, processExecs: 0 };
  readonly tracker: LoaderTracker;
  readonly cwd = new CwdTracker();
  /** Which root/mount namespace each process resolves paths in, and the memfds it created. */
  readonly views = new ViewTracker();
  readonly memfds = new MemfdTracker();
  readonly viewRegistry: ViewRegistry;
  /** Loader strings → the paths the kernel prints in /proc/<pid>/maps. */
  readonly paths: LoadPathResolver;
  private readonly config: SoloadConfig;
  private readonly log: DiagLog;
  private readonly proc: ProcReader;
  private readonly pid: number;
  private readonly opts: AgentOptions;
  private readonly clock = new TraceClock();
  private readonly filter: LoadFilter;
  private readonly enricher: ProcessEnricher;
  private readonly resolver: ElfSymbolResolver;
  /** event name → the probe it came from (role, and the file it sits in). */
  private specs = new Map<string, ProbeSpec>();
  private session?: TracefsSession;
  private reader?: TracePipeReader;
  private pipeline?: LogPipeline;
  private telemetry?: SelfTelemetry;
  private mapper?: SoLoadLogMapper;
  private logger?: Logger;
  private housekeeping?: NodeJS.Timeout;
  private starting?: Promise<void>;
  private stopping?: Promise<void>;
  private cleanup?: Promise<void>;
  /** The plan start() used (for `soload check`/diagnostics). */
  plan?: ProbePlan;

  constructor(opts: AgentOptions) {
    this.opts = opts;
    this.config = opts.config;
    this.log = opts.log ?? stderrLog(opts.config.log.level);
    this.proc = opts.proc ?? new ProcReader(opts.config.procRoot);
    this.pid = opts.pid ?? process.pid;
    this.filter = new LoadFilter(this.config.filters, process.pid);
    this.enricher = new ProcessEnricher(this.proc);
    this.resolver = new ElfSymbolResolver({ debugRoot: this.config.debugRoot });
    this.viewRegistry = new ViewRegistry(this.proc);
    this.paths = new LoadPathResolver({
      proc: this.proc,
      views: this.viewRegistry,
      viewOf: this.views,
      memfds: this.memfds,
      toWallNs: (ns) => this.clock.toWallNs(ns),
      nowTraceNs: () => this.clock.nowTraceNs(),
    });
    this.tracker = new LoaderTracker({
      reportExecutable: this.config.capture.reportExecutable,
      neededOf: (pid, file) => this.neededOf(pid, file),
      canonical: (pid, file) => this.paths.canonical(pid, file),
      initiallyLoaded: (pid) => this.proc.executableMappings(pid),
      listCapacity: this.config.capture.listSlices * this.config.capture.listSliceSize,
    });
  }

  /** The dlopen correlator (its stats are soload's fault counters). */
  get correlator() {
    return this.tracker.dlopen;
  }

  /**
   * Calibrates each ld.so's private `struct link_map` layout against a helper process (see
   * calibrate.ts). With debug symbols the loader probe gains the `l_file_id` fetches (the inode of
   * the file the kernel mapped); without them, its `loader_state` probe is replaced by search-list
   * probes and the dlopen return probe next to it gains dependency-list probes.
   */
  private async addListMechanism(plan: ProbePlan): Promise<ProbePlan> {
    const withAdd = new Set(plan.specs.filter((s) => s.role === 'loader.add').map((s) => s.path));
    let specs = [...plan.specs];
    const opts = { sliceSize: this.config.capture.listSliceSize, slices: this.config.capture.listSlices };
    for (const state of plan.specs.filter((s) => s.role === 'loader.state')) {
      const sameGlibc = (s: ProbeSpec) => path.dirname(s.path) === path.dirname(state.path);
      let layout: LinkMapLayout;
      let rDebugVaddr = 0;
      try {
        const info = this.resolver.inspect(state.path);
        const firstLoad = info.segments.find((g) => g.type === 1);
        rDebugVaddr = this.resolver.lookup(state.path, '_r_debug').vaddr - (firstLoad?.vaddr ?? 0);
        layout = await calibrateLinkMap({ ldso: state.path, rDebugVaddr, proc: this.proc });
      } catch (err) {
        if (!withAdd.has(state.path)) {
          this.log.warn(`${state.path}: no _dl_add_to_namespace_list symbol and link_map calibration failed (${(err as Error).message}); only dlopen() calls are captured for processes using it`);
        } else {
          this.log.info(`${state.path}: link_map calibration failed (${(err as Error).message}); file identities come from the file system instead of ld.so`);
        }
        continue;
      }
      if (layout.fileId === undefined) this.log.info(`${state.path}: l_file_id not found by calibration; deleted/replaced files are told from their status-change time`);
      // Every probe that sees a struct link_map * also reads l_file_id (cheap: two u64 per hit).
      specs = specs.map((s) => {
        if (!sameGlibc(s) && s.path !== state.path) return s;
        if (s.role === 'loader.add' && s.path === state.path) return { ...s, fetch: [...s.fetch, ...fileIdFetch('%di', layout)] };
        if (s.role === 'dlopen.return') return { ...s, fetch: [...s.fetch, ...fileIdFetch('$retval', layout)] };
        return s;
      });
      if (withAdd.has(state.path)) continue;
      const rMap = this.resolver.fetchOffset(state.path, state.symbol ?? '_dl_debug_state', '_r_debug') + RD_MAP;
      specs.splice(specs.indexOf(state), 1, ...startupListProbes(state, layout, rMap, opts));
      for (const ret of specs.filter((s) => s.role === 'dlopen.return' && sameGlibc(s))) {
        specs.push(...dlopenListProbes(ret, layout, { ...opts, slices: this.config.capture.dlopenListSlices }));
      }
      this.log.info(`${state.path}: no _dl_add_to_namespace_list symbol; using search-list probes (l_searchlist at ${layout.searchlist}, ${layout.source})`);
    }
    return { specs, skipped: plan.skipped };
  }

  /** DT_NEEDED of `file` as `pid` sees it (its mount namespace first, then the host's view). */
  private neededOf(pid: number, file: string): readonly string[] | undefined {
    const candidates = file.startsWith('/')
      ? [path.join(this.proc.root, String(pid), 'root', file), file]
      : [path.join(this.proc.root, String(pid), 'exe')];
    for (const c of candidates) {
      try {
        return this.resolver.inspect(c).needed;
      } catch {
        continue;
      }
    }
    return undefined;
  }

  /** Plans probes against this host without touching the kernel. */
  planOnly(inventory?: LibraryFile[]): ProbePlan {
    return planProbes(this.config.probes, inventory ?? inventoryLibraries(this.proc), this.resolver);
  }

  /** Installs probes and starts streaming. Concurrent calls share one start. */
  start(): Promise<void> {
    this.starting ??= this.doStart();
    return this.starting;
  }

  private async doStart(): Promise<void> {
    const root = this.opts.tracefsRoot ?? locateTracefs(this.config.tracefs.path);
    if (!root) {
      throw new SoloadError(
        ErrorCodes.TRACEFS_UNAVAILABLE,
        'tracefs is not mounted and could not be mounted at /sys/kernel/tracing; mount it (`mount -t tracefs nodev /sys/kernel/tracing`) or set tracefs.path',
      );
    }
    this.cleanupStale(root);
    const plan = this.planOnly();
    for (const s of plan.skipped) this.log.debug(`probe ${s.probe} skipped for ${s.library}: ${s.reason}`);
    assertPlanUsable(plan);
    this.plan = await this.addListMechanism(plan);

    const group = `${this.config.tracefs.groupPrefix}_${this.pid}`;
    const instance = `${this.config.tracefs.instancePrefix}_${this.pid}`;
    this.session = new TracefsSession({
      root,
      group,
      instance,
      bufferSizeKb: this.config.tracefs.bufferSizeKb,
      traceClock: this.config.tracefs.traceClock,
    });
    try {
      const { rejected, tracepoints } = this.session.start(this.plan.specs, PROCESS_TRACEPOINTS);
      for (const r of rejected) this.log.warn(r.error.message);
      if (this.session.probes.length === 0) {
        throw new SoloadError(ErrorCodes.NOTHING_TO_PROBE, `the kernel refused every probe: ${rejected.map((r) => r.error.message).join('; ')}`);
      }
      if (tracepoints.length < PROCESS_TRACEPOINTS.length) {
        this.log.warn('sched tracepoints unavailable: per-process caches expire by age instead of on exit/exec');
      }
      this.specs = new Map(this.session.probes.map((p) => [p.event, p]));
      this.tracker.loaderActive = this.session.probes.some((p) => p.role === 'loader.add');
      this.pipeline = this.opts.pipeline ?? createLogPipeline(this.config, { warn: (m) => this.log.warn(m), info: (m) => this.log.info(m) });
      this.logger = this.pipeline.logger;
      this.telemetry = startSelfTelemetry({
        config: this.config,
        pipeline: this.pipeline,
        log: this.log,
        health: healthSource({ agent: this.stats, dlopen: this.correlator.stats, pipe: () => this.reader?.stats, ring: () => this.session?.ringStats() }),
      });
      this.mapper = new SoLoadLogMapper({
        severity: this.config.otel.severity,
        toWallNs: (ns) => this.clock.toWallNs(ns),
        serviceNameAttribute: this.config.otel.processServiceAttribute,
      });
      this.reader = new TracePipeReader({
        path: this.session.tracePipePath,
        schemas: schemasFor(this.session.probes),
        pollIntervalMs: this.config.tracefs.pollIntervalMs,
        onRecord: (rec) => this.handleRecord(rec),
      });
      this.reader.start();
      if (this.config.capture.snapshot) this.emitSnapshot();
    } catch (err) {
      await this.cleanupOnce();
      throw err;
    }
    this.housekeeping = setInterval(() => {
      this.tracker.dlopen.expire(this.clock.nowTraceNs());
      this.paths.dropViews(this.viewRegistry.sweep(this.views.inUse()));
      this.clock.resample();
    }, 10_000);
    this.housekeeping.unref();
    this.log.info(
      `tracing ${this.session.probes.length} probes in group ${group} (instance ${instance}): ` +
        this.session.probes.map((p) => `${p.event}@${p.path}:0x${p.offset.toString(16)}`).join(', '),
    );
  }

  /** Routes one parsed trace record (public for tests that replay fixtures). */
  handleRecord(rec: TraceRecord): void {
    this.stats.records++;
    if (rec.event === 'sched_process_exit') {
      const pid = Number(rec.fields.pid);
      this.stats.processExits++;
      this.enricher.forget(pid);
      this.tracker.onExit(pid);
      this.cwd.onExit(pid);
      this.views.onExit(pid);
      this.memfds.onExit(pid);
      return;
    }
    if (rec.event === 'sched_process_fork') {
      const parent = Number(rec.fields.pid);
      if (this.cwd.get(parent) === undefined) {
        const dir = this.proc.cwd(parent);
        if (dir) this.cwd.seed(parent, dir);
      }
      const child = Number(rec.fields.child_pid);
      this.cwd.onFork(parent, child);
      this.paths.viewOf(parent); // a parent older than soload: learn its view while it lives
      this.views.onFork(parent, child);
      this.memfds.onFork(parent, child);
      return;
    }
    if (rec.event === 'sched_process_exec') {
      const pid = Number(rec.fields.pid);
      this.stats.processExecs++;
      this.enricher.forget(pid);
      this.tracker.onExec(pid, rec.fields.filename ?? undefined);
      // A runtime may have moved it into a container (setns/pivot_root in a static binary soload
      // has no probe in): check the view while the new image lives; a gone process keeps its parent's.
      this.paths.identify(pid);
      return;
    }
    const spec = this.specs.get(rec.event);
    switch (spec?.role) {
      case 'loader.add':
        for (const ev of this.tracker.onAdd(rec, spec.path)) this.emitLoad(ev);
        return;
      case 'loader.state':
        for (const ev of this.tracker.onState(rec, spec.path)) this.emitLoad(ev);
        return;
      case 'loader.list':
        for (const ev of this.tracker.onList(rec, spec.slice!, spec.path)) this.emitLoad(ev);
        return;
      case 'dlopen.list':
        for (const ev of this.tracker.onDlopenList(rec, spec.slice!)) this.emitLoad(ev);
        return;
      case 'dlopen.entry':
        this.tracker.onDlopenEntry(rec);
        return;
      case 'dlopen.return': {
        const ev = this.tracker.onDlopenReturn(rec, rec.event);
        if (ev) this.emitLoad(ev);
        return;
      }
      case 'chdir.entry':
        this.cwd.onChdirEntry(rec.tgid ?? rec.tid, rec.tid, rec.fields.path ?? null);
        return;
      case 'chdir.return':
        this.cwd.onChdirReturn(rec.tid, Number(rec.fields.rc));
        return;
      case 'chroot.entry':
        this.views.onChrootEntry(rec.tgid ?? rec.tid, rec.tid, rec.fields.path ?? null);
        return;
      case 'chroot.return': {
        const done = this.views.onChrootReturn(rec.tid, Number(rec.fields.rc));
        // Unknown directory (the string read faulted) or already seen by a later look at /proc.
        if (!done) {
          if (Number(rec.fields.rc) === 0 && !this.views.observedAfter(rec.tgid ?? rec.tid, rec.timestampNs)) this.paths.identify(rec.tgid ?? rec.tid, true);
          return;
        }
        if (this.views.observedAfter(done.pid, rec.timestampNs)) return;
        const dir = this.cwd.resolve(done.pid, done.path) ?? (done.path.startsWith('/') ? done.path : undefined);
        if (dir !== undefined) this.views.set(done.pid, this.viewRegistry.chroot(this.paths.viewOf(done.pid), dir));
        return;
      }
      case 'view.entry':
        this.views.onNamespaceEntry(rec.tid, Number(rec.fields.flags));
        return;
      case 'view.return': {
        // unshare/setns into another mount namespace succeeded: pin it while the process lives.
        const pid = rec.tgid ?? rec.tid;
        if (!this.views.onNamespaceReturn(rec.tid, Number(rec.fields.rc)) || this.views.observedAfter(pid, rec.timestampNs)) return;
        this.paths.identify(pid, true);
        return;
      }
      case 'memfd.entry':
        this.memfds.onEntry(rec.tid, rec.fields.name ?? null);
        return;
      case 'memfd.return':
        this.memfds.onReturn(rec.tgid ?? rec.tid, rec.tid, Number(rec.fields.fd));
        return;
      case 'custom':
        this.emitCustom(rec);
        return;
      default:
        this.stats.unknownEvents++;
    }
  }

  /** Reports what running processes already have loaded (capture.snapshot). */
  private emitSnapshot(): void {
    const events = snapshotLoads(this.proc, this.resolver, {
      reportExecutable: this.config.capture.reportExecutable,
      nowNs: this.clock.nowTraceNs(),
      skipPids: new Set([process.pid]),
    });
    for (const ev of events) this.emitLoad(ev);
    this.log.info(`snapshot: reported ${events.length} objects already loaded by running processes`);
  }

  private emitLoad(ev: LoadEvent): void {
    if (ev.path !== undefined && !ev.path.startsWith('/')) {
      const abs = this.cwd.resolve(ev.pid, ev.path);
      if (abs) ev = { ...ev, path: abs };
    }
    if (ev.loadedBy !== undefined && !ev.loadedBy.startsWith('/')) {
      const abs = this.cwd.resolve(ev.pid, ev.loadedBy);
      if (abs) ev = { ...ev, loadedBy: abs };
    }
    const completed = this.enricher.completePath(ev);
    ev = this.paths.resolve(completed.event);
    if (!this.filter.accepts(ev)) {
      this.stats.loadsFiltered++;
      return;
    }
    const enriched = this.enricher.enrich(ev, completed.missing);
    this.stats.loadsEmitted++;
    this.opts.onLoad?.(enriched.event);
    this.logger?.emit(this.mapper!.map(enriched, this.clock.toWallNs(this.clock.nowTraceNs())));
  }

  private emitCustom(rec: TraceRecord): void {
    const pid = rec.tgid ?? rec.tid;
    if (this.config.filters.excludeSelf && pid === process.pid) return;
    const attributes: Record<string, string | number> = { 'process.pid': pid, 'thread.id': rec.tid, 'soload.probe': rec.event };
    for (const [k, v] of Object.entries(rec.fields)) if (v !== null) attributes[`soload.arg.${k}`] = v;
    this.stats.customEmitted++;
    this.logger?.emit({
      eventName: 'soload.probe',
      timestamp: Number(this.clock.toWallNs(rec.timestampNs) / 1_000_000n),
      severityNumber: SeverityNumber.INFO,
      severityText: 'INFO',
      body: `${rec.fields.comm ?? rec.comm}[${pid}] hit ${rec.event}`,
      attributes,
    });
  }

  /** Removes what a soload that died left in tracefs (only soload's own groups/instances). */
  private cleanupStale(root: string): void {
    const stale = findStaleState(root, this.config.tracefs.groupPrefix, this.config.tracefs.instancePrefix, (pid) =>
      pid === this.pid || isSoloadProcess(this.proc, pid),
    );
    if (stale.groups.length === 0 && stale.instances.length === 0) return;
    this.log.warn(`removing state left by a soload that died: groups [${stale.groups.join(', ')}], instances [${stale.instances.join(', ')}]`);
    for (const f of removeStaleState(root, stale)) this.log.error(`could not remove stale ${f}`);
  }

  /**
   * Stops reading, removes probes and the instance, flushes exporters. Idempotent. When called while
   * start() is still running (a signal during calibration), it waits for start to finish first, so
   * nothing start installs afterwards is left behind.
   */
  shutdown(): Promise<void> {
    this.stopping ??= (async () => {
      await this.starting?.catch(() => undefined);
      await this.cleanupOnce();
    })();
    return this.stopping;
  }

  private cleanupOnce(): Promise<void> {
    this.cleanup ??= this.doShutdown();
    return this.cleanup;
  }

  private async doShutdown(): Promise<void> {
    if (this.housekeeping) clearInterval(this.housekeeping);
    this.session?.stopRecording();
    if (this.reader) {
      try {
        await this.reader.stop();
      } catch (err) {
        this.log.error(`stopping trace_pipe reader: ${(err as Error).message}`);
      }
    }
    // Kernel state first: nothing that waits on the network may delay removing the probes. The
    // health source keeps the last ring-buffer counters it read, so the final metrics still carry them.
    this.telemetry?.summary(); // reads the health source once more while the instance still exists
    if (this.session) {
      for (const f of this.session.shutdown()) this.log.error(`cleanup failed: ${f}`);
    }
    this.viewRegistry.close();
    await this.telemetry?.shutdown();
    if (this.pipeline) {
      try {
        await this.pipeline.shutdown();
      } catch (err) {
        this.log.error(`flushing exporters: ${(err as Error).message}`);
      }
    }
  }
}
