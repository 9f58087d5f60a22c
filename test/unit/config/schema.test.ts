/**
 * The schema and the type derived from it. The first half is checked by the compiler (`npm run
 * build` fails when a line marked @ts-expect-error compiles, or when an equality does not hold);
 * the second half at run time.
 */
import { defaultRiskRules } from '../../../src/enrich/risk';
import { DEFAULT_IMAGE_LAYERS } from '../../../src/config/image-layers';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import convict from 'convict';
import { loadConfig } from '../../../src/config/load';
import type { ProbeConfig } from '../../../src/config/probes';
import { configKeys, configSchema, maskUrlCredentials, type ConfigKey, type ConfigOf, type ConfigValue, type LeafSpec, type SoloadConfig } from '../../../src/config/schema';

// ---- type level ---------------------------------------------------------------------------------

/** True only when A and B are the same type (not merely assignable either way). */
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends <T>() => T extends B ? 1 : 2 ? true : false;
function expectType<T extends true>(): T | undefined {
  return undefined;
}

// Each format turns into its type; enumerations into the union of their values.
expectType<Equal<SoloadConfig['tracefs']['path'], string>>();
expectType<Equal<SoloadConfig['tracefs']['bufferSizeKb'], number>>();
expectType<Equal<SoloadConfig['tracefs']['traceClock'], 'mono' | 'boot' | 'local' | 'global'>>();
expectType<Equal<SoloadConfig['capture']['snapshot'], boolean>>();
expectType<Equal<SoloadConfig['probes'], ProbeConfig[]>>();
expectType<Equal<SoloadConfig['filters']['pids'], number[]>>();
expectType<Equal<SoloadConfig['filters']['comms'], string[]>>();
expectType<Equal<SoloadConfig['otel']['exporters'], Array<'otlp' | 'console' | 'none'>>>();
expectType<Equal<SoloadConfig['otel']['headers'], Record<string, string>>>();
expectType<Equal<SoloadConfig['otel']['severity'], 'TRACE' | 'DEBUG' | 'INFO' | 'WARN' | 'ERROR' | 'FATAL'>>();
expectType<Equal<SoloadConfig['otel']['protocol'], 'http/protobuf' | 'http/json'>>();
expectType<Equal<SoloadConfig['otel']['tls'], { caFile: string; certFile: string; keyFile: string }>>();
expectType<Equal<SoloadConfig['otel']['metrics'], { enabled: boolean; endpoint: string; intervalMs: number }>>();
expectType<Equal<SoloadConfig['log']['level'], 'debug' | 'info' | 'warn' | 'error'>>();
expectType<Equal<ConfigValue<'otel.delivery.spillDir'>, string>>();
expectType<Equal<ConfigValue<'otel.batch.maxQueueSize'>, number>>();

// Adding a key to a schema literal is all it takes to type it (the mechanism, on a small schema).
type Small = { a: { doc: string; format: 'nat'; default: number }; g: { b: { doc: string; format: BooleanConstructor; default: boolean } } };
expectType<Equal<ConfigOf<Small>, { a: number; g: { b: boolean } }>>();

/** A complete configuration written by hand must have every key with its type, and nothing else. */
export const handWritten: SoloadConfig = {
  tracefs: { path: '', instancePrefix: 'soload', groupPrefix: 'soload', bufferSizeKb: 4096, traceClock: 'mono', pollIntervalMs: 50 },
  probes: [],
  capture: { reportExecutable: false, snapshot: true, listSliceSize: 4, listSlices: 12, perObjectProbe: false, dlopenWalkDepth: 3 },
  discovery: { enabled: true, imageLayers: [...DEFAULT_IMAGE_LAYERS], layerScanIntervalMs: 2000, sweepIntervalMs: 10000 },
  state: { housekeepingIntervalMs: 10000, dlopenMaxAgeMs: 60000, exitedGraceMs: 10000, debug: false },
  debuginfod: { enabled: true, urls: [], cacheDir: '/var/cache/soload/debuginfod', timeoutMs: 30000, maxBytes: 67108864 },
  filters: { pids: [], excludePids: [], comms: [], excludeComms: [], pathInclude: [], pathExclude: [], excludeSelf: true },
  security: {
    enabled: true,
    rules: defaultRiskRules(),
    severity: { low: 'INFO', medium: 'WARN', high: 'ERROR' },
    packages: { enabled: true, recheckMs: 5000 },
    hash: { enabled: true, maxFileBytes: 268435456, bytesPerSecond: 67108864, maxQueue: 256, waitMs: 2000 },
    stateDir: '/var/lib/soload',
    firstSeenEntries: 100000,
  },
  procRoot: '/proc',
  debugRoot: '/usr/lib/debug',
  otel: {
    exporters: ['otlp', 'console'],
    endpoint: 'http://localhost:4318/v1/logs',
    headers: {},
    timeoutMs: 10000,
    resourceMode: 'process',
    processResourceAttributes: {},
    processDeclaredAttributes: ['service.*', 'deployment.*'],
    serviceName: 'soload',
    processServiceAttribute: 'service.name',
    resourceAttributes: {},
    severity: 'INFO',
    batch: { maxQueueSize: 65536, maxExportBatchSize: 512, scheduledDelayMs: 200 },
    protocol: 'http/json',
    compression: 'none',
    tls: { caFile: '', certFile: '', keyFile: '' },
    delivery: { maxBufferedRecords: 100000, maxBufferedBytes: 268435456, spillDir: '', maxSpillBytes: 1073741824, initialBackoffMs: 500, maxBackoffMs: 5000, shutdownDrainMs: 5000 },
    metrics: { enabled: true, endpoint: '', intervalMs: 60000 },
  },
  log: { level: 'info', statsIntervalMs: 60000 },
};

