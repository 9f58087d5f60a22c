/**
 * KERNELS.md from the kernel matrix's stored results (test/kernels/results/*.json), pure: every
 * cell is read from what the kernel answered — `soload check --json` for the capability rows, the
 * probe writes of features.ts for the syntax rows, the recall harness's JSON for the recall rows —
 * so the table and `soload check` cannot disagree (a unit test regenerates KERNELS.md from the
 * stored results and compares).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { CheckReport } from '../../src/cli/check';
import { BASELINE } from '../../bench/workloads';
import { COST_WORKLOADS, SOLOAD_CONDITION, type CostResult } from './cost';
import { FEATURE_PROBES, type FeatureReport } from './features';

/** The Debian kernels of the matrix (the suite's linux-image-cloud-amd64). */
export const KERNEL_SUITES: Record<string, { distro: string; suite: string }> = {
  bullseye: { distro: 'Debian 11', suite: 'bullseye' },
  bookworm: { distro: 'Debian 12', suite: 'bookworm' },
  trixie: { distro: 'Debian 13', suite: 'trixie' },
};

/** One kernel's row of results, as the runner stores it. */
export interface KernelResult {
  name: string;
  distro: string;
  suite: string;
  release: string;
  /** Boot to power-off (guests), or the host program's run time. */
  bootMs: number;
  timedOut: boolean;
  /** Result name → JSON (see guest.ts). */
  results: Record<string, unknown>;
  consoleTail?: string;
}

/** How long the matrix took and what ran, for the closing note. */
export interface MatrixMeta {
  matrixMs: number;
  qemu: string;
}

interface CheckResult {
  exitCode: number | null;
  report?: CheckReport;
}
interface RecallTotals {
  recall: number | null;
  precision: number | null;
  methodAccuracy: number | null;
  truth: number;
  matched: number;
  runs: number;
}
interface RecallResult {
  exitCode: number | null;
  report?: { totals?: RecallTotals; scenarios?: Array<{ name: string; informational?: boolean; totals: RecallTotals }> };
}

const pct = (v: number | null | undefined): string => (typeof v === 'number' ? `${v.toFixed(2)} %` : '—');
const yn = (v: boolean | undefined): string => (v === undefined ? '—' : v ? 'yes' : 'no');
const cell = (s: string): string => s.replace(/\|/g, '\\|').replace(/\n/g, ' ');

export function checkOf(r: KernelResult, which: 'check' | 'check-debugfs' = 'check'): CheckResult | undefined {
  return r.results[which] as CheckResult | undefined;
}
export function recallOf(r: KernelResult): RecallResult | undefined {
  return r.results.recall as RecallResult | undefined;
}
export function featuresOf(r: KernelResult): FeatureReport | undefined {
  return r.results.features as FeatureReport | undefined;
}
export function costOf(r: KernelResult): CostResult | undefined {
  return r.results.cost as CostResult | undefined;
}

/** One workload's cost cell: the ratio and the per-operation times behind it. */
export function costCell(r: KernelResult, workload: string): string {
  const c = costOf(r);
  if (!c) return (r.results['cost-error'] as { error?: string } | undefined)?.error?.split('\n')[0] ?? 'not measured';
  const base = c.measurements.find((m) => m.workload === workload && m.condition === BASELINE);
  const so = c.measurements.find((m) => m.workload === workload && m.condition === SOLOAD_CONDITION);
  if (!base || !so) return '—';
  return `${so.ratio.toFixed(2)}× (${base.medianUsPerOp.toFixed(0)} → ${so.medianUsPerOp.toFixed(0)} µs per op)`;
}

/** The capture mechanism `check` reports for the host's ld.so (its name, without the reasoning). */
export function mechanismOf(report: CheckReport | undefined, kind: 'ld.so' | 'libc' = 'ld.so'): string {
  const l = report?.loaders.find((x) => x.kind === kind && !x.root);
  if (!l) return '—';
  return /^(\S+)/.exec(l.mechanism)?.[1] ?? l.mechanism;
}

