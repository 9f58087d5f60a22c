/**
 * Plain data types shared along the data path:
 * config → elf → tracefs (ProbeSpec) → pipe (TraceRecord) → capture (LoadEvent) → enrich → otel.
 */

/**
 * What a probe's records mean to the capture stage (the routing key: records go to the handler
 * that owns the role, never by event name). `custom` probes are exported as generic records.
 */
export const PROBE_ROLES = [
  'loader.add',
  'loader.state',
  'loader.list',
  'libc.init',
  'loader.open',
  'loader.unmap',
  'dlopen.entry',
  'dlopen.return',
  'dlopen.list',
  'chdir.entry',
  'chdir.return',
  'chroot.entry',
  'chroot.return',
  'view.entry',
  'view.return',
  'memfd.entry',
  'memfd.return',
  'custom',
] as const;

export type ProbeRole = (typeof PROBE_ROLES)[number];

/** One uprobe soload installs. Built by pure code, written to uprobe_events by TracefsSession. */
export interface ProbeSpec {
  /** Event name inside soload's group, e.g. `dlopen_entry`. [A-Za-z0-9_], starts with a letter. */
  event: string;
  /** `entry` → `p:` probe; `return` → `r:` probe. */
  kind: 'entry' | 'return';
  /** Absolute path of the ELF file the probe is placed in. */
  path: string;
  /** File offset of the instruction to probe (what uprobe_events wants, not the vaddr). */
  offset: number;
  /** Ordered fetch arguments: name → fetcharg expression with type (e.g. `+0(%di):ustring`). */
  fetch: Array<{ name: string; arg: string }>;
  /** What the probe is for: the capture logic keys off this, not off the event name. */
  role: ProbeRole;
  /** Where the offset came from, for `soload check`/`soload probes`. */
  symbol?: string;
  symbolSource?: string;
  /** tracefs event filter (e.g. `state == 0 && n > 8`), applied in soload's instance. */
  filter?: string;
  /** For probes that carry one slice of a loader list: index of the first entry and slice size. */
  slice?: { first: number; size: number };
}

/** One parsed trace_pipe line. */
export interface TraceRecord {
  /** Task name as printed in the line header (may be `<...>` when the kernel's comm cache missed). */
  comm: string;
  /** Thread id (the kernel's `pid` of the task). */
  tid: number;
  /** Thread-group id (process id) when the instance records tgids, else undefined. */
  tgid?: number;
  cpu: number;
  /** Trace-clock timestamp in nanoseconds (printed with µs precision by the kernel). */
  timestampNs: bigint;
  /** Probe event name (without group). */
  event: string;
  /** Probe group, when the line carries it (it does not in the default text format). */
  group?: string;
  /** Probed address text, e.g. `0x7f..500` or for return probes `0x5649.. <- 0x7f..500`. */
  location: string;
  /**
   * Fetched fields by name. String fields are unquoted and unescaped; `(fault)` values are
   * represented as `null` (never as the string "(fault)").
   */
  fields: Record<string, string | null>;
}

/** How a shared object came to be mapped. */
export type LoadMethod = 'dlopen' | 'needed' | 'preload' | 'interpreter' | 'executable' | 'unknown';

/** A shared-object load, after correlation of probe hits, before /proc enrichment. */
export interface LoadEvent {
  /** Trace-clock timestamp (ns) of the record that completed this event. */
  timestampNs: bigint;
  pid: number;
  tid: number;
  /** comm as read by the kernel at probe time ($comm), falling back to the line header. */
  comm: string;
  method: LoadMethod;
  /** Absolute resolved path as the process sees it; undefined when it could not be resolved. */
  path?: string;
  /** The name as requested (dlopen argument / DT_NEEDED entry), when known. */
  requestedName?: string;
  /** `incomplete`: a dlopen whose return never came (its thread or process was killed inside it). */
  result: 'ok' | 'failed' | 'incomplete';
  /** dlopen flags, when known. */
  flags?: number;
  /** The probe event that produced it. */
  probe: string;
  /** Object whose load pulled this one in (dlopen dependencies). */
  loadedBy?: string;
  /** True for loads reported from the start-up inventory of already-running processes. */
  snapshot?: boolean;
  /**
   * Read from the process's memory after the fact: its loader got probes only after the process
   * started (a loader soload met at that exec). The timestamp is when it was read.
   */
  recovered?: boolean;
  /** Fields that could not be read from the kernel (e.g. a `(fault)` string), by attribute name. */
  unresolved?: string[];
  /** The loader's own string for the object (ld.so's `l_name`), when it differs from `path`. */
  loaderPath?: string;
  /** The file's path on the host, when the process resolves paths in another root (a chroot). */
  hostPath?: string;
  /** The file no longer exists under its name (the kernel prints ` (deleted)`). */
  deleted?: boolean;
  /** An anonymous memory file (`memfd_create`): `path` is `/memfd:NAME`. */
  memfd?: boolean;
  /**
   * The process had moved to a root/mount namespace soload could not see (it was gone first):
   * `path` was resolved in the view it came from and may not be the kernel's name.
   */
  viewLost?: boolean;
  /** The file at `path` changed after the load (replaced by an upgrade): its facts are not reported. */
  replaced?: boolean;
  /**
   * Device and inode of the file the kernel mapped, as ld.so recorded them (`l_file_id`), when the
   * probes read them: the truth the resolved name is checked against.
   */
  mapped?: { dev?: number; ino: number };
  /**
   * The view `path` was resolved in (its id and the host prefix of its root): where later stages
   * open the file and look up the root's package database and loader cache.
   */
  view?: { id: string; prefix: string };
  /** Facts of the resolved file (device, inode, size), when it is the one that was loaded. */
  file?: { dev?: number; ino: number; size?: number };
}
