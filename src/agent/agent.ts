import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { ProcessFacts } from '../capture/process-facts';
import { RecordRouter } from '../capture/router';
import { LoadFilter } from '../capture/filters';
import { snapshotLoads } from '../capture/snapshot';
import type { SoloadConfig } from '../config/schema';
import { ElfSymbolResolver, type ElfSymbolResolverOptions } from '../elf';
import { DebuginfodClient, debuginfodUrlsFromEnv } from '../elf/debuginfod';
import { ProcessEnricher } from '../enrich/enricher';
import { LoadPathResolver } from '../enrich/paths';
import { ProcReader } from '../host/proc-reader';
import { ProcessLoggers } from '../otel/resources';
import { ViewRegistry } from '../enrich/views';
import { ErrorCodes, SoloadError } from '../errors';
import type { HandlerOptions, MechanismHandler } from '../mechanisms';
import { TraceClock } from '../otel/clock';
import { healthSource } from '../otel/health';
import { SoLoadLogMapper } from '../otel/mapper';
import { createLogPipeline, type LogPipeline } from '../otel/pipeline';
import { startSelfTelemetry, type SelfTelemetry } from '../otel/self-telemetry';
import { assertPlanUsable } from '../plan/plan';
import { planCapture, type CapturePlan } from '../plan/select';
import { TracePipeReader, type ProbeSchema } from '../pipe';
import { locateTracefs, TracefsSession, type EnabledTracepoint, type TracepointSpec } from '../tracefs/session';
import type { LoadEvent, ProbeSpec } from '../types';
import { LoadChain } from './chain';
import { LoaderRegistry } from './loaders';
import type { LinkMapLayout } from '../plan/calibrate';
import type { SetChoice } from '../plan/select';
import type { Route as RouteT } from '../capture/router';
import { stderrLog, type DiagLog } from './log';
import { cleanupStale } from './stale';
import { LossMonitor } from './loss';
import { createSecurityStage, type SecurityStage } from './security';

/** DT_NEEDED lists are reused this long (ms), like canonical paths (enrich/canonical.ts PathCache). */
const NEEDED_TTL_MS = 1000;
const NEEDED_CACHE_MAX = 4096;

let gc: (() => void) | undefined;

/** A full GC, for the debug state view only (node without --expose-gc gets the flag set here). */
function forceGc(): void {
  if (!gc) {
    v8.setFlagsFromString('--expose-gc');
    gc = vm.runInNewContext('gc') as () => void;
  }
  gc();
}

/** What the agent is built from. */
export interface AgentOptions {
  config: SoloadConfig;
  log?: DiagLog;
  /** Sees every load after filtering, before export (the in-process agent test, embedders). */
  onLoad?: (ev: LoadEvent) => void;
  /** Where symlinks to probed files with whitespace in their paths go (default /run/soload). */
  aliasRoot?: string;
}

/** Default directory for symlinks to probed files whose paths hold whitespace. */
export const DEFAULT_ALIAS_ROOT = '/run/soload';

/** sched tracepoints soload follows to keep per-process state honest. */
export const PROCESS_TRACEPOINTS: TracepointSpec[] = [
  // group_dead (6.16+): the whole thread group is gone, not one thread. Older kernels print every
  // thread's exit; the router then counts only the leader's.
  { system: 'sched', event: 'sched_process_exit', filter: 'group_dead == 1', filterNeeds: ['group_dead'] },
  { system: 'sched', event: 'sched_process_exec' },
  { system: 'sched', event: 'sched_process_fork' },
];

/**
 * Parser schemas: probes by their fetch arguments (string fields matter: the kernel prints them
 * unescaped between quotes), tracepoints by the print format this kernel's `format` file declares.
 */
export function schemasFor(specs: readonly ProbeSpec[], tracepoints: readonly EnabledTracepoint[] = []): Map<string, ProbeSchema> {
  const map = new Map<string, ProbeSchema>();
  for (const s of specs) {
    map.set(s.event, { fields: s.fetch.map((f) => ({ name: f.name, string: /:(u?string|symstr)$/.test(f.arg) || f.arg === '$comm' })) });
  }
  for (const t of tracepoints) map.set(t.spec.event, { fields: t.format.printed.map((name) => ({ name, string: false })) });
  return map;
}

