import fs from 'node:fs';
import path from 'node:path';
import convict from 'convict';
import { ErrorCodes, SoloadError } from '../errors';
import { readEnv } from './env';
import { configSchema, headerProblem, maskUrlCredentials, type ConfigKey, type SoloadConfig } from './schema';

/** Where the bundled defaults live, relative to the package root. */
export const DEFAULT_CONFIG_DIR = path.resolve(__dirname, '..', '..', '..', 'config');

/** Inputs of {@link loadConfig}; every field defaults to the real process’s. */
export interface LoadConfigOptions {
  /** Extra config file (JSON), applied over config/default.json. */
  file?: string;
  env?: NodeJS.ProcessEnv;
  /** Directory holding default.json. */
  defaultsDir?: string;
}

/**
 * Loads config/default.json, then `file`, then the environment (./env.ts: SOLOAD_* and the OTel
 * spec's variables, with their precedence); validates strictly, including the checks that span keys
 * (client certificate and key both or neither). Throws SoloadError CONFIG_FILE / CONFIG_INVALID (the
 * CLI maps both to exit code 2) — nothing touches the kernel before this returns. Checks that read
 * the host (TLS files, spill directory) are {@link validateConfig}'s (./validate.ts).
 */
export function loadConfig(opts: LoadConfigOptions = {}): SoloadConfig {
  const env = opts.env ?? process.env;
  // No schema key has a convict `env`: the environment is applied below from one table, after all
  // files (convict would re-apply its own after each file with the same net effect). `args: []`
  // keeps argv out (the CLI owns argv).
  const conf = convict<SoloadConfig>(configSchema(), { env: {}, args: [] });
  const files = [path.join(opts.defaultsDir ?? DEFAULT_CONFIG_DIR, 'default.json')].filter((f) => fs.existsSync(f));
  if (opts.file) files.push(opts.file);
  // Free-form maps (headers, resource attributes) have keys with dots ("deployment.environment"),
  // which convict would read as nested schema paths: they are merged and checked here instead.
  const maps: Record<MapKey, Record<string, string>> = { headers: {}, resourceAttributes: {}, processResourceAttributes: {} };
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
  // Which variable set a key, so a value convict rejects is traced back to where it came from.
  const setBy = new Map<string, string>();
  try {
    for (const { binding, value } of readEnv(env)) {
      if (binding.mode === 'merge') {
        if (binding.key === 'otel.headers') checkHeaders(value as Record<string, string>, binding.name);
        Object.assign(maps[mapKeyOf(binding.key)], value);
      } else {
        conf.set(binding.key, value as never);
        setBy.set(binding.key, binding.name);
      }
    }
    conf.validate({ allowed: 'strict' });
  } catch (err) {
    throw invalid(err, opts.file, setBy);
  }
  const config = conf.getProperties();
  config.otel.headers = maps.headers;
  config.otel.resourceAttributes = maps.resourceAttributes;
  config.otel.processResourceAttributes = maps.processResourceAttributes;
  try {
    checkAcrossKeys(config);
  } catch (err) {
    throw invalid(err, opts.file, setBy);
  }
  return config;
}

/** Rules that involve more than one key (convict formats see one value at a time). */
function checkAcrossKeys(config: SoloadConfig): void {
  const { certFile, keyFile } = config.otel.tls;
  if (Boolean(certFile) !== Boolean(keyFile)) {
    throw new SoloadError(
      ErrorCodes.CONFIG_INVALID,
      `otel.tls.${certFile ? 'keyFile' : 'certFile'}: must be set together with otel.tls.${certFile ? 'certFile' : 'keyFile'} ` +
        '(mTLS needs the client certificate and its private key; set both, or neither for server-only TLS)',
    );
  }
}

function checkHeaders(headers: Record<string, unknown>, fromVariable?: string): void {
  let i = 0;
  for (const [k, v] of Object.entries(headers)) {
    const problem = headerProblem(k, v, ++i);
    if (problem) throw new SoloadError(ErrorCodes.CONFIG_INVALID, `otel.headers${fromVariable ? ` (from ${fromVariable})` : ''}: ${problem}`);
  }
}

function mapKeyOf(key: ConfigKey): MapKey {
  if (key === 'otel.headers') return 'headers';
  if (key === 'otel.resourceAttributes') return 'resourceAttributes';
  if (key === 'otel.processResourceAttributes') return 'processResourceAttributes';
  throw new SoloadError(ErrorCodes.INTERNAL, `${key} is not a map key (env.ts binds it with mode "merge")`);
}

type MapKey = 'headers' | 'resourceAttributes' | 'processResourceAttributes';

/** Moves otel.headers / otel.resourceAttributes / otel.processResourceAttributes out of a config object into `maps`, checking them. */
function takeMaps(obj: Record<string, unknown>, maps: Record<MapKey, Record<string, string>>): void {
  const otel = obj.otel;
  if (typeof otel !== 'object' || otel === null || Array.isArray(otel)) return;
  const o = otel as Record<string, unknown>;
  for (const key of ['headers', 'resourceAttributes', 'processResourceAttributes'] as const) {
    if (!(key in o)) continue;
    const v = o[key];
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new SoloadError(ErrorCodes.CONFIG_INVALID, `otel.${key}: must be an object of string → string`);
    if (key === 'headers') checkHeaders(v as Record<string, unknown>);
    for (const [k, val] of Object.entries(v)) {
      if (typeof val !== 'string') throw new SoloadError(ErrorCodes.CONFIG_INVALID, `otel.${key}: value of "${k}" must be a string`);
      maps[key][k] = val;
    }
    delete o[key];
  }
}

function invalid(err: unknown, file?: string, setBy?: Map<string, string>): SoloadError {
  let msg = (err as Error).message ?? String(err);
  // convict reports "key: problem" per line; name the variable when the environment set that key.
  if (setBy?.size) msg = msg.replace(/^([\w.]+): /gm, (all, key: string) => (setBy.has(key) ? `${key} (from ${setBy.get(key)}): ` : all));
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
  copy.otel.endpoint = maskUrlCredentials(copy.otel.endpoint);
  copy.otel.metrics.endpoint = maskUrlCredentials(copy.otel.metrics.endpoint);
  return copy;
}
