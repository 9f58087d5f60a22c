import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LossMonitor, type LossCounters } from '../../../src/agent/loss';

function monitor(counters: { c: LossCounters }, clock: { t: number }) {
  const warnings: string[] = [];
  const m = new LossMonitor({ read: () => counters.c, warn: (w) => warnings.push(w), bufferSizeKb: 4096, minWarnIntervalMs: 10_000, now: () => clock.t });
  return { m, warnings };
}

test('no loss, no line; a burst of ring overrun is one line with the counts and the advice', () => {
  const counters = { c: { ring: { overrun: 5, commitOverrun: 0, droppedEvents: 0 }, pipeLost: 0 } as LossCounters };
  const clock = { t: 1_000 };
  const { m, warnings } = monitor(counters, clock);
  m.start(); // loss before start (another run of the instance) is the baseline, not reported
  m.check();
  assert.deepEqual(warnings, []);
  counters.c = { ring: { overrun: 1205, commitOverrun: 0, droppedEvents: 0 }, pipeLost: 1100 };
  clock.t = 2_000;
  m.check();
  assert.equal(warnings.length, 1);
  assert.match(warnings[0]!, /^kernel ring buffer overran: 1200 events lost in the last 1 s \(ring overrun 1200, commit_overrun 0, dropped 0; trace_pipe lost 1100; totals: ring overrun 1205, trace_pipe lost 1100\)/);
  assert.match(warnings[0]!, /Raise tracefs\.bufferSizeKb \(now 4096 KiB per CPU\)/);
  m.stop();
  assert.equal(warnings.length, 1, 'nothing new at stop');
});

test('losses within the rate limit are summed into the next line; stop reports what is pending', () => {
  const counters = { c: { ring: { overrun: 0, commitOverrun: 0, droppedEvents: 0 }, pipeLost: 0 } as LossCounters };
  const clock = { t: 0 };
  const { m, warnings } = monitor(counters, clock);
  m.start();
  counters.c = { ring: { overrun: 10, commitOverrun: 0, droppedEvents: 0 }, pipeLost: 0 };
  clock.t = 1000;
  m.check();
  counters.c = { ring: { overrun: 30, commitOverrun: 2, droppedEvents: 0 }, pipeLost: 0 };
  clock.t = 2000;
  m.check();
  counters.c = { ring: { overrun: 50, commitOverrun: 2, droppedEvents: 0 }, pipeLost: 0 };
  clock.t = 5000;
  m.check();
  assert.equal(warnings.length, 1, 'rate limited');
  assert.match(warnings[0]!, /10 events lost/);
  m.stop();
  assert.equal(warnings.length, 2);
  assert.match(warnings[1]!, /42 events lost in the last 3 s \(ring overrun 40, commit_overrun 2/);
});

test('an unreadable instance (being removed) is no loss and no reset', () => {
  const counters = { c: { ring: { overrun: 7, commitOverrun: 0, droppedEvents: 0 }, pipeLost: 0 } as LossCounters };
  const clock = { t: 0 };
  const { m, warnings } = monitor(counters, clock);
  m.start();
  counters.c = { pipeLost: 0 };
  m.check();
  counters.c = { ring: { overrun: 7, commitOverrun: 0, droppedEvents: 0 }, pipeLost: 0 };
  m.check();
  assert.deepEqual(warnings, []);
});
