/**
 * What a kernel's uprobe tracer accepts and what it prints, measured by writing probes (not by
 * reading version numbers): each fetch-argument syntax of interest is written as one probe on the
 * puzzle program's take() (test/kernels/fault.c), the kernel's answer recorded (accepted, or the
 * errno and its error_log line), and the accepted ones described as the kernel lists them. Then
 * the two seed puzzles are run for real:
 *   fault        take() is called with a pointer into a page of a freshly mapped file the process
 *                has not touched, then again after touching it: what ustring/string fetch print;
 *   unknownType  events left in an instance's buffer after their probe is deleted, then read.
 * tracefs safety: only appends this module's own probe lines (group kmatrix_<pid>) to
 * uprobe_events, removes only those, and enables nothing outside its own instance.
 */
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { parseTracepointFormat } from '../../src/tracefs/format';

/** One probe syntax to try. `{P}` is replaced by PROG:0xOFFSET, `{E}` by group/event. */
export interface FeatureProbe {
  id: string;
  what: string;
  line: string;
}

/** The syntaxes tried, in the order the table prints them. */
export const FEATURE_PROBES: FeatureProbe[] = [
  { id: 'entry', what: 'p: entry probe', line: 'p:{E} {P}' },
  { id: 'r_return', what: 'r: return probe', line: 'r:{E} {P} ret=$retval' },
  { id: 'pct_return', what: '%return suffix', line: 'p:{E} {P}%return ret=$retval' },
  { id: 'string', what: ':string fetch', line: 'p:{E} {P} s=+0(%di):string' },
  { id: 'ustring', what: ':ustring fetch', line: 'p:{E} {P} s=+0(%di):ustring' },
  { id: 'comm', what: '$comm', line: 'p:{E} {P} c=$comm' },
  { id: 'file_offset', what: '@+offset fetch', line: 'p:{E} {P} v=@+0:u64' },
  { id: 'x64', what: ':x64 type', line: 'p:{E} {P} x=%di:x64' },
  { id: 'array', what: ':u8[4] array', line: 'p:{E} {P} a=+0(%di):u8[4]' },
  { id: 'bitfield', what: ':b4@0/32 bitfield', line: 'p:{E} {P} b=%si:b4@0/32' },
  { id: 'char', what: ':char type', line: 'p:{E} {P} c=+0(%di):char' },
  { id: 'symstr', what: ':symstr type', line: 'p:{E} {P} s=%di:symstr' },
  { id: 'argN', what: '$arg1', line: 'p:{E} {P} a=$arg1' },
  { id: 'stack', what: '$stack0', line: 'p:{E} {P} s=$stack0' },
  { id: 'bad_type', what: 'an unknown type (:bogus)', line: 'p:{E} {P} x=%di:bogus' },
];

/** The kernel's answer to one probe line. */
export interface FeatureResult {
  id: string;
  line: string;
  accepted: boolean;
  /** errno name when refused. */
  error?: string;
  /** The error_log line(s) the write added (kernels ≥ 5.4 have error_log). */
  errorLog?: string;
  /** The probe as uprobe_events lists it back. */
  listed?: string;
  /** The event's print fmt line from its format file. */
  printFmt?: string;
}

/** What a string fetch printed at each take() call of fault.c. */
export interface FaultDemo {
  /** The kernel accepted the probe (ustring or string, whichever exists). */
  fetchType: string;
  steps: Array<{ step: number; value: string }>;
  traceLines: string[];
  error?: string;
}

export interface UnknownTypeDemo {
  /** Lines in the instance's trace after the probe was deleted with events still buffered. */
  afterDelete: string[];
  /** Lines before deleting. */
  beforeDelete: string[];
  /** Whether the kernel allowed deleting a probe while its events were still in the buffer. */
  deleted: boolean;
  deleteError?: string;
  error?: string;
}

/** `@+` fetches of fault.c's .data variables from a probe on take(), with and without a $comm before them. */
export interface DataFetchDemo {
  expected: string;
  /** The first 8 bytes of take() in the file, which `t=@+<take's file offset>:x64` must read (same segment as the probe). */
  textExpected?: string;
  plain?: Record<string, string>;
  afterComm?: Record<string, string>;
  error?: string;
}

export interface FeatureReport {
  tracefs: string;
  dataFetch?: DataFetchDemo;
  errorLog: boolean;
  probes: FeatureResult[];
  /** Fields of sched/sched_process_exit as the kernel's format file lists them. */
  schedProcessExitFields?: string[];
  fault: FaultDemo;
  unknownType: UnknownTypeDemo;
}

