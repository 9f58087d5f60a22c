import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import type { Measurement } from '../../../bench/workloads';
import { checkOf, costCell, costOf, lastErrorLogMessage, mechanismOf, renderStoredResults, tableRows, type KernelResult } from '../../kernels/table';

const REPO = path.resolve(__dirname, '..', '..', '..', '..');
const RESULTS = path.join(REPO, 'test', 'kernels', 'results');

function stored(): KernelResult[] {
  return fs
    .readdirSync(RESULTS)
    .filter((f) => f.endsWith('.json') && !f.startsWith('_'))
    .map((f) => JSON.parse(fs.readFileSync(path.join(RESULTS, f), 'utf8')) as KernelResult);
}

test('KERNELS.md is what the stored kernel results render to (regenerate with npm run test:kernels)', () => {
  assert.equal(fs.readFileSync(path.join(REPO, 'KERNELS.md'), 'utf8'), renderStoredResults(RESULTS));
});

test('the table agrees with each kernel\'s stored `soload check --json`: capability rows and mechanism', () => {
  const results = stored();
  assert.ok(results.length >= 4, 'three Debian kernels and the host');
  const rows = tableRows(results);
  const rowOf = (label: string): string[] => rows.find((r) => r.label === label)!.cells;
  results.forEach((r, i) => {
    const report = checkOf(r)!.report!;
    assert.equal(rowOf('check: ustring')[i], report.tracefs.ustring ? 'yes' : 'no');
    assert.equal(rowOf('check: return probes')[i], report.tracefs.returnProbes ? 'yes' : 'no');
    assert.equal(rowOf('`soload check` exit code')[i], String(checkOf(r)!.exitCode));
    assert.equal(rowOf('capture mechanism for the host ld.so')[i], mechanismOf(report));
  });
});

test('lastErrorLogMessage: the message of the last error_log entry', () => {
  const log = '[38788.99] trace_uprobe: error: Unknown type is specified\n  Command: p:g/e PROG:0x1 x=%di:bogus\n    ^';
  assert.equal(lastErrorLogMessage(log), 'Unknown type is specified');
});

test('tableRows: a kernel without results gets dashes, not a crash', () => {
  const empty: KernelResult = { name: 'bullseye', distro: 'Debian 11', suite: 'bullseye', release: '5.10', bootMs: 1000, timedOut: true, results: {} };
  const rows = tableRows([empty]);
  assert.equal(rows.find((r) => r.label === 'recall (host-glibc rows)')!.cells[0], '—');
  assert.match(rows.find((r) => r.label === 'guest boot → power-off')!.cells[0]!, /TIMED OUT/);
});

test('cost rows: every stored kernel has the three workloads measured, and the cell is the stored ratio', () => {
  for (const r of stored()) {
    const c = costOf(r);
    if (!c) assert.fail(`${r.name}: no cost result stored`);
    for (const w of ['spawn', 'dlopen', 'needed40']) {
      const so: Measurement = c.measurements.find((m) => m.workload === w && m.condition !== 'baseline')!;
      const base: Measurement = c.measurements.find((m) => m.workload === w && m.condition === 'baseline')!;
      assert.equal(so.samplesMs.length, c.rounds);
      assert.ok(Math.abs(so.ratio - so.medianMs / base.medianMs) < 1e-9);
      assert.match(costCell(r, w), new RegExp(`^${so.ratio.toFixed(2).replace('.', '\\.')}× \\(\\d+ → \\d+ µs per op\\)$`));
    }
  }
  const bare: KernelResult = { name: 'x', distro: 'x', suite: 'x', release: 'x', bootMs: 0, timedOut: false, results: {} };
  assert.equal(costCell(bare, 'spawn'), 'not measured');
  assert.equal(costCell({ ...bare, results: { 'cost-error': { error: 'Error: soload exited 1\n  at …' } } }, 'spawn'), 'Error: soload exited 1');
});
