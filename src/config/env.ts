/**
 * Every environment variable soload reads, in one table: the config key it sets, how its text is
 * parsed, and its precedence. SOLOAD_* variables are soload's own; OTEL_* ones follow the
 * OpenTelemetry specification (exporter, resource and SDK variables), so a host already configured
 * for OTel SDKs configures soload too.
 *
 * Precedence, lowest first: schema default < config/default.json < `--config` file <
 * SOLOAD_* < generic OTel variable (OTEL_EXPORTER_OTLP_*) < signal-specific OTel variable
 * (OTEL_EXPORTER_OTLP_LOGS_* for the logs exporter, OTEL_EXPORTER_OTLP_METRICS_ENDPOINT for the
 * metrics one). This is the order soload has always documented (README "Configuration"; the
 * schema docs say the OTel variables "override" their key): the OTel variables are the standard a
 * host sets for every OTel exporter on it, and the signal-specific one is, by the specification,
 * meant to refine the generic one.
 */
import { ErrorCodes, SoloadError } from '../errors';
import { parseOtelKeyValueList } from '../util/otel-kv';
import type { ConfigKey, ConfigValue } from './schema';

/** Where a variable comes from; when several variables set one key, the higher tier wins. */
export type EnvTier = 'soload' | 'otel' | 'otel-signal';

/** Rank of each tier: higher wins. */
export const TIER_RANK: Readonly<Record<EnvTier, number>> = { soload: 1, otel: 2, 'otel-signal': 3 };

// A parser may return a wider type than the key's (any string for a key whose values are an enum):
// convict's format check runs after the environment is applied and names the key and the allowed
// values, exactly as for a value from a file.
type Loose<T> = T extends string ? string : T extends Array<infer E> ? Array<Loose<E>> : T;

/** One environment variable → one config key. */
export interface EnvBinding<K extends ConfigKey = ConfigKey> {
  /** The variable's name. */
  name: string;
  /** The config key it sets. */
  key: K;
  /** Precedence tier (see {@link TIER_RANK}). */
  tier: EnvTier;
  /** `set` replaces the key's value; `merge` adds the parsed members to the key's map (same member: higher precedence wins). */
  mode: 'set' | 'merge';
  /**
   * Trimmed text → value. Throws an Error saying what is expected; returns undefined to ignore the
   * variable (only where the OTel specification says invalid values are ignored).
   */
  parse: (raw: string) => Loose<ConfigValue<K>> | undefined;
  /** What text is accepted, for documentation and error messages. */
  accepts: string;
}

const text = (raw: string): string => raw;

/** A value that does not parse; {@link readEnv} adds the variable and the key to the message. */
function bad(msg: string): never {
  throw new SoloadError(ErrorCodes.CONFIG_INVALID, msg);
}

function nat(raw: string): number {
  if (!/^\d+$/.test(raw)) bad(`must be a non-negative integer (decimal digits), got ${JSON.stringify(raw)}`);
  return Number(raw);
}

function bool(raw: string): boolean {
  const v = raw.toLowerCase();
  if (v === 'true' || v === '1') return true;
  if (v === 'false' || v === '0') return false;
  return bad(`must be true or false, got ${JSON.stringify(raw)}`);
}

/** Comma-separated list; empty items dropped, so "" is the empty list. */
function list(raw: string): string[] {
  return raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean);
}

function pidList(raw: string): number[] {
  return list(raw).map((item) => {
    if (!/^\d+$/.test(item) || Number(item) <= 0) bad(`must be a comma-separated list of positive integer pids, got ${JSON.stringify(item)}`);
    return Number(item);
  });
}

/** A JSON array; the schema validates its members (typed as the key wants, checked by convict). */
function jsonArray<T>(raw: string): T[] {
  let v: unknown;
  try {
    v = JSON.parse(raw);
  } catch (err) {
    return bad(`must be a JSON array: ${(err as Error).message}`);
  }
  if (!Array.isArray(v)) bad('must be a JSON array');
  return v as T[];
}

const SEVERITY_TEXTS = ['TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL'] as const;
const SEVERITY = 'TRACE, DEBUG, INFO, WARN, ERROR or FATAL';

