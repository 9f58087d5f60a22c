/**
 * `npm run recall`: measures soload against ground truth.
 *
 * Builds the corpus (test/recall/scenarios, see corpus.ts) with gcc, starts a real OpenTelemetry
 * Collector (file exporter) and the real soload CLI (live uprobes) exporting to it over OTLP/HTTP,
 * runs every scenario (each run writes the file-backed executable mappings of its own
 * /proc/self/maps just before exit), waits until soload's records for every run have arrived (or
 * nothing new arrived for --settle-ms, or --deadline-ms after the last run), stops soload (SIGTERM)
 * and the Collector, and computes per scenario and in total:
 *   recall          = |truth ∩ reported| / |truth|
 *   precision       = |truth ∩ reported| / (ok records: extras and duplicate records lower it)
 *   method accuracy = matched objects whose soload.load.method is the expected one / matched
 *   flag accuracy   = matched objects with the expected soload.file.deleted / soload.file.memfd
 *                     (and soload.host_path, when present and known) / matched
 *   path hygiene    = records whose file.path has no "/proc/self/fd/", "//", "." or ".." component
 *                     or " (deleted)" suffix / reported
 * Objects are matched by exact string: soload's file.path against the path the process's own
 * /proc/self/maps printed, with a trailing " (deleted)" stripped (that object must then carry
 * soload.file.deleted=true). No inode matching, no realpath. Reported = so.load records
 * with process.pid = the run's pid, soload.result = ok, soload.snapshot not true, timestamp within
 * the run's lifetime (±2 s). Expected methods: main program → executable, ld.so → interpreter,
 * LD_PRELOAD / ld.so.preload objects → preload, dlopen()ed objects and Python extension modules →
 * dlopen, everything else (DT_NEEDED of the program, of preloads and of dlopened objects) → needed.
 *
 * Before judging soload, the harness judges itself: every truth must contain the scenario's
 * expected paths (executable, interpreter, preloads, dlopens, mustContain), and the truth evaluated
 * against itself must score 100 % on every ratio. Informational scenarios (a known race, measured
 * honestly) are printed with their own row but left out of the totals and the bars.
 *
 * Environments (rows): by default the corpus is built and run on the host, and the output is one
 * table. --rows host,bullseye,trixie,musl (or --root bullseye|trixie|<dir>, --musl) builds it in
 * each environment (see corpus.ts: inside a foreign root with the root's own gcc, or with musl-gcc),
 * all before soload starts, then runs the environments one after the other and prints one block
 * of rows per environment under a heading, each with its TOTAL, then a table of the environments'
 * totals. A non-host environment's first row, first-process, is its first run after soload
 * started (soload has never seen that loader). The Debian roots come from scripts/make-roots.sh,
 * which the harness runs first (it returns at once when they are built). The bars are judged per
 * environment. --only applies to every environment (first-process always runs).
 *
 * Usage: node dist/test/recall/harness.js [--no-bars] [--json FILE] [--only a,b] [--repeat N]
 *          [--short-lived-runs N] [--settle-ms MS] [--deadline-ms MS] [--max-list N] [--keep]
 *          [--self-check-only] [--rows host,bullseye,trixie,musl] [--root NAME|DIR]... [--musl]
 *          [--build-only DIR | --prebuilt DIR]
 * --build-only compiles the host corpus into DIR and stops; --prebuilt DIR runs that corpus without
 * compiling anything (the QEMU kernel matrix, test/kernels: the guest has the host's files but no gcc).
 * Exit: 0 = bars met (or --no-bars), 1 = below the bars, 2 = the harness or corpus failed.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileExporterConfig, readFileExporterLogs, startCollector, type CollectorHandle, type FlatLogRecord } from '../helpers/collector';
import { startSoload, type SoloadProcess } from '../helpers/soload';
import { buildCorpus, expectationsFor, FIRST_PROCESS, HOST_ENV, readTruthFile, ROOT_CORPUS_PARENT, runScenario, type Corpus, type CorpusEnv, type Run, type Scenario } from './corpus';
import { ensureRoots, hasMountsUnder, KNOWN_ROOTS, rootDir } from '../helpers/roots';
import {
  checkBars,
  DEFAULT_BARS,
  evaluateRun,
  fmtPct,
  formatTable,
  idealRecord,
  METHODS,
  pathProblems,
  totals,
  type Bars,
  type ObjectNote,
  type ReportedLoad,
  type RunEvaluation,
  type RunExpectations,
  type Totals,
  type TruthEntry,
} from './evaluate';

export interface RecallOptions {
  only?: string[];
  repeat?: number;
  shortLivedRuns?: number;
  /** Stop waiting once no new record arrived for this long (after the last run). Default 3000. */
  settleMs?: number;
  /** Stop waiting this long after the last run at the latest. Default 10000. */
  deadlineMs?: number;
  /** Keep the work dir (binaries, truth files, collector output). */
  keep?: boolean;
  /** Judge the truth against itself only (no soload, no collector): checks the harness and corpus. */
  selfCheckOnly?: boolean;
  /** Extra soload config merged over the harness's (shallow per top-level key). */
  soloadConfig?: Record<string, unknown>;
  /** Give soload the roots directory as image layers (default true; false: loaders met at exec only). */
  prearm?: boolean;
  /** Run the host corpus already compiled in this dir (see --build-only); nothing is compiled. */
  prebuilt?: string;
  /** Environments, in the order they run (default ['host']): host, musl, bullseye, trixie, or a root directory. */
  rows?: string[];
  log?: (msg: string) => void;
}

