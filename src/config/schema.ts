import { builtinProbes, PROBE_ROLES, type ProbeConfig } from './probes';

/** The effective, validated configuration. */
export interface SoloadConfig {
  tracefs: {
    path: string;
    instancePrefix: string;
    groupPrefix: string;
    bufferSizeKb: number;
    traceClock: string;
    pollIntervalMs: number;
  };
  probes: ProbeConfig[];
  capture: {
    reportExecutable: boolean;
    snapshot: boolean;
    listSliceSize: number;
    listSlices: number;
    dlopenListSlices: number;
  };
  filters: {
    pids: number[];
    excludePids: number[];
    comms: string[];
    excludeComms: string[];
    pathInclude: string[];
    pathExclude: string[];
    excludeSelf: boolean;
  };
  procRoot: string;
  debugRoot: string;
  otel: {
    exporters: string[];
    endpoint: string;
    headers: Record<string, string>;
    timeoutMs: number;
    serviceName: string;
    processServiceAttribute: string;
    resourceAttributes: Record<string, string>;
    severity: string;
    batch: { maxQueueSize: number; maxExportBatchSize: number; scheduledDelayMs: number };
    protocol: string;
    compression: string;
    tls: { caFile: string; certFile: string; keyFile: string };
    delivery: {
      maxBufferedRecords: number;
      maxBufferedBytes: number;
      spillDir: string;
      maxSpillBytes: number;
      initialBackoffMs: number;
      maxBackoffMs: number;
      shutdownDrainMs: number;
    };
    metrics: { enabled: boolean; endpoint: string; intervalMs: number };
  };
  log: { level: string; statsIntervalMs: number };
}

