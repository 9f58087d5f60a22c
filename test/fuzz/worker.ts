import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import v8 from 'node:v8';
import vm from 'node:vm';
import { parentPort, workerData } from 'node:worker_threads';
import { BlockCoverage } from './coverage';
import { elfSeeds, sweep, traceSchemas, traceSeeds, type Seed } from './corpus';
import { MAX_INPUT, mutateBytes, mutateElf, mutateTrace } from './mutate';
import { Rng } from './rng';
import { PropertyViolation, elfTarget, traceTarget, type FuzzTarget } from './targets';

/** What the parent passes to a fuzz worker. */
export interface WorkerJob {
  target: 'trace' | 'elf' | 'canary-crash' | 'canary-hang';
  /** Wall-clock budget of this worker, ms. */
  budgetMs: number;
  seed: number;
  /** Int32 [iteration, running (0/1), input length]; Float64 at byte 16: start time of the input (ms). */
  state: SharedArrayBuffer;
  /** The input being run, so the parent can save it when the worker hangs or dies. */
  input: SharedArrayBuffer;
  workDir: string;
  /** Skip the deterministic sweep (a restart after a hang must not walk into the same input). */
  noSweep: boolean;
  /** Directory to write the slowest input (over 1 s) to, as `slowest-<target>.bin` (`--save-slowest`). */
  saveSlowest?: string;
}

/** A property violation found by the worker. */
export interface CrashMessage {
  type: 'crash';
  property: string;
  message: string;
  input: Uint8Array;
}

/** The worker's final numbers. */
export interface DoneMessage {
  type: 'done';
  executions: number;
  sweepDone: number;
  /** Inputs of the deterministic sweep in all (sweepDone = sweepTotal: the sweep was completed). */
  sweepTotal: number;
  seeds: number;
  missingSeeds: string[];
  corpus: number;
  corpusBytes: number;
  blocks: number;
  determinismChecks: number;
  maxInputMs: number;
  maxInputBytes: number;
  /** heapUsed after a full GC once the seeds had run, and at the end (bytes). */
  heapAfterSeeds: number;
  heapAtEnd: number;
  externalAfterSeeds: number;
  externalAtEnd: number;
  /** Highest heapUsed sampled between inputs (no GC forced). */
  heapPeak: number;
}

const MAX_CORPUS = 4000;
const MAX_CORPUS_BYTES = 48 * 1024 * 1024;

const gc = ((): (() => void) => {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
})();