export interface RunResult {
  run: Run;
  truth: TruthEntry[];
  expectations: RunExpectations;
  reported: ReportedLoad[];
  failedRecords: number;
  eval: RunEvaluation;
}

export interface ScenarioResult {
  name: string;
  description: string;
  /** Not in RecallReport.totals, not judged by the bars. */
  informational: boolean;
  runs: RunResult[];
  totals: Totals;
  failedRecords: number;
  expectedFailedRecords: number;
  wallMs: { min: number; median: number; max: number };
}

/** One environment's block of rows. */
export interface EnvResult {
  env: CorpusEnv;
  /** One line about it (root: Debian and glibc versions, interpreter, libc). */
  about: string;
  /** Host path of the environment's corpus (in a root: <root>/opt/soload-recall/<run>). */
  corpusDir: string;
  scenarios: ScenarioResult[];
  skipped: Corpus['skipped'];
  /** Over the non-informational scenarios (first-process included). */
  totals: Totals;
}

export interface RecallReport {
  dir: string;
  /** The first environment's (by default the host's) scenarios, skipped list and totals. */
  scenarios: ScenarioResult[];
  skipped: Corpus['skipped'];
  /** Over the non-informational scenarios. */
  totals: Totals;
  /** Problems with the corpus or harness itself (non-empty = the numbers mean nothing). */
  harnessErrors: string[];
  /** Things in soload's output worth a look (path forms, missing attributes, ...). */
  anomalies: string[];
  attributeCoverage: Record<string, { records: number; requestedName: number; loadedBy: number; enrichmentMissing: number }>;
  soloadStderrTail: string[];
  timings: Record<string, number>;
  /** Every environment, in run order (one element, the host, by default). */
  envs: EnvResult[];
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export function harnessSoloadConfig(endpoint: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    otel: { exporters: ['otlp'], endpoint: `${endpoint}/v1/logs`, batch: { scheduledDelayMs: 100 } },
    capture: { reportExecutable: true, snapshot: false },
    ...extra,
  };
}

/** so.load records grouped by process.pid. */
function byPid(recs: FlatLogRecord[]): Map<number, FlatLogRecord[]> {
  const m = new Map<number, FlatLogRecord[]>();
  for (const r of recs) {
    if (r.eventName !== 'so.load') continue;
    const pid = Number(r.attributes['process.pid']);
    if (!Number.isInteger(pid)) continue;
    let l = m.get(pid);
    if (!l) m.set(pid, (l = []));
    l.push(r);
  }
  return m;
}

const WINDOW_SLACK_MS = 2000;

function inWindow(r: FlatLogRecord, run: Run): boolean {
  const ms = Number(BigInt(r.timeUnixNano || '0') / 1_000_000n);
  return ms >= run.startMs - WINDOW_SLACK_MS && ms <= run.endMs + WINDOW_SLACK_MS;
}

function isOk(r: FlatLogRecord): boolean {
  return r.attributes['soload.result'] === 'ok' && r.attributes['soload.snapshot'] !== true;
}

/** The run's ok, non-snapshot records, reduced for the arithmetic. Records without file.path are left out (reported as anomalies). */
export function reportedFor(run: Run, recs: FlatLogRecord[] | undefined): { reported: ReportedLoad[]; failed: number; outOfWindow: number; noPath: number } {
  const out = { reported: [] as ReportedLoad[], failed: 0, outOfWindow: 0, noPath: 0 };
  for (const r of recs ?? []) {
    if (!inWindow(r, run)) {
      out.outOfWindow++;
      continue;
    }
    if (r.attributes['soload.result'] === 'failed') out.failed++;
    if (!isOk(r)) continue;
    const p = r.attributes['file.path'];
    if (typeof p !== 'string' || !p) {
      out.noPath++;
      continue;
    }
    const a = r.attributes;
    const load: ReportedLoad = {
      path: p,
      method: String(a['soload.load.method'] ?? ''),
      timeUnixNano: r.timeUnixNano,
      requestedName: a['soload.requested_name'] as string | undefined,
      loadedBy: a['soload.loaded_by'] as string | undefined,
    };
    if (a['soload.file.deleted'] === true) load.deleted = true;
    if (a['soload.file.memfd'] === true) load.memfd = true;
    if (typeof a['soload.host_path'] === 'string') load.hostPath = a['soload.host_path'];
    out.reported.push(load);
  }
  return out;
}

