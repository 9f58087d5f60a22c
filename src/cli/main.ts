#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { SoloadAgent, stderrLog } from '../agent';
import { loadConfig, redactConfig } from '../config/load';
import { isSoloadError, SoloadError } from '../errors';
import { buildProbeLine } from '../tracefs/probe-line';
import { formatCheck, runCheck } from './check';

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
  } catch (err) {
    process.stderr.write(`soload: ${isSoloadError(err) ? `${err.code}: ` : ''}${(err as Error).message}\n`);
    return 2;
  }
  const log = stderrLog(config.log.level);
  try {
    switch (command) {
      case 'config':
        process.stdout.write(JSON.stringify(redactConfig(config), null, 2) + '\n');
        return 0;
      case 'check': {
        const report = await runCheck(config);
        process.stdout.write((args.values.json ? JSON.stringify(report, null, 2) : formatCheck(report)) + '\n');
        return report.problems.length ? 1 : 0;
      }
      case 'probes': {
        const agent = new SoloadAgent({ config, log });
        const plan = agent.planOnly();
        const group = `${config.tracefs.groupPrefix}_${process.pid}`;
        for (const s of plan.specs) process.stdout.write(buildProbeLine(group, s) + '\n');
        for (const s of plan.skipped) process.stderr.write(`# skipped ${s.probe} (${s.library}): ${s.reason}\n`);
        return plan.specs.length ? 0 : 1;
      }
      default:
        return await run(config, log);
    }
  } catch (err) {
    process.stderr.write(`soload: ${err instanceof SoloadError ? `${err.code}: ` : ''}${(err as Error).message}\n`);
    return 1;
  }
}

async function run(config: ReturnType<typeof loadConfig>, log: ReturnType<typeof stderrLog>): Promise<number> {
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
  process.on('SIGINT', () => stop('SIGINT', 130));
  process.on('SIGTERM', () => stop('SIGTERM', 143));
  process.on('SIGHUP', () => stop('SIGHUP', 129));
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
