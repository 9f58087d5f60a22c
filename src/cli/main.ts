#!/usr/bin/env node
import { parseArgs } from 'node:util';
import path from 'node:path';
import { DEFAULT_ALIAS_ROOT, SoloadAgent, stderrLog } from '../agent';
import { resolverOptions } from '../agent/agent';
import { ElfSymbolResolver } from '../elf';
import { ProcReader } from '../host/proc-reader';
import { planCapture } from '../plan/select';
import { loadConfig, redactConfig } from '../config/load';
import { validateConfig } from '../config/validate';
import { isSoloadError, SoloadError } from '../errors';
import { buildProbeLine, probeAliases } from '../tracefs/probe-line';
import { selfTestFileOffsetFetch } from '../tracefs/fetch-selftest';
import { formatCheck, runCheck } from './check';
import { assertPrivileged, assessPrivileges } from '../host/privileges';
import { escapeForLog } from '../util/path-bytes';

const USAGE = `usage: soload [run|check|probes|config] [--config FILE] [--json]

  run      install uprobes and export one OpenTelemetry log record per shared-object load (default)
  check    report what this host supports and which symbols were found; exit 1 if soload cannot run
  probes   print the uprobe_events lines soload would install, without installing them
  config   print the effective configuration (secrets masked)

  --config FILE   JSON config applied over config/default.json (env overrides: README "Configuration")
  --json          machine-readable output for check/config`;

/** Exit codes: 0 ok, 1 runtime failure, 2 invalid configuration or usage. */
export async function main(argv: string[]): Promise<number> {
  let args;
  try {
    args = parseArgs({ args: argv, allowPositionals: true, options: { config: { type: 'string', short: 'c' }, json: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } } });
  } catch (err) {
    process.stderr.write(`soload: ${(err as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (args.values.help) {
    process.stdout.write(USAGE + '\n');
    return 0;
  }
  const command = args.positionals[0] ?? 'run';
  if (!['run', 'check', 'probes', 'config'].includes(command)) {
    process.stderr.write(`soload: unknown command "${command}"\n${USAGE}\n`);
    return 2;
  }
  let config;
  try {
    config = loadConfig({ file: args.values.config });
    // What the exporters will open (TLS files, spill directory) is checked before the agent
    // exists, so a bad path is exit 2 naming the key, and nothing was written to tracefs. `config`
    // and `probes` open none of it and still work, e.g. to show what a broken setup resolves to.
    if (command === 'run' || command === 'check') validateConfig(config);
  } catch (err) {
    process.stderr.write(`soload: ${isSoloadError(err) ? `${err.code}: ` : ''}${escapeForLog((err as Error).message)}\n`);
    return 2;
  }
  const log = stderrLog(config.log.level);
  // From here on tracefs may be written (the self-test below installs a probe for a moment), so a
  // SIGTERM/SIGINT/SIGHUP must not take Node's default action and kill soload between a write and
  // its undo: it is noted, the synchronous step finishes and cleans up, then soload stops.
  const signals = new StopSignals();
  try {
    // Measured, not read from the README: some kernels accept `@+` fetches and read wrong memory
    // (KERNELS.md); the planner then rejects the mechanisms that depend on them.
    // Before anything touches tracefs (the self-test below writes a probe): a missing capability,
    // a read-only tracefs or lockdown is named exactly, with its code, and nothing is installed.
    if (command === 'run') assertPrivileged(assessPrivileges({ tracefsPath: config.tracefs.path }));
    if (command !== 'config') {
      const foffs = selfTestFileOffsetFetch(config.tracefs);
      if (foffs && !foffs.works) log.info(`this kernel's @+ file-offset fetch does not read the probed file (read ${foffs.read} from ${foffs.binary}, the file has ${foffs.expected}): mechanisms that need it are not used`);
    }
    if (signals.received && command !== 'run') return signals.exitCode();
    switch (command) {
      case 'config':
        process.stdout.write(JSON.stringify(redactConfig(config), null, 2) + '\n');
        return 0;
      case 'check': {
        const report = await runCheck(config);
        if (signals.received) return signals.exitCode();
        process.stdout.write((args.values.json ? JSON.stringify(report, null, 2) : formatCheck(report)) + '\n');
        return report.problems.length ? 1 : 0;
      }
      case 'probes': {
        // The same plan `run` installs (mechanism per loader set, calibration included).
        const plan = await planCapture({ config, resolver: new ElfSymbolResolver(resolverOptions(config)), proc: new ProcReader(config.procRoot) });
        const group = `${config.tracefs.groupPrefix}_${process.pid}`;
        const aliases = probeAliases(plan.specs, path.join(DEFAULT_ALIAS_ROOT, group));
        for (const s of plan.specs) process.stdout.write(buildProbeLine(group, s, aliases.get(s.path)) + '\n');
        for (const c of plan.sets) process.stderr.write(`# ${escapeForLog(`${c.set.dir}: ${c.mechanism ? `${c.mechanism.name} (${c.reason})` : `no capture mechanism (${c.rejected.map((r) => `${r.mechanism}: ${r.reason}`).join('; ')})`}`)}\n`);
        for (const f of plan.stubs) process.stderr.write(`# ${escapeForLog(f)}: glibc ≥ 2.34 stub (dlopen lives in libc.so.6 next to it): nothing to probe\n`);
        for (const s of plan.skipped) process.stderr.write(`# ${escapeForLog(`skipped ${s.probe} (${s.library}): ${s.reason}`)}\n`);
        return plan.specs.length ? 0 : 1;
      }
      default:
        return await run(config, log, signals);
    }
  } catch (err) {
    process.stderr.write(`soload: ${err instanceof SoloadError ? `${err.code}: ` : ''}${escapeForLog((err as Error).message)}\n`);
    return 1;
  }
}

