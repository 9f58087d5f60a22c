import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ENV_BINDINGS, envFor, readEnv, TIER_RANK, type EnvBinding } from '../../../src/config/env';
import { configKeys } from '../../../src/config/schema';
import { isSoloadError } from '../../../src/errors';

// Each variable the convict schema named with `env` before the table existed, and its key: the
// table must keep every one of them (deployments set them).
const CONVICT_ENV: Array<[string, string]> = [
  ['SOLOAD_TRACEFS_PATH', 'tracefs.path'],
  ['SOLOAD_TRACEFS_INSTANCE_PREFIX', 'tracefs.instancePrefix'],
  ['SOLOAD_TRACEFS_GROUP_PREFIX', 'tracefs.groupPrefix'],
  ['SOLOAD_TRACEFS_BUFFER_SIZE_KB', 'tracefs.bufferSizeKb'],
  ['SOLOAD_TRACEFS_TRACE_CLOCK', 'tracefs.traceClock'],
  ['SOLOAD_TRACEFS_POLL_INTERVAL_MS', 'tracefs.pollIntervalMs'],
  ['SOLOAD_CAPTURE_REPORT_EXECUTABLE', 'capture.reportExecutable'],
  ['SOLOAD_CAPTURE_SNAPSHOT', 'capture.snapshot'],
  ['SOLOAD_CAPTURE_LIST_SLICE_SIZE', 'capture.listSliceSize'],
  ['SOLOAD_CAPTURE_LIST_SLICES', 'capture.listSlices'],
  ['SOLOAD_CAPTURE_PER_OBJECT_PROBE', 'capture.perObjectProbe'],
  ['SOLOAD_CAPTURE_DLOPEN_WALK_DEPTH', 'capture.dlopenWalkDepth'],
  ['SOLOAD_PROC_ROOT', 'procRoot'],
  ['SOLOAD_DEBUG_ROOT', 'debugRoot'],
  ['SOLOAD_OTLP_ENDPOINT', 'otel.endpoint'],
  ['SOLOAD_OTLP_TIMEOUT_MS', 'otel.timeoutMs'],
  ['OTEL_SERVICE_NAME', 'otel.serviceName'],
  ['SOLOAD_PROCESS_SERVICE_ATTRIBUTE', 'otel.processServiceAttribute'],
  ['SOLOAD_SEVERITY', 'otel.severity'],
  ['SOLOAD_BATCH_MAX_QUEUE_SIZE', 'otel.batch.maxQueueSize'],
  ['SOLOAD_BATCH_MAX_EXPORT_BATCH_SIZE', 'otel.batch.maxExportBatchSize'],
  ['SOLOAD_BATCH_SCHEDULED_DELAY_MS', 'otel.batch.scheduledDelayMs'],
  ['SOLOAD_OTLP_PROTOCOL', 'otel.protocol'],
  ['SOLOAD_OTLP_COMPRESSION', 'otel.compression'],
  ['SOLOAD_OTLP_CA_FILE', 'otel.tls.caFile'],
  ['SOLOAD_OTLP_CERT_FILE', 'otel.tls.certFile'],
  ['SOLOAD_OTLP_KEY_FILE', 'otel.tls.keyFile'],
  ['SOLOAD_DELIVERY_MAX_BUFFERED_RECORDS', 'otel.delivery.maxBufferedRecords'],
  ['SOLOAD_DELIVERY_MAX_BUFFERED_BYTES', 'otel.delivery.maxBufferedBytes'],
  ['SOLOAD_DELIVERY_SPILL_DIR', 'otel.delivery.spillDir'],
  ['SOLOAD_DELIVERY_MAX_SPILL_BYTES', 'otel.delivery.maxSpillBytes'],
  ['SOLOAD_DELIVERY_INITIAL_BACKOFF_MS', 'otel.delivery.initialBackoffMs'],
  ['SOLOAD_DELIVERY_MAX_BACKOFF_MS', 'otel.delivery.maxBackoffMs'],
  ['SOLOAD_DELIVERY_SHUTDOWN_DRAIN_MS', 'otel.delivery.shutdownDrainMs'],
  ['SOLOAD_METRICS_ENABLED', 'otel.metrics.enabled'],
  ['SOLOAD_METRICS_ENDPOINT', 'otel.metrics.endpoint'],
  ['SOLOAD_METRICS_INTERVAL_MS', 'otel.metrics.intervalMs'],
  ['SOLOAD_LOG_LEVEL', 'log.level'],
  ['SOLOAD_LOG_STATS_INTERVAL_MS', 'log.statsIntervalMs'],
];

