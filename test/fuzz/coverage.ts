import { Session } from 'node:inspector';

/**
 * Block coverage of the code under test through V8's precise coverage (the inspector's Profiler
 * domain, in this thread's own isolate: no native dependency). After each input, take() returns the
 * block keys it reached, each with an AFL-style hit-count bucket (1, 2, 3, 4–7, 8–15, 16–31, 32–127,
 * 128+), so an input that runs a loop a new number of times also counts as new. takePreciseCoverage
 * resets the counters, so each take() sees exactly one input.
 */
export class BlockCoverage {
  private readonly session = new Session();
  private readonly seen = new Set<string>();

  /** @param include which scripts count (by URL), e.g. the compiled src/pipe and src/elf modules */
  constructor(private readonly include: (url: string) => boolean) {
    this.session.connect();
    this.post('Profiler.enable', {});
    this.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  }

  /** Distinct (block, bucket) keys seen so far. */
  get size(): number {
    return this.seen.size;
  }

  /** Counts reached since the last call; returns how many keys were new (and remembers them). */
  take(): number {
    const res = this.post('Profiler.takePreciseCoverage', {}) as {
      result: Array<{ url: string; scriptId: string; functions: Array<{ ranges: Array<{ startOffset: number; endOffset: number; count: number }> }> }>;
    };
    let fresh = 0;
    for (const script of res.result) {
      if (!this.include(script.url)) continue;
      for (const fn of script.functions) {
        for (const r of fn.ranges) {
          if (r.count === 0) continue;
          const key = `${script.scriptId}:${r.startOffset}:${r.endOffset}:${bucket(r.count)}`;
          if (!this.seen.has(key)) {
            this.seen.add(key);
            fresh++;
          }
        }
      }
    }
    return fresh;
  }

  /** Drops the counts of whatever ran since the last take() (e.g. the harness's own set-up). */
  reset(): void {
    this.post('Profiler.takePreciseCoverage', {});
  }

  close(): void {
    this.session.disconnect();
  }

  /** The in-thread session answers synchronously; this asserts it rather than assume it. */
  private post(method: string, params: object): unknown {
    let out: unknown;
    let error: Error | null = null;
    let done = false;
    this.session.post(method, params, (err, res) => {
      error = err;
      out = res;
      done = true;
    });
    if (!done) throw new Error(`inspector ${method} did not answer synchronously`);
    if (error) throw error;
    return out;
  }
}

function bucket(n: number): number {
  if (n <= 3) return n;
  if (n < 8) return 4;
  if (n < 16) return 8;
  if (n < 32) return 16;
  if (n < 128) return 32;
  return 128;
}