function severity(raw: string): (typeof SEVERITY_TEXTS)[number] {
  const v = raw.toUpperCase();
  if (!(SEVERITY_TEXTS as readonly string[]).includes(v)) bad(`must be one of ${SEVERITY}, got ${JSON.stringify(raw)}`);
  return v as (typeof SEVERITY_TEXTS)[number];
}

/** The OTel base endpoint: the signal's path is appended (spec: "…/v1/logs", "…/v1/metrics"). */
function baseEndpoint(signalPath: string) {
  return (raw: string): string => raw.replace(/\/+$/, '') + signalPath;
}

/** OTEL_METRIC_EXPORT_INTERVAL: the SDK specification says to ignore an invalid value, not to fail. */
function intervalOrIgnore(raw: string): number | undefined {
  return /^\d+$/.test(raw) ? Number(raw) : undefined;
}

function bind<K extends ConfigKey>(
  name: string,
  key: K,
  tier: EnvTier,
  parse: (raw: string) => Loose<ConfigValue<K>> | undefined,
  accepts: string,
  mode: 'set' | 'merge' = 'set',
): EnvBinding {
  // The generic parameter checks `parse` against the key's type; the table holds them erased.
  return { name, key, tier, parse, accepts, mode } as EnvBinding;
}

const S = 'soload' as const;
const O = 'otel' as const;
const L = 'otel-signal' as const;
const NAT = 'a non-negative integer';
const BOOL = 'true or false (1 or 0)';
const LIST = 'a comma-separated list';
const KV = 'OTel key=value list, comma-separated, values percent-encoded';

/**
 * The table. Grouped by key; a key may have several variables (their tiers decide). Keys without a
 * row (`probes`) are set by config files only.
 */