const SIGNAL_EXIT: Record<string, number> = { SIGHUP: 129, SIGINT: 130, SIGTERM: 143 };

/**
 * soload's one set of stop-signal listeners (SIGINT, SIGTERM, SIGHUP), installed before the first
 * tracefs write and kept for the life of the process: with no listener, Node restores the default
 * disposition and a signal would kill soload between a write and its undo. Until `run` hands it a
 * handler, a signal is only noted.
 */
class StopSignals {
  /** The first stop signal received. */
  received?: NodeJS.Signals;
  private handler?: (signal: NodeJS.Signals, exitCode: number) => void;

  constructor() {
    for (const sig of Object.keys(SIGNAL_EXIT) as NodeJS.Signals[]) {
      process.on(sig, () => {
        this.received ??= sig;
        this.handler?.(sig, SIGNAL_EXIT[sig]!);
      });
    }
  }

  /** Every signal from now on calls `handler` (with the conventional exit code 128 + n). */
  handle(handler: (signal: NodeJS.Signals, exitCode: number) => void): void {
    this.handler = handler;
  }

  /** 128 + n for the first signal received, 0 when none was. */
  exitCode(): number {
    return this.received ? SIGNAL_EXIT[this.received]! : 0;
  }
}

async function run(config: ReturnType<typeof loadConfig>, log: ReturnType<typeof stderrLog>, signals: StopSignals): Promise<number> {
  // A signal during the self-test (its probe is already removed): nothing was started, nothing to undo.
  if (signals.received) {
    log.info(`${signals.received} before start-up: nothing installed`);
    return signals.exitCode();
  }
  process.title = 'soload';
  const agent = new SoloadAgent({ config, log });
  let exitCode = 0;
  let done: () => void = () => {};
  const finished = new Promise<void>((r) => (done = r));
  let stopping = false;
  const stop = (why: string, code: number) => {
    if (stopping) return;
    stopping = true;
    log.info(`${why}: removing probes and flushing`);
    exitCode = code;
    agent.shutdown().finally(done);
  };
  // Every way out goes through shutdown(), so no probe outlives the process (SIGKILL cannot be
  // caught: the next start removes what it left, see cleanupStale). Handlers stay installed (`on`,
  // not `once`): a second error while shutting down must not kill the process before cleanup ends.
  signals.handle(stop);
  // `soload | head`: the reader of the console output went away. Stop like a SIGPIPE'd tool would.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => stop(`stdout ${err.code === 'EPIPE' ? 'closed (EPIPE)' : `failed (${err.message})`}`, err.code === 'EPIPE' ? 141 : 1));
  process.on('uncaughtException', (err) => {
    if (!stopping) log.error(`uncaught: ${err.stack ?? err.message}`);
    stop('uncaught exception', 1);
  });
  process.on('unhandledRejection', (err) => {
    if (!stopping) log.error(`unhandled rejection: ${(err as Error)?.stack ?? String(err)}`);
    stop('unhandled rejection', 1);
  });
  await agent.start();
  log.info('ready');
  await finished;
  return exitCode;
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => {
    // Let stdout (a pipe: asynchronous in Node) drain; force the exit only if a handle lingers.
    process.exitCode = code;
    setTimeout(() => process.exit(code), 3000).unref();
  });
}