const write = (file: string, text: string): string | undefined => {
  try {
    fs.appendFileSync(file, `${text}\n`);
    return undefined;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code ?? String(err);
  }
};
const read = (file: string): string => {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return '';
  }
};

/** The field values of one trace line for our event (`name=value` pairs after the event name; pure). */
export function traceFields(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  const at = line.indexOf(': (');
  const body = at >= 0 ? line.slice(line.indexOf(')', at) + 1) : line;
  for (const m of body.matchAll(/\s([A-Za-z_]\w*)=("(?:[^"]*)"|\S*)/g)) out[m[1]!] = m[2]!.replace(/^"|"$/g, '');
  return out;
}

/**
 * Runs every measurement on the tracefs at `root`. `prog` is the compiled fault.c, `offset` the
 * file offset of its take(). `scratch` is a directory for the freshly mapped file.
 */
export function measureFeatures(root: string, prog: string, offset: number, scratch: string, data?: { magic: number; ptr: number }): FeatureReport {
  const group = `kmatrix_${process.pid}`;
  const events = path.join(root, 'uprobe_events');
  const errorLogFile = path.join(root, 'error_log');
  const hasErrorLog = fs.existsSync(errorLogFile);
  const P = `${prog}:0x${offset.toString(16)}`;
  const probes: FeatureResult[] = [];
  for (const f of FEATURE_PROBES) {
    const event = `f_${f.id}`;
    const line = f.line.replace('{E}', `${group}/${event}`).replace('{P}', P);
    const logBefore = read(errorLogFile);
    const error = write(events, line);
    const r: FeatureResult = { id: f.id, line: line.replace(prog, 'PROG'), accepted: !error };
    if (error) {
      r.error = error;
      const logAfter = read(errorLogFile);
      const added = logAfter.startsWith(logBefore) ? logAfter.slice(logBefore.length) : logAfter;
      if (added.trim()) r.errorLog = added.trim().replace(prog, 'PROG');
    } else {
      r.listed = read(events).split('\n').find((l) => l.includes(`${group}/${event} `) || l.endsWith(`${group}/${event}`))?.replace(prog, 'PROG');
      r.printFmt = /^print fmt: (.*)$/m.exec(read(path.join(root, 'events', group, event, 'format')))?.[1];
      write(events, `-:${group}/${event}`);
    }
    probes.push(r);
  }
  const fault = faultDemo(root, group, P, prog, scratch, probes);
  const unknownType = unknownTypeDemo(root, group, P, prog, scratch);
  const dataFetch = data ? dataFetchDemo(root, group, P, prog, scratch, data) : undefined;
  const schedProcessExitFields = parseTracepointFormat(read(path.join(root, 'events/sched/sched_process_exit/format')))?.fields;
  return { tracefs: root, errorLog: hasErrorLog, probes, ...(dataFetch ? { dataFetch } : {}), ...(schedProcessExitFields ? { schedProcessExitFields } : {}), fault, unknownType };
}

/** A scratch file of 4 pages whose page 2 starts with a NUL-terminated string. */
function freshFile(scratch: string): string {
  const file = path.join(scratch, `fault-${process.pid}-${Date.now()}.bin`);
  const buf = Buffer.alloc(4 * 4096, 0x41);
  buf.write('string-in-an-untouched-page\0', 2 * 4096);
  fs.writeFileSync(file, buf);
  return file;
}

function withInstance<T>(root: string, name: string, fn: (dir: string) => T): T {
  const dir = path.join(root, 'instances', name);
  fs.mkdirSync(dir);
  try {
    return fn(dir);
  } finally {
    try {
      fs.rmdirSync(dir);
    } catch {
      /* still busy: the caller's events were not disabled; nothing else to do */
    }
  }
}

function faultDemo(root: string, group: string, P: string, prog: string, scratch: string, probes: FeatureResult[]): FaultDemo {
  const fetchType = probes.find((p) => p.id === 'ustring')?.accepted ? 'ustring' : 'string';
  const event = 'fault_take';
  const events = path.join(root, 'uprobe_events');
  const err = write(events, `p:${group}/${event} ${P} s=+0(%di):${fetchType} step=%si:s32`);
  if (err) return { fetchType, steps: [], traceLines: [], error: `probe refused: ${err}` };
  try {
    return withInstance(root, `${group}_fault`, (inst) => {
      const enable = path.join(inst, 'events', group, event, 'enable');
      write(enable, '1');
      const file = freshFile(scratch);
      const r = spawnSync(prog, [file], { encoding: 'utf8' });
      write(enable, '0');
      fs.rmSync(file, { force: true });
      const lines = read(path.join(inst, 'trace')).split('\n').filter((l) => l.includes(`${event}:`));
      const steps = lines.map((l) => traceFields(l)).map((f) => ({ step: Number(f.step), value: f.s ?? '' }));
      return { fetchType, steps, traceLines: lines.map((l) => l.replace(/^.*?: \(/, '(')), ...(r.status !== 0 ? { error: `fault exited ${r.status}: ${r.stderr}` } : {}) };
    });
  } finally {
    write(events, `-:${group}/${event}`);
  }
}

function unknownTypeDemo(root: string, group: string, P: string, prog: string, scratch: string): UnknownTypeDemo {
  const event = 'gone_take';
  const events = path.join(root, 'uprobe_events');
  const err = write(events, `p:${group}/${event} ${P} step=%si:s32`);
  if (err) return { afterDelete: [], beforeDelete: [], deleted: false, error: `probe refused: ${err}` };
  let deleted = false;
  try {
    return withInstance(root, `${group}_gone`, (inst) => {
      const enable = path.join(inst, 'events', group, event, 'enable');
      write(enable, '1');
      const file = freshFile(scratch);
      spawnSync(prog, [file], { encoding: 'utf8' });
      write(enable, '0');
      fs.rmSync(file, { force: true });
      const strip = (t: string): string[] => t.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => l.replace(/^.*?\[\d+\]\s+\S+\s+[\d.]+:\s*/, ''));
      const beforeDelete = strip(read(path.join(inst, 'trace')));
      const deleteError = write(events, `-:${group}/${event}`);
      deleted = !deleteError;
      const afterDelete = strip(read(path.join(inst, 'trace')));
      return { beforeDelete, afterDelete, deleted, ...(deleteError ? { deleteError } : {}) };
    });
  } finally {
    if (!deleted) write(events, `-:${group}/${event}`);
  }
}

function dataFetchDemo(root: string, group: string, P: string, prog: string, scratch: string, data: { magic: number; ptr: number }): DataFetchDemo {
  const events = path.join(root, 'uprobe_events');
  const args = `v=@+0x${data.magic.toString(16)}:x64 s=+0(@+0x${data.ptr.toString(16)}):ustring t=@+${P.slice(P.lastIndexOf(':') + 1)}:x64`;
  const fd = fs.openSync(prog, 'r');
  const bytes = Buffer.alloc(8);
  fs.readSync(fd, bytes, 0, 8, Number(P.slice(P.lastIndexOf(':') + 1)));
  fs.closeSync(fd);
  const expected = 'v=0x1122334455667788 s=pointed-to-string';
  const lines = { plain: `p:${group}/data_plain ${P} ${args}`, afterComm: `p:${group}/data_comm ${P} c=$comm ${args}` };
  const out: DataFetchDemo = { expected, textExpected: `0x${bytes.readBigUInt64LE().toString(16)}` };
  const made: string[] = [];
  try {
    for (const [k, l] of Object.entries(lines)) {
      const err = write(events, l);
      if (err) out.error = `${out.error ?? ''}${k}: ${err} `;
      else made.push(l.split(' ')[0]!.slice(2));
    }
    if (!made.length) return out;
    withInstance(root, `${group}_data`, (inst) => {
      for (const m of made) write(path.join(inst, 'events', m, 'enable'), '1');
      const file = freshFile(scratch);
      spawnSync(prog, [file], { encoding: 'utf8' });
      fs.rmSync(file, { force: true });
      for (const m of made) write(path.join(inst, 'events', m, 'enable'), '0');
      const text = read(path.join(inst, 'trace')).split('\n');
      const first = (ev: string): Record<string, string> | undefined => {
        const l = text.find((x) => x.includes(` ${ev}:`));
        return l ? traceFields(l) : undefined;
      };
      const plain = first('data_plain');
      const afterComm = first('data_comm');
      if (plain) out.plain = plain;
      if (afterComm) out.afterComm = afterComm;
    });
  } finally {
    for (const m of made) write(events, `-:${m}`);
  }
  return out;
}
