/**
 * Recall arithmetic for the corpus in test/recall: pure functions (no fs, no processes), unit-tested
 * in test/unit/recall. soload's `file.path` is compared with the path the process's own
 * /proc/self/maps prints by exact string equality: no dev:inode matching, no realpath. The one
 * normalisation is on the truth side: the kernel's trailing " (deleted)" is stripped, and that object
 * is then expected to carry `soload.file.deleted=true`. So "/lib/x86_64-linux-gnu/libc.so.6" (the
 * loader's name on a merged-/usr host) does NOT match "/usr/lib/x86_64-linux-gnu/libc.so.6" (what
 * the kernel prints): soload must report the canonical path, as the process sees it.
 */

export const METHODS = ['needed', 'preload', 'dlopen', 'interpreter', 'executable', 'unknown'] as const;
export type LoadMethod = (typeof METHODS)[number];

/** The kernel's suffix on a mapping whose file was unlinked (memfds always carry it). */
export const DELETED_SUFFIX = ' (deleted)';
/** How /proc/<pid>/maps names a memfd's mapping: "/memfd:NAME" (plus DELETED_SUFFIX). */
export const MEMFD_PREFIX = '/memfd:';

/** One line of a truth file: a mapped path, plus an optional expected-method hint (after a tab). */
export interface TruthEntry {
  /** The maps path with a trailing " (deleted)" stripped: the exact file.path expected. */
  path: string;
  hint?: LoadMethod;
  /** maps printed " (deleted)": soload.file.deleted=true expected. */
  deleted?: boolean;
}

/** What one run expects beyond the default rule (everything else is `needed`); exact paths. */
export interface RunExpectations {
  /** The main program (normally one). */
  executable: Set<string>;
  /** The dynamic loader(s). */
  interpreter: Set<string>;
  /** Objects named in LD_PRELOAD or /etc/ld.so.preload. */
  preload: Set<string>;
  /** Objects the program passed to dlopen(). */
  dlopen: Set<string>;
  /**
   * Path on the host of an object whose file.path is in another root (chroot): when the record
   * carries soload.host_path, it must equal this.
   */
  hostPath: Map<string, string>;
  /**
   * The run's root on the host (a program chrooted into a foreign root file system): every object
   * not in hostPath and not a memfd is expected at hostRoot + its file.path on the host.
   */
  hostRoot?: string;
}

/** The host path expected for `p` (soload.host_path, when the record carries one), if known. */
export function expectedHostPath(p: string, exp: RunExpectations): string | undefined {
  const explicit = exp.hostPath.get(p);
  if (explicit !== undefined) return explicit;
  if (exp.hostRoot === undefined || p.startsWith(MEMFD_PREFIX)) return undefined;
  return exp.hostRoot.replace(/\/+$/, '') + p;
}

/** One soload record reduced to what the arithmetic needs (ok, non-snapshot, this run's pid). */
export interface ReportedLoad {
  path: string;
  method: string;
  /** Kernel timestamp (ns, as a decimal string or bigint-able); orders duplicates. */
  timeUnixNano?: string;
  requestedName?: string;
  loadedBy?: string;
  /** soload.file.deleted === true */
  deleted?: boolean;
  /** soload.file.memfd === true */
  memfd?: boolean;
  /** soload.host_path, when present */
  hostPath?: string;
}

export interface ObjectNote {
  path: string;
  expected?: string;
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
  /** Matched objects whose (first) record carries the expected file flags (deleted, memfd, host path). */
  flagsOk: number;
  missed: ObjectNote[];
  /** Records for objects not in the truth. */
  extra: ObjectNote[];
  /** Second and later records for an object already reported in this run. */
  duplicate: ObjectNote[];
  wrongMethod: ObjectNote[];
  /** One note per wrong flag: expected / reported are "attribute=value". */
  wrongFlags: ObjectNote[];
  /** Records (any, duplicates included) whose file.path is not clean: reported = the problem(s). */
  badPath: ObjectNote[];
}

/** The method the loader used for `entry`, by the corpus rules (a hint in the truth file wins). */
export function expectedMethod(entry: TruthEntry, exp: RunExpectations): LoadMethod {
  if (entry.hint) return entry.hint;
  if (exp.executable.has(entry.path)) return 'executable';
  if (exp.interpreter.has(entry.path)) return 'interpreter';
  if (exp.preload.has(entry.path)) return 'preload';
  if (exp.dlopen.has(entry.path)) return 'dlopen';
  return 'needed';
}

/** The record soload should produce for a truth entry (what the self-check feeds back in). */
export function idealRecord(entry: TruthEntry, exp: RunExpectations): ReportedLoad {
  const r: ReportedLoad = { path: entry.path, method: expectedMethod(entry, exp) };
  if (entry.deleted) r.deleted = true;
  if (entry.path.startsWith(MEMFD_PREFIX)) r.memfd = true;
  const host = expectedHostPath(entry.path, exp);
  if (host !== undefined) r.hostPath = host;
  return r;
}

/**
 * Parses a truth file: one maps path per line, optionally "\t<method>"; blank lines ignored. A
 * trailing " (deleted)" is stripped and recorded as `deleted`. Deduplicated on the stripped path.
 */