function median(xs: number[]): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/**
 * Checks the corpus and the arithmetic: every expected path is in the truth by exact string (so a
 * non-canonical expectation is caught here, not blamed on soload), and the truth fed back as the
 * ideal records scores 100 % on every ratio (which also checks the truth's paths are clean).
 */
export function selfCheck(s: Scenario, run: Run, truth: TruthEntry[], exp: RunExpectations): string[] {
  const errs: string[] = [];
  const paths = new Set(truth.map((t) => t.path));
  const expected = new Set([...exp.executable, ...exp.interpreter, ...exp.preload, ...exp.dlopen, ...exp.hostPath.keys(), ...(s.mustContain ?? [])]);
  for (const want of expected) {
    if (!paths.has(want)) errs.push(`${s.name}#${run.index}: truth lacks ${want}`);
  }
  const e = evaluateRun(truth, truth.map((t) => idealRecord(t, exp)), exp);
  const ratios = totals([e]);
  if (e.truth === 0 || [ratios.recall, ratios.precision, ratios.methodAccuracy, ratios.flagAccuracy, ratios.pathHygiene].some((v) => v !== 100)) {
    errs.push(`${s.name}#${run.index}: truth against itself is not 100 % throughout (${JSON.stringify(ratios)}; bad paths ${JSON.stringify(e.badPath)})`);
  }
  return errs;
}

/** A row's environment: host, musl, a known root's name, or a root directory (pure: unit-tested). */
export function parseRow(row: string): { kind: CorpusEnv['kind']; name: string; rootArg?: string } {
  if (row === 'host') return { kind: 'host', name: 'host' };
  if (row === 'musl') return { kind: 'musl', name: 'musl' };
  if ((KNOWN_ROOTS as readonly string[]).includes(row)) return { kind: 'root', name: row, rootArg: row };
  if (row.includes('/')) return { kind: 'root', name: path.basename(path.resolve(row)), rootArg: row };
  throw new Error(`unknown row ${JSON.stringify(row)}: host, musl, ${KNOWN_ROOTS.join(', ')} or a root directory (a path with "/")`);
}

/** Prefixes a note with the environment's name (not for the host: its output stays as it was). */
const envLabel = (env: CorpusEnv, what: string): string => (env.kind === 'host' ? what : `${env.name}/${what}`);

