/**
 * Risk of a load, from rules declared in the configuration (`security.rules`): each rule is a set of
 * conditions over the record's attributes (record and process attributes merged, whatever the
 * resource mode) → a risk level and a reason. No code: a deployment tunes what it alerts on by
 * editing a list. Pure.
 */

import { ErrorCodes, SoloadError } from '../errors';

/** Risk levels, lowest first. */
export const RISK_LEVELS = ['none', 'low', 'medium', 'high'] as const;
export type RiskLevel = (typeof RISK_LEVELS)[number];

type Scalar = string | number | boolean;

/**
 * One condition on an attribute. A bare value means equality. Objects combine operators (all must
 * hold): `equals`, `in` (one of), `under` (a path equal to or below one of the directories),
 * `glob` (`*` within one path component, `**` across), `exists`, `gte`/`lte` (numbers), `not`.
 * An array-valued attribute (soload.enrichment.missing) matches when any element matches.
 */
export type RiskMatcher =
  | Scalar
  | {
      equals?: Scalar;
      in?: Scalar[];
      under?: string | string[];
      glob?: string | string[];
      exists?: boolean;
      gte?: number;
      lte?: number;
      not?: RiskMatcher;
    };

/** A rule: when every condition of `when` holds (and none of `unless`), the load has `risk` for `reason`. */
export interface RiskRule {
  reason: string;
  risk: Exclude<RiskLevel, 'none'>;
  when: Record<string, RiskMatcher>;
  unless?: Record<string, RiskMatcher>;
  /** What the rule catches (documentation; shown by `soload config`). */
  doc?: string;
}

/** Temporary directories anyone can write to; a library there was planted, not installed. */
const TMP_DIRS = ['/tmp', '/var/tmp', '/dev/shm', '/run/shm', '/run/user'];

/**
 * The default rule set (README, "Risk rules"). Levels: `high` = someone planted or changed code
 * (memfd, /tmp, a modified package file, a world-writable file, a writable directory of a root
 * process, LD_LIBRARY_PATH handed to a setuid program); `medium` = injection points that are also
 * used legitimately (LD_PRELOAD, a deleted file, a home directory, a writable directory);
 * `low` = worth an inventory (not from a package, found through LD_LIBRARY_PATH).
 */
export function defaultRiskRules(): RiskRule[] {
  return [
    { reason: 'memfd', risk: 'high', when: { 'soload.file.memfd': true }, doc: 'Code loaded from an anonymous memory file (memfd_create): fileless malware, or a JIT/packer.' },
    { reason: 'tmp_path', risk: 'high', when: { 'file.path': { under: TMP_DIRS } }, doc: 'A library in a world-writable temporary directory (/tmp, /var/tmp, /dev/shm, /run/user).' },
    { reason: 'modified_package_file', risk: 'high', when: { 'soload.package.modified': true }, doc: "A file owned by an installed package whose content no longer matches the package's recorded digest." },
    { reason: 'world_writable', risk: 'high', when: { 'soload.file.world_writable': true }, doc: 'The library file itself is writable by every user.' },
    {
      reason: 'writable_dir',
      risk: 'high',
      when: { 'soload.file.writable_dir': true, 'process.user.id': 0 },
      doc: 'A root process loads from a directory a non-root user can write to (the user can swap the library: privilege escalation).',
    },
    { reason: 'writable_dir', risk: 'medium', when: { 'soload.file.writable_dir': true }, doc: 'The directory of the library is writable by a non-root user.' },
    {
      reason: 'ld_library_path_in_setuid',
      risk: 'high',
      when: { 'soload.process.secure': true, 'soload.process.ld_library_path': { exists: true } },
      doc: 'A setuid/setgid/capability program was started with LD_LIBRARY_PATH set (ld.so ignores it; someone tried).',
    },
    { reason: 'preload', risk: 'medium', when: { 'soload.load.method': 'preload' }, doc: 'Injected with LD_PRELOAD or /etc/ld.so.preload.' },
    { reason: 'deleted', risk: 'medium', when: { 'soload.file.deleted': true }, doc: 'The file was deleted before soload could look at it (replaced by an upgrade, or removed to hide it).' },
    { reason: 'loaded_from_home', risk: 'medium', when: { 'file.path': { under: ['/home', '/root'] } }, doc: 'A library in a home directory.' },
    { reason: 'ld_library_path', risk: 'low', when: { 'soload.search.step': 'ld_library_path' }, doc: 'Found through LD_LIBRARY_PATH, ahead of the system directories.' },
    {
      reason: 'not_packaged',
      risk: 'low',
      when: { 'soload.package.name': { exists: false }, 'soload.package.manager': { exists: true }, 'soload.result': 'ok' },
      unless: { 'soload.file.memfd': true },
      doc: "In a root that has a package database, the file belongs to no installed package (built locally, copied in, or dropped).",
    },
  ];
}

