import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { REPO } from './corpus';
import type { CrashMessage, DoneMessage, WorkerJob } from './worker';

/**
 * The fuzzer's driver (`npm run fuzz`, and the time-boxed run inside `npm test`). Each target runs in
 * a worker thread under a watchdog: an input that runs longer than `perInputMs` is a hang (the worker
 * is terminated, the input saved from shared memory, and fuzzing resumes in a new worker); a worker
 * that dies (an uncaught error, or V8's heap limit `maxHeapMb`, so one input that needs more than 512 MiB of heap) is a crash with the input it was
 * running. Memory is judged three ways: heapUsed after a forced GC at the end against right after the
 * seeds ran, Buffer (external) memory the same way, and the process's peak RSS over the run.
 */

export type TargetName = WorkerJob['target'];

export interface FuzzOptions {
  /** Total wall-clock budget, split evenly over `targets`. */
  seconds: number;
  targets?: readonly TargetName[];
  seed?: number;
  /** Per-input time limit, ms (default 5000: the slowest real seed, a 4 MiB debug file, takes ~0.3 s). */
  perInputMs?: number;
  /** V8 old-space limit of each worker, MiB (default 512: every input must be handled within it). */
  maxHeapMb?: number;
  /** Where failing inputs are written (default .cache/fuzz/crashes). */
  outDir?: string;
  /** Also write each target's slowest input (over 1 s) to outDir. */
  saveSlowest?: boolean;
  log?: (line: string) => void;
}

export interface FuzzFailure {
  target: TargetName;
  kind: 'crash' | 'hang' | 'worker-died';
  property: string;
  message: string;
  /** Saved input (under outDir). */
  file: string;
}

export interface TargetReport {
  target: TargetName;
  stats: DoneMessage[];
  executions: number;
  blocks: number;
  /** Largest of the per-worker growths (bytes). */
  heapGrowth: number;
  externalGrowth: number;
  maxInputMs: number;
  restarts: number;
}

export interface FuzzReport {
  seed: number;
  failures: FuzzFailure[];
  targets: TargetReport[];
  rssBefore: number;
  rssPeak: number;
}

/** Heap retained by the harness over a run, beyond which memory is "unbounded" (MiB). */
export const HEAP_GROWTH_LIMIT = 64 * 1024 * 1024;
/** Buffer memory retained beyond the corpus (which is capped at 48 MiB) (bytes). */
export const EXTERNAL_GROWTH_LIMIT = 96 * 1024 * 1024;
/** Peak RSS above the process's RSS before the run (bytes). */
export const RSS_GROWTH_LIMIT = 1024 * 1024 * 1024;

const INPUT_CAPACITY = 16 * 1024 * 1024;

function save(outDir: string, target: string, property: string, input: Uint8Array): string {
  fs.mkdirSync(outDir, { recursive: true });
  const name = `${target}-${property}-${createHash('sha1').update(input).digest('hex').slice(0, 12)}.bin`;
  const file = path.join(outDir, name);
  fs.writeFileSync(file, input);
  return file;
}