// The variables that were read outside convict (lists, OTel spec variables) before the table existed.
const OTHER_ENV: Array<[string, string]> = [
  ['SOLOAD_FILTER_PIDS', 'filters.pids'],
  ['SOLOAD_FILTER_EXCLUDE_PIDS', 'filters.excludePids'],
  ['SOLOAD_FILTER_COMMS', 'filters.comms'],
  ['SOLOAD_FILTER_EXCLUDE_COMMS', 'filters.excludeComms'],
  ['SOLOAD_FILTER_PATH_INCLUDE', 'filters.pathInclude'],
  ['SOLOAD_FILTER_PATH_EXCLUDE', 'filters.pathExclude'],
  ['SOLOAD_EXPORTERS', 'otel.exporters'],
  ['OTEL_EXPORTER_OTLP_ENDPOINT', 'otel.endpoint'],
  ['OTEL_EXPORTER_OTLP_LOGS_ENDPOINT', 'otel.endpoint'],
  ['OTEL_EXPORTER_OTLP_HEADERS', 'otel.headers'],
  ['OTEL_EXPORTER_OTLP_LOGS_HEADERS', 'otel.headers'],
  ['OTEL_RESOURCE_ATTRIBUTES', 'otel.resourceAttributes'],
  ['OTEL_EXPORTER_OTLP_PROTOCOL', 'otel.protocol'],
  ['OTEL_EXPORTER_OTLP_LOGS_PROTOCOL', 'otel.protocol'],
  ['OTEL_EXPORTER_OTLP_COMPRESSION', 'otel.compression'],
  ['OTEL_EXPORTER_OTLP_LOGS_COMPRESSION', 'otel.compression'],
  ['OTEL_EXPORTER_OTLP_CERTIFICATE', 'otel.tls.caFile'],
  ['OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE', 'otel.tls.caFile'],
  ['OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE', 'otel.tls.certFile'],
  ['OTEL_EXPORTER_OTLP_LOGS_CLIENT_CERTIFICATE', 'otel.tls.certFile'],
  ['OTEL_EXPORTER_OTLP_CLIENT_KEY', 'otel.tls.keyFile'],
  ['OTEL_EXPORTER_OTLP_LOGS_CLIENT_KEY', 'otel.tls.keyFile'],
  ['OTEL_EXPORTER_OTLP_METRICS_ENDPOINT', 'otel.metrics.endpoint'],
  ['OTEL_EXPORTER_OTLP_ENDPOINT', 'otel.metrics.endpoint'],
  ['OTEL_METRIC_EXPORT_INTERVAL', 'otel.metrics.intervalMs'],
];

const pairs = (bs: readonly EnvBinding[]) => bs.map((b) => `${b.name} → ${b.key}`);

/** Variables of the loader-discovery and debuginfod settings (added with them). */
const DISCOVERY_ENV: Array<[string, string]> = [
  ['SOLOAD_DISCOVERY_ENABLED', 'discovery.enabled'],
  ['SOLOAD_DISCOVERY_IMAGE_LAYERS', 'discovery.imageLayers'],
  ['SOLOAD_DISCOVERY_LAYER_SCAN_INTERVAL_MS', 'discovery.layerScanIntervalMs'],
  ['SOLOAD_DISCOVERY_SWEEP_INTERVAL_MS', 'discovery.sweepIntervalMs'],
  ['SOLOAD_STATE_HOUSEKEEPING_INTERVAL_MS', 'state.housekeepingIntervalMs'],
  ['SOLOAD_STATE_DLOPEN_MAX_AGE_MS', 'state.dlopenMaxAgeMs'],
  ['SOLOAD_STATE_EXITED_GRACE_MS', 'state.exitedGraceMs'],
  ['SOLOAD_DEBUG_STATE', 'state.debug'],
  ['SOLOAD_DEBUGINFOD_ENABLED', 'debuginfod.enabled'],
  ['SOLOAD_DEBUGINFOD_URLS', 'debuginfod.urls'],
  ['SOLOAD_DEBUGINFOD_CACHE_DIR', 'debuginfod.cacheDir'],
  ['SOLOAD_DEBUGINFOD_TIMEOUT_MS', 'debuginfod.timeoutMs'],
  ['SOLOAD_DEBUGINFOD_MAX_BYTES', 'debuginfod.maxBytes'],
];

