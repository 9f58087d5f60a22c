import path from 'node:path';
import { SeverityNumber, type LogAttributes, type LogRecord } from '@opentelemetry/api-logs';
import type { EnrichedLoad } from '../enrich/enricher';
import type { ProcessInfo } from '../host/proc-reader';
import type { TraceRecord } from '../types';
import { nsToHrTime } from './clock';

/** Event name of every load record. */
export const LOAD_EVENT_NAME = 'so.load';
/** Event name of records of user-declared probes. */
export const CUSTOM_EVENT_NAME = 'soload.probe';

const SEVERITY_NUMBERS: Record<string, SeverityNumber> = {
  TRACE: SeverityNumber.TRACE,
  DEBUG: SeverityNumber.DEBUG,
  INFO: SeverityNumber.INFO,
  WARN: SeverityNumber.WARN,
  ERROR: SeverityNumber.ERROR,
  FATAL: SeverityNumber.FATAL,
};

/** Options of {@link SoLoadLogMapper}. */
export interface MapperOptions {
  severity: string;
  /** Converts the event's trace-clock ns to wall-clock ns since the epoch. */
  toWallNs: (traceNs: bigint) => bigint;
  /** Record attribute carrying the traced process's service name (default `service.name`; agent mode). */
  serviceNameAttribute?: string;
  /**
   * Where the process's facts go: `record` attributes (agent resource mode) or nowhere here,
   * because the record's resource is the process (process mode: process.pid, container.id,
   * service.name, ... are resource attributes and the record keeps thread.id, file.*, soload.*).
   */
  processFacts?: 'record' | 'resource';
}

/**
 * Maps an enriched load to an OpenTelemetry LogRecord (pure). Attribute names follow the semantic
 * conventions where one exists (file.*, thread.id; process.*, container.id and the process's
 * service.name when the resource is soload's own, agent mode) and use soload.* otherwise;
 * README.md lists them.
 */
export class SoLoadLogMapper {
  private readonly severityNumber: SeverityNumber;
  private readonly severityText: string;
  private readonly toWallNs: (ns: bigint) => bigint;
  private readonly serviceKey: string;
  private readonly factsOnRecord: boolean;

  constructor(opts: MapperOptions) {
    this.factsOnRecord = (opts.processFacts ?? 'record') === 'record';
    this.severityText = opts.severity;
    this.severityNumber = SEVERITY_NUMBERS[opts.severity] ?? SeverityNumber.INFO;
    this.toWallNs = opts.toWallNs;
    this.serviceKey = opts.serviceNameAttribute || 'service.name';
  }

  map(load: EnrichedLoad, observedNs: bigint): LogRecord {
    const { event: ev, process: p, file } = load;
    const a: LogAttributes = {
      ...(this.factsOnRecord ? { 'process.pid': ev.pid } : {}),
      'thread.id': ev.tid,
      'soload.load.method': ev.method,
      'soload.result': ev.result,
      'soload.probe': ev.probe,
    };
    const comm = ev.comm && ev.comm !== '<...>' ? ev.comm : p?.comm;
    if (comm) a['soload.comm'] = comm;
    if (ev.path !== undefined) {
      a['file.path'] = ev.path;
      a['file.name'] = path.basename(ev.path);
      a['file.directory'] = path.dirname(ev.path);
    }
    if (file) {
      if (file.size !== undefined) a['file.size'] = file.size;
      a['file.inode'] = file.inode;
      if (file.dev !== undefined) a['soload.file.device'] = deviceName(file.dev);
    }
    if (ev.loaderPath !== undefined) a['soload.loader_path'] = ev.loaderPath;
    if (ev.hostPath !== undefined) a['soload.host_path'] = ev.hostPath;
    if (ev.deleted) a['soload.file.deleted'] = true;
    if (ev.memfd) a['soload.file.memfd'] = true;
    if (ev.replaced) a['soload.file.replaced'] = true;
    if (ev.requestedName !== undefined) a['soload.requested_name'] = ev.requestedName;
    if (ev.flags !== undefined) a['soload.dlopen.flags'] = ev.flags;
    if (ev.loadedBy !== undefined) a['soload.loaded_by'] = ev.loadedBy;
    if (ev.snapshot) a['soload.snapshot'] = true;
    if (ev.recovered) a['soload.load.recovered'] = true;
    if (p && this.factsOnRecord) Object.assign(a, processAttributesOf(p, this.serviceKey));
    const unresolved = [...(ev.unresolved ?? [])];
    if (unresolved.length) a['soload.unresolved'] = unresolved;
    if (load.missing.length) a['soload.enrichment.missing'] = load.missing;

    const who = `${comm ?? 'pid'}[${ev.pid}]`;
    const what = ev.path ?? ev.requestedName ?? '(unknown object)';
    const body =
      ev.result === 'ok'
        ? `${who} loaded ${what} via ${ev.method}`
        : ev.result === 'incomplete'
          ? `${who} never returned from loading ${ev.requestedName ?? '(unknown name)'} via ${ev.method}`
          : `${who} failed to load ${ev.requestedName ?? '(unknown name)'} via ${ev.method}`;
    return {
      eventName: LOAD_EVENT_NAME,
      timestamp: nsToHrTime(this.toWallNs(ev.timestampNs)),
      observedTimestamp: nsToHrTime(observedNs),
      severityNumber: this.severityNumber,
      severityText: this.severityText,
      body,
      attributes: a,
    };
  }