/** Runs the fuzzer; resolves with everything it found (never rejects for a finding). */
export async function runFuzz(opts: FuzzOptions): Promise<FuzzReport> {
  const targets = opts.targets ?? ['trace', 'elf'];
  const seed = opts.seed ?? (Date.now() & 0x7fffffff);
  const perInputMs = opts.perInputMs ?? 5000;
  const outDir = opts.outDir ?? path.join(REPO, '.cache', 'fuzz', 'crashes');
  const log = opts.log ?? (() => {});
  const failures: FuzzFailure[] = [];
  const reports: TargetReport[] = [];
  const rssBefore = process.memoryUsage().rss;
  let rssPeak = rssBefore;
  const share = (opts.seconds * 1000) / targets.length;
  const workRoot = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'soload-fuzz-'));
  try {
    for (const [ti, target] of targets.entries()) {
      const deadline = Date.now() + share;
      const report: TargetReport = { target, stats: [], executions: 0, blocks: 0, heapGrowth: 0, externalGrowth: 0, maxInputMs: 0, restarts: 0 };
      let noSweep = false;
      let attempt = 0;
      while (Date.now() < deadline - 200) {
        const state = new SharedArrayBuffer(24);
        const input = new SharedArrayBuffer(INPUT_CAPACITY);
        const st = new Int32Array(state, 0, 4);
        const started = new Float64Array(state, 16, 1);
        const job: WorkerJob = {
          target,
          budgetMs: deadline - Date.now(),
          seed: (seed + ti * 7919 + attempt * 104729) | 0,
          state,
          input,
          workDir: path.join(workRoot, `${target}-${attempt}`),
          noSweep,
          ...(opts.saveSlowest ? { saveSlowest: (fs.mkdirSync(outDir, { recursive: true }), outDir) } : {}),
        };
        const currentInput = (): Uint8Array => new Uint8Array(input, 0, Math.min(st[2], INPUT_CAPACITY)).slice();
        const outcome = await new Promise<'done' | 'restart'>((resolve) => {
          const worker = new Worker(path.join(__dirname, 'worker.js'), {
            workerData: job,
            resourceLimits: { maxOldGenerationSizeMb: opts.maxHeapMb ?? 512 },
          });
          let settled = false;
          const finish = (v: 'done' | 'restart'): void => {
            if (settled) return;
            settled = true;
            clearInterval(watch);
            resolve(v);
          };
          const watch = setInterval(() => {
            const rss = process.memoryUsage().rss;
            if (rss > rssPeak) rssPeak = rss;
            if (Atomics.load(st, 1) === 1 && Date.now() - started[0] > perInputMs) {
              const data = currentInput();
              const file = save(outDir, target, 'hang', data);
              failures.push({ target, kind: 'hang', property: 'terminates', message: `input ${st[0]} (${st[2]} bytes) ran over ${perInputMs} ms`, file });
              log(`fuzz ${target}: HANG on input ${st[0]} (${st[2]} bytes), saved ${file}`);
              Atomics.store(st, 1, 0);
              void worker.terminate().then(() => finish('restart'));
            }
          }, 50);
          worker.on('message', (m: CrashMessage | DoneMessage) => {
            if (m.type === 'crash') {
              const file = save(outDir, target, m.property, m.input);
              failures.push({ target, kind: 'crash', property: m.property, message: m.message, file });
              log(`fuzz ${target}: CRASH ${m.message.split('\n')[0]} (input ${m.input.length} bytes, saved ${file})`);
            } else {
              report.stats.push(m);
              finish('done');
            }
          });
          worker.on('error', (err) => {
            const file = save(outDir, target, 'worker-died', currentInput());
            failures.push({ target, kind: 'worker-died', property: (err as NodeJS.ErrnoException).code ?? 'uncaught', message: err.message, file });
            log(`fuzz ${target}: WORKER DIED (${err.message}) on input ${st[0]}, saved ${file}`);
            finish('restart');
          });
          worker.on('exit', () => finish('restart'));
        });
        if (outcome === 'done') break;
        report.restarts++;
        noSweep = true;
        attempt++;
      }
      for (const s of report.stats) {
        report.executions += s.executions;
        report.blocks = Math.max(report.blocks, s.blocks);
        report.heapGrowth = Math.max(report.heapGrowth, s.heapAtEnd - s.heapAfterSeeds);
        report.externalGrowth = Math.max(report.externalGrowth, s.externalAtEnd - s.externalAfterSeeds - s.corpusBytes);
        report.maxInputMs = Math.max(report.maxInputMs, s.maxInputMs);
      }
      reports.push(report);
      const last = report.stats[report.stats.length - 1];
      log(
        `fuzz ${target}: ${report.executions} executions, ${report.blocks} coverage keys, corpus ${last?.corpus ?? 0} (${((last?.corpusBytes ?? 0) / 1048576).toFixed(1)} MiB), ` +
          `sweep ${report.stats[0]?.sweepDone ?? 0} of ${report.stats[0]?.sweepTotal ?? 0}, determinism checks ${last?.determinismChecks ?? 0}, slowest input ${report.maxInputMs.toFixed(0)} ms, ` +
          `largest ${((last?.maxInputBytes ?? 0) / 1048576).toFixed(1)} MiB, heap growth ${(report.heapGrowth / 1048576).toFixed(1)} MiB, restarts ${report.restarts}` +
          (last?.missingSeeds.length ? `; host seeds missing: ${last.missingSeeds.join(', ')}` : ''),
      );
    }
  } finally {
    fs.rmSync(workRoot, { recursive: true, force: true });
  }
  for (const r of reports) {
    if (r.heapGrowth > HEAP_GROWTH_LIMIT) {
      failures.push({ target: r.target, kind: 'crash', property: 'bounded-memory', message: `heapUsed grew ${(r.heapGrowth / 1048576).toFixed(1)} MiB over the run`, file: '' });
    }
    if (r.externalGrowth > EXTERNAL_GROWTH_LIMIT) {
      failures.push({ target: r.target, kind: 'crash', property: 'bounded-memory', message: `Buffer memory grew ${(r.externalGrowth / 1048576).toFixed(1)} MiB beyond the corpus`, file: '' });
    }
  }
  if (rssPeak - rssBefore > RSS_GROWTH_LIMIT) {
    failures.push({ target: targets[0], kind: 'crash', property: 'bounded-memory', message: `RSS peaked ${((rssPeak - rssBefore) / 1048576).toFixed(0)} MiB above its start`, file: '' });
  }
  log(`fuzz: seed ${seed}, ${failures.length} failure(s), peak RSS +${((rssPeak - rssBefore) / 1048576).toFixed(0)} MiB`);
  return { seed, failures, targets: reports, rssBefore, rssPeak };
}

function parseArgs(argv: string[]): FuzzOptions {
  const opts: FuzzOptions = { seconds: 60, log: (l) => console.log(l) };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = (): string => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${a} needs a value`);
      return x;
    };
    if (a === '--seconds') opts.seconds = Number(v());
    else if (a === '--seed') opts.seed = Number(v());
    else if (a === '--target') opts.targets = v().split(',') as TargetName[];
    else if (a === '--per-input-ms') opts.perInputMs = Number(v());
    else if (a === '--out') opts.outDir = path.resolve(v());
    else if (a === '--save-slowest') opts.saveSlowest = true;
    else throw new Error(`unknown option ${a} (use --seconds N, --seed N, --target trace,elf, --per-input-ms N, --out DIR, --save-slowest)`);
  }
  if (!(opts.seconds > 0)) throw new Error('--seconds must be a positive number');
  return opts;
}

if (require.main === module) {
  let opts: FuzzOptions;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    console.error(`fuzz: ${(err as Error).message}`);
    process.exit(2);
  }
  void runFuzz(opts).then((r) => {
    for (const f of r.failures) console.error(`fuzz: FAIL ${f.target} ${f.kind} ${f.property}: ${f.message.split('\n')[0]}${f.file ? ` (${f.file})` : ''}`);
    if (r.failures.length > 0) console.error(`fuzz: reproduce with --seed ${r.seed}`);
    process.exit(r.failures.length === 0 ? 0 : 1);
  });
}