/** The resource-mode variables (process resource mode). */
const RESOURCE_ENV: Array<[string, string]> = [
  ['SOLOAD_RESOURCE_MODE', 'otel.resourceMode'],
  ['SOLOAD_PROCESS_RESOURCE_ATTRIBUTES', 'otel.processResourceAttributes'],
  ['SOLOAD_PROCESS_DECLARED_ATTRIBUTES', 'otel.processDeclaredAttributes'],
];

const SECURITY_ENV: Array<[string, string]> = [
  ['SOLOAD_SECURITY_ENABLED', 'security.enabled'],
  ['SOLOAD_SECURITY_RULES', 'security.rules'],
  ['SOLOAD_SECURITY_SEVERITY_LOW', 'security.severity.low'],
  ['SOLOAD_SECURITY_SEVERITY_MEDIUM', 'security.severity.medium'],
  ['SOLOAD_SECURITY_SEVERITY_HIGH', 'security.severity.high'],
  ['SOLOAD_SECURITY_PACKAGES', 'security.packages.enabled'],
  ['SOLOAD_SECURITY_PACKAGES_RECHECK_MS', 'security.packages.recheckMs'],
  ['SOLOAD_SECURITY_HASH', 'security.hash.enabled'],
  ['SOLOAD_SECURITY_HASH_MAX_FILE_BYTES', 'security.hash.maxFileBytes'],
  ['SOLOAD_SECURITY_HASH_BYTES_PER_SECOND', 'security.hash.bytesPerSecond'],
  ['SOLOAD_SECURITY_HASH_MAX_QUEUE', 'security.hash.maxQueue'],
  ['SOLOAD_SECURITY_HASH_WAIT_MS', 'security.hash.waitMs'],
  ['SOLOAD_STATE_DIR', 'security.stateDir'],
  ['SOLOAD_SECURITY_FIRST_SEEN_ENTRIES', 'security.firstSeenEntries'],
];

test('the table keeps every variable soload read before, each on the same key, and nothing else but SOLOAD_FILTER_EXCLUDE_SELF and the discovery/debuginfod/resource-mode/security ones', () => {
  const expected = [...CONVICT_ENV, ...OTHER_ENV, ['SOLOAD_FILTER_EXCLUDE_SELF', 'filters.excludeSelf'], ...DISCOVERY_ENV, ...RESOURCE_ENV, ...SECURITY_ENV].map(([n, k]) => `${n} → ${k}`);
  assert.deepEqual(pairs(ENV_BINDINGS).sort(), expected.sort());
});

test('every binding targets a schema key; every key but the probe list can be set from the environment', () => {
  const keys = new Set<string>(configKeys());
  for (const b of ENV_BINDINGS) assert.ok(keys.has(b.key), `${b.name} → unknown key ${b.key}`);
  const bound = new Set<string>(ENV_BINDINGS.map((b) => b.key));
  assert.deepEqual([...keys].filter((k) => !bound.has(k)), ['probes']);
  assert.equal(new Set(pairs(ENV_BINDINGS)).size, ENV_BINDINGS.length, 'a variable is bound to a key twice');
});

test('tiers follow the names: SOLOAD_* soload, OTEL_EXPORTER_OTLP_{LOGS,METRICS}_* signal-specific, other OTEL_* generic', () => {
  for (const b of ENV_BINDINGS) {
    const want = b.name.startsWith('SOLOAD_') ? 'soload' : /^OTEL_EXPORTER_OTLP_(LOGS|METRICS)_/.test(b.name) ? 'otel-signal' : 'otel';
    assert.equal(b.tier, want, b.name);
    assert.ok(b.accepts.length > 0, b.name);
  }
  assert.ok(TIER_RANK.soload < TIER_RANK.otel && TIER_RANK.otel < TIER_RANK['otel-signal']);
  // Maps merge; everything else replaces.
  assert.deepEqual(ENV_BINDINGS.filter((b) => b.mode === 'merge').map((b) => b.name), ['OTEL_EXPORTER_OTLP_HEADERS', 'OTEL_EXPORTER_OTLP_LOGS_HEADERS', 'OTEL_RESOURCE_ATTRIBUTES', 'SOLOAD_PROCESS_RESOURCE_ATTRIBUTES']);
});

test('envFor lists the variables of a key lowest precedence first', () => {
  assert.deepEqual(envFor('otel.endpoint').map((b) => b.name), ['SOLOAD_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_LOGS_ENDPOINT']);
  assert.deepEqual(envFor('otel.metrics.endpoint').map((b) => b.name), ['SOLOAD_METRICS_ENDPOINT', 'OTEL_EXPORTER_OTLP_ENDPOINT', 'OTEL_EXPORTER_OTLP_METRICS_ENDPOINT']);
  assert.deepEqual(envFor('otel.serviceName').map((b) => b.name), ['OTEL_SERVICE_NAME']);
  assert.deepEqual(envFor('probes'), []);
});

