/**
 * The whole recall corpus (every scenario of issue 3, 100 short-lived runs instead of 500 to keep
 * `npm test` short; `npm run recall` runs all 500) against soload with each capture mechanism:
 * - the loader-list probe (`_dl_add_to_namespace_list`, offset from the libc6-dbg debug file), and
 * - the calibrated search-list probes soload falls back to when ld.so has no debug symbols
 *   (forced here by pointing debugRoot at an empty directory).
 * Both must meet the bars (issue 7: file.path equal to /proc/<pid>/maps by exact string; clean
 * paths; deleted/memfd flags). Informational scenarios (bind-mount-oneshot) are not in the totals.
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runRecall, type RecallReport } from '../recall/harness';
import { requireLiveKernel } from '../helpers/soload';

before(() => requireLiveKernel());

function assertBars(r: RecallReport, label: string) {
  assert.deepEqual(r.harnessErrors, [], `${label}: harness errors`);
  const t = r.totals;
  // Percentages (null when a denominator is 0, which fails the comparisons below).
  const detail = r.scenarios
    .map((s) => `${s.name}${s.informational ? ' (informational)' : ''}: recall ${s.totals.recall} precision ${s.totals.precision} method ${s.totals.methodAccuracy} flags ${s.totals.flagAccuracy} hygiene ${s.totals.pathHygiene}`)
    .join('\n');
  assert.ok((t.recall ?? 0) >= 99.5, `${label}: recall ${t.recall}\n${detail}`);
  assert.equal(t.precision, 100, `${label}: precision ${t.precision}\n${detail}`);
  assert.ok((t.methodAccuracy ?? 0) >= 99, `${label}: method accuracy ${t.methodAccuracy}\n${detail}`);
  assert.equal(t.flagAccuracy, 100, `${label}: flag accuracy ${t.flagAccuracy}\n${detail}`);
  assert.equal(t.pathHygiene, 100, `${label}: path hygiene ${t.pathHygiene} (${t.badPath} unclean file.path)\n${detail}`);
}

test('recall corpus, loader-list probe (debug symbols): exact-path recall ≥ 99.5 %, precision 100 %, method ≥ 99 %, flags and path hygiene 100 %', async (t) => {
  const r = await runRecall({ repeat: 2, shortLivedRuns: 100, log: (m) => t.diagnostic(m) });
  t.diagnostic(`totals: ${JSON.stringify(r.totals)}`);
  assertBars(r, 'loader-list');
});

test('recall corpus, calibrated search-list probes (no debug symbols): same bars', async (t) => {
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'soload-nodebug-'));
  const r = await runRecall({ repeat: 2, shortLivedRuns: 100, soloadConfig: { debugRoot: empty }, log: (m) => t.diagnostic(m) });
  t.diagnostic(`totals: ${JSON.stringify(r.totals)}`);
  assert.ok(r.soloadStderrTail.some((l) => /using search-list probes/.test(l)), `soload did not use the search-list mechanism:\n${r.soloadStderrTail.join('\n')}`);
  assertBars(r, 'search-list');
});
