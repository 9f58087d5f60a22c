import fs from 'node:fs';
import path from 'node:path';
import convict from 'convict';
import { ErrorCodes, SoloadError } from '../errors';
import { configSchema, type SoloadConfig } from './schema';

/** Where the bundled defaults live, relative to the package root. */
export const DEFAULT_CONFIG_DIR = path.resolve(__dirname, '..', '..', '..', 'config');

/** Environment variables that hold comma-separated lists, and the config key each sets. */
const LIST_ENV: Record<string, { key: string; numeric: boolean }> = {
  SOLOAD_FILTER_PIDS: { key: 'filters.pids', numeric: true },
  SOLOAD_FILTER_EXCLUDE_PIDS: { key: 'filters.excludePids', numeric: true },
  SOLOAD_FILTER_COMMS: { key: 'filters.comms', numeric: false },
  SOLOAD_FILTER_EXCLUDE_COMMS: { key: 'filters.excludeComms', numeric: false },
  SOLOAD_FILTER_PATH_INCLUDE: { key: 'filters.pathInclude', numeric: false },
  SOLOAD_FILTER_PATH_EXCLUDE: { key: 'filters.pathExclude', numeric: false },
  SOLOAD_EXPORTERS: { key: 'otel.exporters', numeric: false },
};

/**
 * Parses the OTel `key1=value1,key2=value2` list form (OTEL_EXPORTER_OTLP_HEADERS,
 * OTEL_RESOURCE_ATTRIBUTES): values are percent-decoded, surrounding whitespace trimmed, and
 * malformed members skipped (the spec says to discard the invalid member, not the whole list).
 */
export function parseOtelKeyValueList(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const member of text.split(',')) {
    const eq = member.indexOf('=');
    if (eq <= 0) continue;
    const key = member.slice(0, eq).trim();
    const raw = member.slice(eq + 1).trim();
    if (!key) continue;
    try {
      out[key] = decodeURIComponent(raw);
    } catch {
      continue;
    }
  }
  return out;
}

/** Inputs of {@link loadConfig}; every field defaults to the real process’s. */
export interface LoadConfigOptions {
  /** Extra config file (JSON), applied over config/default.json. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Directory holding default.json. */
  defaultsDir?: string;
}

/**
 * Loads config/default.json, then `file`, then environment overrides; validates strictly.
 * Throws SoloadError CONFIG_FILE / CONFIG_INVALID (the CLI maps both to exit code 2) — nothing
 * touches the kernel before this returns.
 */
export function loadConfig(opts: LoadConfigOptions = {}): SoloadConfig {
  const env = opts.env ?? process.env;
  // convict reads `env` names from this object only; keep argv out of it (the CLI owns argv).
  const conf = convict(configSchema() as convict.Schema<SoloadConfig>, { env, args: [] });
  const files = [path.join(opts.defaultsDir ?? DEFAULT_CONFIG_DIR, 'default.json')].filter((f) => fs.existsSync(f));
  if (opts.file) files.push(opts.file);
  // Free-form maps (headers, resource attributes) have keys with dots ("deployment.environment"),
  // which convict would read as nested schema paths: they are merged and checked here instead.
  const maps: Record<MapKey, Record<string, string>> = { headers: {}, resourceAttributes: {} };
  for (const f of files) {
    let text: string;
    try {
      text = fs.readFileSync(f, 'utf8');
    } catch (err) {
      throw new SoloadError(ErrorCodes.CONFIG_FILE, `cannot read config file ${f}: ${(err as Error).message}`, { file: f });
    }
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch (err) {
      throw new SoloadError(ErrorCodes.CONFIG_FILE, `config file ${f} is not valid JSON: ${(err as Error).message}`, { file: f });
    }
    if (typeof obj !== 'object' || obj === null || Array.isArray(obj)) {
      throw new SoloadError(ErrorCodes.CONFIG_FILE, `config file ${f} must hold a JSON object`, { file: f });
    }
    try {
      takeMaps(obj as Record<string, unknown>, maps);
      conf.load(obj as object);
    } catch (err) {
      throw invalid(err, f);
    }
  }
  try {
    for (const [name, { key, numeric }] of Object.entries(LIST_ENV)) {
      const v = env[name];
      if (v === undefined) continue;
      const items = v.split(',').map((s) => s.trim()).filter(Boolean);
      conf.set(key as never, (numeric ? items.map(Number) : items) as never);
    }
    const logsEndpoint = env.OTEL_EXPORTER_OTLP_LOGS_ENDPOINT;
    const baseEndpoint = env.OTEL_EXPORTER_OTLP_ENDPOINT;
    if (logsEndpoint) conf.set('otel.endpoint', logsEndpoint);
    else if (baseEndpoint) conf.set('otel.endpoint', baseEndpoint.replace(/\/+$/, '') + '/v1/logs');
    applyOtlpEnv(env, (key, value) => conf.set(key as never, value as never));
    conf.validate({ allowed: 'strict' });
  } catch (err) {
    throw invalid(err, opts.file);
  }
  for (const [envName, key] of [
    ['OTEL_EXPORTER_OTLP_HEADERS', 'headers'],
    ['OTEL_EXPORTER_OTLP_LOGS_HEADERS', 'headers'],
    ['OTEL_RESOURCE_ATTRIBUTES', 'resourceAttributes'],
  ] as const) {
    const v = env[envName];
    if (v) Object.assign(maps[key], parseOtelKeyValueList(v));
  }
  const config = conf.getProperties();
  config.otel.headers = maps.headers;
  config.otel.resourceAttributes = maps.resourceAttributes;
  return config;
}