/** Runs the corpus against soload (or against itself with selfCheckOnly) and returns the report. */
export async function runRecall(opts: RecallOptions = {}): Promise<RecallReport> {
  const log = opts.log ?? ((m: string) => process.stderr.write(`recall: ${m}\n`));
  const timings: Record<string, number> = {};
  const t0 = Date.now();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-recall-'));
  let collector: CollectorHandle | undefined;
  let soload: SoloadProcess | undefined;
  const harnessErrors: string[] = [];
  const anomalies: string[] = [];
  const rows = (opts.rows?.length ? opts.rows : ['host']).map(parseRow);
  const names = rows.map((r) => r.name);
  const dupName = names.find((n, i) => names.indexOf(n) !== i);
  if (dupName) throw new Error(`environment ${dupName} given twice`);
  const hostOnly = rows.length === 1 && rows[0].kind === 'host';
  const corpora: Corpus[] = [];
  try {
    if (rows.some((r) => r.rootArg && (KNOWN_ROOTS as readonly string[]).includes(r.rootArg))) {
      timings.makeRootsMs = ensureRoots();
      log(`scripts/make-roots.sh: roots ready (${timings.makeRootsMs} ms)`);
    }
    if (rows.some((r) => r.kind === 'musl') && spawnSync('musl-gcc', ['--version'], { stdio: 'ignore' }).status !== 0) {
      throw new Error('the musl row needs musl-gcc: apt-get install musl-tools (scripts/make-roots.sh installs it too)');
    }
    // Every corpus is built before soload starts: building in a root runs that root's gcc (and so
    // its loader), which soload must not have seen when the root's first-process row runs.
    for (const row of rows) {
      const tb = Date.now();
      const env: CorpusEnv = row.kind === 'host' ? HOST_ENV : row.kind === 'musl' ? { kind: 'musl', name: 'musl' } : { kind: 'root', name: row.name, root: rootDir(row.rootArg!) };
      if (opts.prebuilt && !hostOnly) throw new Error('--prebuilt is for the host row only');
      const envDir = opts.prebuilt ?? (hostOnly ? dir : path.join(dir, env.name));
      if (!hostOnly) fs.mkdirSync(envDir, { recursive: true });
      const corpus = await buildCorpus(env.kind === 'root' ? `${path.basename(dir)}-${env.name}` : envDir, { repeat: opts.repeat, shortLivedRuns: opts.shortLivedRuns, only: opts.only, env, prebuilt: opts.prebuilt !== undefined });
      corpora.push(corpus);
      const ms = Date.now() - tb;
      if (hostOnly) timings.buildMs = ms;
      else timings[`build:${env.name}`] = ms;
      log(`${hostOnly ? '' : `${env.name}: `}built ${corpus.scenarios.length} scenarios in ${corpus.dir} (${ms} ms)${corpus.skipped.map((s) => `; skipped ${s.name}: ${s.reason}`).join('')}`);
    }
    if (!hostOnly) timings.buildMs = Date.now() - t0;

    if (!opts.selfCheckOnly) {
      const t1 = Date.now();
      collector = await startCollector({ configYaml: fileExporterConfig(), workDir: path.join(dir, 'otelcol') });
      // The roots stand for images a container runtime has unpacked: their directory is the layer
      // store soload pre-arms (as /var/lib/containerd/.../snapshots/*/fs would be on a node).
      const layers = opts.prearm !== false && rows.some((r) => r.kind === 'root') ? { discovery: { imageLayers: [...new Set(corpora.filter((c) => c.env.kind === 'root').map((c) => path.dirname((c.env as { root: string }).root) + '/*'))] } } : {};
      soload = await startSoload(harnessSoloadConfig(collector.httpEndpoint, { ...layers, ...opts.soloadConfig }), { readyTimeoutMs: 60_000 });
      if (Object.keys(layers).length) log(`soload pre-arms image layers ${JSON.stringify(layers.discovery!.imageLayers)}`);
      timings.startMs = Date.now() - t1;
      log(`collector ${collector.httpEndpoint} and soload pid ${soload.pid} ready (${timings.startMs} ms)`);
    }

    // Run every scenario, environment after environment.
    const t2 = Date.now();
    const runsBy = new Map<Scenario, Run[]>();
    for (const corpus of corpora) {
      const te = Date.now();
      const truthDir = path.join(corpus.hostDir, 'truth');
      for (const s of corpus.scenarios) {
        const ts = Date.now();
        const runs = await runScenario(s, truthDir, corpus.launcher);
        runsBy.set(s, runs);
        log(`ran ${envLabel(corpus.env, s.name)}: ${runs.length} run(s) in ${Date.now() - ts} ms`);
      }
      if (!hostOnly) timings[`run:${corpus.env.name}`] = Date.now() - te;
    }
    timings.runMs = Date.now() - t2;
    const lastRunEnd = Date.now();

    // Truth, expectations, corpus checks.
    const truthOf = new Map<Run, TruthEntry[]>();
    const expOf = new Map<Scenario, RunExpectations>();
    const pids = new Map<number, Run>();
    for (const corpus of corpora) {
      for (const s of corpus.scenarios) {
        const exp = expectationsFor(s, corpus.interpreter);
        expOf.set(s, exp);
        const label = envLabel(corpus.env, s.name);
        for (const run of runsBy.get(s)!) {
          if (run.status !== 0) harnessErrors.push(`${label}#${run.index}: exit ${run.status}: ${run.stderr.trim().slice(0, 300)}`);
          if (run.pid <= 0) harnessErrors.push(`${label}#${run.index}: no pid`);
          if (pids.has(run.pid)) harnessErrors.push(`${label}#${run.index}: pid ${run.pid} reused (also ${pids.get(run.pid)!.scenario}#${pids.get(run.pid)!.index})`);
          pids.set(run.pid, run);
          let truth: TruthEntry[] = [];
          try {
            truth = readTruthFile(run.truthFile);
          } catch (err) {
            harnessErrors.push(`${label}#${run.index}: no truth: ${(err as Error).message}`);
          }
          truthOf.set(run, truth);
          harnessErrors.push(...selfCheck(s, run, truth, exp).map((e) => envLabel(corpus.env, e)));
        }
      }
    }
    const allRuns = [...truthOf.keys()];

    // Wait for soload's records.
    let recs: FlatLogRecord[] = [];
    if (collector && soload) {
      const settleMs = opts.settleMs ?? 3000;
      const deadline = lastRunEnd + (opts.deadlineMs ?? 10_000);
      const complete = (rs: FlatLogRecord[]): boolean => {
        const m = byPid(rs);
        return allRuns.every((run) => {
          const got = new Set(reportedFor(run, m.get(run.pid)).reported.map((r) => r.path));
          return truthOf.get(run)!.every((t) => got.has(t.path));
        });
      };
      let lastCount = -1;
      let lastChange = Date.now();
      for (;;) {
        recs = readFileExporterLogs(collector.fileOutput!);
        if (recs.length !== lastCount) {
          lastCount = recs.length;
          lastChange = Date.now();
        }
        if (complete(recs)) {
          log(`all runs complete after ${Date.now() - lastRunEnd} ms`);
          break;
        }
        if (Date.now() - lastChange >= settleMs && Date.now() - lastRunEnd >= settleMs) {
          log(`no new records for ${settleMs} ms; ${recs.length} record(s) in; judging what arrived`);
          break;
        }
        if (Date.now() > deadline) {
          log(`deadline (${opts.deadlineMs ?? 10_000} ms after the last run) reached with ${recs.length} record(s)`);
          break;
        }
        await sleep(250);
      }
      timings.waitMs = Date.now() - lastRunEnd;
      const code = await soload.stop('SIGTERM');
      if (code !== 143 && code !== 0) anomalies.push(`soload exited with ${code} after SIGTERM`);
      await collector.stop();
      recs = readFileExporterLogs(collector.fileOutput!);
    }

    // Evaluate.
    const recsByPid = byPid(recs);
    const coverage: RecallReport['attributeCoverage'] = {};
    let faults = 0;
    for (const r of recs) if (JSON.stringify(r.attributes).includes('(fault)')) faults++;
    if (faults) anomalies.push(`${faults} record(s) carry "(fault)"`);
    // Path hygiene of the other processes on the host (not judged: their truth is unknown).
    const runPids = new Set(pids.keys());
    const foreignBad = new Map<string, number>();
    for (const r of recs) {
      const p = r.attributes['file.path'];
      if (r.eventName !== 'so.load' || typeof p !== 'string' || runPids.has(Number(r.attributes['process.pid']))) continue;
      const problems = pathProblems(p);
      if (!problems.length) continue;
      const what = `${JSON.stringify(p)} (${problems.join(', ')})`;
      foreignBad.set(what, (foreignBad.get(what) ?? 0) + 1);
    }
    for (const [what, n] of foreignBad) anomalies.push(`other process: unclean file.path ${what} ×${n}`);
    const envs: EnvResult[] = [];
    for (const corpus of corpora) {
      const scenarios: ScenarioResult[] = [];
      for (const s of corpus.scenarios) {
        const label = envLabel(corpus.env, s.name);
        const exp = expOf.get(s)!;
        const results: RunResult[] = [];
        let outOfWindow = 0;
        let noPath = 0;
        for (const run of runsBy.get(s)!) {
          const truth = truthOf.get(run)!;
          let rep: ReturnType<typeof reportedFor>;
          if (opts.selfCheckOnly) {
            rep = { reported: truth.map((t) => idealRecord(t, exp)), failed: s.failedDlopens ?? 0, outOfWindow: 0, noPath: 0 };
          } else {
            const own = recsByPid.get(run.pid) ?? [];
            rep = reportedFor(run, own);
            for (const r of own) {
              if (!isOk(r) || !inWindow(r, run)) continue;
              const m = String(r.attributes['soload.load.method']);
              const c = (coverage[m] ??= { records: 0, requestedName: 0, loadedBy: 0, enrichmentMissing: 0 });
              c.records++;
              if (r.attributes['soload.requested_name'] !== undefined) c.requestedName++;
              if (r.attributes['soload.loaded_by'] !== undefined) c.loadedBy++;
              if (r.attributes['soload.enrichment.missing'] !== undefined) c.enrichmentMissing++;
              if (!(METHODS as readonly string[]).includes(m)) anomalies.push(`${label}#${run.index}: unknown soload.load.method ${JSON.stringify(m)}`);
            }
          }
          outOfWindow += rep.outOfWindow;
          noPath += rep.noPath;
          const ev = evaluateRun(truth, rep.reported, exp);
          // unclean paths fail their own bar and are listed as anomalies, with what is wrong
          for (const n of ev.badPath) anomalies.push(`${label}#${run.index}: unclean file.path ${JSON.stringify(n.path)}: ${n.reported}`);
          results.push({ run, truth, expectations: exp, reported: rep.reported, failedRecords: rep.failed, eval: ev });
        }
        if (outOfWindow) anomalies.push(`${label}: ${outOfWindow} record(s) for the runs' pids outside their lifetime ±${WINDOW_SLACK_MS} ms (ignored; pid reuse or wrong timestamps)`);
        if (noPath) anomalies.push(`${label}: ${noPath} ok record(s) without file.path (ignored)`);
        const failedRecords = results.reduce((n, r) => n + r.failedRecords, 0);
        const expectedFailed = (s.failedDlopens ?? 0) * results.length;
        if (!opts.selfCheckOnly && failedRecords !== expectedFailed) anomalies.push(`${label}: ${failedRecords} soload.result=failed record(s), expected ${expectedFailed}`);
        const walls = results.map((r) => r.run.wallMs);
        scenarios.push({
          name: s.name,
          description: s.description,
          informational: s.informational === true,
          runs: results,
          totals: totals(results.map((r) => r.eval)),
          failedRecords,
          expectedFailedRecords: expectedFailed,
          wallMs: { min: Math.min(...walls), median: median(walls), max: Math.max(...walls) },
        });
      }
      envs.push({
        env: corpus.env,
        about: corpus.about,
        corpusDir: corpus.hostDir,
        scenarios,
        skipped: corpus.skipped,
        totals: totals(scenarios.filter((s) => !s.informational).flatMap((s) => s.runs.map((r) => r.eval))),
      });
    }
    const soloadStderr = soload ? soload.stderr().split('\n').filter((l) => /\b(warn|error)\b|search-list probes/i.test(l)) : [];
    timings.totalMs = Date.now() - t0;
    return {
      dir,
      scenarios: envs[0].scenarios,
      skipped: envs[0].skipped,
      totals: envs[0].totals,
      harnessErrors,
      anomalies,
      attributeCoverage: coverage,
      soloadStderrTail: soloadStderr.slice(-20),
      timings,
      envs,
    };
  } finally {
    await soload?.stop('SIGKILL').catch(() => undefined);
    await collector?.stop().catch(() => undefined);
    if (!opts.keep && process.env.SOLOAD_KEEP_TEST_DIRS !== '1') {
      fs.rmSync(dir, { recursive: true, force: true });
      // a root's corpus lives in the root (cached across runs): remove this run's, never through a mount
      for (const c of corpora) {
        if (c.env.kind !== 'root' || !c.hostDir.includes(ROOT_CORPUS_PARENT)) continue;
        if (hasMountsUnder(c.hostDir)) log(`not removing ${c.hostDir}: something is mounted under it`);
        else fs.rmSync(c.hostDir, { recursive: true, force: true });
      }
    }
  }
}