test('readEnv: only known variables, parsed, lowest precedence first whatever the table order', () => {
  const got = readEnv({
    OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: 'http://l/x',
    OTEL_EXPORTER_OTLP_ENDPOINT: 'http://g:1/',
    SOLOAD_OTLP_ENDPOINT: 'http://s/v1/logs',
    SOLOAD_FILTER_PIDS: ' 1 , 22 ,',
    SOLOAD_NOT_A_VARIABLE: 'x',
    PATH: '/usr/bin',
  });
  assert.deepEqual(
    got.map((a) => [a.binding.name, a.binding.key, a.value]),
    [
      ['SOLOAD_FILTER_PIDS', 'filters.pids', [1, 22]],
      ['SOLOAD_OTLP_ENDPOINT', 'otel.endpoint', 'http://s/v1/logs'],
      ['OTEL_EXPORTER_OTLP_ENDPOINT', 'otel.endpoint', 'http://g:1/v1/logs'],
      ['OTEL_EXPORTER_OTLP_ENDPOINT', 'otel.metrics.endpoint', 'http://g:1/v1/metrics'],
      ['OTEL_EXPORTER_OTLP_LOGS_ENDPOINT', 'otel.endpoint', 'http://l/x'],
    ],
  );
});

test('readEnv parsers: numbers and booleans strict, lists trimmed, key=value lists decoded, values trimmed', () => {
  const one = (name: string, value: string) => readEnv({ [name]: value }).map((a) => a.value);
  assert.deepEqual(one('SOLOAD_OTLP_TIMEOUT_MS', ' 2500 '), [2500]);
  assert.deepEqual(one('SOLOAD_METRICS_ENABLED', 'False'), [false]);
  assert.deepEqual(one('SOLOAD_METRICS_ENABLED', '1'), [true]);
  assert.deepEqual(one('SOLOAD_FILTER_PATH_EXCLUDE', '/usr/lib/**, /opt/*'), [['/usr/lib/**', '/opt/*']]);
  assert.deepEqual(one('OTEL_EXPORTER_OTLP_HEADERS', 'authorization=Bearer%20t,x=1'), [{ authorization: 'Bearer t', x: '1' }]);
  assert.deepEqual(one('OTEL_EXPORTER_OTLP_CLIENT_KEY', ' /etc/k.pem\n'), ['/etc/k.pem']);
  assert.deepEqual(one('OTEL_METRIC_EXPORT_INTERVAL', 'soon'), [], 'ignored per the SDK specification');
  assert.throws(() => one('SOLOAD_OTLP_TIMEOUT_MS', '1e3'), (err: unknown) => isSoloadError(err, 'SOLOAD_ERR_CONFIG_INVALID') && /^SOLOAD_OTLP_TIMEOUT_MS \(otel\.timeoutMs\): must be a non-negative integer/.test(err.message) && err.details.variable === 'SOLOAD_OTLP_TIMEOUT_MS');
  assert.throws(() => one('SOLOAD_OTLP_TIMEOUT_MS', '-1'), /non-negative integer/);
  assert.throws(() => one('SOLOAD_CAPTURE_SNAPSHOT', 'yes'), /SOLOAD_CAPTURE_SNAPSHOT \(capture\.snapshot\): must be true or false/);
  assert.throws(() => one('SOLOAD_FILTER_EXCLUDE_PIDS', '1,0'), /SOLOAD_FILTER_EXCLUDE_PIDS \(filters\.excludePids\).*"0"/);
  assert.throws(() => one('SOLOAD_FILTER_PIDS', '12abc'), /positive integer pids/);
});

test('readEnv empty values: OTEL_* unset, SOLOAD_* the empty value', () => {
  assert.deepEqual(readEnv({ OTEL_SERVICE_NAME: '', OTEL_EXPORTER_OTLP_HEADERS: '  ', OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: '' }), []);
  assert.deepEqual(readEnv({ SOLOAD_TRACEFS_PATH: '', SOLOAD_EXPORTERS: '' }).map((a) => a.value), ['', []]);
  assert.throws(() => readEnv({ SOLOAD_LOG_STATS_INTERVAL_MS: '' }), /SOLOAD_LOG_STATS_INTERVAL_MS/);
});
