import type { HrTime } from '@opentelemetry/api';

/**
 * Converts trace-clock timestamps to wall-clock time.
 *
 * soload's instance uses the "mono" trace clock, which is CLOCK_MONOTONIC — the same clock libuv's
 * hrtime reads — so wall = mono + (realtime − monotonic), with the offset sampled here. The offset
 * drifts only when NTP steps the realtime clock, so it is re-sampled periodically (`resample`).
 * "boot" would include suspend time, which CLOCK_MONOTONIC does not, and the per-CPU "local" clock
 * is not comparable across CPUs at all.
 */
export class TraceClock {
  private offsetNs = 0n;

  constructor() {
    this.resample();
  }

  /** Re-measures realtime − monotonic, taking the tightest of a few samples. */
  resample(): void {
    let best: bigint | undefined;
    let bestSpan = Infinity;
    for (let i = 0; i < 5; i++) {
      const a = process.hrtime.bigint();
      const wallMs = performance.timeOrigin + performance.now();
      const b = process.hrtime.bigint();
      const span = Number(b - a);
      if (span < bestSpan) {
        bestSpan = span;
        best = BigInt(Math.round(wallMs * 1e6)) - (a + (b - a) / 2n);
      }
    }
    this.offsetNs = best!;
  }

  /** Wall-clock nanoseconds since the epoch for a mono trace timestamp. */
  toWallNs(traceNs: bigint): bigint {
    return traceNs + this.offsetNs;
  }

  /** Current monotonic time in ns (the trace clock's "now"). */
  nowTraceNs(): bigint {
    return process.hrtime.bigint();
  }
}

/** ns since epoch → OTel HrTime. */
export function nsToHrTime(ns: bigint): HrTime {
  return [Number(ns / 1_000_000_000n), Number(ns % 1_000_000_000n)];
}