export const wrongKey: SoloadConfig = {
  ...handWritten,
  // @ts-expect-error an unknown key is a type error
  tracefs: { ...handWritten.tracefs, bufferSizeKB: 1 },
};
export const wrongType: SoloadConfig = {
  ...handWritten,
  // @ts-expect-error a number key does not take a string
  otel: { ...handWritten.otel, timeoutMs: '10s' },
};
export const wrongEnum: SoloadConfig = {
  ...handWritten,
  // @ts-expect-error an enumeration takes only its values
  otel: { ...handWritten.otel, severity: 'LOUD' },
};
// @ts-expect-error a missing key is a type error
export const missingKey: SoloadConfig['otel']['tls'] = { caFile: '', certFile: '' };
// @ts-expect-error key paths are checked too
export const badPath: ConfigKey = 'otel.tls.passphrase';
export const goodPath: ConfigKey = 'otel.tls.keyFile';

// The schema is a valid convict schema for the derived type: a default must have its format's type
// (this is what lets load.ts call convict without a cast).
export const asConvict: convict.Schema<SoloadConfig> = configSchema();
export const badDefault: convict.Schema<SoloadConfig> = {
  ...configSchema(),
  // @ts-expect-error a default that is not of its format's type
  log: { ...configSchema().log, statsIntervalMs: { doc: 'x', format: 'nat', default: 'soon' } },
};

// ---- run time -----------------------------------------------------------------------------------

function leaves(): Array<[ConfigKey, LeafSpec]> {
  const schema = configSchema() as unknown as Record<string, unknown>;
  return configKeys().map((k) => [k, k.split('.').reduce<unknown>((n, part) => (n as Record<string, unknown>)[part], schema) as LeafSpec]);
}

test('every key has a doc, a format and a default; the defaults load as the hand-written configuration', () => {
  for (const [key, leaf] of leaves()) {
    assert.ok(typeof leaf.doc === 'string' && leaf.doc.length > 10, `${key}: doc`);
    assert.ok(leaf.format !== undefined, `${key}: format`);
    assert.ok('default' in leaf, `${key}: default`);
    assert.ok(!('env' in leaf), `${key}: environment variables belong in src/config/env.ts`);
  }
  const loaded = loadConfig({ env: {}, defaultsDir: '/nonexistent' });
  assert.deepEqual({ ...loaded, probes: [] }, handWritten);
});

test('configKeys lists the leaves, in declaration order', () => {
  const keys = configKeys();
  assert.equal(keys[0], 'tracefs.path');
  assert.equal(keys.at(-1), 'log.statsIntervalMs');
  assert.ok(keys.includes('otel.tls.keyFile') && keys.includes('probes') && keys.includes('otel.headers'));
  assert.ok(!keys.includes('otel.tls' as ConfigKey), 'groups are not keys');
  assert.equal(new Set(keys).size, keys.length);
});

test('URL formats: http(s) with a host; the messages mask credentials and the keys are sensitive to convict', () => {
  const schema = configSchema();
  const endpoint = schema.otel.endpoint.format;
  assert.doesNotThrow(() => endpoint('https://collector.example:4318/v1/logs'));
  assert.throws(() => endpoint('collector:4318'), /scheme "collector"/);
  assert.throws(() => endpoint('file:///tmp/x'), /scheme "file"/);
  assert.throws(() => endpoint(''), /does not parse/);
  assert.throws(() => endpoint(4318), /must be an http/);
  assert.throws(
    () => endpoint('gopher://u:pw@h/'),
    (err: Error) => !err.message.includes('pw') && err.message.includes('"gopher://***@h/"'),
  );
  const metrics = schema.otel.metrics.endpoint.format;
  assert.doesNotThrow(() => metrics(''));
  assert.throws(() => metrics('nope'), /must be empty or an http/);
  // convict appends `: value was "<raw>"` to errors unless the key is sensitive.
  assert.equal(schema.otel.endpoint.sensitive, true);
  assert.equal(schema.otel.metrics.endpoint.sensitive, true);
});

test('maskUrlCredentials hides userinfo only', () => {
  assert.equal(maskUrlCredentials('https://user:pw@host:1/p?q=1'), 'https://***@host:1/p?q=1');
  assert.equal(maskUrlCredentials('http://host/a@b'), 'http://host/a@b');
  assert.equal(maskUrlCredentials(''), '');
});

test('enumeration formats name the allowed values', () => {
  const s = configSchema();
  assert.throws(() => s.otel.compression.format('zstd'), /must be one of "gzip", "none"/);
  assert.throws(() => s.otel.exporters.format(['otlp', 'kafka']), /entries must be one of "otlp", "console", "none" \(got "kafka"\)/);
  assert.throws(() => s.tracefs.groupPrefix.format('9x'), /must match/);
  assert.doesNotThrow(() => s.log.level.format('warn'));
});