  /**
   * A hit of a user-declared (`custom`) probe: its fetched fields as `soload.arg.*`, the process's
   * attributes, and the kernel's timestamp exactly as for loads.
   */
  mapCustom(rec: TraceRecord, p: ProcessInfo | undefined, missing: readonly string[], observedNs: bigint): LogRecord {
    const pid = rec.tgid ?? rec.tid;
    const a: LogAttributes = { ...(this.factsOnRecord ? { 'process.pid': pid } : {}), 'thread.id': rec.tid, 'soload.probe': rec.event };
    const comm = rec.fields.comm ?? (rec.comm !== '<...>' ? rec.comm : p?.comm);
    if (comm) a['soload.comm'] = comm;
    for (const [k, v] of Object.entries(rec.fields)) if (v !== null) a[`soload.arg.${k}`] = v;
    if (p && this.factsOnRecord) Object.assign(a, processAttributesOf(p, this.serviceKey));
    if (missing.length) a['soload.enrichment.missing'] = [...missing];
    return {
      eventName: CUSTOM_EVENT_NAME,
      timestamp: nsToHrTime(this.toWallNs(rec.timestampNs)),
      observedTimestamp: nsToHrTime(observedNs),
      severityNumber: this.severityNumber,
      severityText: this.severityText,
      body: `${comm ?? 'pid'}[${pid}] hit ${rec.event}`,
      attributes: a,
    };
  }
}

/**
 * `major:minor` of a device number as /proc/<pid>/maps prints it (hex, at least two digits each),
 * decoding the kernel's new_encode_dev() layout that stat(2) returns.
 */
export function deviceName(dev: number): string {
  // a host has a handful of devices and every record names one: BigInt arithmetic once per device
  let name = DEVICE_NAMES.get(dev);
  if (name === undefined) {
    name = formatDevice(dev);
    if (DEVICE_NAMES.size >= 1024) DEVICE_NAMES.clear();
    DEVICE_NAMES.set(dev, name);
  }
  return name;
}

const DEVICE_NAMES = new Map<number, string>();

function formatDevice(dev: number): string {
  const d = BigInt(dev);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn);
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn);
  return `${major.toString(16).padStart(2, '0')}:${minor.toString(16).padStart(2, '0')}`;
}

/**
 * The traced process's attributes (semantic conventions), shared by load and custom records and,
 * in process resource mode, by the process's resource. `serviceKey` names the attribute of the
 * process's declared service name; without it the name is left out (the resource sets service.name).
 */
export function processAttributesOf(p: ProcessInfo, serviceKey: string | undefined): LogAttributes {
  const a: LogAttributes = {};
  if (p.ppid !== undefined) a['process.parent_pid'] = p.ppid;
  if (p.exePath !== undefined) a['process.executable.path'] = p.exePath;
  if (p.exeName !== undefined) a['process.executable.name'] = p.exeName;
  if (p.commandLine !== undefined) a['process.command_line'] = p.commandLine;
  if (p.owner !== undefined) a['process.owner'] = p.owner;
  if (p.uid !== undefined) a['process.user.id'] = p.uid;
  if (p.containerId !== undefined) a['container.id'] = p.containerId;
  if (p.mntNs !== undefined) a['soload.process.mnt_ns'] = p.mntNs;
  if (p.pidNs !== undefined) a['soload.process.pid_ns'] = p.pidNs;
  if (p.nsPid !== undefined) a['soload.process.ns_pid'] = p.nsPid;
  if (serviceKey !== undefined && p.serviceName !== undefined) a[serviceKey] = p.serviceName;
  return a;
}