/** One line about a kernel's result (the runner's log). */
export function summarize(r: KernelResult): string {
  const c = checkOf(r);
  const rec = recallOf(r)?.report?.totals;
  const f = featuresOf(r);
  const refused = f?.probes.filter((p) => !p.accepted).map((p) => p.id) ?? [];
  return `${r.name} ${r.release}: check exit ${c?.exitCode ?? '?'}, recall ${pct(rec?.recall)} precision ${pct(rec?.precision)} method ${pct(rec?.methodAccuracy)}, refused probe syntaxes: ${refused.join(' ') || 'none'}, cost ${COST_WORKLOADS.map((w) => `${w} ${costCell(r, w).split(' ')[0]}`).join(' ')}`;
}

/** The rows of the table: label and the cell of each kernel. */
export function tableRows(results: KernelResult[]): Array<{ label: string; cells: string[] }> {
  const rows: Array<{ label: string; cells: string[] }> = [];
  const row = (label: string, f: (r: KernelResult) => string): void => void rows.push({ label, cells: results.map((r) => cell(f(r))) });
  row('distribution', (r) => r.distro);
  row('kernel release', (r) => r.release);
  row('`soload check` exit code', (r) => String(checkOf(r)?.exitCode ?? '—'));
  row('`soload check` problems', (r) => checkOf(r)?.report?.problems.join('; ') || 'none');
  row('tracefs found with only debugfs mounted', (r) => (checkOf(r, 'check-debugfs') ? checkOf(r, 'check-debugfs')?.report?.tracefs.path ?? 'NOT FOUND' : 'not tested (host)'));
  row('check with only debugfs: exit code', (r) => String(checkOf(r, 'check-debugfs')?.exitCode ?? '—'));
  const caps: Array<[string, keyof CheckReport['tracefs']]> = [
    ['check: uprobe_events', 'uprobes'],
    ['check: kprobe_events', 'kprobes'],
    ['check: instances', 'instances'],
    ['check: return probes', 'returnProbes'],
    ['check: ustring', 'ustring'],
    ['check: @+offset fetch', 'fileOffsetFetch'],
    ['check: $comm', 'comm'],
    ['check: record-tgid', 'recordTgid'],
    ['check: sched tracepoints', 'schedTracepoints'],
  ];
  for (const [label, key] of caps) row(label, (r) => yn(checkOf(r)?.report?.tracefs[key] as boolean | undefined));
  row('check: trace clocks', (r) => checkOf(r)?.report?.tracefs.traceClocks.join(' ') ?? '—');
  row('error_log file', (r) => yn(featuresOf(r)?.errorLog));
  for (const fp of FEATURE_PROBES) {
    row(`probe \`${fp.what}\``, (r) => {
      const p = featuresOf(r)?.probes.find((x) => x.id === fp.id);
      if (!p) return '—';
      if (p.accepted) return 'accepted';
      return `refused (${p.error}${p.errorLog ? `: ${lastErrorLogMessage(p.errorLog)}` : ''})`;
    });
  }
  row('`@+` fetch of a .data variable (expect 0x1122334455667788)', (r) => {
    const d = featuresOf(r)?.dataFetch;
    if (!d) return '—';
    return d.plain ? `v=${d.plain.v} s=${d.plain.s}` : d.error ?? 'no event';
  });
  row('`@+` fetch of the probed function\'s own bytes (text segment)', (r) => {
    const d = featuresOf(r)?.dataFetch;
    if (!d?.plain?.t || !d.textExpected) return '—';
    if (d.plain.t === d.textExpected) return `right (${d.plain.t})`;
    // the probe's own int3 (0xcc) replaces the first instruction byte in memory
    const withInt3 = `${d.textExpected.slice(0, -2)}cc`;
    return d.plain.t === withInt3 ? `right (${d.plain.t}: the file's bytes with the uprobe's int3 0xcc first)` : `WRONG (${d.plain.t}; the file has ${d.textExpected})`;
  });
  row('check: `@+` self-test (soload\'s own live test)', (r) => {
    const t = checkOf(r)?.report?.selfTests?.fileOffsetFetch;
    if (!t) return 'not run';
    return t.works ? `works (read ${t.read})` : `WRONG BYTES (read ${t.read}, file has ${t.expected})`;
  });
  row('`sched_process_exit` fields', (r) => featuresOf(r)?.schedProcessExitFields?.join(' ') ?? '—');
  row('capture mechanism for the host ld.so', (r) => mechanismOf(checkOf(r)?.report));
  row('capture mechanism for libc.so.6', (r) => mechanismOf(checkOf(r)?.report, 'libc'));
  row('probes planned', (r) => String(checkOf(r)?.report?.probes.planned ?? '—'));
  row('(fault) demo: untouched page', (r) => faultStep(r, 1));
  row('(fault) demo: same page after touching it', (r) => faultStep(r, 2));
  row('(fault) demo: stack string', (r) => faultStep(r, 3));
  row('(fault) demo: the page after munmap', (r) => faultStep(r, 4));
  row('(fault) demo: a resident PROT_NONE page', (r) => faultStep(r, 5));
  row('probe deleted with events still buffered', (r) => {
    const u = featuresOf(r)?.unknownType;
    if (!u) return '—';
    if (!u.deleted) return `delete refused (${u.deleteError ?? u.error ?? '?'})`;
    const unknown = u.afterDelete.filter((l) => /unknown type/i.test(l));
    return unknown.length ? `${u.beforeDelete.length} buffered lines → ${unknown.length} × "${unknown[0]!.trim()}"` : `${u.beforeDelete.length} buffered lines → ${u.afterDelete.length} after delete (buffer ${u.afterDelete.length ? 'kept' : 'cleared'})`;
  });
  row('recall (host-glibc rows)', (r) => pct(recallOf(r)?.report?.totals?.recall));
  row('precision', (r) => pct(recallOf(r)?.report?.totals?.precision));
  row('method accuracy', (r) => pct(recallOf(r)?.report?.totals?.methodAccuracy));
  row('objects matched / truth (runs)', (r) => {
    const t = recallOf(r)?.report?.totals;
    return t ? `${t.matched} / ${t.truth} (${t.runs} runs)` : '—';
  });
  row('scenarios below 100 % recall', (r) => {
    const s = recallOf(r)?.report?.scenarios?.filter((x) => !x.informational && (x.totals.recall ?? 100) < 100);
    return s ? s.map((x) => `${x.name} ${pct(x.totals.recall)}`).join(', ') || 'none' : '—';
  });
  for (const w of COST_WORKLOADS) {
    const n = results.map(costOf).find((c) => c)?.workloads.find((x) => x.name === w)?.iterations;
    row(`cost to traced processes: ${w}${n ? ` (${n}×)` : ''}, soload ÷ nothing`, (r) => costCell(r, w));
  }
  row('cost: soload\'s mechanisms while measured', (r) => costOf(r)?.mechanisms.replace(/\/usr\/lib\/x86_64-linux-/g, '') || '—');
  row('cost: soload start to ready (median)', (r) => {
    const c = costOf(r);
    if (!c?.startMs.length) return '—';
    const s = [...c.startMs].sort((a, b) => a - b);
    return `${(s[s.length >> 1]! / 1000).toFixed(1)} s`;
  });
  row('guest boot → power-off', (r) => `${(r.bootMs / 1000).toFixed(0)} s${r.timedOut ? ' (TIMED OUT)' : ''}`);
  return rows;
}