export const ENV_BINDINGS: readonly EnvBinding[] = [
  bind('SOLOAD_TRACEFS_PATH', 'tracefs.path', S, text, 'a directory ("" = auto-detect)'),
  bind('SOLOAD_TRACEFS_INSTANCE_PREFIX', 'tracefs.instancePrefix', S, text, 'a name'),
  bind('SOLOAD_TRACEFS_GROUP_PREFIX', 'tracefs.groupPrefix', S, text, 'a name'),
  bind('SOLOAD_TRACEFS_BUFFER_SIZE_KB', 'tracefs.bufferSizeKb', S, nat, NAT),
  bind('SOLOAD_TRACEFS_TRACE_CLOCK', 'tracefs.traceClock', S, text, 'a trace clock name'),
  bind('SOLOAD_TRACEFS_POLL_INTERVAL_MS', 'tracefs.pollIntervalMs', S, nat, NAT),

  bind('SOLOAD_CAPTURE_REPORT_EXECUTABLE', 'capture.reportExecutable', S, bool, BOOL),
  bind('SOLOAD_CAPTURE_SNAPSHOT', 'capture.snapshot', S, bool, BOOL),
  bind('SOLOAD_CAPTURE_LIST_SLICE_SIZE', 'capture.listSliceSize', S, nat, NAT),
  bind('SOLOAD_CAPTURE_LIST_SLICES', 'capture.listSlices', S, nat, NAT),
  bind('SOLOAD_CAPTURE_PER_OBJECT_PROBE', 'capture.perObjectProbe', S, bool, BOOL),
  bind('SOLOAD_CAPTURE_DLOPEN_WALK_DEPTH', 'capture.dlopenWalkDepth', S, nat, NAT),
  bind('SOLOAD_DISCOVERY_ENABLED', 'discovery.enabled', S, bool, BOOL),
  bind('SOLOAD_DISCOVERY_IMAGE_LAYERS', 'discovery.imageLayers', S, list, 'a comma-separated list of globs'),
  bind('SOLOAD_DISCOVERY_LAYER_SCAN_INTERVAL_MS', 'discovery.layerScanIntervalMs', S, nat, NAT),
  bind('SOLOAD_DISCOVERY_SWEEP_INTERVAL_MS', 'discovery.sweepIntervalMs', S, nat, NAT),
  bind('SOLOAD_STATE_HOUSEKEEPING_INTERVAL_MS', 'state.housekeepingIntervalMs', S, nat, NAT),
  bind('SOLOAD_STATE_DLOPEN_MAX_AGE_MS', 'state.dlopenMaxAgeMs', S, nat, NAT),
  bind('SOLOAD_STATE_EXITED_GRACE_MS', 'state.exitedGraceMs', S, nat, NAT),
  bind('SOLOAD_DEBUG_STATE', 'state.debug', S, bool, BOOL),
  bind('SOLOAD_DEBUGINFOD_ENABLED', 'debuginfod.enabled', S, bool, BOOL),
  bind('SOLOAD_DEBUGINFOD_URLS', 'debuginfod.urls', S, list, 'a comma-separated list of URLs (DEBUGINFOD_URLS itself is read when this is empty)'),
  bind('SOLOAD_DEBUGINFOD_CACHE_DIR', 'debuginfod.cacheDir', S, text, 'a directory'),
  bind('SOLOAD_DEBUGINFOD_TIMEOUT_MS', 'debuginfod.timeoutMs', S, nat, NAT),
  bind('SOLOAD_DEBUGINFOD_MAX_BYTES', 'debuginfod.maxBytes', S, nat, NAT),

  bind('SOLOAD_FILTER_PIDS', 'filters.pids', S, pidList, 'a comma-separated list of pids'),
  bind('SOLOAD_FILTER_EXCLUDE_PIDS', 'filters.excludePids', S, pidList, 'a comma-separated list of pids'),
  bind('SOLOAD_FILTER_COMMS', 'filters.comms', S, list, LIST),
  bind('SOLOAD_FILTER_EXCLUDE_COMMS', 'filters.excludeComms', S, list, LIST),
  bind('SOLOAD_FILTER_PATH_INCLUDE', 'filters.pathInclude', S, list, 'a comma-separated list of globs'),
  bind('SOLOAD_FILTER_PATH_EXCLUDE', 'filters.pathExclude', S, list, 'a comma-separated list of globs'),
  bind('SOLOAD_FILTER_EXCLUDE_SELF', 'filters.excludeSelf', S, bool, BOOL),

  bind('SOLOAD_SECURITY_ENABLED', 'security.enabled', S, bool, BOOL),
  bind('SOLOAD_SECURITY_RULES', 'security.rules', S, jsonArray, 'a JSON array of risk rules (replaces the default set)'),
  bind('SOLOAD_SECURITY_SEVERITY_LOW', 'security.severity.low', S, severity, SEVERITY),
  bind('SOLOAD_SECURITY_SEVERITY_MEDIUM', 'security.severity.medium', S, severity, SEVERITY),
  bind('SOLOAD_SECURITY_SEVERITY_HIGH', 'security.severity.high', S, severity, SEVERITY),
  bind('SOLOAD_SECURITY_PACKAGES', 'security.packages.enabled', S, bool, BOOL),
  bind('SOLOAD_SECURITY_PACKAGES_RECHECK_MS', 'security.packages.recheckMs', S, nat, NAT),
  bind('SOLOAD_SECURITY_HASH', 'security.hash.enabled', S, bool, BOOL),
  bind('SOLOAD_SECURITY_HASH_MAX_FILE_BYTES', 'security.hash.maxFileBytes', S, nat, NAT),
  bind('SOLOAD_SECURITY_HASH_BYTES_PER_SECOND', 'security.hash.bytesPerSecond', S, nat, NAT),
  bind('SOLOAD_SECURITY_HASH_MAX_QUEUE', 'security.hash.maxQueue', S, nat, NAT),
  bind('SOLOAD_SECURITY_HASH_WAIT_MS', 'security.hash.waitMs', S, nat, NAT),
  bind('SOLOAD_STATE_DIR', 'security.stateDir', S, text, 'a directory (empty = no first-seen state)'),
  bind('SOLOAD_SECURITY_FIRST_SEEN_ENTRIES', 'security.firstSeenEntries', S, nat, NAT),

  bind('SOLOAD_PROC_ROOT', 'procRoot', S, text, 'a directory'),
  bind('SOLOAD_DEBUG_ROOT', 'debugRoot', S, text, 'a directory'),

  bind('SOLOAD_EXPORTERS', 'otel.exporters', S, list, 'a comma-separated list of otlp, console, none'),
  bind('SOLOAD_OTLP_ENDPOINT', 'otel.endpoint', S, text, 'an http(s) URL'),
  bind('OTEL_EXPORTER_OTLP_ENDPOINT', 'otel.endpoint', O, baseEndpoint('/v1/logs'), 'an http(s) base URL; /v1/logs is appended'),
  bind('OTEL_EXPORTER_OTLP_LOGS_ENDPOINT', 'otel.endpoint', L, text, 'an http(s) URL, used as is'),
  bind('OTEL_EXPORTER_OTLP_HEADERS', 'otel.headers', O, parseOtelKeyValueList, KV, 'merge'),
  bind('OTEL_EXPORTER_OTLP_LOGS_HEADERS', 'otel.headers', L, parseOtelKeyValueList, KV, 'merge'),
  bind('SOLOAD_OTLP_TIMEOUT_MS', 'otel.timeoutMs', S, nat, NAT),
  bind('OTEL_SERVICE_NAME', 'otel.serviceName', O, text, 'a service name'),
  bind('SOLOAD_PROCESS_SERVICE_ATTRIBUTE', 'otel.processServiceAttribute', S, text, 'an attribute name'),
  bind('OTEL_RESOURCE_ATTRIBUTES', 'otel.resourceAttributes', O, parseOtelKeyValueList, KV, 'merge'),
  bind('SOLOAD_RESOURCE_MODE', 'otel.resourceMode', S, text, 'process or agent'),
  bind('SOLOAD_PROCESS_RESOURCE_ATTRIBUTES', 'otel.processResourceAttributes', S, parseOtelKeyValueList, KV, 'merge'),
  bind('SOLOAD_PROCESS_DECLARED_ATTRIBUTES', 'otel.processDeclaredAttributes', S, list, 'a comma-separated list of keys or prefix.* patterns'),
  bind('SOLOAD_SEVERITY', 'otel.severity', S, text, 'a severity name'),
  bind('SOLOAD_BATCH_MAX_QUEUE_SIZE', 'otel.batch.maxQueueSize', S, nat, NAT),
  bind('SOLOAD_BATCH_MAX_EXPORT_BATCH_SIZE', 'otel.batch.maxExportBatchSize', S, nat, NAT),
  bind('SOLOAD_BATCH_SCHEDULED_DELAY_MS', 'otel.batch.scheduledDelayMs', S, nat, NAT),
  bind('SOLOAD_OTLP_PROTOCOL', 'otel.protocol', S, text, 'http/json or http/protobuf'),
  bind('OTEL_EXPORTER_OTLP_PROTOCOL', 'otel.protocol', O, text, 'http/json or http/protobuf'),
  bind('OTEL_EXPORTER_OTLP_LOGS_PROTOCOL', 'otel.protocol', L, text, 'http/json or http/protobuf'),
  bind('SOLOAD_OTLP_COMPRESSION', 'otel.compression', S, text, 'gzip or none'),
  bind('OTEL_EXPORTER_OTLP_COMPRESSION', 'otel.compression', O, text, 'gzip or none'),
  bind('OTEL_EXPORTER_OTLP_LOGS_COMPRESSION', 'otel.compression', L, text, 'gzip or none'),
  bind('SOLOAD_OTLP_CA_FILE', 'otel.tls.caFile', S, text, 'a PEM file'),
  bind('OTEL_EXPORTER_OTLP_CERTIFICATE', 'otel.tls.caFile', O, text, 'a PEM file'),
  bind('OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE', 'otel.tls.caFile', L, text, 'a PEM file'),
  bind('SOLOAD_OTLP_CERT_FILE', 'otel.tls.certFile', S, text, 'a PEM file'),
  bind('OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE', 'otel.tls.certFile', O, text, 'a PEM file'),
  bind('OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE', 'otel.tls.certFile', L, text, 'a PEM file'),
  bind('SOLOAD_OTLP_KEY_FILE', 'otel.tls.keyFile', S, text, 'a PEM file'),
  bind('OTEL_EXPORTER_OTLP_CLIENT_KEY', 'otel.tls.keyFile', O, text, 'a PEM file'),
  bind('OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY', 'otel.tls.keyFile', L, text, 'a PEM file'),

  bind('SOLOAD_DELIVERY_MAX_BUFFERED_RECORDS', 'otel.delivery.maxBufferedRecords', S, nat, NAT),
  bind('SOLOAD_DELIVERY_MAX_BUFFERED_BYTES', 'otel.delivery.maxBufferedBytes', S, nat, NAT),
  bind('SOLOAD_DELIVERY_SPILL_DIR', 'otel.delivery.spillDir', S, text, 'a directory ("" = off)'),
  bind('SOLOAD_DELIVERY_MAX_SPILL_BYTES', 'otel.delivery.maxSpillBytes', S, nat, NAT),
  bind('SOLOAD_DELIVERY_INITIAL_BACKOFF_MS', 'otel.delivery.initialBackoffMs', S, nat, NAT),
  bind('SOLOAD_DELIVERY_MAX_BACKOFF_MS', 'otel.delivery.maxBackoffMs', S, nat, NAT),
  bind('SOLOAD_DELIVERY_SHUTDOWN_DRAIN_MS', 'otel.delivery.shutdownDrainMs', S, nat, NAT),

  bind('SOLOAD_METRICS_ENABLED', 'otel.metrics.enabled', S, bool, BOOL),
  bind('SOLOAD_METRICS_ENDPOINT', 'otel.metrics.endpoint', S, text, 'an http(s) URL ("" = derived)'),
  bind('OTEL_EXPORTER_OTLP_ENDPOINT', 'otel.metrics.endpoint', O, baseEndpoint('/v1/metrics'), 'an http(s) base URL; /v1/metrics is appended'),
  bind('OTEL_EXPORTER_OTLP_METRICS_ENDPOINT', 'otel.metrics.endpoint', L, text, 'an http(s) URL, used as is'),
  bind('SOLOAD_METRICS_INTERVAL_MS', 'otel.metrics.intervalMs', S, nat, NAT),
  bind('OTEL_METRIC_EXPORT_INTERVAL', 'otel.metrics.intervalMs', O, intervalOrIgnore, 'ms; an invalid value is ignored (OTel SDK specification)'),

  bind('SOLOAD_LOG_LEVEL', 'log.level', S, text, 'debug, info, warn or error'),
  bind('SOLOAD_LOG_STATS_INTERVAL_MS', 'log.statsIntervalMs', S, nat, NAT),
];

