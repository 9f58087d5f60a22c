/**
 * The program a kernel-matrix guest runs (test/kernels/init.sh starts it as PID 1's child; the host
 * row runs it directly): measures this kernel and prints each result as one line
 *   SOLOAD-KMATRIX <name> <base64 of JSON>
 * to the plan's output (the guest's second serial port, a file on the host). Results, in order:
 *   kernel          release and /proc/version
 *   check-debugfs   `soload check --json` with only debugfs mounted (tracing at /sys/kernel/debug/tracing)
 *   check           `soload check --json` with tracefs mounted at /sys/kernel/tracing
 *   features        probe syntaxes accepted, and the (fault) / unknown-type demonstrations
 *   recall          the recall harness's JSON (host corpus, prebuilt on the host)
 *   cost            wall-time ratios of the bench's quick workloads, soload running ÷ nothing (cost.ts)
 *   done            timings of every step
 * Usage: node dist/test/kernels/guest.js PLAN.json
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ElfSymbolResolver } from '../../src/elf';
import { measureCost, type CostPlan } from './cost';
import { measureFeatures } from './features';

/** What the runner asks a guest (or the host row) to do. */
export interface GuestPlan {
  repo: string;
  /** The host corpus compiled by `harness.js --build-only`. */
  corpusDir: string;
  /** test/kernels/fault.c compiled on the host. */
  faultProg: string;
  /** Recall harness options; absent: no recall run. */
  recall?: { only?: string[]; repeat: number; shortLivedRuns: number; settleMs?: number; deadlineMs?: number };
  /** The cost step; absent: not measured. */
  cost?: CostPlan;
  /** Where result lines go. */
  output: string;
  /** A shell script run after the features step (investigations: `--debug FILE` of run.ts); its output is the `debug` result. */
  debug?: string;
  /** In a guest: mount tracefs after the debugfs-only check (the host row leaves mounts alone). */
  guest: boolean;
}

export const RESULT_PREFIX = 'SOLOAD-KMATRIX';

/** Result lines → name → parsed JSON (pure; tolerates console noise and CR line ends). */
export function parseResultLines(text: string): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const raw of text.split('\n')) {
    const m = new RegExp(`${RESULT_PREFIX} (\\S+) ([A-Za-z0-9+/=]+)\\s*$`).exec(raw.replace(/\r/g, ''));
    if (!m) continue;
    try {
      out.set(m[1]!, JSON.parse(Buffer.from(m[2]!, 'base64').toString('utf8')));
    } catch {
      /* a line cut by the guest's power-off: that result is missing, which the runner reports */
    }
  }
  return out;
}

async function main(): Promise<void> {
  const plan = JSON.parse(fs.readFileSync(process.argv[2]!, 'utf8')) as GuestPlan;
  const emit = (name: string, value: unknown): void => {
    fs.appendFileSync(plan.output, `${RESULT_PREFIX} ${name} ${Buffer.from(JSON.stringify(value)).toString('base64')}\n`);
  };
  const say = (m: string): void => void process.stderr.write(`kmatrix: ${m}\n`);
  const timings: Record<string, number> = {};
  const step = async <T>(name: string, fn: () => T | Promise<T>): Promise<T | undefined> => {
    const t = Date.now();
    say(`${name} ...`);
    try {
      return await fn();
    } catch (err) {
      emit(`${name}-error`, { error: (err as Error).stack ?? String(err) });
      say(`${name} failed: ${(err as Error).message}`);
      return undefined;
    } finally {
      timings[name] = Date.now() - t;
      say(`${name} done in ${timings[name]} ms`);
    }
  };
  const cli = path.join(plan.repo, 'dist/src/cli/main.js');
  const check = (): unknown => {
    const r = spawnSync(process.execPath, [cli, 'check', '--json'], { encoding: 'utf8', cwd: plan.repo, maxBuffer: 64 << 20 });
    let report: unknown;
    try {
      report = JSON.parse(r.stdout);
    } catch {
      report = undefined;
    }
    return { exitCode: r.status, report, stderr: r.stderr.slice(-4000) };
  };
  emit('kernel', { release: os.release(), version: fs.readFileSync('/proc/version', 'utf8').trim(), cpus: os.cpus().length, memMiB: Math.round(os.totalmem() / 2 ** 20) });
  if (plan.guest) {
    await step('check-debugfs', () => emit('check-debugfs', check()));
    fs.mkdirSync('/sys/kernel/tracing', { recursive: true });
    spawnSync('mount', ['-t', 'tracefs', 'nodev', '/sys/kernel/tracing'], { stdio: 'inherit' });
  }
  await step('check', () => emit('check', check()));
  let dataFetchBroken = false;
  await step('features', () => {
    const tracefs = fs.existsSync('/sys/kernel/tracing/uprobe_events') ? '/sys/kernel/tracing' : '/sys/kernel/debug/tracing';
    const resolver = new ElfSymbolResolver();
    const offset = resolver.resolve(plan.faultProg, 'take').fileOffset;
    const data = { magic: resolver.fetchOffset(plan.faultProg, 'take', 'kmatrix_magic'), ptr: resolver.fetchOffset(plan.faultProg, 'take', 'kmatrix_ptr') };
    const f = measureFeatures(tracefs, plan.faultProg, offset, os.tmpdir(), data);
    dataFetchBroken = f.dataFetch?.plain?.v !== '0x1122334455667788';
    emit('features', f);
  });
  if (plan.debug) {
    const script = plan.debug;
    await step('debug', () => {
      const r = spawnSync('sh', ['-c', script], { encoding: 'utf8', cwd: plan.repo, maxBuffer: 64 << 20, timeout: 300_000 });
      emit('debug', { exitCode: r.status, stdout: r.stdout.slice(-200_000), stderr: r.stderr.slice(-50_000) });
    });
  }
  if (plan.recall) {
    const rc = plan.recall;
    await step('recall', () => {
      const json = path.join(os.tmpdir(), `kmatrix-recall-${process.pid}.json`);
      const args = [path.join(plan.repo, 'dist/test/recall/harness.js'), '--prebuilt', plan.corpusDir, '--no-bars', '--json', json, '--repeat', String(rc.repeat), '--short-lived-runs', String(rc.shortLivedRuns)];
      if (rc.only?.length) args.push('--only', rc.only.join(','));
      if (rc.settleMs !== undefined) args.push('--settle-ms', String(rc.settleMs));
      if (rc.deadlineMs !== undefined) args.push('--deadline-ms', String(rc.deadlineMs));
      // soload picks its capture mechanism itself (its @+ self-test decides on kernels where that
      // fetch reads nothing); `dataFetchBroken` is only recorded next to the result.
      const r = spawnSync(process.execPath, args, { encoding: 'utf8', cwd: plan.repo, stdio: ['ignore', 'pipe', 'pipe'], maxBuffer: 256 << 20 });
      const report = fs.existsSync(json) ? JSON.parse(fs.readFileSync(json, 'utf8')) : undefined;
      emit('recall', { exitCode: r.status, dataFetchBroken, report, stdoutTail: r.stdout.slice(-6000), stderrTail: r.stderr.slice(-6000) });
    });
  }
  if (plan.cost) {
    const cp = plan.cost;
    await step('cost', async () => emit('cost', await measureCost(cp)));
  }
  emit('done', { timings });
}

if (require.main === module) {
  main().catch((err) => {
    process.stderr.write(`kmatrix: ${(err as Error).stack ?? String(err)}\n`);
    process.exitCode = 1;
  });
}