/** A rule-list problem; the config validator prefixes the key (security.rules). */
function bad(msg: string): never {
  throw new SoloadError(ErrorCodes.CONFIG_INVALID, msg);
}

const MATCHER_KEYS = new Set(['equals', 'in', 'under', 'glob', 'exists', 'gte', 'lte', 'not']);
const RULE_KEYS = new Set(['reason', 'risk', 'when', 'unless', 'doc']);
const REASON_RE = /^[a-z][a-z0-9_]{0,63}$/;
const ATTR_RE = /^[A-Za-z][\w.]{0,127}$/;

/**
 * Checks a rule list from the configuration; throws SOLOAD_ERR_CONFIG_INVALID naming the rule and field at fault
 * (the config validator wraps it into SOLOAD_ERR_CONFIG_INVALID).
 */
export function checkRiskRules(list: unknown): asserts list is RiskRule[] {
  if (!Array.isArray(list)) bad('must be an array of rules { reason, risk, when, unless? }');
  list.forEach((r, i) => {
    const at = `rules[${i}]`;
    if (typeof r !== 'object' || r === null || Array.isArray(r)) bad(`${at} must be an object`);
    const rule = r as Record<string, unknown>;
    for (const k of Object.keys(rule)) if (!RULE_KEYS.has(k)) bad(`${at} has unknown key "${k}"; allowed: ${[...RULE_KEYS].join(', ')}`);
    if (typeof rule.reason !== 'string' || !REASON_RE.test(rule.reason)) bad(`${at}.reason must match ${REASON_RE} (got ${JSON.stringify(rule.reason)})`);
    if (rule.risk !== 'low' && rule.risk !== 'medium' && rule.risk !== 'high') bad(`${at}.risk must be "low", "medium" or "high"`);
    if (rule.doc !== undefined && typeof rule.doc !== 'string') bad(`${at}.doc must be a string`);
    for (const part of ['when', 'unless'] as const) {
      const conds = rule[part];
      if (conds === undefined && part === 'unless') continue;
      if (typeof conds !== 'object' || conds === null || Array.isArray(conds)) bad(`${at}.${part} must be an object of attribute → condition`);
      if (part === 'when' && Object.keys(conds).length === 0) bad(`${at}.when needs at least one condition (a rule that always matches is a typo)`);
      for (const [attr, m] of Object.entries(conds)) {
        if (!ATTR_RE.test(attr)) bad(`${at}.${part} key "${attr}" is not an attribute name`);
        checkMatcher(m, `${at}.${part}["${attr}"]`);
      }
    }
  });
}

function checkMatcher(m: unknown, at: string): void {
  if (typeof m === 'string' || typeof m === 'number' || typeof m === 'boolean') return;
  if (typeof m !== 'object' || m === null || Array.isArray(m)) bad(`${at} must be a value or an object of operators (${[...MATCHER_KEYS].join(', ')})`);
  const o = m as Record<string, unknown>;
  if (Object.keys(o).length === 0) bad(`${at} has no operator`);
  for (const [k, v] of Object.entries(o)) {
    if (!MATCHER_KEYS.has(k)) bad(`${at} has unknown operator "${k}"; allowed: ${[...MATCHER_KEYS].join(', ')}`);
    const strings = (x: unknown) => typeof x === 'string' || (Array.isArray(x) && x.length > 0 && x.every((e) => typeof e === 'string'));
    if (k === 'exists' && typeof v !== 'boolean') bad(`${at}.exists must be true or false`);
    if ((k === 'gte' || k === 'lte') && typeof v !== 'number') bad(`${at}.${k} must be a number`);
    if ((k === 'under' || k === 'glob') && !strings(v)) bad(`${at}.${k} must be a string or a non-empty array of strings`);
    if (k === 'under' && [v].flat().some((d) => !(d as string).startsWith('/'))) bad(`${at}.under entries must be absolute directories`);
    if (k === 'in' && (!Array.isArray(v) || v.some((e) => !['string', 'number', 'boolean'].includes(typeof e)))) bad(`${at}.in must be an array of values`);
    if (k === 'equals' && !['string', 'number', 'boolean'].includes(typeof v)) bad(`${at}.equals must be a value`);
    if (k === 'not') checkMatcher(v, `${at}.not`);
  }
}