/** One variable present in the environment, parsed. */
export interface EnvAssignment {
  binding: EnvBinding;
  value: unknown;
}

/**
 * The variables of `env` that the table knows, parsed, in the order to apply them: lowest
 * precedence first (stable within a tier), so applying each in turn leaves the winner.
 *
 * Empty values: an empty OTEL_* variable is unset (OTel specification); an empty SOLOAD_* variable
 * is the empty value — `SOLOAD_DELIVERY_SPILL_DIR=` turns spilling off over a config file, an empty
 * list variable is the empty list, an empty number is an error.
 *
 * @throws SoloadError CONFIG_INVALID naming the variable and the key when a value does not parse (the value is quoted
 *   only by parsers of non-secret values: numbers, booleans, pids).
 */
export function readEnv(env: NodeJS.ProcessEnv, bindings: readonly EnvBinding[] = ENV_BINDINGS): EnvAssignment[] {
  const out: EnvAssignment[] = [];
  for (const binding of bindings) {
    const raw = env[binding.name];
    if (raw === undefined) continue;
    const trimmed = raw.trim();
    if (trimmed === '' && binding.tier !== 'soload') continue;
    let value: unknown;
    try {
      value = binding.parse(trimmed);
    } catch (err) {
      throw new SoloadError(ErrorCodes.CONFIG_INVALID, `${binding.name} (${binding.key}): ${(err as Error).message}`, { variable: binding.name, key: binding.key }, { cause: err });
    }
    if (value !== undefined) out.push({ binding, value });
  }
  return out.sort((a, b) => TIER_RANK[a.binding.tier] - TIER_RANK[b.binding.tier]);
}

/** The variables that can set `key`, lowest precedence first. */
export function envFor(key: ConfigKey): EnvBinding[] {
  return ENV_BINDINGS.filter((b) => b.key === key).sort((a, b) => TIER_RANK[a.tier] - TIER_RANK[b.tier]);
}