type NoteKind = 'missed' | 'extra' | 'duplicate' | 'wrongMethod' | 'wrongFlags' | 'badPath';

/** Missed / extra / duplicate / wrong-method / wrong-flag / unclean-path objects of a scenario, aggregated over its runs. */
export function aggregateNotes(sr: ScenarioResult): Record<NoteKind, Array<{ path: string; expected?: string; reported?: string; runs: number }>> {
  const out = { missed: [], extra: [], duplicate: [], wrongMethod: [], wrongFlags: [], badPath: [] } as ReturnType<typeof aggregateNotes>;
  for (const kind of Object.keys(out) as Array<keyof typeof out>) {
    const m = new Map<string, { path: string; expected?: string; reported?: string; runs: number }>();
    for (const r of sr.runs) {
      for (const n of r.eval[kind] as ObjectNote[]) {
        const k = `${n.path}\0${n.expected}\0${n.reported}`;
        const hit = m.get(k);
        if (hit) hit.runs++;
        else m.set(k, { path: n.path, expected: n.expected, reported: n.reported, runs: 1 });
      }
    }
    out[kind] = [...m.values()].sort((a, b) => b.runs - a.runs || a.path.localeCompare(b.path));
  }
  return out;
}

/** The bars' verdict on one environment's totals, as printed (and the failures, prefixed with the environment unless it is the only one, the host). */
function barsLine(t: Totals, bars: Bars, prefix: string): { line: string; failures: string[] } {
  const failures = checkBars(t, bars);
  const line = failures.length
    ? `${prefix}BELOW BARS: ${failures.join('; ')}`
    : `${prefix}bars met: recall ${fmtPct(t.recall)} % ≥ ${bars.recall}, precision ${fmtPct(t.precision)} % ≥ ${bars.precision}, method ${fmtPct(t.methodAccuracy)} % ≥ ${bars.methodAccuracy}, flags ${fmtPct(t.flagAccuracy)} % ≥ ${bars.flagAccuracy}, path hygiene ${fmtPct(t.pathHygiene)} % ≥ ${bars.pathHygiene}`;
  return { line, failures: failures.map((f) => `${prefix}${f}`) };
}