export function parseTruth(text: string): TruthEntry[] {
  const out: TruthEntry[] = [];
  const seen = new Set<string>();
  for (const raw of text.split('\n')) {
    const line = raw.replace(/\r$/, '');
    if (!line.trim()) continue;
    const tab = line.indexOf('\t');
    let p = tab >= 0 ? line.slice(0, tab) : line;
    const hint = tab >= 0 ? line.slice(tab + 1).trim() : '';
    if (hint && !(METHODS as readonly string[]).includes(hint)) throw new Error(`truth line ${JSON.stringify(line)}: unknown method hint`);
    const deleted = p.endsWith(DELETED_SUFFIX);
    if (deleted) p = p.slice(0, -DELETED_SUFFIX.length);
    if (seen.has(p)) continue;
    seen.add(p);
    const e: TruthEntry = { path: p };
    if (hint) e.hint = hint as LoadMethod;
    if (deleted) e.deleted = true;
    out.push(e);
  }
  return out;
}

/**
 * What is wrong with a reported file.path (empty = clean). A clean path is what the kernel prints
 * for a mapping: absolute, no empty, "." or ".." component, no "/proc/self/fd/" indirection (a
 * memfd or fd-opened object must be named by its target), no " (deleted)" suffix (that is
 * soload.file.deleted's job).
 */