const SEVERITIES = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'];
const EXPORTERS = ['otlp', 'console', 'none'];
const TRACE_CLOCKS = ['mono', 'boot', 'local', 'global'];
const PROBE_KEYS = new Set(['name', 'library', 'symbol', 'offset', 'kind', 'fetch', 'role', 'optional']);
const NAME_RE = /^[A-Za-z][A-Za-z0-9_]{0,31}$/;
// Fetch arguments are passed to the kernel verbatim: refuse whitespace and shell-ish separators that
// would split one argument into several or smuggle a second probe definition into uprobe_events.
const FETCHARG_RE = /^[^\s;\n'"`]+$/;

function fail(msg: string): never {
  throw new Error(msg);
}

function validateProbeList(list: unknown): void {
  if (!Array.isArray(list)) fail('must be an array of probe objects');
  const names = new Set<string>();
  list.forEach((p, i) => {
    const at = `probes[${i}]`;
    if (typeof p !== 'object' || p === null || Array.isArray(p)) fail(`${at} must be an object`);
    const probe = p as Record<string, unknown>;
    for (const k of Object.keys(probe)) {
      if (!PROBE_KEYS.has(k)) fail(`${at} has unknown key "${k}"; allowed keys: ${[...PROBE_KEYS].join(', ')}`);
    }
    if (typeof probe.name !== 'string' || !NAME_RE.test(probe.name)) {
      fail(`${at}.name must match ${NAME_RE} (got ${JSON.stringify(probe.name)})`);
    }
    if (names.has(probe.name)) fail(`${at}.name "${probe.name}" is used twice; probe names must be unique`);
    names.add(probe.name);
    if (typeof probe.library !== 'string' || probe.library.length === 0 || /[\s\n]/.test(probe.library)) {
      fail(`${at}.library must be a non-empty path, soname or glob without whitespace`);
    }
    if (probe.kind !== 'entry' && probe.kind !== 'return') {
      fail(`${at}.kind must be one of "entry", "return" (got ${JSON.stringify(probe.kind)})`);
    }
    if (probe.symbol === undefined && probe.offset === undefined) fail(`${at} needs "symbol" or "offset"`);
    if (probe.symbol !== undefined && (typeof probe.symbol !== 'string' || !/^[A-Za-z_.$][\w.$@]*$/.test(probe.symbol))) {
      fail(`${at}.symbol must be a symbol name such as "dlopen" or "dlopen@@GLIBC_2.34"`);
    }
    if (probe.offset !== undefined && (typeof probe.offset !== 'string' || !/^(0x[0-9a-fA-F]+|[0-9]+)$/.test(probe.offset))) {
      fail(`${at}.offset must be a decimal or 0x-hex file offset string such as "0x85500"`);
    }
    if (probe.role !== undefined && !(PROBE_ROLES as readonly unknown[]).includes(probe.role)) {
      fail(`${at}.role must be one of ${PROBE_ROLES.map((r) => `"${r}"`).join(', ')}`);
    }
    if (probe.optional !== undefined && typeof probe.optional !== 'boolean') fail(`${at}.optional must be true or false`);
    if (typeof probe.fetch !== 'object' || probe.fetch === null || Array.isArray(probe.fetch)) {
      fail(`${at}.fetch must be an object of attributeName → fetcharg`);
    }
    for (const [k, v] of Object.entries(probe.fetch as Record<string, unknown>)) {
      if (!NAME_RE.test(k)) fail(`${at}.fetch key "${k}" must match ${NAME_RE}`);
      if (typeof v !== 'string' || !FETCHARG_RE.test(v)) {
        fail(`${at}.fetch.${k} must be one uprobe fetch argument without spaces or quotes, e.g. "+0(%di):ustring"`);
      }
    }
  });
}

function validateStringList(list: unknown): void {
  if (!Array.isArray(list) || list.some((x) => typeof x !== 'string')) fail('must be an array of strings');
}

function validatePidList(list: unknown): void {
  if (!Array.isArray(list) || list.some((x) => !Number.isInteger(x) || (x as number) <= 0)) {
    fail('must be an array of positive integer pids');
  }
}

function validateStringMap(map: unknown): void {
  if (typeof map !== 'object' || map === null || Array.isArray(map)) fail('must be an object of string → string');
  for (const [k, v] of Object.entries(map as object)) {
    if (typeof v !== 'string') fail(`value of "${k}" must be a string`);
  }
}

function oneOf(values: string[]) {
  return (v: unknown) => {
    if (typeof v !== 'string' || !values.includes(v)) fail(`must be one of ${values.map((x) => `"${x}"`).join(', ')}`);
  };
}

/** The convict schema: every key documented; `env` names the SOLOAD_* override. */
export function configSchema() {
  return {
    tracefs: {
      path: {
        doc: 'tracefs mount point; empty = auto-detect (/sys/kernel/tracing, then /sys/kernel/debug/tracing; mounts tracefs if needed).',
        format: String,
        default: '',
        env: 'SOLOAD_TRACEFS_PATH',
      },
      instancePrefix: {
        doc: 'Prefix of the tracefs instance soload creates (instances/<prefix>_<pid>); other tracers’ buffers stay untouched.',
        format: (v: unknown) => {
          if (typeof v !== 'string' || !/^[A-Za-z][A-Za-z0-9_]{0,15}$/.test(v)) fail('must match /^[A-Za-z][A-Za-z0-9_]{0,15}$/');
        },
        default: 'soload',
        env: 'SOLOAD_TRACEFS_INSTANCE_PREFIX',
      },
      groupPrefix: {
        doc: 'Prefix of the uprobe event group (<prefix>_<pid>); stale groups with this prefix from dead soload processes are removed at start.',
        format: (v: unknown) => {
          if (typeof v !== 'string' || !/^[A-Za-z][A-Za-z0-9_]{0,15}$/.test(v)) fail('must match /^[A-Za-z][A-Za-z0-9_]{0,15}$/');
        },
        default: 'soload',
        env: 'SOLOAD_TRACEFS_GROUP_PREFIX',
      },
      bufferSizeKb: {
        doc: 'Per-CPU ring buffer size of soload’s instance, in KiB.',
        format: 'nat',
        default: 4096,
        env: 'SOLOAD_TRACEFS_BUFFER_SIZE_KB',
      },
      traceClock: {
        doc: 'Trace clock of the instance. "mono" (CLOCK_MONOTONIC) converts exactly to wall-clock time; others are for diagnosis.',
        format: oneOf(TRACE_CLOCKS),
        default: 'mono',
        env: 'SOLOAD_TRACEFS_TRACE_CLOCK',
      },
      pollIntervalMs: {
        doc: 'How often trace_pipe is drained when empty (non-blocking reads), in ms.',
        format: 'nat',
        default: 50,
        env: 'SOLOAD_TRACEFS_POLL_INTERVAL_MS',
      },
    },
    probes: {
      doc: 'Declarative uprobes: [{ name, library, symbol | offset, kind: entry|return, fetch: {attr: fetcharg}, role?, optional? }]. Defaults: dlopen entry/return in libc.so.6 (glibc ≥ 2.34) and libdl.so.2 (older glibc).',
      format: validateProbeList,
      default: builtinProbes() as ProbeConfig[],
    },
    capture: {
      reportExecutable: {
        doc: 'Also report the main program of each process (soload.load.method = "executable").',
        format: Boolean,
        default: false,
        env: 'SOLOAD_CAPTURE_REPORT_EXECUTABLE',
      },
      snapshot: {
        doc: 'At start, report the objects already loaded by running processes (soload.snapshot = true).',
        format: Boolean,
        default: true,
        env: 'SOLOAD_CAPTURE_SNAPSHOT',
      },
      listSliceSize: {
        doc: 'List mechanism (ld.so without debug symbols): search-list entries read per probe. Each entry is two strings; the kernel silently drops events larger than a page, so keep this ≤ 8.',
        format: 'nat',
        default: 8,
        env: 'SOLOAD_CAPTURE_LIST_SLICE_SIZE',
      },
      listSlices: {
        doc: 'List mechanism: probes reading the start-up search list; listSlices × listSliceSize objects are read per process start.',
        format: 'nat',
        default: 16,
        env: 'SOLOAD_CAPTURE_LIST_SLICES',
      },
      dlopenListSlices: {
        doc: 'List mechanism: probes reading a dlopened object’s dependencies (× listSliceSize).',
        format: 'nat',
        default: 4,
        env: 'SOLOAD_CAPTURE_DLOPEN_LIST_SLICES',
      },
    },
    filters: {
      pids: { doc: 'Only report these pids (empty = all).', format: validatePidList, default: [] as number[] },
      excludePids: { doc: 'Never report these pids.', format: validatePidList, default: [] as number[] },
      comms: { doc: 'Only report processes whose comm is in this list (empty = all).', format: validateStringList, default: [] as string[] },
      excludeComms: { doc: 'Never report processes whose comm is in this list.', format: validateStringList, default: [] as string[] },
      pathInclude: { doc: 'Only report libraries whose path matches one of these globs (empty = all).', format: validateStringList, default: [] as string[] },
      pathExclude: { doc: 'Never report libraries whose path matches one of these globs.', format: validateStringList, default: [] as string[] },
      excludeSelf: { doc: 'Do not report loads by soload’s own process.', format: Boolean, default: true },
    },
    procRoot: { doc: 'Root of the proc filesystem to read processes from.', format: String, default: '/proc', env: 'SOLOAD_PROC_ROOT' },
    debugRoot: { doc: 'Root of separate debug files (build-id and debuglink lookup for stripped libraries).', format: String, default: '/usr/lib/debug', env: 'SOLOAD_DEBUG_ROOT' },
    otel: {
      exporters: {
        doc: 'Where records go: any of "otlp" (OTLP/HTTP), "console" (one JSON object per line on stdout), or ["none"].',
        format: (v: unknown) => {
          validateStringList(v);
          for (const e of v as string[]) if (!EXPORTERS.includes(e)) fail(`entries must be one of ${EXPORTERS.map((x) => `"${x}"`).join(', ')} (got "${e}")`);
        },
        default: ['otlp', 'console'],
      },
      endpoint: {
        doc: 'OTLP/HTTP logs URL. OTEL_EXPORTER_OTLP_LOGS_ENDPOINT (as is) or OTEL_EXPORTER_OTLP_ENDPOINT (+ /v1/logs) override it.',
        format: (v: unknown) => {
          if (typeof v !== 'string' || !/^https?:\/\/[^\s]+$/.test(v)) fail('must be an http:// or https:// URL');
        },
        default: 'http://localhost:4318/v1/logs',
        env: 'SOLOAD_OTLP_ENDPOINT',
      },
      headers: { doc: 'Extra HTTP headers for OTLP export (e.g. auth). OTEL_EXPORTER_OTLP_HEADERS adds to them. Values are masked by `soload config`.', format: validateStringMap, default: {} as Record<string, string> },
      timeoutMs: { doc: 'OTLP export request timeout in ms.', format: 'nat', default: 10000, env: 'SOLOAD_OTLP_TIMEOUT_MS' },
      serviceName: { doc: 'service.name of soload itself (resource). OTEL_SERVICE_NAME overrides it.', format: String, default: 'soload', env: 'OTEL_SERVICE_NAME' },
      processServiceAttribute: {
        doc: 'Record attribute that carries the traced process’s own service name (from its OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES). Default "service.name" joins loads to that service’s traces; backends that merge resource and record attributes into one namespace (VictoriaLogs; Loki’s service_name label) see it collide with soload’s resource service.name — set e.g. "soload.process.service.name" there.',
        format: (v: unknown) => {
          if (typeof v !== 'string' || !/^[A-Za-z][\w.]{0,127}$/.test(v)) fail('must be an attribute name such as "service.name"');
        },
        default: 'service.name',
        env: 'SOLOAD_PROCESS_SERVICE_ATTRIBUTE',
      },
      resourceAttributes: { doc: 'Extra resource attributes. OTEL_RESOURCE_ATTRIBUTES adds to them.', format: validateStringMap, default: {} as Record<string, string> },
      severity: { doc: 'Severity of so.load records.', format: oneOf(SEVERITIES), default: 'INFO', env: 'SOLOAD_SEVERITY' },
      batch: {
        maxQueueSize: { doc: 'BatchLogRecordProcessor queue bound (records).', format: 'nat', default: 65536, env: 'SOLOAD_BATCH_MAX_QUEUE_SIZE' },
        maxExportBatchSize: { doc: 'Records per OTLP request.', format: 'nat', default: 512, env: 'SOLOAD_BATCH_MAX_EXPORT_BATCH_SIZE' },
        scheduledDelayMs: { doc: 'Delay between exports in ms.', format: 'nat', default: 200, env: 'SOLOAD_BATCH_SCHEDULED_DELAY_MS' },
      },
      protocol: {
        doc: 'OTLP/HTTP body encoding: "http/json" (records sent by @opentelemetry/exporter-logs-otlp-http’s OTLPLogExporter) or "http/protobuf" (smaller requests, same transport). OTEL_EXPORTER_OTLP_(LOGS_)PROTOCOL overrides it (grpc is not supported).',
        format: oneOf(['http/protobuf', 'http/json']),
        default: 'http/json',
        env: 'SOLOAD_OTLP_PROTOCOL',
      },
      compression: {
        doc: 'OTLP request compression: "gzip" or "none". OTEL_EXPORTER_OTLP_(LOGS_)COMPRESSION overrides it.',
        format: oneOf(['gzip', 'none']),
        default: 'none',
        env: 'SOLOAD_OTLP_COMPRESSION',
      },
      tls: {
        caFile: {
          doc: 'PEM file of the CA(s) that signed the collector’s certificate (https endpoints; default: the system CAs). OTEL_EXPORTER_OTLP_(LOGS_)CERTIFICATE sets it.',
          format: String,
          default: '',
          env: 'SOLOAD_OTLP_CA_FILE',
        },
        certFile: {
          doc: 'PEM client certificate for mTLS (with keyFile). OTEL_EXPORTER_OTLP_(LOGS_)CLIENT_CERTIFICATE sets it.',
          format: String,
          default: '',
          env: 'SOLOAD_OTLP_CERT_FILE',
        },
        keyFile: {
          doc: 'PEM private key of certFile. OTEL_EXPORTER_OTLP_(LOGS_)CLIENT_KEY sets it. Only the path is ever printed.',
          format: String,
          default: '',
          env: 'SOLOAD_OTLP_KEY_FILE',
        },
      },
      delivery: {
        maxBufferedRecords: {
          doc: 'Records kept in memory while the collector is unreachable (default covers > 8 min at 200 loads/s); past it they spill to spillDir or are dropped (counted, warned).',
          format: 'nat',
          default: 100000,
          env: 'SOLOAD_DELIVERY_MAX_BUFFERED_RECORDS',
        },
        maxBufferedBytes: {
          doc: 'Bytes of encoded OTLP requests kept in memory (second bound next to maxBufferedRecords).',
          format: 'nat',
          default: 268435456,
          env: 'SOLOAD_DELIVERY_MAX_BUFFERED_BYTES',
        },
        spillDir: {
          doc: 'Directory for the on-disk queue (empty = off): overflow past the memory bound and whatever is undelivered at shutdown, stored as OTLP request bodies, replayed at the next start, deleted once acknowledged. One soload per directory.',
          format: String,
          default: '',
          env: 'SOLOAD_DELIVERY_SPILL_DIR',
        },
        maxSpillBytes: {
          doc: 'Bound of spillDir in bytes; past it records are dropped (counted, warned).',
          format: 'nat',
          default: 1073741824,
          env: 'SOLOAD_DELIVERY_MAX_SPILL_BYTES',
        },
        initialBackoffMs: { doc: 'First retry delay after a failed OTLP request, in ms (doubles up to maxBackoffMs).', format: 'nat', default: 500, env: 'SOLOAD_DELIVERY_INITIAL_BACKOFF_MS' },
        maxBackoffMs: { doc: 'Longest retry delay, in ms.', format: 'nat', default: 5000, env: 'SOLOAD_DELIVERY_MAX_BACKOFF_MS' },
        shutdownDrainMs: {
          doc: 'At shutdown, how long soload keeps trying to deliver queued records before spilling (or dropping) them, in ms.',
          format: 'nat',
          default: 5000,
          env: 'SOLOAD_DELIVERY_SHUTDOWN_DRAIN_MS',
        },
      },
      metrics: {
        enabled: {
          doc: 'Export soload’s own health as OTLP metrics (soload.*) when the "otlp" exporter is on.',
          format: Boolean,
          default: true,
          env: 'SOLOAD_METRICS_ENABLED',
        },
        endpoint: {
          doc: 'OTLP/HTTP metrics URL; empty = derived from otel.endpoint (/v1/logs → /v1/metrics). OTEL_EXPORTER_OTLP_METRICS_ENDPOINT (as is) or OTEL_EXPORTER_OTLP_ENDPOINT (+ /v1/metrics) override it.',
          format: (v: unknown) => {
            if (typeof v !== 'string' || (v !== '' && !/^https?:\/\/[^\s]+$/.test(v))) fail('must be empty or an http:// or https:// URL');
          },
          default: '',
          env: 'SOLOAD_METRICS_ENDPOINT',
        },
        intervalMs: { doc: 'Metric export interval in ms. OTEL_METRIC_EXPORT_INTERVAL overrides it.', format: 'nat', default: 60000, env: 'SOLOAD_METRICS_INTERVAL_MS' },
      },
    },
    log: {
      level: { doc: 'soload’s own diagnostics on stderr.', format: oneOf(['debug', 'info', 'warn', 'error']), default: 'info', env: 'SOLOAD_LOG_LEVEL' },
      statsIntervalMs: {
        doc: 'Interval of the one-line health summary on stderr (loads, exported, dropped, queued, lost events, faults), in ms; 0 = off.',
        format: 'nat',
        default: 60000,
        env: 'SOLOAD_LOG_STATS_INTERVAL_MS',
      },
    },
  };
}