/**
 * The OTel-spec exporter variables beyond endpoint/headers (signal-specific LOGS_ variants win over
 * the generic ones): protocol, compression, TLS files, metrics endpoint and interval.
 */
function applyOtlpEnv(env: NodeJS.ProcessEnv, set: (key: string, value: unknown) => void): void {
  const pick = (name: string) => env[`OTEL_EXPORTER_OTLP_LOGS_${name}`] || env[`OTEL_EXPORTER_OTLP_${name}`] || undefined;
  const pairs: Array<[string, string]> = [
    ['PROTOCOL', 'otel.protocol'],
    ['COMPRESSION', 'otel.compression'],
    ['CERTIFICATE', 'otel.tls.caFile'],
    ['CLIENT_CERTIFICATE', 'otel.tls.certFile'],
    ['CLIENT_KEY', 'otel.tls.keyFile'],
  ];
  for (const [name, key] of pairs) {
    const v = pick(name);
    if (v !== undefined) set(key, v.trim());
  }
  if (env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT) set('otel.metrics.endpoint', env.OTEL_EXPORTER_OTLP_METRICS_ENDPOINT);
  else if (env.OTEL_EXPORTER_OTLP_ENDPOINT) set('otel.metrics.endpoint', env.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '') + '/v1/metrics');
  if (env.OTEL_METRIC_EXPORT_INTERVAL && /^\d+$/.test(env.OTEL_METRIC_EXPORT_INTERVAL.trim())) set('otel.metrics.intervalMs', Number(env.OTEL_METRIC_EXPORT_INTERVAL.trim()));
}

type MapKey = 'headers' | 'resourceAttributes';

/** Moves otel.headers / otel.resourceAttributes out of a config object into `maps`, checking them. */
function takeMaps(obj: Record<string, unknown>, maps: Record<MapKey, Record<string, string>>): void {
  const otel = obj.otel;
  if (typeof otel !== 'object' || otel === null || Array.isArray(otel)) return;
  const o = otel as Record<string, unknown>;
  for (const key of ['headers', 'resourceAttributes'] as const) {
    if (!(key in o)) continue;
    const v = o[key];
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`otel.${key}: must be an object of string → string`);
    for (const [k, val] of Object.entries(v)) {
      if (typeof val !== 'string') throw new Error(`otel.${key}: value of "${k}" must be a string`);
      maps[key][k] = val;
    }
    delete o[key];
  }
}

function invalid(err: unknown, file?: string): SoloadError {
  const msg = (err as Error).message ?? String(err);
  return new SoloadError(
    ErrorCodes.CONFIG_INVALID,
    `invalid configuration${file ? ` (${file})` : ''}: ${msg}. Fix the named key; \`soload config\` prints the effective configuration and README.md lists every key.`,
    { file },
  );
}

/** A copy of the config safe to print: header values are masked. */
export function redactConfig(config: SoloadConfig): SoloadConfig {
  const copy = JSON.parse(JSON.stringify(config)) as SoloadConfig;
  for (const k of Object.keys(copy.otel.headers)) copy.otel.headers[k] = '***';
  copy.otel.endpoint = copy.otel.endpoint.replace(/\/\/[^/@]*@/, '//***@');
  if (copy.otel.metrics) copy.otel.metrics.endpoint = copy.otel.metrics.endpoint.replace(/\/\/[^/@]*@/, '//***@');
  return copy;
}