/** One environment's rows: the table, skipped scenarios, short-lived wall times, per-object notes. */
function printEnvBlock(e: EnvResult, out: (s: string) => void, maxList: number, heading: boolean): void {
  out('');
  if (heading) {
    out(`=== ${e.env.name}: ${e.about} ===`);
    const first = e.scenarios.find((s) => s.name === FIRST_PROCESS);
    if (first) {
      const t = first.totals;
      out(`first process of a fresh ${e.env.kind === 'root' ? 'root' : 'environment'} (row ${FIRST_PROCESS}, counted in TOTAL): recall ${fmtPct(t.recall)} % (${t.matched}/${t.truth}), precision ${fmtPct(t.precision)} %, method ${fmtPct(t.methodAccuracy)} %`);
    }
  }
  out(formatTable(e.scenarios.map((s) => ({ name: s.name, t: s.totals, failed: s.failedRecords, informational: s.informational })), e.totals));
  for (const s of e.skipped) out(`skipped ${s.name}: ${s.reason}`);
  const sl = e.scenarios.find((s) => s.name.startsWith('short-lived'));
  if (sl) out(`short-lived wall time spawn→exit (ms): min ${sl.wallMs.min.toFixed(1)}, median ${sl.wallMs.median.toFixed(1)}, max ${sl.wallMs.max.toFixed(1)}`);
  out('');
  for (const s of e.scenarios) {
    const notes = aggregateNotes(s);
    const label = { missed: 'missed', extra: 'extra', duplicate: 'duplicate record', wrongMethod: 'wrong method', wrongFlags: 'wrong file flag', badPath: 'unclean file.path' } as const;
    for (const kind of ['missed', 'extra', 'duplicate', 'wrongMethod', 'wrongFlags', 'badPath'] as const) {
      const list = notes[kind];
      if (!list.length) continue;
      out(`${s.name}: ${label[kind]} (${list.length} distinct):`);
      for (const n of list.slice(0, maxList)) {
        const m =
          kind === 'missed'
            ? `expected ${n.expected}`
            : kind === 'wrongMethod' || kind === 'wrongFlags'
              ? `expected ${n.expected}, got ${n.reported}`
              : kind === 'badPath'
                ? n.reported
                : `method ${n.reported}`;
        out(`  ${n.path}  (${m})  ×${n.runs}/${s.runs.length} run(s)`);
      }
      if (list.length > maxList) out(`  … ${list.length - maxList} more`);
    }
  }
}