/** The resolver's debug-info trees: debugRoot, then the debuginfod cache (files fetched earlier). */
export function resolverOptions(config: SoloadConfig): ElfSymbolResolverOptions {
  return { debugRoot: config.debugRoot, ...(config.debuginfod.enabled ? { extraDebugRoots: [config.debuginfod.cacheDir] } : {}) };
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

/**
 * The soload component. `start()`: config → plan (one capture mechanism per loader set) → tracefs
 * (instance, probes, tracepoints) → trace_pipe reader → router → processing chain → export.
 * `shutdown()` undoes exactly what start did, in reverse.
 */
export class SoloadAgent {
  private readonly config: SoloadConfig;
  private readonly log: DiagLog;
  private readonly proc: ProcReader;
  private readonly pid: number;
  private readonly opts: AgentOptions;
  private readonly clock = new TraceClock();
  private readonly resolver: ElfSymbolResolver;
  private readonly debuginfod?: DebuginfodClient;
  readonly viewRegistry: ViewRegistry;
  readonly facts: ProcessFacts;
  readonly paths: LoadPathResolver;
  private readonly enricher: ProcessEnricher;
  private readonly neededCache = new Map<string, { needed: readonly string[]; at: number }>();
  private handlers: MechanismHandler[] = [];
  private readonly routes = new Map<string, RouteT>();
  private readonly schemas = new Map<string, ProbeSchema>();
  private readonly layouts = new Map<string, Promise<LinkMapLayout>>();
  /** Loaders met after start (containers, chroots, musl), with their probes. */
  loaders?: LoaderRegistry;
  private sweeper?: NodeJS.Timeout;
  private router?: RecordRouter;
  private chain?: LoadChain;
  private securityStage?: SecurityStage;
  private session?: TracefsSession;
  private reader?: TracePipeReader;
  private pipeline?: LogPipeline;
  private telemetry?: SelfTelemetry;
  private housekeeping?: NodeJS.Timeout;
  private stateSignal?: () => void;
  private loss?: LossMonitor;
  private starting?: Promise<void>;
  private stopping?: Promise<void>;
  private cleanup?: Promise<void>;
  /** The plan start() installed. */
  plan?: CapturePlan;

  constructor(opts: AgentOptions) {
    this.opts = opts;
    this.config = opts.config;
    this.log = opts.log ?? stderrLog(opts.config.log.level);
    this.proc = new ProcReader(opts.config.procRoot);
    this.pid = process.pid;
    this.resolver = new ElfSymbolResolver(resolverOptions(this.config));
    const urls = this.config.debuginfod.urls.length > 0 ? this.config.debuginfod.urls : debuginfodUrlsFromEnv();
    if (this.config.debuginfod.enabled && urls.length > 0) {
      const { cacheDir, timeoutMs, maxBytes } = this.config.debuginfod;
      this.debuginfod = new DebuginfodClient({ urls, cacheDir, timeoutMs, maxBytes });
    }
    this.enricher = new ProcessEnricher(this.proc);
    this.viewRegistry = new ViewRegistry(this.proc);
    this.facts = new ProcessFacts({
      identify: (pid, moved) => void this.paths.identify(pid, moved),
      chroot: (pid, dir) => this.facts.views.set(pid, this.viewRegistry.chroot(this.paths.viewOf(pid), dir)),
      cwdOf: (pid) => this.proc.cwd(pid),
    });
    this.paths = new LoadPathResolver({
      proc: this.proc,
      views: this.viewRegistry,
      viewOf: this.facts.views,
      memfds: this.facts.memfds,
      toWallNs: (ns) => this.clock.toWallNs(ns),
      nowTraceNs: () => this.clock.nowTraceNs(),
    });
  }

  /** Counters of the router and the processing chain. */
  get stats(): AgentStats {
    const r = this.router?.stats;
    const c = this.chain?.stats;
    return {
      records: r?.records ?? 0,
      loadsEmitted: c?.loadsEmitted ?? 0,
      loadsFiltered: c?.loadsFiltered ?? 0,
      customEmitted: c?.customEmitted ?? 0,
      unknownEvents: r?.unknownEvents ?? 0,
      processExits: r?.processExits ?? 0,
      processExecs: r?.processExecs ?? 0,
    };
  }

  /** Installs probes and starts streaming. Concurrent calls share one start. */
  start(): Promise<void> {
    this.starting ??= this.doStart();
    return this.starting;
  }

  private async doStart(): Promise<void> {
    const root = locateTracefs(this.config.tracefs.path);
    if (!root) {
      throw new SoloadError(
        ErrorCodes.TRACEFS_UNAVAILABLE,
        'tracefs is not mounted and could not be mounted at /sys/kernel/tracing; mount it (`mount -t tracefs nodev /sys/kernel/tracing`) or set tracefs.path',
      );
    }
    const group = `${this.config.tracefs.groupPrefix}_${this.pid}`;
    const instance = `${this.config.tracefs.instancePrefix}_${this.pid}`;
    const aliasRoot = this.opts.aliasRoot ?? DEFAULT_ALIAS_ROOT;
    cleanupStale({ root, groupPrefix: this.config.tracefs.groupPrefix, instancePrefix: this.config.tracefs.instancePrefix, aliasRoot, selfPid: this.pid, proc: this.proc, log: this.log });

    const discovery = this.config.discovery.enabled;
    const plan = await planCapture({ config: this.config, resolver: this.resolver, proc: this.proc, info: (m) => this.log.info(m), hostOnly: discovery, layouts: this.layouts });
    for (const s of plan.skipped) this.log.debug(`probe ${s.probe} skipped for ${s.library}: ${s.reason}`);
    for (const c of plan.sets) {
      if (c.mechanism) this.log.debug(`${c.set.dir}: ${c.mechanism.name} (${c.reason})`);
      else this.log.warn(`${c.set.dir}: no capture mechanism applies (${c.rejected.map((r) => `${r.mechanism}: ${r.reason}`).join('; ')}); loads of processes using it are not reported`);
    }
    assertPlanUsable(plan);
    this.plan = plan;

    this.session = new TracefsSession({
      root,
      group,
      instance,
      bufferSizeKb: this.config.tracefs.bufferSizeKb,
      traceClock: this.config.tracefs.traceClock,
      aliasDir: path.join(aliasRoot, group),
    });
    try {
      const { rejected, tracepoints } = this.session.start(plan.specs, PROCESS_TRACEPOINTS);
      for (const r of rejected) this.log.warn(r.error.message);
      if (this.session.probes.length === 0) {
        throw new SoloadError(ErrorCodes.NOTHING_TO_PROBE, `the kernel refused every probe: ${rejected.map((r) => r.error.message).join('; ')}`);
      }
      if (tracepoints.length < PROCESS_TRACEPOINTS.length) {
        this.log.warn('sched tracepoints unavailable: per-process state is freed by the liveness sweep (state.housekeepingIntervalMs) and bounded by size instead of following exit/exec');
      }
      const exit = tracepoints.find((t) => t.spec.event === 'sched_process_exit');
      if (exit && !exit.filtered) this.log.info('sched_process_exit has no group_dead field on this kernel: thread exits are filtered in soload (leader exit = process exit)');
      const handlerOf = this.buildRoutes(plan, new Set(this.session.probes.map((p) => p.event)));
      const routes = this.routes;
      this.pipeline = createLogPipeline(this.config, { warn: (m) => this.log.warn(m), info: (m) => this.log.info(m) });
      const mapper = new SoLoadLogMapper({
        severity: this.config.otel.severity,
        toWallNs: (ns) => this.clock.toWallNs(ns),
        serviceNameAttribute: this.config.otel.processServiceAttribute,
        processFacts: this.config.otel.resourceMode === 'process' ? 'resource' : 'record',
      });
      this.securityStage = createSecurityStage(this.config, {
        proc: this.proc,
        paths: this.paths,
        resolver: this.resolver,
        execOf: (pid) => this.facts.execOf(pid),
        log: this.log,
      });
      const security = this.securityStage?.security;
      this.chain = new LoadChain({
        cwd: this.facts.cwd,
        enricher: this.enricher,
        paths: this.paths,
        filter: new LoadFilter(this.config.filters, process.pid),
        mapper,
        clock: this.clock,
        loggers: this.pipeline.loggers,
        ...(security ? { security } : {}),
        warn: (m) => this.log.warn(m),
        ...(this.opts.onLoad ? { onLoad: this.opts.onLoad } : {}),
      });
      const chain = this.chain;
      const session = this.session;
      const registry = discovery
        ? new LoaderRegistry({
            config: this.config,
            resolver: this.resolver,
            proc: this.proc,
            session,
            routes,
            handlers: this.handlers,
            schemas: this.schemas,
            schemaOf: (specs) => schemasFor(specs),
            handlerOptions: this.handlerOptions(),
            paths: this.paths,
            log: this.log,
            emit: (ev) => chain.load(ev),
            nowNs: () => this.clock.nowTraceNs(),
            layouts: this.layouts,
            ...(this.debuginfod ? { debuginfod: this.debuginfod } : {}),
          })
        : undefined;
      this.loaders = registry;
      registry?.registerPlan(plan, handlerOf);
      this.router = new RecordRouter({
        routes,
        facts: this.facts,
        handlers: this.handlers,
        lifecycle: {
          // The enricher's per-process facts hold for one image of one process: reset at fork and
          // exec, kept (without further /proc checks) after exit.
          onExec: (pid, filename) => {
            this.enricher.onStart(pid);
            security?.onStart(pid);
            // the loader's environment of a short-lived process is only readable while it runs
            if (security) this.enricher.prime(pid);
            registry?.onExec(pid, filename);
          },
          onFork: (parent, child) => {
            this.enricher.onStart(child);
            security?.onStart(child);
            registry?.onFork(parent, child);
          },
          onExit: (pid) => {
            this.enricher.onExit(pid);
            security?.onExit(pid);
            registry?.onExit(pid);
          },
        },
        onLoad: registry ? (ev) => registry.admit(ev) && chain.load(ev) : (ev) => chain.load(ev),
        onCustom: (rec, spec) => chain.custom(rec, spec),
        exitIsGroupDead: exit?.filtered ?? false,
      });
      const router = this.router;
      this.telemetry = startSelfTelemetry({
        config: this.config,
        pipeline: this.pipeline,
        log: this.log,
        health: healthSource({
          agent: { get loadsEmitted() { return chain.stats.loadsEmitted; }, get loadsFiltered() { return chain.stats.loadsFiltered; }, get customEmitted() { return chain.stats.customEmitted; } },
          dlopen: this.dlopenTotals(),
          pipe: () => this.reader?.stats,
          ring: () => this.session?.ringStats(),
          paths: this.paths.stats,
          elfInvalid: () => this.resolver.invalidReads(),
        }),
      });
      for (const [k, v] of schemasFor(this.session.probes, tracepoints)) this.schemas.set(k, v);
      this.reader = new TracePipeReader({
        path: this.session.tracePipePath,
        schemas: this.schemas,
        pollIntervalMs: this.config.tracefs.pollIntervalMs,
        onRecord: (rec) => router.route(rec),
      });
      this.reader.start();
      const reader = this.reader;
      this.loss = new LossMonitor({
        read: () => ({ ring: session.ringStats(), pipeLost: reader.stats.lostEvents }),
        warn: (m) => this.log.warn(m),
        bufferSizeKb: session.bufferSizeKb() || this.config.tracefs.bufferSizeKb,
      });
      this.loss.start();
      if (this.config.capture.snapshot) this.emitSnapshot();
      // After the reader runs: arming other roots' loaders may take calibrations (seconds), and the
      // host's records must not wait in the ring buffer meanwhile.
      if (registry) {
        await registry.start();
        this.sweeper = setInterval(() => registry.sweep(), this.config.discovery.sweepIntervalMs);
        this.sweeper.unref();
      }
    } catch (err) {
      await this.cleanupOnce();
      throw err;
    }
    const router = this.router!;
    this.housekeeping = setInterval(() => {
      router.housekeep(this.clock.nowTraceNs(), (id) => this.proc.alive(id));
      const now = Date.now();
      this.enricher.sweep(this.config.state.exitedGraceMs, now);
      this.paths.cache.prune(now);
      for (const [k, v] of this.neededCache) if (now - v.at >= NEEDED_TTL_MS) this.neededCache.delete(k);
      this.paths.dropViews(this.viewRegistry.sweep(this.facts.views.inUse()));
      this.clock.resample();
    }, this.config.state.housekeepingIntervalMs);
    this.housekeeping.unref();
    if (this.config.state.debug) {
      this.stateSignal = () => process.stderr.write(JSON.stringify(this.stateReport()) + '\n');
      process.on('SIGUSR2', this.stateSignal);
    }
    this.log.info(
      `tracing ${this.session.probes.length} probes in group ${group} (instance ${instance}); ` +
        plan.sets.map((c) => `${c.set.dir}: ${c.mechanism?.name ?? 'none'}`).join(', '),
    );
  }

  /** The routing table: every accepted probe event → its role, and the handler of its loader set. */
  private buildRoutes(plan: CapturePlan, accepted: ReadonlySet<string>): Map<SetChoice, MechanismHandler> {
    const routes = this.routes;
    const opts = this.handlerOptions();
    const byChoice = new Map<SetChoice, MechanismHandler>();
    this.handlers.length = 0;
    for (const choice of plan.sets) {
      if (!choice.mechanism) continue;
      const handler = choice.mechanism.createHandler(choice.set, opts);
      this.handlers.push(handler);
      byChoice.set(choice, handler);
      for (const spec of choice.specs) if (accepted.has(spec.event)) routes.set(spec.event, { role: spec.role, spec, handler });
    }
    for (const spec of plan.other) if (accepted.has(spec.event)) routes.set(spec.event, { role: spec.role, spec });
    return byChoice;
  }

  private handlerOptions(): HandlerOptions {
    return {
      reportExecutable: this.config.capture.reportExecutable,
      neededOf: (pid, file) => this.neededOf(pid, file),
      canonical: (pid, file) => this.paths.canonical(pid, file),
      initiallyLoaded: (pid) => this.proc.executableMappings(pid),
      execOf: (pid) => this.facts.execOf(pid),
      listCapacity: this.config.capture.listSlices * this.config.capture.listSliceSize,
      dlopenMaxAgeMs: this.config.state.dlopenMaxAgeMs,
      recoverList: (pid, from) => this.loaders?.recoverTail(pid, from) ?? [],
    };
  }

  /** dlopen fault counters summed over every handler (read live by the health source). */
  private dlopenTotals(): { nameRecovered: number; nameUnresolved: number; pathUnresolved: number } {
    const sum = (k: string) => this.handlers.reduce((n, h) => n + (h.stats()[k] ?? 0), 0);
    return {
      get nameRecovered() {
        return sum('dlopen.nameRecovered');
      },
      get nameUnresolved() {
        return sum('dlopen.nameUnresolved');
      },
      get pathUnresolved() {
        return sum('dlopen.pathUnresolved');
      },
    };
  }

  /**
   * DT_NEEDED of `file` as `pid` sees it: opened in the process's view (known without /proc, so a
   * process that already exited costs no failed open), else on the host.
   */
  private neededOf(pid: number, file: string): readonly string[] | undefined {
    const inView = file.startsWith('/') ? this.paths.hostPathOf(pid, file) : path.join(this.proc.root, String(pid), 'exe');
    // Every process asks for the same few files (libc, its program's libraries): the resolver's
    // own cache still opens and fstats each time. Reused as long as a canonical path is
    // (PathCache's TTL): a replaced library is read again at most that much later.
    const now = Date.now();
    const hit = this.neededCache.get(inView);
    if (hit && now - hit.at < NEEDED_TTL_MS) return hit.needed;
    const candidates = inView === file ? [file] : [inView, file];
    for (const c of candidates) {
      try {
        const needed = this.resolver.dynamicInfo(c).needed;
        if (hit) this.neededCache.delete(inView);
        else if (this.neededCache.size >= NEEDED_CACHE_MAX) this.neededCache.delete(this.neededCache.keys().next().value as string);
        this.neededCache.set(inView, { needed, at: now });
        return needed;
      } catch {
        continue;
      }
    }
    return undefined;
  }

  /**
   * Entries in every per-process, per-thread and per-file structure soload keeps (README "Bounded
   * state"), summed over the loader sets' handlers. Cheap: sizes only.
   */
  stateSizes(): Record<string, number> {
    const out: Record<string, number> = {};
    const add = (o: Record<string, number>, prefix = ''): void => {
      for (const [k, v] of Object.entries(o)) out[prefix + k] = (out[prefix + k] ?? 0) + v;
    };
    add({ routerTracked: this.router?.tracked ?? 0 });
    add(this.facts.sizes(), 'facts.');
    for (const h of this.handlers) add(h.sizes(), 'handlers.');
    add(this.enricher.sizes(), 'enricher.');
    if (this.securityStage) add(this.securityStage.security.sizes(), 'security.');
    if (this.loaders) add(this.loaders.sizes(), 'registry.');
    const loggers = this.pipeline?.loggers;
    add({ unknownProcessLoggers: loggers instanceof ProcessLoggers ? loggers.unknownProcesses : 0 });
    add({ neededCache: this.neededCache.size, pathCache: this.paths.cache.size, views: this.viewRegistry.size, resolverEntries: this.resolver.stats().entries });
    return out;
  }

  /**
   * The debug state view (state.debug, on SIGUSR2): {@link stateSizes} and the heap after a forced
   * full GC, so a leak shows as sizes or heap that do not come back down.
   */
  stateReport(): { 'soload.state': Record<string, number>; memory: NodeJS.MemoryUsage; dlopenIncomplete: number; sweptGone: number } {
    forceGc();
    const incomplete = this.handlers.reduce((n, h) => n + (h.stats().dlopenIncomplete ?? 0), 0);
    return { 'soload.state': this.stateSizes(), memory: process.memoryUsage(), dlopenIncomplete: incomplete, sweptGone: this.router?.stats.sweptGone ?? 0 };
  }

  /** Reports what running processes already have loaded (capture.snapshot). */
  private emitSnapshot(): void {
    const events = snapshotLoads(this.proc, this.resolver, {
      reportExecutable: this.config.capture.reportExecutable,
      nowNs: this.clock.nowTraceNs(),
      skipPids: new Set([process.pid]),
    });
    for (const ev of events) this.chain!.load(ev);
    this.log.info(`snapshot: reported ${events.length} objects already loaded by running processes`);
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
    if (this.stateSignal) process.off('SIGUSR2', this.stateSignal);
    if (this.sweeper) clearInterval(this.sweeper);
    this.loaders?.close();
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
    this.loss?.stop(); // a loss since the last check is reported before the instance goes
    if (this.session) {
      for (const f of this.session.shutdown()) this.log.error(`cleanup failed: ${f}`);
    }
    // Records waiting for a digest (each bounded by security.hash.waitMs) need the views open.
    await this.chain?.drain();
    await this.securityStage?.close();
    this.viewRegistry.close();
    // Records still queued at this point mean a collector that is slow or unreachable (a refused
    // connection is retried inside the request timeout, so it shows as a request in flight, not yet
    // as a failure): the final metrics export would only wait out its own timeout, so it gets 1 s.
    const stuck = (this.pipeline?.sinks ?? []).some((k) => k.stats.buffered > 0);
    await this.telemetry?.shutdown(stuck ? 1000 : undefined);
    if (this.pipeline) {
      try {
        await this.pipeline.shutdown();
      } catch (err) {
        this.log.error(`flushing exporters: ${(err as Error).message}`);
      }
    }
  }
}
