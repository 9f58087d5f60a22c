import type { RingBufferStats } from '../tracefs/ring-stats';

/** Loss counters as read at one moment (totals since soload's instance was created). */
export interface LossCounters {
  ring?: RingBufferStats;
  /** Events trace_pipe reported lost ("LOST n EVENTS" markers). */
  pipeLost: number;
}

/** Options of {@link LossMonitor}. */
export interface LossMonitorOptions {
  read: () => LossCounters;
  warn: (message: string) => void;
  /** Per-CPU buffer size in KiB, named in the advice. */
  bufferSizeKb: number;
  /** How often the counters are read, in ms. */
  checkIntervalMs?: number;
  /** At most one warning per this many ms; losses in between are summed into the next one. */
  minWarnIntervalMs?: number;
  now?: () => number;
}

/**
 * Turns the kernel's loss counters into a log line the moment loss happens: the per-CPU ring
 * counters (overrun in overwrite mode, dropped events otherwise, commit overrun) of soload's own
 * instance, and trace_pipe's LOST markers. The counters themselves are soload's metrics
 * (soload.ring.*, soload.trace.pipe_lost_events); this says, once per burst, that records are
 * missing and what to change. The two sources describe overlapping events, so the line reports
 * each rather than a sum that would count some events twice; "lost" is the larger of the ring's
 * total and trace_pipe's.
 */
export class LossMonitor {
  private readonly opts: Required<Omit<LossMonitorOptions, 'now'>> & { now: () => number };
  private last: { overrun: number; commitOverrun: number; dropped: number; pipe: number } = { overrun: 0, commitOverrun: 0, dropped: 0, pipe: 0 };
  private pending = { overrun: 0, commitOverrun: 0, dropped: 0, pipe: 0, since: 0 };
  private lastWarnAt = -Infinity;
  private timer: NodeJS.Timeout | undefined;
  /** Warnings issued. */
  warnings = 0;

  constructor(opts: LossMonitorOptions) {
    this.opts = { checkIntervalMs: 1000, minWarnIntervalMs: 10_000, now: Date.now, ...opts };
  }

  /** Takes the current counters as the baseline and starts checking. */
  start(): void {
    this.last = this.snapshot();
    this.timer = setInterval(() => this.check(), this.opts.checkIntervalMs);
    this.timer.unref();
  }

  /** Stops checking; a loss not yet reported is reported now (the last counters were read by the caller). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.check(true);
  }

  /** Reads the counters; warns when they grew and the last warning is old enough (or `force`). */
  check(force = false): void {
    const now = this.snapshot();
    const d = {
      overrun: Math.max(0, now.overrun - this.last.overrun),
      commitOverrun: Math.max(0, now.commitOverrun - this.last.commitOverrun),
      dropped: Math.max(0, now.dropped - this.last.dropped),
      pipe: Math.max(0, now.pipe - this.last.pipe),
    };
    this.last = now;
    if (d.overrun + d.commitOverrun + d.dropped + d.pipe > 0) {
      if (this.pending.overrun + this.pending.commitOverrun + this.pending.dropped + this.pending.pipe === 0) this.pending.since = this.opts.now();
      this.pending.overrun += d.overrun;
      this.pending.commitOverrun += d.commitOverrun;
      this.pending.dropped += d.dropped;
      this.pending.pipe += d.pipe;
    }
    const p = this.pending;
    const ring = p.overrun + p.commitOverrun + p.dropped;
    if (ring + p.pipe === 0) return;
    const t = this.opts.now();
    if (!force && t - this.lastWarnAt < this.opts.minWarnIntervalMs) return;
    const secs = Math.max(1, Math.round((t - p.since) / 1000));
    this.opts.warn(
      `kernel ring buffer overran: ${Math.max(ring, p.pipe)} events lost in the last ${secs} s ` +
        `(ring overrun ${p.overrun}, commit_overrun ${p.commitOverrun}, dropped ${p.dropped}; trace_pipe lost ${p.pipe}; ` +
        `totals: ring overrun ${now.overrun}, trace_pipe lost ${now.pipe}): loads in that window are missing from the records. ` +
        `Raise tracefs.bufferSizeKb (now ${this.opts.bufferSizeKb} KiB per CPU) or give soload more CPU`,
    );
    this.warnings++;
    this.lastWarnAt = t;
    this.pending = { overrun: 0, commitOverrun: 0, dropped: 0, pipe: 0, since: 0 };
  }

  private snapshot(): { overrun: number; commitOverrun: number; dropped: number; pipe: number } {
    const c = this.opts.read();
    // An unreadable instance (being removed at shutdown) keeps the last values: no false loss.
    if (!c.ring) return { ...this.last, pipe: c.pipeLost };
    return { overrun: c.ring.overrun, commitOverrun: c.ring.commitOverrun, dropped: c.ring.droppedEvents, pipe: c.pipeLost };
  }
}