export function printReport(rep: RecallReport, opts: { maxList?: number; bars?: Bars | null; out?: (s: string) => void } = {}): string[] {
  const out = opts.out ?? ((s: string) => process.stdout.write(`${s}\n`));
  const maxList = opts.maxList ?? 10;
  const envs: EnvResult[] = rep.envs?.length ? rep.envs : [{ env: HOST_ENV, about: 'the host', corpusDir: rep.dir, scenarios: rep.scenarios, skipped: rep.skipped, totals: rep.totals }];
  const hostOnly = envs.length === 1 && envs[0].env.kind === 'host';
  for (const e of envs) printEnvBlock(e, out, maxList, !hostOnly);
  if (envs.length > 1) {
    out('');
    out('per environment (TOTAL rows above):');
    const all = totals(envs.flatMap((e) => e.scenarios.filter((s) => !s.informational).flatMap((s) => s.runs.map((r) => r.eval))));
    const failed = (e: EnvResult): number => e.scenarios.reduce((n, s) => n + (s.informational ? 0 : s.failedRecords), 0);
    out(formatTable(envs.map((e) => ({ name: e.env.name, t: e.totals, failed: failed(e) })), all, { head: 'environment' }));
  }
  if (Object.keys(rep.attributeCoverage).length) {
    out('');
    out('attribute coverage of ok records, by method (records: requested_name / loaded_by / enrichment.missing):');
    for (const [m, c] of Object.entries(rep.attributeCoverage)) out(`  ${m}: ${c.records}: ${c.requestedName} / ${c.loadedBy} / ${c.enrichmentMissing}`);
  }
  if (rep.anomalies.length) {
    out('');
    out(`anomalies in soload's output (${rep.anomalies.length}):`);
    for (const a of [...new Set(rep.anomalies)].slice(0, 30)) out(`  ${a}`);
  }
  if (rep.soloadStderrTail.length) {
    out('');
    out('soload warnings/errors (last 20):');
    for (const l of rep.soloadStderrTail) out(`  ${l}`);
  }
  out('');
  out(`timings (ms): ${Object.entries(rep.timings).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  if (rep.harnessErrors.length) {
    out('');
    out(`HARNESS/CORPUS ERRORS (${rep.harnessErrors.length}): the numbers above are not trustworthy`);
    for (const e of rep.harnessErrors.slice(0, 30)) out(`  ${e}`);
  } else out('self-check: every truth has its expected paths and scores 100 % on every ratio against itself');
  const failures: string[] = [];
  if (opts.bars) {
    for (const e of envs) {
      const b = barsLine(e.totals, opts.bars, hostOnly ? '' : `${e.env.name}: `);
      out(b.line);
      failures.push(...b.failures);
    }
  }
  return failures;
}

/** The report as JSON (per-run detail trimmed to the notes). */
export function reportJson(rep: RecallReport, bars: Bars | null): unknown {
  return {
    generatedAt: new Date().toISOString(),
    host: { kernel: os.release(), node: process.version },
    bars,
    barFailures: bars ? checkBars(rep.totals, bars) : [],
    totals: rep.totals,
    scenarios: rep.scenarios.map((s) => ({
      name: s.name,
      description: s.description,
      informational: s.informational,
      totals: s.totals,
      failedRecords: s.failedRecords,
      expectedFailedRecords: s.expectedFailedRecords,
      wallMs: s.wallMs,
      notes: aggregateNotes(s),
    })),
    skipped: rep.skipped,
    harnessErrors: rep.harnessErrors,
    anomalies: [...new Set(rep.anomalies)],
    attributeCoverage: rep.attributeCoverage,
    soloadStderrTail: rep.soloadStderrTail,
    timings: rep.timings,
    environments: rep.envs.map((e) => ({
      name: e.env.name,
      kind: e.env.kind,
      root: e.env.root,
      about: e.about,
      barFailures: bars ? checkBars(e.totals, bars) : [],
      totals: e.totals,
      scenarios: e.scenarios.map((s) => ({ name: s.name, informational: s.informational, totals: s.totals, failedRecords: s.failedRecords, expectedFailedRecords: s.expectedFailedRecords, wallMs: s.wallMs, notes: aggregateNotes(s) })),
      skipped: e.skipped,
    })),
  };
}

export function parseArgs(argv: string[]): RecallOptions & { bars: boolean; json?: string; maxList: number; buildOnly?: string } {
  const o: RecallOptions & { bars: boolean; json?: string; maxList: number; buildOnly?: string } = { bars: true, maxList: 10 };
  const rows: string[] = [];
  const num = (i: number): number => {
    const v = Number(argv[i]);
    if (!Number.isFinite(v) || v < 0) throw new Error(`${argv[i - 1]} needs a number`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--no-bars':
        o.bars = false;
        break;
      case '--json':
        o.json = argv[++i];
        break;
      case '--only':
        o.only = argv[++i].split(',').filter(Boolean);
        break;
      case '--repeat':
        o.repeat = num(++i);
        break;
      case '--short-lived-runs':
        o.shortLivedRuns = num(++i);
        break;
      case '--settle-ms':
        o.settleMs = num(++i);
        break;
      case '--deadline-ms':
        o.deadlineMs = num(++i);
        break;
      case '--max-list':
        o.maxList = num(++i);
        break;
      case '--keep':
        o.keep = true;
        break;
      case '--self-check-only':
        o.selfCheckOnly = true;
        break;
      case '--prebuilt':
        o.prebuilt = path.resolve(argv[++i] ?? '');
        break;
      case '--build-only':
        o.buildOnly = path.resolve(argv[++i] ?? '');
        break;
      case '--rows':
        rows.push(...(argv[++i] ?? '').split(',').filter(Boolean));
        break;
      case '--root':
        if (!argv[i + 1]) throw new Error('--root needs bullseye, trixie or a root directory');
        rows.push(argv[++i]);
        break;
      case '--musl':
        rows.push('musl');
        break;
      case '--prearm':
        o.prearm = argv[++i] === 'on';
        break;
      case '-h':
      case '--help':
        process.stdout.write(
          'usage: node dist/test/recall/harness.js [--no-bars] [--json FILE] [--only a,b] [--repeat N] [--short-lived-runs N]\n' +
            '         [--settle-ms MS] [--deadline-ms MS] [--max-list N] [--keep] [--self-check-only]\n' +
            '         [--rows host,bullseye,trixie,musl] [--root bullseye|trixie|DIR]... [--musl] [--prearm on|off]\n' +
            '         [--build-only DIR | --prebuilt DIR]\n' +
            '  prearm: the roots directory is given to soload as image layers (default on), as a container\n' +
            '          runtime\'s layer store would be; off measures loaders soload meets only at an exec\n' +
            '  rows: the environments to build and run the corpus in, in order (default: host only)\n',
        );
        process.exit(0);
      // falls through (unreachable)
      default:
        throw new Error(`unknown argument ${a} (try --help)`);
    }
  }
  if (rows.length) o.rows = rows;
  return o;
}

async function main(): Promise<number> {
  const o = parseArgs(process.argv.slice(2));
  if (o.buildOnly) {
    // Compiles the host corpus for a later --prebuilt run in a QEMU guest (test/kernels), which has
    // the host's userspace at the same paths but no gcc.
    fs.mkdirSync(o.buildOnly, { recursive: true });
    const c = await buildCorpus(o.buildOnly, { repeat: o.repeat, shortLivedRuns: o.shortLivedRuns, only: o.only });
    process.stderr.write(`recall: built ${c.scenarios.length} scenarios in ${c.dir}\n`);
    return 0;
  }
  if (!o.selfCheckOnly && process.getuid?.() !== 0) throw new Error('the recall harness runs soload with live uprobes: run it as root (or use --self-check-only)');
  const rep = await runRecall(o);
  const bars = o.bars && !o.selfCheckOnly ? DEFAULT_BARS : null;
  const failures = printReport(rep, { maxList: o.maxList, bars });
  if (o.json) {
    fs.writeFileSync(o.json, `${JSON.stringify(reportJson(rep, bars), null, 2)}\n`);
    process.stderr.write(`recall: wrote ${o.json}\n`);
  }
  if (o.keep) process.stderr.write(`recall: kept ${[rep.dir, ...rep.envs.filter((e) => e.env.kind === 'root').map((e) => e.corpusDir)].join(', ')}\n`);
  if (rep.harnessErrors.length) return 2;
  return failures.length ? 1 : 0;
}

if (require.main === module) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      process.stderr.write(`recall: ${(err as Error).stack ?? String(err)}\n`);
      process.exit(2);
    },
  );
}