export function pathProblems(p: string): string[] {
  const out: string[] = [];
  if (!p.startsWith('/')) out.push('not absolute');
  if (p.includes('//')) out.push('"//"');
  const parts = p.split('/');
  if (parts.includes('.')) out.push('"." component');
  if (parts.includes('..')) out.push('".." component');
  if (p.includes('/proc/self/fd/') || /^\/proc\/\d+\/fd\//.test(p)) out.push('/proc/.../fd/ path');
  if (p.endsWith(DELETED_SUFFIX)) out.push('" (deleted)" suffix');
  return out;
}

function byTime(a: ReportedLoad, b: ReportedLoad): number {
  const ta = BigInt(a.timeUnixNano ?? '0');
  const tb = BigInt(b.timeUnixNano ?? '0');
  return ta < tb ? -1 : ta > tb ? 1 : 0;
}

/** Wrong file flags of the (first) record `r` for truth entry `t`, as notes. */
function flagNotes(t: TruthEntry, r: ReportedLoad, exp: RunExpectations): ObjectNote[] {
  const out: ObjectNote[] = [];
  const want = idealRecord(t, exp);
  const flag = (attr: string, w: boolean, got: boolean): void => {
    if (w !== got) out.push({ path: t.path, expected: `${attr}=${w}`, reported: `${attr}=${got ? 'true' : 'absent/false'}` });
  };
  flag('soload.file.deleted', want.deleted === true, r.deleted === true);
  flag('soload.file.memfd', want.memfd === true, r.memfd === true);
  // soload.host_path is optional; when present on an object with a known host path, it must be that path
  if (want.hostPath !== undefined && r.hostPath !== undefined && r.hostPath !== want.hostPath) {
    out.push({ path: t.path, expected: `soload.host_path=${want.hostPath}`, reported: `soload.host_path=${r.hostPath}` });
  }
  return out;
}

/**
 * Compares one run's truth with soload's records for it, path by exact string. recall = matched /
 * truth; precision = matched / reported, where reported counts every ok record, so an extra object
 * and a second record for an already-reported object both lower it; method accuracy = methodOk /
 * matched and flag accuracy = flagsOk / matched, judged on the first record (by timestamp) of each
 * object; path hygiene = clean records / reported.
 */
export function evaluateRun(truth: TruthEntry[], reported: ReportedLoad[], exp: RunExpectations): RunEvaluation {
  const truthByPath = new Map<string, TruthEntry>();
  for (const t of truth) if (!truthByPath.has(t.path)) truthByPath.set(t.path, t);
  const firstByPath = new Map<string, ReportedLoad>();
  const ev: RunEvaluation = {
    truth: truthByPath.size,
    reported: reported.length,
    matched: 0,
    methodOk: 0,
    flagsOk: 0,
    missed: [],
    extra: [],
    duplicate: [],
    wrongMethod: [],
    wrongFlags: [],
    badPath: [],
  };
  for (const r of [...reported].sort(byTime)) {
    const problems = pathProblems(r.path);
    if (problems.length) ev.badPath.push({ path: r.path, reported: problems.join(', ') });
    if (firstByPath.has(r.path)) {
      ev.duplicate.push({ path: r.path, reported: r.method });
      continue;
    }
    firstByPath.set(r.path, r);
    if (!truthByPath.has(r.path)) ev.extra.push({ path: r.path, reported: r.method });
  }
  for (const [p, t] of truthByPath) {
    const r = firstByPath.get(p);
    const expected = expectedMethod(t, exp);
    if (!r) {
      ev.missed.push({ path: p, expected });
      continue;
    }
    ev.matched++;
    if (r.method === expected) ev.methodOk++;
    else ev.wrongMethod.push({ path: p, expected, reported: r.method });
    const wrong = flagNotes(t, r, exp);
    if (wrong.length) ev.wrongFlags.push(...wrong);
    else ev.flagsOk++;
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
  flagsOk: number;
  missed: number;
  extra: number;
  duplicate: number;
  wrongMethod: number;
  /** Wrong flags (an object can have several). */
  wrongFlags: number;
  /** Records with an unclean file.path. */
  badPath: number;
  /** Percentages; null when the denominator is 0. */
  recall: number | null;
  precision: number | null;
  methodAccuracy: number | null;
  /** Matched objects with every file flag right / matched. */
  flagAccuracy: number | null;
  /** Records with a clean file.path / reported. */
  pathHygiene: number | null;
}

const pct = (num: number, den: number): number | null => (den === 0 ? null : (100 * num) / den);

export function totals(evs: RunEvaluation[]): Totals {
  const t = { runs: evs.length, truth: 0, reported: 0, matched: 0, methodOk: 0, flagsOk: 0, missed: 0, extra: 0, duplicate: 0, wrongMethod: 0, wrongFlags: 0, badPath: 0 };
  for (const e of evs) {
    t.truth += e.truth;
    t.reported += e.reported;
    t.matched += e.matched;
    t.methodOk += e.methodOk;
    t.flagsOk += e.flagsOk;
    t.missed += e.missed.length;
    t.extra += e.extra.length;
    t.duplicate += e.duplicate.length;
    t.wrongMethod += e.wrongMethod.length;
    t.wrongFlags += e.wrongFlags.length;
    t.badPath += e.badPath.length;
  }
  return {
    ...t,
    recall: pct(t.matched, t.truth),
    precision: pct(t.matched, t.reported),
    methodAccuracy: pct(t.methodOk, t.matched),
    flagAccuracy: pct(t.flagsOk, t.matched),
    pathHygiene: pct(t.reported - t.badPath, t.reported),
  };
}

export interface Bars {
  recall: number;
  precision: number;
  methodAccuracy: number;
  flagAccuracy: number;
  pathHygiene: number;
}

/**
 * Issue 7's bars: exact-path recall ≥ 99.5 %, precision 100 %, method accuracy ≥ 99 %; plus, at
 * 100 %, the file flags of matched objects (soload.file.deleted / soload.file.memfd /
 * soload.host_path) and the path hygiene of every record (no "/proc/self/fd/", "//", "." or ".."
 * component, or " (deleted)" in file.path).
 */
export const DEFAULT_BARS: Bars = { recall: 99.5, precision: 100, methodAccuracy: 99, flagAccuracy: 100, pathHygiene: 100 };

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
  check('flagAccuracy', t.flagAccuracy);
  check('pathHygiene', t.pathHygiene);
  return out;
}

export function fmtPct(v: number | null): string {
  if (v === null) return 'n/a';
  if (v === 100) return '100';
  // never round 99.96 up to "100.0": truncate to 2 decimals
  return (Math.floor(v * 100) / 100).toFixed(2);
}

/** Marks an informational row (not in TOTAL, not judged by the bars). */
export const INFORMATIONAL_MARK = ' (i)';

/**
 * A fixed-width text table: one row per scenario plus a TOTAL row (given by the caller: it excludes
 * informational rows, which are printed with INFORMATIONAL_MARK after their name and a footnote).
 */
export function formatTable(rows: Array<{ name: string; t: Totals; failed?: number; informational?: boolean }>, total: Totals, opts: { head?: string } = {}): string {
  const head = [opts.head ?? 'scenario', 'runs', 'truth', 'reported', 'recall %', 'precision %', 'method %', 'flags %', 'hygiene %', 'missed', 'extra', 'dup', 'wrong-method', 'wrong-flags', 'bad-path', 'failed-dlopen'];
  const line = (name: string, t: Totals, failed?: number): string[] => [
    name,
    String(t.runs),
    String(t.truth),
    String(t.reported),
    fmtPct(t.recall),
    fmtPct(t.precision),
    fmtPct(t.methodAccuracy),
    fmtPct(t.flagAccuracy),
    fmtPct(t.pathHygiene),
    String(t.missed),
    String(t.extra),
    String(t.duplicate),
    String(t.wrongMethod),
    String(t.wrongFlags),
    String(t.badPath),
    failed === undefined ? '' : String(failed),
  ];
  const body = rows.map((r) => line(r.informational ? `${r.name}${INFORMATIONAL_MARK}` : r.name, r.t, r.failed));
  const tot = line('TOTAL', total, rows.reduce((s, r) => s + (r.informational ? 0 : r.failed ?? 0), 0));
  const all = [head, ...body, tot];
  const widths = head.map((_, i) => Math.max(...all.map((r) => r[i].length)));
  const fmt = (r: string[]): string => r.map((c, i) => (i === 0 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  const sep = widths.map((w) => '-'.repeat(w)).join('  ');
  const lines = [fmt(head), sep, ...body.map(fmt), sep, fmt(tot)];
  if (rows.some((r) => r.informational)) lines.push(`${INFORMATIONAL_MARK.trim()} informational: measured and shown, not in TOTAL, not judged by the bars`);
  return lines.join('\n');
}
