/**
 * Recall arithmetic for the corpus in test/recall: pure functions (no fs, no processes), unit-tested
 * in test/unit/recall. Objects are compared by an identity key (the harness uses "dev:inode" from
 * stat(), falling back to the realpath) so "/lib/x86_64-linux-gnu/libc.so.6" as the loader resolved
 * it and "/usr/lib/x86_64-linux-gnu/libc.so.6" as /proc/<pid>/maps shows it are the same object.
 */

export const METHODS = ['needed', 'preload', 'dlopen', 'interpreter', 'executable', 'unknown'] as const;
export type LoadMethod = (typeof METHODS)[number];

/** One line of a truth file: a mapped path, plus an optional expected-method hint (after a tab). */
export interface TruthEntry {
  path: string;
  hint?: LoadMethod;
}

/** What one run expects beyond the default rule (everything else is `needed`). */
export interface RunExpectations {
  /** Keys of the main program (normally one). */
  executable: Set<string>;
  /** Keys of the dynamic loader(s). */
  interpreter: Set<string>;
  /** Keys of objects named in LD_PRELOAD or /etc/ld.so.preload. */
  preload: Set<string>;
  /** Keys of objects the program passed to dlopen(). */
  dlopen: Set<string>;
}

/** One soload record reduced to what the arithmetic needs (ok, non-snapshot, this run's pid). */
export interface ReportedLoad {
  path: string;
  method: string;
  /** Kernel timestamp (ns, as a decimal string or bigint-able); orders duplicates. */
  timeUnixNano?: string;
  requestedName?: string;
  loadedBy?: string;
}

export interface ObjectNote {
  path: string;
  key: string;
  expected?: LoadMethod;
  reported?: string;
}

export interface RunEvaluation {
  truth: number;
  /** ok records for the run (duplicates included). */
  reported: number;
  /** Distinct truth objects soload reported. */
  matched: number;
  /** Matched objects whose (first) record carries the expected method. */
  methodOk: number;
  missed: ObjectNote[];
  /** Records for objects not in the truth. */
  extra: ObjectNote[];
  /** Second and later records for an object already reported in this run. */
  duplicate: ObjectNote[];
  wrongMethod: ObjectNote[];
}

/** The method the loader used for `entry`, by the corpus rules (a hint in the truth file wins). */
export function expectedMethod(entry: TruthEntry, key: string, exp: RunExpectations): LoadMethod {
  if (entry.hint) return entry.hint;
  if (exp.executable.has(key)) return 'executable';
  if (exp.interpreter.has(key)) return 'interpreter';
  if (exp.preload.has(key)) return 'preload';
  if (exp.dlopen.has(key)) return 'dlopen';
  return 'needed';
}

/** Parses a truth file: one path per line, optionally "\t<method>"; blank lines ignored; deduplicated. */
export function parseTruth(text: string): TruthEntry[] {
  const out: TruthEntry[] = [];
  const seen = new Set<string>();
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (!line.trim()) continue;
    const tab = line.indexOf('\t');
    const p = tab >= 0 ? line.slice(0, tab) : line;
    const hint = tab >= 0 ? line.slice(tab + 1).trim() : '';
    if (hint && !(METHODS as readonly string[]).includes(hint)) throw new Error(`truth line ${JSON.stringify(line)}: unknown method hint`);
    if (seen.has(p)) continue;
    seen.add(p);
    out.push(hint ? { path: p, hint: hint as LoadMethod } : { path: p });
  }
  return out;
}

function byTime(a: ReportedLoad, b: ReportedLoad): number {
  const ta = BigInt(a.timeUnixNano ?? '0');
  const tb = BigInt(b.timeUnixNano ?? '0');
  return ta < tb ? -1 : ta > tb ? 1 : 0;
}

/**
 * Compares one run's truth with soload's records for it. `keyOf` maps a path (from either side) to
 * the object's identity; truth entries with the same key count once. recall = matched / truth;
 * precision = matched / reported, where reported counts every ok record, so an extra object and a
 * second record for an already-reported object both lower it; method accuracy = methodOk / matched,
 * judged on the first record (by timestamp) of each object.
 */