function main(job: WorkerJob): void {
  const port = parentPort!;
  const st = new Int32Array(job.state, 0, 4);
  const started = new Float64Array(job.state, 16, 1);
  const shared = new Uint8Array(job.input);
  const rng = new Rng(job.seed);
  const deadline = Date.now() + job.budgetMs;

  let target: FuzzTarget;
  let seeds: Seed[];
  let missing: string[] = [];
  let mutate: (rng: Rng, input: Buffer, other?: Buffer) => Buffer;
  if (job.target === 'trace') {
    target = traceTarget(traceSchemas());
    seeds = traceSeeds();
    mutate = mutateTrace;
  } else if (job.target === 'elf') {
    target = elfTarget(job.workDir);
    ({ seeds, missing } = elfSeeds());
    mutate = mutateElf;
  } else {
    // The harness's own check: a target that fails (or hangs) on inputs containing "BOOM".
    const hang = job.target === 'canary-hang';
    target = {
      name: job.target,
      run(input) {
        if (input.includes('BOOM')) {
          if (hang) for (;;);
          throw new PropertyViolation('canary', 'input contains BOOM');
        }
        return String(input.length);
      },
    };
    seeds = [{ name: 'canary', data: Buffer.from('BOO') }];
    mutate = (r, input) => (r.chance(0.5) ? Buffer.concat([input, Buffer.from(r.pick(['M', 'X', 'BOOM']))]) : mutateBytes(r, input));
  }
  const pipeOrElf = (url: string): boolean => /[\\/]dist[\\/]src[\\/](pipe|elf)[\\/]/.test(url) || url.includes('/node_modules/elfy/');
  const coverage = new BlockCoverage(job.target.startsWith('canary') ? () => true : pipeOrElf);

  const corpus: Buffer[] = [];
  let corpusBytes = 0;
  const seen = new Set<string>();
  const reported = new Set<string>();
  let executions = 0;
  let determinismChecks = 0;
  let maxInputMs = 0;
  let maxInputBytes = 0;
  let heapPeak = 0;

  const add = (b: Buffer): void => {
    // Inputs of MiBs (enormous lines) are re-created by the mutators anyway; keeping a few is enough.
    if (b.length > MAX_CORPUS_BYTES / 16) return;
    if (corpus.length >= MAX_CORPUS || corpusBytes + b.length > MAX_CORPUS_BYTES) {
      // Full: replace a random non-seed entry (seeds stay, they are the real-world anchors).
      const i = seeds.length + rng.int(Math.max(1, corpus.length - seeds.length));
      if (i >= corpus.length || corpusBytes - corpus[i].length + b.length > MAX_CORPUS_BYTES) return;
      corpusBytes -= corpus[i].length;
      corpus[i] = b;
    } else corpus.push(b);
    corpusBytes += b.length;
  };

  /** Runs one input under the watchdog's eye; returns the number of new coverage keys. */
  const exec = (input: Buffer, checkDeterminism: boolean): number => {
    if (input.length > maxInputBytes) maxInputBytes = input.length;
    const n = Math.min(input.length, shared.length);
    shared.set(input.subarray(0, n), 0);
    st[2] = input.length;
    st[0] = executions;
    started[0] = Date.now();
    Atomics.store(st, 1, 1);
    const t0 = performance.now();
    let digest: string | undefined;
    try {
      digest = target.run(input);
    } catch (err) {
      const property = err instanceof PropertyViolation ? err.property : 'harness';
      const message = err instanceof Error ? err.message : String(err);
      const key = `${property}|${message.split('\n')[0].slice(0, 200)}`;
      if (!reported.has(key)) {
        reported.add(key);
        port.postMessage({ type: 'crash', property, message, input: new Uint8Array(input) } satisfies CrashMessage);
      }
    }
    let fresh = coverage.take();
    if (digest !== undefined && (checkDeterminism || fresh > 0)) {
      determinismChecks++;
      let again: string | undefined;
      started[0] = Date.now(); // the time limit is per run of the target
      try {
        again = target.run(input);
      } catch {
        again = 'threw';
      }
      coverage.take();
      if (again !== digest) {
        port.postMessage({ type: 'crash', property: 'deterministic', message: `two runs of the same input gave different results (${digest} vs ${again})`, input: new Uint8Array(input) } satisfies CrashMessage);
        fresh = 0;
      }
    }
    Atomics.store(st, 1, 0);
    const ms = performance.now() - t0;
    if (ms > maxInputMs) {
      maxInputMs = ms;
      // The slowest input is where the time limit would be hit first: worth profiling.
      if (ms > 1000 && job.saveSlowest) fs.writeFileSync(path.join(job.saveSlowest, `slowest-${job.target}.bin`), input);
    }
    executions++;
    if ((executions & 63) === 0) {
      const used = process.memoryUsage().heapUsed;
      if (used > heapPeak) heapPeak = used;
    }
    return fresh;
  };

  coverage.reset();
  for (const s of seeds) {
    const data = s.data.length > MAX_INPUT ? s.data.subarray(0, MAX_INPUT) : s.data;
    exec(data, true);
    corpus.push(data);
    corpusBytes += data.length;
  }
  gc();
  const afterSeeds = process.memoryUsage();

  const sweepSeeds = job.target.startsWith('canary') ? [] : seeds;
  const sweepKind = job.target === 'elf' ? 'elf' : 'trace';
  let sweepTotal = 0;
  if (!job.noSweep) for (const _ of sweep(sweepKind, sweepSeeds)) sweepTotal++;
  const queue = job.noSweep ? [][Symbol.iterator]() : sweep(sweepKind, sweepSeeds);
  let sweepDone = 0;
  let sweepLeft = true;
  while (Date.now() < deadline) {
    if (sweepLeft && rng.chance(0.5)) {
      const next = queue.next();
      if (next.done) sweepLeft = false;
      else {
        sweepDone++;
        const fresh = exec(next.value, false);
        if (fresh > 0) add(Buffer.from(next.value));
        continue;
      }
    }
    // Small and recent entries first: they run faster and are where new coverage came from.
    const base = rng.chance(0.5) && corpus.length > seeds.length ? corpus[seeds.length + rng.int(corpus.length - seeds.length)] : rng.pick(corpus);
    let input = base;
    const stack = rng.small(4);
    for (let i = 0; i < stack; i++) input = mutate(rng, input, rng.pick(corpus));
    const key = createHash('sha1').update(input).digest('base64');
    if (seen.has(key)) continue;
    if (seen.size > 200000) seen.clear();
    seen.add(key);
    const fresh = exec(input, rng.chance(1 / 16));
    if (fresh > 0) add(input);
  }
  coverage.close();
  gc();
  const end = process.memoryUsage();
  port.postMessage({
    type: 'done',
    executions,
    sweepDone,
    sweepTotal,
    seeds: seeds.length,
    missingSeeds: missing,
    corpus: corpus.length,
    corpusBytes,
    blocks: coverage.size,
    determinismChecks,
    maxInputMs,
    maxInputBytes,
    heapAfterSeeds: afterSeeds.heapUsed,
    heapAtEnd: end.heapUsed,
    externalAfterSeeds: afterSeeds.external,
    externalAtEnd: end.external,
    heapPeak,
  } satisfies DoneMessage);
}

main(workerData as WorkerJob);
