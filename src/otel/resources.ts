import os from 'node:os';
import type { Attributes } from '@opentelemetry/api';
import type { Logger } from '@opentelemetry/api-logs';
import { defaultResource, resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { LoggerProvider, type LogRecordProcessor } from '@opentelemetry/sdk-logs';
import type { ProcessInfo } from '../host/proc-reader';
import { processAttributesOf } from './mapper';

/**
 * Whose resource a load record carries:
 * - `process`: the process that mapped the object (its service.*, process.*, container.id, host.*);
 *   soload itself is the instrumentation scope. What trace↔log correlation and the Collector's
 *   k8s_attributes processor need.
 * - `agent`: soload's own resource (service.name=soload); the process's facts are record attributes.
 */
export type ResourceMode = 'process' | 'agent';

/** Instrumentation scope name of every soload record (agent mode and process mode alike). */
export const SCOPE_NAME = 'soload';

/** The host part of every resource soload makes (semantic-convention host.* / os.*). */
export function hostAttributes(): Attributes {
  return { 'host.name': os.hostname(), 'host.arch': hostArch(process.arch), 'os.type': 'linux', 'os.version': os.release() };
}

/** Node's process.arch → the semantic conventions' host.arch values (x64 is amd64 there). */
export function hostArch(nodeArch: string): string {
  const map: Record<string, string> = { x64: 'amd64', arm64: 'arm64', ia32: 'x86', arm: 'arm32', ppc64: 'ppc64', s390x: 's390x' };
  return map[nodeArch] ?? nodeArch;
}

/** What a process resource is built from besides the process itself. */
export interface ProcessResourceOptions {
  /** host.* / os.* (observed: always win). */
  host: Attributes;
  /** Operator-given defaults for every process (`otel.processResourceAttributes`), beneath what a process declares. */
  defaults: Readonly<Record<string, string>>;
  /** Which of a process's declared attributes are taken (`otel.processDeclaredAttributes`). */
  declared: DeclaredKeyFilter;
}

/**
 * Which keys of a process's own OTEL_RESOURCE_ATTRIBUTES soload passes on, from patterns such as
 * `service.*` (a prefix) or `deployment.environment.name` (exact). A process can declare anything,
 * so what it says about its identity (service.*) is taken, and what soload observes (process.*,
 * host.*, container.id) is never taken from it: a process cannot pose as another pod or host.
 */
export class DeclaredKeyFilter {
  private readonly exact = new Set<string>();
  private readonly prefixes: string[] = [];

  constructor(patterns: readonly string[]) {
    for (const p of patterns) {
      if (p === '*') this.prefixes.push('');
      else if (p.endsWith('.*')) this.prefixes.push(p.slice(0, -1));
      else this.exact.add(p);
    }
  }

  accepts(key: string): boolean {
    if (OBSERVED_PREFIXES.some((p) => key === p || key.startsWith(p + '.'))) return false;
    return this.exact.has(key) || this.prefixes.some((p) => key.startsWith(p));
  }
}

/** Attribute namespaces soload observes itself; a process's declaration never sets them. */
const OBSERVED_PREFIXES = ['process', 'host', 'os', 'container.id', 'soload', 'telemetry.sdk'];

/**
 * The resource attributes of one process (pure): operator defaults, then what the process declares
 * (filtered), then what soload observed. service.name falls back as the OTel SDKs' own default
 * does: `unknown_service:<executable name>` (`unknown_service` when even that is unknown), so an
 * uninstrumented nginx is `unknown_service:nginx`, exactly what an OTel SDK inside it would report.
 */
export function processResourceAttributes(p: ProcessInfo | undefined, pid: number, opts: ProcessResourceOptions): Attributes {
  const a: Attributes = { ...opts.defaults };
  for (const [k, v] of Object.entries(p?.declaredResource ?? {})) if (opts.declared.accepts(k)) a[k] = v;
  if (p?.serviceName !== undefined) a['service.name'] = p.serviceName;
  if (a['service.name'] === undefined || a['service.name'] === '') {
    a['service.name'] = p?.exeName ? `unknown_service:${p.exeName}` : 'unknown_service';
  }
  Object.assign(a, opts.host);
  a['process.pid'] = pid;
  if (p) Object.assign(a, processAttributesOf(p, undefined));
  return a;
}

/** soload's own resource (agent mode, and soload's self-metrics in both modes). */
export function agentResource(opts: { serviceName: string; version: string; attributes: Readonly<Record<string, string>> }): Resource {
  return defaultResource().merge(
    resourceFromAttributes({
      ...hostAttributes(),
      'service.version': opts.version,
      'service.instance.id': agentInstanceId(),
      ...opts.attributes,
      'service.name': opts.serviceName,
    }),
  );
}

/** soload's instance id (`host:pid`): its resource's service.instance.id, its scope attribute in process mode. */
export function agentInstanceId(): string {
  return `${os.hostname()}:${process.pid}`;
}

/** Hands out the Logger a record is emitted through, so that the record gets the right resource. */
export interface RecordLoggers {
  loggerFor(p: ProcessInfo | undefined, pid: number): Logger;
  /** Resources made so far (process mode; 0 in agent mode). */
  readonly resourcesCreated: number;
}

/** Agent mode: one Logger, soload's resource. */
export class AgentLoggers implements RecordLoggers {
  readonly resourcesCreated = 0;
  constructor(private readonly logger: Logger) {}
  loggerFor(_p?: ProcessInfo, _pid?: number): Logger {
    return this.logger;
  }
}

/** Options of {@link ProcessLoggers}. */
export interface ProcessLoggersOptions extends ProcessResourceOptions {
  /** The processors of the export pipeline, shared by every process's LoggerProvider. */
  processors: LogRecordProcessor[];
  scope: { name: string; version: string; attributes: Attributes };
  /** Bound of the pid-keyed cache for records whose process /proc could not show (default 1024). */
  maxUnknown?: number;
}

/**
 * Process mode. The SDK fixes a record's resource by the LoggerProvider it is emitted through,
 * so each process gets a LoggerProvider of its own over the SAME processors (the one batch queue
 * and exporter of the pipeline); those providers are never shut down — the pipeline's own
 * provider owns the processors' lifecycle. One Resource object per process also keeps OTLP
 * requests compact: the serializer groups a batch by Resource identity, so 500 loads of 3
 * processes are 3 ResourceLogs, not 500.
 *
 * Keyed by the enricher's ProcessInfo object (weakly: the enricher drops it on exit/exec and the
 * Logger goes with it); records without ProcessInfo (the process was gone before /proc was read)
 * get a pid-keyed Logger from a small bounded map.
 */
export class ProcessLoggers implements RecordLoggers {
  private readonly byInfo = new WeakMap<ProcessInfo, Logger>();
  private readonly byPid = new Map<number, Logger>();
  private created = 0;
  private readonly maxUnknown: number;

  constructor(private readonly opts: ProcessLoggersOptions) {
    this.maxUnknown = opts.maxUnknown ?? 1024;
  }

  get resourcesCreated(): number {
    return this.created;
  }

  /** Loggers of processes gone before /proc was read (the debug state view). */
  get unknownProcesses(): number {
    return this.byPid.size;
  }

  loggerFor(p: ProcessInfo | undefined, pid: number): Logger {
    if (p) {
      let l = this.byInfo.get(p);
      if (!l) this.byInfo.set(p, (l = this.make(p, pid)));
      return l;
    }
    let l = this.byPid.get(pid);
    if (!l) {
      if (this.byPid.size >= this.maxUnknown) this.byPid.delete(this.byPid.keys().next().value as number);
      this.byPid.set(pid, (l = this.make(undefined, pid)));
    }
    return l;
  }

  private make(p: ProcessInfo | undefined, pid: number): Logger {
    this.created++;
    const provider = new LoggerProvider({
      resource: resourceFromAttributes(processResourceAttributes(p, pid, this.opts)),
      processors: this.opts.processors,
    });
    const { name, version, attributes } = this.opts.scope;
    return provider.getLogger(name, version, { attributes });
  }
}
