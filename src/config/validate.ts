/**
 * Checks of a loaded configuration against the host: what the exporters will open (TLS files, the
 * spill directory). The CLI runs them before the agent starts, so a typo in a path is exit code 2
 * with the key named — not a failure after probes were written to tracefs, nor (for a certificate
 * that does not match its key) an export error at the first batch.
 *
 * Never in a message: file contents (key material), header values, URL credentials.
 */
import fs from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { ErrorCodes, SoloadError } from '../errors';
import type { SoloadConfig } from './schema';

/** One problem: the key, and what is wrong and what to do. */
export interface ConfigProblem {
  key: string;
  message: string;
}

/**
 * Every host-dependent problem of `config` (empty when none). Files are checked only when the
 * `otlp` exporter is on: with `console` or `none` nothing opens them, and a config that works
 * today must not start failing because of a key it does not use.
 */
export function configProblems(config: SoloadConfig): ConfigProblem[] {
  if (!config.otel.exporters.includes('otlp')) return [];
  const problems: ConfigProblem[] = [];
  const { caFile, certFile, keyFile } = config.otel.tls;
  const ca = readPem(problems, 'otel.tls.caFile', caFile, 'the PEM file of the CA that signed the collector’s certificate');
  const cert = readPem(problems, 'otel.tls.certFile', certFile, 'the PEM client certificate');
  const key = readPem(problems, 'otel.tls.keyFile', keyFile, 'the PEM private key of otel.tls.certFile');
  if (ca) checkCa(problems, caFile, ca);
  if (cert && key) checkPair(problems, certFile, keyFile, cert, key);
  if (config.otel.delivery.spillDir) checkSpillDir(problems, config.otel.delivery.spillDir);
  return problems;
}

/**
 * Throws SoloadError CONFIG_INVALID (exit code 2) listing every problem {@link configProblems}
 * finds, each with its key; returns when there are none.
 */
export function validateConfig(config: SoloadConfig): void {
  const problems = configProblems(config);
  if (problems.length === 0) return;
  throw new SoloadError(
    ErrorCodes.CONFIG_INVALID,
    `invalid configuration: ${problems.map((p) => `${p.key}: ${p.message}`).join('; ')}`,
    { keys: problems.map((p) => p.key) },
  );
}

function errnoOf(err: unknown): string {
  return (err as NodeJS.ErrnoException).code ?? (err as Error).message;
}

/** The file's bytes, or undefined (with a problem recorded when the path is set but unusable). */
function readPem(problems: ConfigProblem[], key: string, file: string, what: string): Buffer | undefined {
  if (!file) return undefined;
  const fix = `set ${key} (or its environment variable) to ${what}, readable by soload`;
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch (err) {
    problems.push({ key, message: `cannot read ${file} (${errnoOf(err)}); ${fix}` });
    return undefined;
  }
  if (!st.isFile()) {
    problems.push({ key, message: `${file} is not a regular file; ${fix}` });
    return undefined;
  }
  try {
    return fs.readFileSync(file);
  } catch (err) {
    problems.push({ key, message: `cannot read ${file} (${errnoOf(err)}); ${fix}` });
    return undefined;
  }
}

// Node accepts anything as `ca` without complaint (a wrong file then fails every handshake with
// "unable to verify the first certificate"), so the file is parsed here.
function checkCa(problems: ConfigProblem[], file: string, pem: Buffer): void {
  const ok = pem.includes('-----BEGIN CERTIFICATE-----') && (() => {
    try {
      new X509Certificate(pem);
      return true;
    } catch {
      return false;
    }
  })();
  if (!ok) problems.push({ key: 'otel.tls.caFile', message: `${file} holds no PEM certificate ("-----BEGIN CERTIFICATE-----"); point it to the CA certificate, not a key or a DER file` });
}

// The https agent builds its TLS context at the first connection: a key that does not match the
// certificate (or is encrypted, or is not PEM) would only fail the first export. Building one now
// finds it. Only OpenSSL's reason is reported — it names the problem, never the key's bytes.
function checkPair(problems: ConfigProblem[], certFile: string, keyFile: string, cert: Buffer, key: Buffer): void {
  try {
    tls.createSecureContext({ cert, key });
  } catch (err) {
    const e = err as { reason?: string; code?: string };
    problems.push({
      key: "otel.tls.certFile + otel.tls.keyFile",
      message:
        `${certFile} and ${keyFile} are not a usable client certificate and key (${e.reason ?? 'rejected'}${e.code ? `, ${e.code}` : ''}); ` +
        'both must be PEM, the key unencrypted and the one the certificate was issued for',
    });
  }
}

// SpillStore creates the directory (mkdir -p) and then reads and writes files in it. Nothing is
// created here: the check must leave the host as it was, so it asks access(2) about the directory
// or, when it does not exist yet, about the nearest ancestor mkdir would create it in.
function checkSpillDir(problems: ConfigProblem[], dir: string): void {
  const key = 'otel.delivery.spillDir';
  const fix = 'set it to a directory soload can create or write (one soload per directory), or to "" to keep undelivered records in memory only';
  const abs = path.resolve(dir);
  let existing = abs;
  for (;;) {
    let st: fs.Stats | undefined;
    try {
      st = fs.statSync(existing);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOENT') {
        problems.push({ key, message: `cannot use ${abs}: ${existing} (${code ?? (err as Error).message}); ${fix}` });
        return;
      }
    }
    if (st) {
      if (!st.isDirectory()) {
        problems.push({ key, message: `${existing === abs ? abs : `${existing} (on the way to ${abs})`} is not a directory; ${fix}` });
        return;
      }
      break;
    }
    const parent = path.dirname(existing);
    if (parent === existing) break;
    existing = parent;
  }
  const need = existing === abs ? fs.constants.R_OK | fs.constants.W_OK | fs.constants.X_OK : fs.constants.W_OK | fs.constants.X_OK;
  try {
    fs.accessSync(existing, need);
  } catch (err) {
    const where = existing === abs ? abs : `${existing} (where ${abs} would be created)`;
    problems.push({ key, message: `${where} is not writable by soload (${errnoOf(err)}); ${fix}` });
  }
}
