/**
 * A byte-for-byte picture of the tracing state that is not soload's: the probe definitions of
 * every other group, the top-level buffer's and every foreign instance's settings and enabled
 * events. Two snapshots taken around a soload run must be equal (coexistence, crash soak).
 */
import fs from 'node:fs';
import path from 'node:path';
import { TRACEFS } from './soload';

/** Files of a trace array (the top level or an instance) whose content is its configuration. */
const ARRAY_FILES = [
  'tracing_on',
  'current_tracer',
  'buffer_size_kb',
  'trace_clock',
  'trace_options',
  'set_event',
  'set_event_pid',
  'set_event_notrace_pid',
  'tracing_cpumask',
  'events/enable',
];
/** Top-level-only settings. */
const TOP_FILES = ['saved_cmdlines_size', 'kprobe_events', 'uprobe_events', 'dynamic_events'];

function read(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'latin1');
  } catch {
    return undefined;
  }
}

/** Drops lines that belong to soload's groups (`soload_<pid>`, or `<prefix>_<pid>`). */
function withoutOwn(text: string | undefined, prefix: string): string | undefined {
  if (text === undefined) return undefined;
  const own = new RegExp(`(^|[:/ ])${prefix}_\\d+[/:]`);
  return text
    .split('\n')
    .filter((l) => !own.test(l))
    .join('\n');
}

function arrayState(dir: string, prefix: string): Record<string, string | undefined> {
  const out: Record<string, string | undefined> = {};
  for (const f of ARRAY_FILES) out[f] = f === 'set_event' ? withoutOwn(read(path.join(dir, f)), prefix) : read(path.join(dir, f));
  let opts: string[] = [];
  try {
    opts = fs.readdirSync(path.join(dir, 'options')).sort();
  } catch {
    /* no options directory */
  }
  for (const o of opts) out[`options/${o}`] = read(path.join(dir, 'options', o));
  return out;
}

/** Everything of the tracing state outside soload's groups and instances, as file → content. */
export function foreignTracingState(prefix = 'soload', root = TRACEFS): Record<string, string | undefined> {
  const state: Record<string, string | undefined> = {};
  for (const f of TOP_FILES) state[f] = withoutOwn(read(path.join(root, f)), prefix);
  for (const [k, v] of Object.entries(arrayState(root, prefix))) state[`top/${k}`] = v;
  const own = new RegExp(`^${prefix}_\\d+$`);
  const instances = fs.readdirSync(path.join(root, 'instances')).filter((i) => !own.test(i)).sort();
  state['instances'] = instances.join('\n');
  for (const inst of instances) {
    for (const [k, v] of Object.entries(arrayState(path.join(root, 'instances', inst), prefix))) state[`instances/${inst}/${k}`] = v;
  }
  // Per-event enable files of every group but soload's: a foreign group enabled at the top level
  // must stay enabled, and soload must not have enabled anything there.
  let groups: string[] = [];
  try {
    groups = fs.readdirSync(path.join(root, 'events')).filter((g) => !new RegExp(`^${prefix}_\\d+$`).test(g));
  } catch {
    /* no events directory */
  }
  for (const g of groups.sort()) {
    const en = read(path.join(root, 'events', g, 'enable'));
    if (en !== undefined) state[`top/events/${g}/enable`] = en;
  }
  return state;
}

/** soload's own traces in the tracing state: groups, instances, set_event lines, alias dirs. */
export function ownTracingTraces(prefix = 'soload', root = TRACEFS): string[] {
  const found: string[] = [];
  const re = new RegExp(`(^|[:/ ])${prefix}_\\d+[/:]`);
  for (const f of ['uprobe_events', 'dynamic_events', 'kprobe_events', 'set_event']) {
    for (const l of (read(path.join(root, f)) ?? '').split('\n')) if (re.test(l)) found.push(`${f}: ${l}`);
  }
  const own = new RegExp(`^${prefix}_\\d+$`);
  for (const i of fs.readdirSync(path.join(root, 'instances'))) if (own.test(i)) found.push(`instances/${i}`);
  try {
    for (const g of fs.readdirSync(path.join(root, 'events'))) if (own.test(g)) found.push(`events/${g}`);
  } catch {
    /* no events directory */
  }
  try {
    for (const d of fs.readdirSync('/run/soload')) if (own.test(d)) found.push(`/run/soload/${d}`);
  } catch {
    /* no alias root */
  }
  return found;
}

/** The keys whose content differs between two snapshots, with both values. */
export function diffStates(a: Record<string, string | undefined>, b: Record<string, string | undefined>): string[] {
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  const out: string[] = [];
  for (const k of [...keys].sort()) if (a[k] !== b[k]) out.push(`${k}: ${JSON.stringify(a[k])} → ${JSON.stringify(b[k])}`);
  return out;
}