/** The outcome of the rules for one record. */
export interface RiskAssessment {
  risk: RiskLevel;
  /** Reasons of every matching rule, in rule order, without repeats. */
  reasons: string[];
}

type AttrValue = unknown;

/** Evaluates compiled rules over attribute maps. */
export class RiskEvaluator {
  private readonly rules: ReadonlyArray<{ rule: RiskRule; when: Array<[string, Test]>; unless: Array<[string, Test]> }>;

  constructor(rules: readonly RiskRule[]) {
    this.rules = rules.map((rule) => ({
      rule,
      when: Object.entries(rule.when).map(([k, m]) => [k, compile(m)] as [string, Test]),
      unless: Object.entries(rule.unless ?? {}).map(([k, m]) => [k, compile(m)] as [string, Test]),
    }));
  }

  /**
   * Risk of a record whose attributes (record ∪ process) are `attrs`, or the layers of them,
   * highest priority first (looked up in turn: no merged copy per record).
   */
  assess(attrs: Readonly<Record<string, AttrValue>> | ReadonlyArray<Readonly<Record<string, AttrValue>>>): RiskAssessment {
    const layers = Array.isArray(attrs) ? (attrs as ReadonlyArray<Readonly<Record<string, AttrValue>>>) : [attrs as Readonly<Record<string, AttrValue>>];
    const get = (k: string): AttrValue => {
      for (const l of layers) if (l[k] !== undefined) return l[k];
      return undefined;
    };
    let level = 0;
    const reasons: string[] = [];
    for (const r of this.rules) {
      if (!r.when.every(([k, t]) => t(get(k)))) continue;
      if (r.unless.some(([k, t]) => t(get(k)))) continue;
      level = Math.max(level, RISK_LEVELS.indexOf(r.rule.risk));
      if (!reasons.includes(r.rule.reason)) reasons.push(r.rule.reason);
    }
    return { risk: RISK_LEVELS[level]!, reasons };
  }
}

type Test = (v: AttrValue) => boolean;

function compile(m: RiskMatcher): Test {
  if (typeof m !== 'object') return anyOf((v) => v === m);
  const tests: Test[] = [];
  if (m.exists !== undefined) {
    const want = m.exists;
    tests.push((v) => (v !== undefined && v !== null) === want);
  }
  const scalar: Array<(v: unknown) => boolean> = [];
  if (m.equals !== undefined) scalar.push((v) => v === m.equals);
  if (m.in !== undefined) {
    const set = new Set<unknown>(m.in);
    scalar.push((v) => set.has(v));
  }
  if (m.under !== undefined) {
    const dirs = [m.under].flat().map((d) => d.replace(/\/+$/, '') || '/');
    scalar.push((v) => typeof v === 'string' && dirs.some((d) => v === d || v.startsWith(d === '/' ? '/' : `${d}/`)));
  }
  if (m.glob !== undefined) {
    const res = [m.glob].flat().map(globToRegExp);
    scalar.push((v) => typeof v === 'string' && res.some((re) => re.test(v)));
  }
  if (m.gte !== undefined) scalar.push((v) => typeof v === 'number' && v >= m.gte!);
  if (m.lte !== undefined) scalar.push((v) => typeof v === 'number' && v <= m.lte!);
  if (scalar.length) tests.push(anyOf((v) => scalar.every((t) => t(v))));
  if (m.not !== undefined) {
    const inner = compile(m.not);
    tests.push((v) => !inner(v));
  }
  return (v) => tests.every((t) => t(v));
}

/** A test on a value, or on any element of an array value. */
function anyOf(t: (v: unknown) => boolean): Test {
  return (v) => (Array.isArray(v) ? v.some(t) : v !== undefined && t(v));
}

/** `*` = any run within a path component, `**` = across components, `?` = one character. */
export function globToRegExp(glob: string): RegExp {
  let re = '';
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i]!;
    if (c === '*') {
      if (glob[i + 1] === '*') {
        re += '.*';
        i++;
      } else re += '[^/]*';
    } else if (c === '?') re += '[^/]';
    else re += c.replace(/[.+^${}()|[\]\\]/g, '\\$&');
  }
  return new RegExp(`^${re}$`);
}
