/**
 * The configuration schema — the one place a key is declared. Its `doc`, `default` and `format`
 * feed convict (validation, defaults); its TypeScript type ({@link SoloadConfig}) is derived from the
 * same literal, so adding a key here types it everywhere. Environment variables are mapped in
 * ./env.ts (one table for SOLOAD_* and the OTel spec's variables).
 */
import { ErrorCodes, SoloadError } from '../errors';
import { DEFAULT_IMAGE_LAYERS } from './image-layers';
import { builtinProbes, PROBE_ROLES, type ProbeConfig } from './probes';
import { checkRiskRules, defaultRiskRules, type RiskRule } from '../enrich/risk';

// A phantom property: it only exists in the type system, carrying the TS type of the values a
// format function accepts (convict only calls the function; it never reads this).
declare const VALUE_TYPE: unique symbol;

/** A convict format function that also records, at type level only, the type of the values it accepts. */
export type TypedFormat<T> = ((value: unknown) => void) & { readonly [VALUE_TYPE]: T };

/** Brands a validator with the type of what it accepts (no runtime effect). */
function typed<T>(check: (value: unknown) => void): TypedFormat<T> {
  return check as TypedFormat<T>;
}

/** The formats a leaf may use; each maps to one TypeScript type (see {@link ValueOfFormat}). */
export type FormatSpec = 'nat' | StringConstructor | BooleanConstructor | TypedFormat<unknown>;

/** One configuration key: convict's leaf, with `doc` and `format` mandatory. */
export interface LeafSpec {
  doc: string;
  format: FormatSpec;
  default: unknown;
  /** convict: never print the value in validation errors (the format's own message describes it). */
  sensitive?: boolean;
}

/** A nested group of keys. */
export interface SchemaSpec {
  [key: string]: LeafSpec | SchemaSpec;
}

/** The TypeScript type of the values a format accepts. */
export type ValueOfFormat<F> = F extends TypedFormat<infer T>
  ? T
  : F extends 'nat'
    ? number
    : F extends BooleanConstructor
      ? boolean
      : F extends StringConstructor
        ? string
        : never;

/** The configuration object a schema describes: each leaf becomes the type of its format. */
export type ConfigOf<S> = {
  -readonly [K in keyof S]: S[K] extends LeafSpec ? ValueOfFormat<S[K]['format']> : ConfigOf<S[K]>;
};

/** Dotted paths of the leaves of a schema ("otel.tls.keyFile"). */
export type LeafPaths<S, P extends string = ''> = {
  [K in keyof S & string]: S[K] extends LeafSpec ? `${P}${K}` : LeafPaths<S[K], `${P}${K}.`>;
}[keyof S & string];

type At<T, P extends string> = P extends `${infer H}.${infer R}` ? (H extends keyof T ? At<T[H], R> : never) : P extends keyof T ? T[P] : never;

/** The literal type of soload's schema. */
export type ConfigSchema = ReturnType<typeof configSchema>;

/** The effective, validated configuration (derived from {@link configSchema}). */
export type SoloadConfig = ConfigOf<ConfigSchema>;

/** Every configuration key as a dotted path, e.g. "otel.delivery.spillDir". */
export type ConfigKey = LeafPaths<ConfigSchema>;

/** The type of the value at a key. */
export type ConfigValue<K extends ConfigKey> = At<SoloadConfig, K>;