function faultStep(r: KernelResult, step: number): string {
  const f = featuresOf(r)?.fault;
  if (!f) return '—';
  if (f.error && !f.steps.length) return f.error;
  const s = f.steps.find((x) => x.step === step);
  return s ? `\`${s.value}\` (${f.fetchType})` : 'no event';
}

/** The message of an error_log entry ("... trace_uprobe: error: Unknown type ...", then the command). */
export function lastErrorLogMessage(log: string): string {
  const lines = log.split('\n').filter((l) => /error:/.test(l));
  const last = lines[lines.length - 1] ?? log.split('\n')[0] ?? '';
  return last.replace(/^.*?error:\s*/, '').trim();
}

/** Kernel order: the Debian kernels oldest first, the host last. */
export function orderResults(results: KernelResult[]): KernelResult[] {
  const order = [...Object.keys(KERNEL_SUITES), 'host'];
  return [...results].sort((a, b) => order.indexOf(a.name) - order.indexOf(b.name));
}

/** KERNELS.md (pure). */
export function renderKernelsMd(input: KernelResult[], meta: MatrixMeta): string {
  const results = orderResults(input);
  const rows = tableRows(results);
  const head = `| | ${results.map((r) => `${r.name === 'host' ? 'host' : r.distro} \`${r.release}\``).join(' | ')} |`;
  const sep = `|---|${results.map(() => '---').join('|')}|`;
  const body = rows.map((r) => `| ${r.label} | ${r.cells.join(' | ')} |`);
  const guests = results.filter((r) => r.name !== 'host');
  const guestMin = guests.reduce((n, r) => n + r.bootMs, 0) / 60000;
  return [
    '# soload on real kernels',
    '',
    'Generated by `npm run test:kernels` (test/kernels/run.ts) from the stored results in',
    '`test/kernels/results/*.json`; do not edit by hand. Each Debian cloud kernel',
    '(`linux-image-*-cloud-amd64-unsigned`, fetched with `apt-get download`) is booted under QEMU',
    '(TCG) with the host\'s Debian 12 userspace (glibc 2.36) and the built checkout in an initramfs;',
    'the host row is the same program on the host\'s own kernel. Capability rows are `soload check',
    '--json` as run in that kernel; probe rows are what the kernel answered to each probe line',
    '(test/kernels/features.ts); recall rows are the recall harness (host-glibc corpus, compiled on',
    'the host, run in the guest with `--prebuilt`).',
    '',
    head,
    sep,
    ...body,
    '',
    '## Notes',
    '',
    `- The full matrix (${guests.length} guests and the host row) took ${(meta.matrixMs / 60000).toFixed(1)} min on this machine (2 cores), ` +
      `${guestMin.toFixed(1)} min of it inside guests; ${meta.qemu}, \`-accel tcg -cpu max -smp 2 -m 4096\`.`,
    '- CI (`.ci/run`) runs `npm run test:kernels -- --quick`: the Debian 12 kernel only, with a six-scenario',
    '  recall subset, without rewriting this file.',
    '- Guests run fewer repetitions than the host recall (`--repeat 2 --short-lived-runs 100`): TCG',
    '  emulation is 10-30x slower than the host.',
    '- Cost rows: `npm run bench -- --quick`\'s C workloads (spawn, dlopen, needed40; compiled on the host,',
    '  guests have no gcc) timed by their own loop, median of 3 interleaved rounds with soload running',
    '  (the mechanism it picked on that kernel, export off) ÷ the same with nothing installed, in the same',
    '  guest (test/kernels/cost.ts). The bench\'s comparison tracers (bpftrace, the seed\'s bare tracefs',
    '  set) are not run in guests. Under TCG everything is emulated, the uprobe trap included: a guest',
    '  ratio says how much the probes add to the emulated work, so compare kernels with each other; the',
    '  host row is the same step run natively.',
    '- The `@+` file-offset fetch is accepted by every kernel here and listed in every README, but on',
    '  5.10 and 6.1 it does not read the probed file (0, `(fault)` or unrelated bytes), even at the probed',
    '  function\'s own bytes; it works on 6.12 and 6.18. soload\'s loader-lists and search-lists mechanisms reach ld.so\'s state through',
    '  a `@+` read of libc\'s GOT: before soload tested the fetch itself they reported only the',
    '  executables on 6.1 (recall 32.94 % on the CI subset). Now `soload check`/`run`/`probes` run a',
    '  live self-test first (src/tracefs/fetch-selftest.ts: a probe on `true`\'s entry point reading its',
    '  own bytes) and the planner rejects those mechanisms where it fails, so these kernels get',
    '  loader-probe (one probe per object at `_dl_add_to_namespace_list`, no `@+`).',
    '',
  ].join('\n');
}

/** The file in the results directory holding the matrix's MatrixMeta. */
export const MATRIX_META = '_matrix.json';

/** KERNELS.md from a results directory (every <kernel>.json and _matrix.json). */
export function renderStoredResults(dir: string): string {
  const files = fs.readdirSync(dir).filter((f) => f.endsWith('.json') && f !== MATRIX_META);
  const results = files.map((f) => JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8')) as KernelResult);
  const meta = JSON.parse(fs.readFileSync(path.join(dir, MATRIX_META), 'utf8')) as MatrixMeta;
  return renderKernelsMd(results, meta);
}