export function evaluateRun(truth: TruthEntry[], reported: ReportedLoad[], exp: RunExpectations, keyOf: (p: string) => string): RunEvaluation {
  const truthByKey = new Map<string, TruthEntry>();
  for (const t of truth) {
    const k = keyOf(t.path);
    if (!truthByKey.has(k)) truthByKey.set(k, t);
  }
  const firstByKey = new Map<string, ReportedLoad>();
  const ev: RunEvaluation = { truth: truthByKey.size, reported: reported.length, matched: 0, methodOk: 0, missed: [], extra: [], duplicate: [], wrongMethod: [] };
  for (const r of [...reported].sort(byTime)) {
    const k = keyOf(r.path);
    if (firstByKey.has(k)) {
      ev.duplicate.push({ path: r.path, key: k, reported: r.method });
      continue;
    }
    firstByKey.set(k, r);
    if (!truthByKey.has(k)) ev.extra.push({ path: r.path, key: k, reported: r.method });
  }
  for (const [k, t] of truthByKey) {
    const r = firstByKey.get(k);
    const expected = expectedMethod(t, k, exp);
    if (!r) {
      ev.missed.push({ path: t.path, key: k, expected });
      continue;
    }
    ev.matched++;
    if (r.method === expected) ev.methodOk++;
    else ev.wrongMethod.push({ path: r.path, key: k, expected, reported: r.method });
  }
  return ev;
}

/** Totals over runs (micro-averaged: every object of every run weighs the same). */
export interface Totals {
  runs: number;
  truth: number;
  reported: number;
  matched: number;
  methodOk: number;
  missed: number;
  extra: number;
  duplicate: number;
  wrongMethod: number;
  /** Percentages; null when the denominator is 0. */
  recall: number | null;
  precision: number | null;
  methodAccuracy: number | null;
}

const pct = (num: number, den: number): number | null => (den === 0 ? null : (100 * num) / den);

export function totals(evs: RunEvaluation[]): Totals {
  const t = { runs: evs.length, truth: 0, reported: 0, matched: 0, methodOk: 0, missed: 0, extra: 0, duplicate: 0, wrongMethod: 0 };
  for (const e of evs) {
    t.truth += e.truth;
    t.reported += e.reported;
    t.matched += e.matched;
    t.methodOk += e.methodOk;
    t.missed += e.missed.length;
    t.extra += e.extra.length;
    t.duplicate += e.duplicate.length;
    t.wrongMethod += e.wrongMethod.length;
  }
  return { ...t, recall: pct(t.matched, t.truth), precision: pct(t.matched, t.reported), methodAccuracy: pct(t.methodOk, t.matched) };
}

export interface Bars {
  recall: number;
  precision: number;
  methodAccuracy: number;
}

/** The bars: recall ≥ 99.5 %, precision 100 %, method accuracy ≥ 99 %. */
export const DEFAULT_BARS: Bars = { recall: 99.5, precision: 100, methodAccuracy: 99 };

/** Failed bars as human-readable strings (empty = pass). A null percentage fails (nothing to judge). */
export function checkBars(t: Totals, bars: Bars = DEFAULT_BARS): string[] {
  const out: string[] = [];
  const check = (name: keyof Bars, v: number | null): void => {
    // compare in hundredths of a percent so 100 * 1 / 1 and friends do not trip on float noise
    if (v === null) out.push(`${name}: n/a (nothing to measure) — bar ${bars[name]} %`);
    else if (Math.round(v * 100) < Math.round(bars[name] * 100)) out.push(`${name} ${fmtPct(v)} < ${bars[name]} %`);
  };
  check('recall', t.recall);
  check('precision', t.precision);
  check('methodAccuracy', t.methodAccuracy);
  return out;
}

export function fmtPct(v: number | null): string {
  if (v === null) return 'n/a';
  if (v === 100) return '100';
  // never round 99.96 up to "100.0": truncate to 2 decimals
  return (Math.floor(v * 100) / 100).toFixed(2);
}

/** A fixed-width text table: one row per scenario plus a TOTAL row. */
export function formatTable(rows: Array<{ name: string; t: Totals; failed?: number; wallMs?: number }>, total: Totals): string {
  const head = ['scenario', 'runs', 'truth', 'reported', 'recall %', 'precision %', 'method %', 'missed', 'extra', 'dup', 'wrong-method', 'failed-dlopen'];
  const line = (name: string, t: Totals, failed?: number): string[] => [
    name,
    String(t.runs),
    String(t.truth),
    String(t.reported),
    fmtPct(t.recall),
    fmtPct(t.precision),
    fmtPct(t.methodAccuracy),
    String(t.missed),
    String(t.extra),
    String(t.duplicate),
    String(t.wrongMethod),
    failed === undefined ? '' : String(failed),
  ];
  const body = rows.map((r) => line(r.name, r.t, r.failed));
  const tot = line('TOTAL', total, rows.reduce((s, r) => s + (r.failed ?? 0), 0));
  const all = [head, ...body, tot];
  const widths = head.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const fmt = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const sep = widths.map((w) => '-'.repeat(w)).join('  ');
  return [fmt(head), sep, ...body.map(fmt), sep, fmt(tot)].join('\n');
}