const SEVERITIES = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'] as const;
const EXPORTERS = ['otlp', 'console', 'none'] as const;
const TRACE_CLOCKS = ['mono', 'boot', 'local', 'global'] as const;
const PROBE_KEYS = new Set(['name', 'library', 'symbol', 'offset', 'kind', 'fetch', 'role', 'optional']);
const NAME_RE = /^[A-Za-z][A-Za-z0-9_]{0,31}$/;
// Fetch arguments are passed to the kernel verbatim: refuse whitespace and shell-ish separators that
// would split one argument into several or smuggle a second probe definition into uprobe_events.
const FETCHARG_RE = /^[^\s;\n'"`]+$/;
const PREFIX_RE = /^[A-Za-z][A-Za-z0-9_]{0,15}$/;

// convict prefixes the message with the key; loadConfig wraps the whole report in one CONFIG_INVALID.
function fail(msg: string): never {
  throw new SoloadError(ErrorCodes.CONFIG_INVALID, msg);
}

const validateProbeList = typed<ProbeConfig[]>((list: unknown): void => {

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
    // Whitespace is fine: such files are probed through a symlink alias (tracefs/probe-line.ts).
    if (typeof probe.library !== 'string' || probe.library.length === 0 || probe.library.includes('\0')) {
      fail(`${at}.library must be a non-empty path, soname or glob`);
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
});

function checkStringList(list: unknown): void {
  if (!Array.isArray(list) || list.some((x) => typeof x !== 'string')) fail('must be an array of strings');
}

const validateStringList = typed<string[]>(checkStringList);

const validatePidList = typed<number[]>((list: unknown): void => {
  if (!Array.isArray(list) || list.some((x) => !Number.isInteger(x) || (x as number) <= 0)) {
    fail('must be an array of positive integer pids');
  }
});

const validateStringMap = typed<Record<string, string>>((map: unknown): void => {
  if (typeof map !== 'object' || map === null || Array.isArray(map)) fail('must be an object of string → string');
  for (const [k, v] of Object.entries(map as object)) {
    if (typeof v !== 'string') fail(`value of "${k}" must be a string`);
  }
});

/** RFC 9110 field-name characters (a token). */
const HEADER_NAME_RE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * What is wrong with one export header, or undefined (pure). Checked when the config is loaded, not
 * at the first request: Node's http client throws on an invalid name or a CR/LF/NUL in a value
 * (header injection, e.g. a percent-encoded %0D%0A in OTEL_EXPORTER_OTLP_HEADERS), which would fail
 * every export of the run. The message says where the problem is, never the value (a credential)
 * nor an invalid name (a value pasted into the name is the common mistake).
 */
export function headerProblem(name: string, value: unknown, position: number): string | undefined {
  if (!HEADER_NAME_RE.test(name)) {
    const bad = [...name].findIndex((c) => !HEADER_NAME_RE.test(c));
    return `header #${position}: its name (${name.length} characters) is not an HTTP token: character ${bad + 1} is not a letter, digit or one of !#$%&'*+-.^_\`|~ (name not shown: it may hold a credential)`;
  }
  if (typeof value !== 'string') return `the value of header "${name}" must be a string (value not shown)`;
  if (/[\r\n\0]/.test(value)) return `the value of header "${name}" contains a CR, LF or NUL character, which HTTP forbids (value not shown)`;
  return undefined;
}

const validateRiskRules = typed<RiskRule[]>((list: unknown): void => {
  try {
    checkRiskRules(list);
  } catch (err) {
    fail((err as Error).message);
  }
});

/** A string that must be one of `values`; typed as their union. */
function oneOf<const V extends readonly string[]>(values: V): TypedFormat<V[number]> {
  return typed<V[number]>((v: unknown) => {
    if (typeof v !== 'string' || !values.includes(v)) fail(`must be one of ${values.map((x) => `"${x}"`).join(', ')}`);
  });
}

/** A list whose entries are each one of `values`. */
function listOf<const V extends readonly string[]>(values: V): TypedFormat<Array<V[number]>> {
  return typed<Array<V[number]>>((v: unknown) => {
    checkStringList(v);
    for (const e of v as string[]) if (!values.includes(e)) fail(`entries must be one of ${values.map((x) => `"${x}"`).join(', ')} (got "${e}")`);
  });
}

function matching(re: RegExp, what: string): TypedFormat<string> {
  return typed<string>((v: unknown) => {
    if (typeof v !== 'string' || !re.test(v)) fail(what);
  });
}

/** `//user:password@` in a URL, replaced before a URL is ever printed. */
const URL_USERINFO_RE = /\/\/[^/@\s]*@/;

/** A URL with its credentials (userinfo) masked, for messages. */
export function maskUrlCredentials(url: string): string {
  return url.replace(URL_USERINFO_RE, '//***@');
}

/**
 * An http(s) URL that the WHATWG URL parser (the one Node's http client uses) accepts, with a host.
 * Leaves using it are `sensitive`: convict would otherwise append the raw value, credentials
 * included, to its message; this one quotes it with the userinfo masked.
 */
function httpUrl(opts: { allowEmpty: boolean }): TypedFormat<string> {
  return typed<string>((v: unknown) => {
    if (opts.allowEmpty && v === '') return;
    const want = `must be ${opts.allowEmpty ? 'empty or ' : ''}an http:// or https:// URL such as "http://localhost:4318/v1/logs"`;
    if (typeof v !== 'string') fail(want);
    const shown = JSON.stringify(maskUrlCredentials(v));
    let url: URL;
    try {
      url = new URL(v);
    } catch {
      fail(`${want} (${shown} does not parse as a URL)`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') fail(`${want} (${shown} has scheme "${url.protocol.replace(/:$/, '')}")`);
    if (!url.hostname) fail(`${want} (${shown} has no host)`);
  });
}

/**
 * The convict schema: every key documented. A fresh object per call (convict keeps references to
 * defaults such as the probe list). Environment variables: ./env.ts.
 */
export function configSchema() {
  return {
    tracefs: {
      path: {
        doc: 'tracefs mount point; empty = auto-detect (/sys/kernel/tracing, then /sys/kernel/debug/tracing; mounts tracefs if needed).',
        format: String,
        default: '',
      },
      instancePrefix: {
        doc: 'Prefix of the tracefs instance soload creates (instances/<prefix>_<pid>); other tracers’ buffers stay untouched.',
        format: matching(PREFIX_RE, `must match ${PREFIX_RE}`),
        default: 'soload',
      },
      groupPrefix: {
        doc: 'Prefix of the uprobe event group (<prefix>_<pid>); stale groups with this prefix from dead soload processes are removed at start.',
        format: matching(PREFIX_RE, `must match ${PREFIX_RE}`),
        default: 'soload',
      },
      bufferSizeKb: {
        doc: 'Per-CPU ring buffer size of soload’s instance, in KiB.',
        format: 'nat',
        default: 4096,
      },
      traceClock: {
        doc: 'Trace clock of the instance. "mono" (CLOCK_MONOTONIC) converts exactly to wall-clock time; others are for diagnosis.',
        format: oneOf(TRACE_CLOCKS),
        default: 'mono' as const,
      },
      pollIntervalMs: {
        doc: 'How often trace_pipe is drained when empty (non-blocking reads), in ms.',
        format: 'nat',
        default: 50,
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
      },
      snapshot: {
        doc: 'At start, report the objects already loaded by running processes (soload.snapshot = true).',
        format: Boolean,
        default: true,
      },
      listSliceSize: {
        doc: "List mechanisms (search-lists, loader-lists): start-up search-list entries read per probe. The array is read past the list's end by the probes whose slice lies beyond it (a filter does not stop a fetch), and a garbage pointer there can turn into a string long enough for the kernel to drop the whole event (over one page): 8 per probe lost 88 of 500 short-lived Debian 13 processes' lists, 4 and 1 lost none. Each probe costs ~65 ms to remove at shutdown (the kernel waits for an RCU grace period per event), so fewer, larger slices stop faster.",
        format: 'nat',
        default: 4,
      },
      listSlices: {
        doc: 'List mechanisms: probes reading the start-up search list once per process (at libc start-up); listSlices × listSliceSize objects are read in the kernel, longer lists are completed from the live process. Every probe costs its fetches on every process start, read or not.',
        format: 'nat',
        default: 12,
      },
      perObjectProbe: {
        doc: "glibc with debug symbols: trap every object ld.so maps (_dl_add_to_namespace_list, the loader-probe mechanism) instead of reading the start-up list once per process and each dlopen's new objects at _dl_open's return (loader-lists). Sees also the objects of start-ups that fail and of dlopens that fail half-way, at one trap per object (about 40 more per start of a 40-library program).",
        format: Boolean,
        default: false,
      },
      dlopenWalkDepth: {
        doc: "List mechanism: new dependencies of a dlopen read in the kernel at dlopen's return (1–7, the kernel's fetch-argument length limit); more are completed from the live process.",
        format: typed<number>((v) => {
          if (!Number.isInteger(v) || (v as number) < 1 || (v as number) > 7) fail('must be an integer from 1 to 7 (one fetch argument reaches 7 maps down the list)');
        }),
        default: 3,
      },
    },
    discovery: {
      enabled: {
        doc: 'Give every loader met at an exec (containers, chroots, musl) its own capture mechanism, and drop it when its last process exits. Off: only the loaders found at start are probed.',
        format: Boolean,
        default: true,
      },
      imageLayers: {
        doc: 'Globs of container image-layer directories (overlayfs lower layers) whose loaders are probed before any container starts, so a new container’s first process is seen from its first load. Defaults cover containerd, Docker, Podman/CRI-O and k3s.',
        format: validateStringList,
        default: [...DEFAULT_IMAGE_LAYERS],
      },
      layerScanIntervalMs: { doc: 'How often imageLayers are scanned for new layers (ms).', format: 'nat', default: 2000 },
      sweepIntervalMs: { doc: 'How often loaders no process uses any more lose their probes (ms).', format: 'nat', default: 10000 },
    },
    state: {
      housekeepingIntervalMs: {
        doc: 'How often per-process and per-thread state is checked: dlopen calls older than dlopenMaxAgeMs are reported incomplete and dropped, processes /proc no longer shows (their exit event lost to a ring-buffer overrun, or a thread that died) are forgotten, facts of exited processes older than exitedGraceMs are released (ms).',
        format: typed<number>((v) => {
          if (!Number.isInteger(v) || (v as number) < 100) fail('must be an integer of at least 100 (ms)');
        }),
        default: 10000,
      },
      dlopenMaxAgeMs: { doc: 'A dlopen whose return never came (its thread was killed inside it) is reported with soload.result=incomplete and forgotten after this long (ms).', format: 'nat', default: 60000 },
      exitedGraceMs: { doc: 'How long the /proc facts of an exited process are kept for its records still on their way (ms).', format: 'nat', default: 10000 },
      debug: { doc: 'On SIGUSR2, print one JSON line to stderr with the size of every bounded structure and the heap after a forced GC (SOLOAD_DEBUG_STATE=1).', format: Boolean, default: false },
    },
    debuginfod: {
      enabled: { doc: 'Fetch debug symbols of loaders without local ones by build-id from debuginfod servers (DEBUGINFOD_URLS).', format: Boolean, default: true },
      urls: { doc: 'debuginfod server URLs; empty = the space-separated DEBUGINFOD_URLS environment variable.', format: validateStringList, default: [] as string[] },
      cacheDir: { doc: 'Where fetched debug files are kept (laid out as <dir>/.build-id/xx/yyyy.debug).', format: String, default: '/var/cache/soload/debuginfod' },
      timeoutMs: { doc: 'Whole-request timeout of one fetch, over all servers (ms). Start-up never waits for it: the symbol-less mechanism runs until the file arrives.', format: 'nat', default: 30000 },
      maxBytes: { doc: 'Largest debug file accepted (bytes).', format: 'nat', default: 64 * 1024 * 1024 },
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
    security: {
      enabled: {
        doc: 'Add the security signal to every so.load record: how the loader found the file (soload.search.step), its package (soload.package.*), its digest and build-id, its owner and directory permissions, the risk from security.rules, first sight on this host.',
        format: Boolean,
        default: true,
      },
      rules: {
        doc: 'Risk rules: [{ reason, risk: low|medium|high, when: { attribute: condition }, unless?, doc? }] over the record’s attributes (process attributes included). A condition is a value (equality) or operators: equals, in, under (directories), glob, exists, gte, lte, not. The highest matching risk wins; every matching reason is listed. Default: the rule set in README.md "Risk rules".',
        format: validateRiskRules,
        default: defaultRiskRules(),
      },
      severity: {
        low: { doc: 'Severity of records whose risk is low.', format: oneOf(SEVERITIES), default: 'INFO' as const },
        medium: { doc: 'Severity of records whose risk is medium (WARN: what a backend alerts on).', format: oneOf(SEVERITIES), default: 'WARN' as const },
        high: { doc: 'Severity of records whose risk is high.', format: oneOf(SEVERITIES), default: 'ERROR' as const },
      },
      packages: {
        enabled: { doc: 'Look each file up in the package database of the process’s own root (dpkg, apk): soload.package.name/version/manager, and soload.package.modified from the recorded digest.', format: Boolean, default: true },
        recheckMs: { doc: 'How often a package database is checked for changes (its status/installed file and info/ directory), in ms; a change re-indexes it.', format: 'nat', default: 5000 },
      },
      hash: {
        enabled: { doc: 'Compute file.hash.sha256 of each loaded file (off the main thread, cached by device, inode, size and mtime).', format: Boolean, default: true },
        maxFileBytes: { doc: 'Files larger than this are not hashed (soload.file.hash.skipped = too_large).', format: 'nat', default: 256 * 1024 * 1024 },
        bytesPerSecond: { doc: 'Hashing budget in bytes per second (0 = unbounded): a flood of new files is hashed at this rate at most, the rest skipped (budget, queue_full) rather than queued without bound.', format: 'nat', default: 64 * 1024 * 1024 },
        maxQueue: { doc: 'Files waiting to be hashed at most.', format: 'nat', default: 256 },
        waitMs: { doc: 'How long a record waits for its file’s first hash before it is sent without (soload.file.hash.skipped = pending); later loads of the file get it from the cache. Other records never wait.', format: 'nat', default: 2000 },
      },
      stateDir: {
        doc: 'Directory of soload’s state (first-seen keys; created 0700). Empty = no soload.first_seen.',
        format: String,
        default: '/var/lib/soload',
      },
      firstSeenEntries: { doc: 'Bound of the first-seen state (keys; least recently seen evicted).', format: 'nat', default: 100000 },
    },
    procRoot: { doc: 'Root of the proc filesystem to read processes from.', format: String, default: '/proc' },
    debugRoot: { doc: 'Root of separate debug files (build-id and debuglink lookup for stripped libraries).', format: String, default: '/usr/lib/debug' },
    otel: {
      exporters: {
        doc: 'Where records go: any of "otlp" (OTLP/HTTP), "console" (one JSON object per line on stdout), or ["none"].',
        format: listOf(EXPORTERS),
        default: ['otlp', 'console'] as Array<(typeof EXPORTERS)[number]>,
      },
      endpoint: {
        doc: 'OTLP/HTTP logs URL. OTEL_EXPORTER_OTLP_LOGS_ENDPOINT (as is) or OTEL_EXPORTER_OTLP_ENDPOINT (+ /v1/logs) override it.',
        format: httpUrl({ allowEmpty: false }),
        default: 'http://localhost:4318/v1/logs',
        sensitive: true,
      },
      headers: { doc: 'Extra HTTP headers for OTLP export (e.g. auth). OTEL_EXPORTER_OTLP_HEADERS adds to them. Values are masked by `soload config`.', format: validateStringMap, default: {} as Record<string, string> },
      timeoutMs: { doc: 'OTLP export request timeout in ms.', format: 'nat', default: 10000 },
      resourceMode: {
        doc: 'Whose resource a record carries. "process" (default): the process that mapped the object — service.name (its OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES, else unknown_service:<executable>), its declared service.*/deployment.*, process.*, container.id, host.* — with soload as the instrumentation scope; what Grafana trace-to-logs, Elastic and the Collector’s k8s_attributes join on. "agent": soload’s own resource (service.name=soload) and the process’s facts as record attributes (one resource per host, as soload reported before resource modes existed).',
        format: oneOf(['process', 'agent']),
        default: 'process' as const,
      },
      processResourceAttributes: {
        doc: 'Process resource mode: attributes every process’s resource starts from (e.g. deployment.environment.name, k8s.cluster.name), beneath what the process declares and what soload observes. SOLOAD_PROCESS_RESOURCE_ATTRIBUTES (key=value,...) adds to them.',
        format: validateStringMap,
        default: {} as Record<string, string>,
      },
      processDeclaredAttributes: {
        doc: 'Process resource mode: which keys of a process’s own OTEL_RESOURCE_ATTRIBUTES reach its resource ("prefix.*" or exact keys; "*" = all). process.*, host.*, os.*, container.id and soload.* are always soload’s observations, never the process’s claim.',
        format: validateStringList,
        default: ['service.*', 'deployment.*'] as string[],
      },
      serviceName: { doc: 'service.name of soload itself: its resource in agent mode and for its own metrics, its scope attribute soload.agent.service.name in process mode. OTEL_SERVICE_NAME overrides it.', format: String, default: 'soload' },
      processServiceAttribute: {
        doc: 'Agent resource mode: record attribute that carries the traced process’s own service name (from its OTEL_SERVICE_NAME / OTEL_RESOURCE_ATTRIBUTES; in process mode it is the resource’s service.name). Default "service.name" joins loads to that service’s traces; backends that merge resource and record attributes into one namespace (VictoriaLogs; Loki’s service_name label) see it collide with soload’s resource service.name — set e.g. "soload.process.service.name" there.',
        format: matching(/^[A-Za-z][\w.]{0,127}$/, 'must be an attribute name such as "service.name"'),
        default: 'service.name',
      },
      resourceAttributes: { doc: 'Extra attributes of soload’s own resource (agent mode records, soload’s metrics). OTEL_RESOURCE_ATTRIBUTES adds to them. For attributes every traced process’s resource should get, see otel.processResourceAttributes.', format: validateStringMap, default: {} as Record<string, string> },
      severity: { doc: 'Severity of so.load records.', format: oneOf(SEVERITIES), default: 'INFO' as const },
      batch: {
        maxQueueSize: { doc: 'BatchLogRecordProcessor queue bound (records).', format: 'nat', default: 65536 },
        maxExportBatchSize: { doc: 'Records per OTLP request.', format: 'nat', default: 512 },
        scheduledDelayMs: { doc: 'Delay between exports in ms.', format: 'nat', default: 200 },
      },
      protocol: {
        doc: 'OTLP/HTTP body encoding: "http/json" (records sent by @opentelemetry/exporter-logs-otlp-http’s OTLPLogExporter) or "http/protobuf" (smaller requests, same transport). OTEL_EXPORTER_OTLP_(LOGS_)PROTOCOL overrides it (grpc is not supported).',
        format: oneOf(['http/protobuf', 'http/json']),
        default: 'http/json' as const,
      },
      compression: {
        doc: 'OTLP request compression: "gzip" or "none". OTEL_EXPORTER_OTLP_(LOGS_)COMPRESSION overrides it.',
        format: oneOf(['gzip', 'none']),
        default: 'none' as const,
      },
      tls: {
        caFile: {
          doc: 'PEM file of the CA(s) that signed the collector’s certificate (https endpoints; default: the system CAs). OTEL_EXPORTER_OTLP_(LOGS_)CERTIFICATE sets it.',
          format: String,
          default: '',
        },
        certFile: {
          doc: 'PEM client certificate for mTLS (with keyFile). OTEL_EXPORTER_OTLP_(LOGS_)CLIENT_CERTIFICATE sets it.',
          format: String,
          default: '',
        },
        keyFile: {
          doc: 'PEM private key of certFile. OTEL_EXPORTER_OTLP_(LOGS_)CLIENT_KEY sets it. Only the path is ever printed.',
          format: String,
          default: '',
        },
      },
      delivery: {
        maxBufferedRecords: {
          doc: 'Records kept in memory while the collector is unreachable (default covers > 8 min at 200 loads/s); past it they spill to spillDir or are dropped (counted, warned).',
          format: 'nat',
          default: 100000,
        },
        maxBufferedBytes: {
          doc: 'Bytes of encoded OTLP requests kept in memory (second bound next to maxBufferedRecords).',
          format: 'nat',
          default: 268435456,
        },
        spillDir: {
          doc: 'Directory for the on-disk queue (empty = off): overflow past the memory bound and whatever is undelivered at shutdown, stored as OTLP request bodies, replayed at the next start, deleted once acknowledged. One soload per directory.',
          format: String,
          default: '',
        },
        maxSpillBytes: {
          doc: 'Bound of spillDir in bytes; past it records are dropped (counted, warned).',
          format: 'nat',
          default: 1073741824,
        },
        initialBackoffMs: { doc: 'First retry delay after a failed OTLP request, in ms (doubles up to maxBackoffMs).', format: 'nat', default: 500 },
        maxBackoffMs: { doc: 'Longest retry delay, in ms.', format: 'nat', default: 5000 },
        shutdownDrainMs: {
          doc: 'At shutdown, how long soload keeps trying to deliver queued records before spilling (or dropping) them, in ms.',
          format: 'nat',
          default: 5000,
        },
      },
      metrics: {
        enabled: {
          doc: 'Export soload’s own health as OTLP metrics (soload.*): with the "otlp" exporter, or with any exporters when otel.metrics.endpoint is set explicitly.',
          format: Boolean,
          default: true,
        },
        endpoint: {
          doc: 'OTLP/HTTP metrics URL; empty = derived from otel.endpoint (/v1/logs → /v1/metrics). OTEL_EXPORTER_OTLP_METRICS_ENDPOINT (as is) or OTEL_EXPORTER_OTLP_ENDPOINT (+ /v1/metrics) override it.',
          format: httpUrl({ allowEmpty: true }),
          default: '',
          sensitive: true,
        },
        intervalMs: { doc: 'Metric export interval in ms. OTEL_METRIC_EXPORT_INTERVAL overrides it.', format: 'nat', default: 60000 },
      },
    },
    log: {
      level: { doc: 'soload’s own diagnostics on stderr.', format: oneOf(['debug', 'info', 'warn', 'error']), default: 'info' as const },
      statsIntervalMs: {
        doc: 'Interval of the one-line health summary on stderr (loads, exported, dropped, queued, lost events, faults), in ms; 0 = off.',
        format: 'nat',
        default: 60000,
      },
    },
  } satisfies SchemaSpec;
}

/** Every key of `schema` as a dotted path, in declaration order (runtime twin of {@link ConfigKey}). */
export function configKeys(schema: SchemaSpec = configSchema()): ConfigKey[] {
  const out: string[] = [];
  const walk = (node: SchemaSpec, prefix: string): void => {
    for (const [k, v] of Object.entries(node)) {
      if ('default' in v && 'format' in v) out.push(prefix + k);
      else walk(v as SchemaSpec, `${prefix}${k}.`);
    }
  };
  walk(schema, '');
  return out as ConfigKey[];
}
